"""What ``"isolation": "process"`` costs over HTTP: requests/s and latency of the same model in-process and
isolated (runner.runtimes.process: a child process per model version per serving process), side by side
in one `serve`, load from `hey` (keep-alive), for the Java iris sample and the Python iris-python sample.

One `serve` (free ports, a temporary repository) serves four models: iris and iris-python as built by
`python -m runner.samples`, and copies of both named iris-isolated and iris-python-isolated whose
metadata.json sets ``"isolation": "process"``. Each model is checked (one call answers 200, its served
metadata says the intended isolation) and warmed up; then `hey` drives
POST /models/<name>/methods/Classify (JSON iris body) in interleaved rounds (in-process, isolated,
in-process, isolated, ...) so that load from elsewhere on the machine hits both alike; the median round
(by requests/s) is reported, with the ratio isolated / in-process per runtime. bench/isolation_bench.py
measures the same boundary without HTTP (per call, on the Model objects).

    python -m runner.samples                 # builds build/samples/ once (done here if missing)
    python bench/isolation_http_bench.py [--duration 10] [--concurrency 16] [--rounds 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import FLOWER, hey, start_runner, stop

from runner.samples import build_sample_bundles

RUNTIMES = {"Java": "iris", "Python": "iris-python"}  # runtime label -> sample bundle
ISOLATED_SUFFIX = "-isolated"


def isolated_copy(bundle: Path, dest: Path) -> Path:
    """A copy of ``bundle`` named ``<name>-isolated`` whose metadata.json sets ``"isolation": "process"``."""
    copy = dest / f"{bundle.name}{ISOLATED_SUFFIX}"
    shutil.copytree(bundle, copy)
    meta_path = copy / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["name"] = f"{meta['name']}{ISOLATED_SUFFIX}"
    meta["isolation"] = "process"
    meta_path.write_text(json.dumps(meta, indent=2))
    return copy


def check_model(base: str, name: str, isolation: str) -> None:
    """One call answers 200 and the served metadata.json says ``isolation`` (absent means in-process)."""
    r = requests.post(f"{base}/models/{name}/methods/Classify", json=FLOWER, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"model {name!r}: Classify answered {r.status_code}: {r.text[:300]}")
    meta = requests.get(f"{base}/models/{name}/metadata", timeout=60)
    meta.raise_for_status()
    served = meta.json().get("isolation") or "in-process"
    if served != isolation:
        raise SystemExit(
            f"model {name!r}: served metadata.json says isolation {served!r}, want {isolation!r}"
        )


def load_averages(before: tuple[float, float, float]) -> str:
    """The machine's load averages (1/5/15 min) ``before`` the run and now, for a report's first line."""
    return "; ".join(
        f"{when} {' '.join(f'{x:.2f}' for x in avg)}"
        for when, avg in (("before", before), ("after", os.getloadavg()))
    )


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median requests/s (a real round, so its p50/p99 belong together)."""
    result = dict(sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2])
    result["rounds_rps"] = [round(r["rps"]) for r in rounds]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per round and model")
    parser.add_argument("--concurrency", type=int, default=16, help="hey -c: connections at once")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model (median)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (serving processes)")
    parser.add_argument("--threads", type=int, default=8, help="serve --threads (per worker)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of hey load per model first")
    args = parser.parse_args()
    if min(args.duration, args.concurrency, args.rounds, args.workers, args.threads) <= 0:
        parser.error("--duration, --concurrency, --rounds, --workers and --threads must be positive")

    load_before = os.getloadavg()
    bundles = build_sample_bundles()
    body = json.dumps(FLOWER).encode()
    # (runtime, isolation, model name), in-process and isolated alternating
    targets = [
        (runtime, isolation, sample + (ISOLATED_SUFFIX if isolation == "process" else ""))
        for runtime, sample in RUNTIMES.items()
        for isolation in ("in-process", "process")
    ]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for _, _, name in targets}
    with tempfile.TemporaryDirectory(prefix="isolation-http-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "bundles").mkdir()
        (tmp / "runner").mkdir()
        served = [bundles[s] for s in RUNTIMES.values()]
        served += [isolated_copy(bundles[s], tmp / "bundles") for s in RUNTIMES.values()]
        proc, info = start_runner(served, args.workers, args.threads, tmp / "runner")
        base = f"http://127.0.0.1:{info['http_port']}"
        try:
            for _, isolation, name in targets:
                check_model(base, name, isolation)
                if args.warmup > 0:
                    url = f"{base}/models/{name}/methods/Classify"
                    hey(url, body, "application/json", args.warmup, args.concurrency, tmp)
            for _ in range(args.rounds):
                for _, _, name in targets:
                    url = f"{base}/models/{name}/methods/Classify"
                    rounds[name].append(
                        hey(url, body, "application/json", args.duration, args.concurrency, tmp)
                    )
        finally:
            stop(proc)

    results = {name: median_round(rs) for name, rs in rounds.items()}
    load = load_averages(load_before)
    print(
        f"# isolation_http_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{os.cpu_count()} cores, load average (1/5/15 min) {load}; "
        f"workers={args.workers} threads={args.threads} concurrency={args.concurrency} "
        f"duration={args.duration}s x {args.rounds} rounds, median round (hey, keep-alive)"
    )
    print(f"# command: {shlex.join(sys.orig_argv)}")
    print()
    print(
        f"| {'model':<20} | {'isolation':<10} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} |"
    )
    print(f"|{'-' * 22}|{'-' * 12}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for _, isolation, name in targets:
        r = results[name]
        print(
            f"| {name:<20} | {isolation:<10} | {r['rps']:>8.0f} | {r['p50_ms']:>7.2f} | {r['p99_ms']:>7.2f} "
            f"| {r['non_2xx']:>7} |  rounds req/s: {r['rounds_rps']}"
        )
    print()
    print(f"| {'runtime':<8} | {'isolated / in-process req/s':>27} | {'p50':>6} | {'p99':>6} |")
    print(f"|{'-' * 10}|{'-' * 29}|{'-' * 8}|{'-' * 8}|")
    for runtime, sample in RUNTIMES.items():
        a, b = results[sample], results[sample + ISOLATED_SUFFIX]
        print(
            f"| {runtime:<8} | {b['rps'] / a['rps']:>27.2f} | {b['p50_ms'] / a['p50_ms']:>6.2f} "
            f"| {b['p99_ms'] / a['p99_ms']:>6.2f} |"
        )
    print()
    print(json.dumps({"results": results}, indent=1))


if __name__ == "__main__":
    main()
