"""Fleet swap convergence: 1 host vs 3 hosts behind nginx, in one run.

    python bench/fleet_bench.py [--swaps 100] [--fleets 1,3] [--load 2] [--json out.json]

Each fleet is made fresh with the fleet tests' harness (tests/fleet/hosts.py; needs root, iproute2 and
nginx): N hosts, each a network namespace with its own address running `model-runner serve` (1 HTTP
worker, 1 gRPC process) on one shared repository folder, nginx in front. Then --swaps pushes of model
"gen" (a Python model answering its generation) go through nginx (PUT /models/gen, to whichever host
nginx picks), one after another, while --load HTTP clients call through nginx. For each push:

- push: from the request sent to the 200 (validation, publish, every live serving process of every host
  serves it);
- converged: from the 200 until every host, asked directly at its own address, answered the new
  generation (one request per host at a time, in parallel; a host answering an older generation after
  the 200 would be a stale answer, and is counted).

Reported: p50, p99 and max of both, stale answers, failed load requests. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives with the tests

from runner.bundle import write_bundle_zip  # noqa: E402
from tests.e2e.load import ClientThreads  # noqa: E402
from tests.fleet.hosts import Fleet, Host, write_gen_bundle  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ask(session: requests.Session, base: str) -> int:
    r = session.post(f"{base}/models/gen/methods/Ask", json={"text": "hi"}, timeout=60)
    r.raise_for_status()
    return int(r.json()["generation"])


class Load(ClientThreads):
    """``threads`` HTTP clients through nginx; counts answers and failures."""

    def __init__(self, base: str, threads: int) -> None:
        super().__init__()
        self.base = base
        self.answered = 0
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    ask(session, self.base)
                    self.answered += 1
                except (requests.RequestException, ValueError, KeyError) as err:
                    self.failed.append(repr(err)[:200])


def run_fleet(size: int, swaps: int, load_threads: int, workdir: Path) -> dict[str, Any]:
    fleet = Fleet(workdir)
    try:
        hosts = [fleet.add_host() for _ in range(size)]
        hosts[0].start(str(write_gen_bundle(workdir / "gen-1", 1, fleet.hang_dir)))
        for host in hosts[1:]:
            host.start(wait=False)
        for host in hosts[1:]:
            host.wait_ready()
        nginx = fleet.start_nginx()
        sessions = {h.host_id: requests.Session() for h in hosts}
        admin = requests.Session()
        push_s: list[float] = []
        converge_s: list[float] = []
        stale = 0
        with Load(nginx.base, load_threads) as load, ThreadPoolExecutor(len(hosts)) as pool:
            for generation in range(2, swaps + 2):
                bundle = write_bundle_zip(write_gen_bundle(workdir / "bundle", generation, fleet.hang_dir))
                sent = time.monotonic()
                r = admin.put(
                    f"{nginx.base}/models/gen",
                    data=bundle,
                    headers={**fleet.auth, "Content-Type": "application/zip"},
                    timeout=120,
                )
                answered = time.monotonic()
                if r.status_code != 200:
                    raise RuntimeError(f"push of generation {generation}: {r.status_code} {r.text[:500]}")

                def until_new(host: Host, generation: int = generation) -> tuple[float, int]:
                    old = 0
                    while True:
                        got = ask(sessions[host.host_id], host.base)
                        if got >= generation:
                            return time.monotonic(), old
                        old += 1

                results = list(pool.map(until_new, hosts))
                push_s.append(answered - sent)
                converge_s.append(max(t for t, _old in results) - answered)
                stale += sum(old for _t, old in results)
        return {
            "hosts": size,
            "swaps": swaps,
            "push_p50_ms": 1000 * statistics.median(push_s),
            "push_p99_ms": 1000 * percentile(push_s, 0.99),
            "push_max_ms": 1000 * max(push_s),
            "converged_p50_ms": 1000 * statistics.median(converge_s),
            "converged_p99_ms": 1000 * percentile(converge_s, 0.99),
            "converged_max_ms": 1000 * max(converge_s),
            "stale_answers": stale,
            "load_answered": load.answered,
            "load_failed": len(load.failed),
            "load_failures_sample": load.failed[:3],
        }
    finally:
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--fleets", default="1,3", help="fleet sizes, comma-separated (default 1,3)")
    parser.add_argument("--load", type=int, default=2, help="HTTP load clients through nginx (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.fleets.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"fleet-bench-{size}-") as tmp:
            rows.append(run_fleet(size, args.swaps, args.load, Path(tmp)))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        "| hosts | swaps | push sent → 200: p50 / p99 / max | 200 → every host answers it: p50 / p99 / max | stale | load: answered / failed |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hosts']} | {r['swaps']} | {r['push_p50_ms']:.0f} / {r['push_p99_ms']:.0f} / {r['push_max_ms']:.0f} ms"
            f" | {r['converged_p50_ms']:.1f} / {r['converged_p99_ms']:.1f} / {r['converged_max_ms']:.1f} ms"
            f" | {r['stale_answers']} | {r['load_answered']} / {r['load_failed']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
