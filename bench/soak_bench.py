"""Soak bench: minutes of HTTP load on a real `model-runner serve` (2 workers, gRPC on) with a swap every
second and a fault every 30 s; what an operator would want to know after a long day.

    python bench/soak_bench.py [--minutes 10] [--concurrency 8] [--workers 2] [--threads 8]

- load: --concurrency threads, each on its own keep-alive connection, POST /models/iris/methods/Classify;
- swaps: one admin client pushes iris v2, v1, v2, ... (the sample bundles of build/samples/) over
  `PUT /models/iris`, one every --swap-interval seconds; a 200 means every serving process serves
  the new version: from then on that version is the floor;
- faults, one every --fault-interval seconds, in turn:
  * kill: `kill -9` of one gunicorn HTTP worker (its pid from the repository's serving records);
    gunicorn replaces it, the new worker loads the current versions;
  * slow load: a push of another model (`slowpoke`, a Python model whose constructor sleeps
    --slow-seconds) while the iris swaps go on: they must not wait for it;
  * concurrent push: --pushers clients push iris at once, without If-Match: one wins, the others
    answer 409 superseded at once (or 200 when they came one after another);
- reported: requests, failures (non-2xx, connection errors; those in the few seconds after a kill
  apart), stale answers (an X-Model-Version below the floor when the request was sent), swap latency,
  the faults' outcomes, and every --sample-interval seconds the RSS of each serving process (from
  /proc, the pids from the serving records) and each JVM's Metaspace in use (`/metrics`'
  model_runner_jvm_metaspace_used_bytes when the service exports it, else `jstat -gc`).

Nothing here is a test: it prints a report (and --json writes it) for bench/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from runner.bundle import write_bundle_zip
from runner.samples import build_sample_bundles

FLOWER = json.dumps(
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
).encode()
#: Failures this long after a worker was killed are the kill's (its connections were cut).
KILL_WINDOW = 5.0

SLOW_PROTO = """syntax = "proto3";
package slow;
message Ask { double x = 1; }
message Answer { double y = 1; }
service Slowpoke { rpc Echo (Ask) returns (Answer); }
"""


def slow_bundle(folder: Path, seconds: float, generation: int) -> bytes:
    """A Python bundle whose constructor sleeps ``seconds`` (``generation`` makes each push new content)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "model.proto").write_text(SLOW_PROTO)
    (folder / "slow_model.py").write_text(
        textwrap.dedent(f"""
            import time

            GENERATION = {generation}


            class Slowpoke:
                def __init__(self):
                    time.sleep({seconds})

                def Echo(self, request):
                    return {{"y": request.x}}
        """)
    )
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "name": "slowpoke",
                "runtime": "python",
                "entry_point": "slow_model:Slowpoke",
                "examples": {"Echo": [{"x": 1.0}]},
            }
        )
    )
    return write_bundle_zip(folder)


# ------------------------------------------------------------------------------------------ the service


def start_serve(
    bundle: Path, args: argparse.Namespace, tmp: Path
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = tmp / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    log = open(tmp / "serve.log", "wb")  # the service writes it until it stops
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "serve",
        str(bundle),
        "--repo",
        str(tmp / "repo"),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--grpc-processes",
        str(args.grpc_processes),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--ready-file",
        str(ready),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"serve failed:\n{(tmp / 'serve.log').read_text()[-4000:]}")
        time.sleep(0.2)
    return proc, json.loads(ready.read_text())


def serving_records(repo: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((repo / "serving").glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced
    return out


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_METASPACE = re.compile(r"^model_runner_jvm_metaspace_used_bytes\{([^}]*)\}\s+([0-9.eE+]+)", re.MULTILINE)


def metaspace_from_metrics(base: str) -> dict[int, float]:
    """pid -> Metaspace in use, from /metrics (empty when the service does not export it)."""
    try:
        text = requests.get(f"{base}/metrics", timeout=10).text
    except requests.RequestException:
        return {}
    out = {}
    for labels, value in _METASPACE.findall(text):
        pid = re.search(r'pid="(\d+)"', labels)
        if pid:
            out[int(pid.group(1))] = float(value)
    return out


def metaspace_from_jstat(pid: int) -> float | None:
    """Metaspace in use (MU, KiB) of the JVM in process ``pid``, from its perf data (`jstat -gc`)."""
    jstat = shutil.which("jstat")
    if jstat is None:
        return None
    try:
        out = subprocess.run([jstat, "-gc", str(pid)], capture_output=True, text=True, timeout=10).stdout
        header, values = out.strip().splitlines()[:2]
        return float(values.split()[header.split().index("MU")]) * 1024
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Shared:
    base: str
    host: str
    port: int
    token: str
    repo: Path
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    floor: int = 0  # the version the admin API confirmed served last
    kills: list[float] = field(default_factory=list)  # when a worker was killed
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    conn_errors: int = 0
    failures_after_kill: int = 0
    failure_samples: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    versions: Counter[int] = field(default_factory=Counter)
    swaps: list[tuple[float, float, int]] = field(default_factory=list)  # (t, seconds, status)
    swap_errors: list[str] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    per_minute: dict[int, Counter[str]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def minute(self) -> Counter[str]:
        return self.per_minute.setdefault(int((time.monotonic() - self.started) // 60), Counter())

    def after_kill(self, t: float) -> bool:
        """Whether ``t`` falls within KILL_WINDOW seconds after a worker was killed."""
        return any(0 <= t - k <= KILL_WINDOW for k in self.kills)


def load_loop(s: Shared) -> None:
    conn: http.client.HTTPConnection | None = None
    headers = {"Content-Type": "application/json"}
    while not s.stop.is_set():
        floor = s.floor
        sent = time.monotonic()
        failed: str | None = None
        version = None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(s.host, s.port, timeout=30)
            conn.request("POST", "/models/iris/methods/Classify", FLOWER, headers)
            r = conn.getresponse()
            body = r.read()
            status = r.status
            if status != 200:
                failed = f"{status} {body[:200]!r}"
            else:
                version = int(r.headers.get("X-Model-Version", "0"))
            if r.headers.get("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as err:
            status, failed = -1, f"{type(err).__name__}: {err}"
            if conn is not None:
                conn.close()
            conn = None
        with s.lock:
            s.requests += 1
            minute = s.minute()
            minute["requests"] += 1
            if status == -1:
                s.conn_errors += 1
            else:
                s.statuses[status] += 1
            if failed is not None:
                if s.after_kill(time.monotonic()):  # cut by a kill: in flight or sent just after it
                    s.failures_after_kill += 1
                    minute["failures_after_kill"] += 1
                else:
                    minute["failures"] += 1
                if len(s.failure_samples) < 20:
                    s.failure_samples.append(f"t={sent - s.started:.1f}s {failed}")
            if version is not None:
                s.versions[version] += 1
                if version < floor:
                    minute["stale"] += 1
                    s.stale.append(f"t={sent - s.started:.1f}s version {version} < confirmed {floor}")


def push(
    s: Shared, data: bytes, name: str = "iris", timeout: float = 180
) -> tuple[int, float, dict[str, Any]]:
    t0 = time.monotonic()
    try:
        r = requests.put(
            f"{s.base}/models/{name}",
            data=data,
            timeout=timeout,
            headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/zip"},
        )
    except requests.RequestException as err:
        return -1, time.monotonic() - t0, {"error": str(err)}
    try:
        doc = r.json()
    except ValueError:
        doc = {"text": r.text[:300]}
    return r.status_code, time.monotonic() - t0, doc


def swap_loop(s: Shared, zips: dict[str, bytes], interval: float) -> None:
    i = 0
    while not s.stop.is_set():
        began = time.monotonic()
        status, took, doc = push(s, zips["v2" if i % 2 == 0 else "v1"])
        i += 1
        with s.lock:
            s.swaps.append((began - s.started, took, status))
            s.minute()[f"swap {status}"] += 1
            if status == 200:
                s.floor = max(s.floor, int(doc["version"]))
            elif status != 409 or not doc.get("error", {}).get("detail", {}).get("superseded"):
                s.swap_errors.append(f"t={began - s.started:.1f}s {status} {json.dumps(doc)[:300]}")
        s.stop.wait(max(0.0, interval - (time.monotonic() - began)))


def fault_kill(s: Shared) -> dict[str, Any]:
    workers = [r for r in serving_records(s.repo) if r.get("kind") == "http" and rss_bytes(int(r["pid"]))]
    if not workers:
        return {"fault": "kill", "error": "no live HTTP worker in the serving records"}
    victim = int(workers[0]["pid"])
    before = {int(r["pid"]) for r in workers}
    with s.lock:
        s.kills.append(time.monotonic())
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    replaced = None
    while time.monotonic() - t0 < 60 and not s.stop.is_set():
        now = {int(r["pid"]) for r in serving_records(s.repo) if r.get("kind") == "http" and r.get("ready")}
        fresh = now - before
        if fresh:
            replaced = (sorted(fresh)[0], time.monotonic() - t0)
            break
        time.sleep(0.2)
    out: dict[str, Any] = {"fault": "kill", "pid": victim}
    if replaced:
        out["replaced_by"], out["ready_after_s"] = replaced[0], round(replaced[1], 1)
    else:
        out["replaced_by"] = None
    return out


def fault_slow(s: Shared, folder: Path, seconds: float, generation: int) -> dict[str, Any]:
    """Push the slow model; meanwhile the iris swaps go on (measured from the swap records)."""
    began = time.monotonic() - s.started
    status, took, doc = push(s, slow_bundle(folder, seconds, generation), name="slowpoke")
    ended = began + took
    with s.lock:
        during = [d for t, d, st in s.swaps if began <= t <= ended]
        ok = sum(1 for t, d, st in s.swaps if began <= t <= ended and st == 200)
    return {
        "fault": "slow load",
        "status": status,
        "seconds": round(took, 1),
        "iris_swaps_meanwhile": len(during),
        "iris_swaps_ok": ok,
        "iris_swap_max_s": round(max(during), 2) if during else None,
        "error": None if status == 200 else json.dumps(doc)[:300],
    }


def fault_concurrent(s: Shared, zips: dict[str, bytes], pushers: int) -> dict[str, Any]:
    results: list[tuple[int, float, dict[str, Any]]] = []
    gate = threading.Barrier(pushers)

    def one(i: int) -> None:
        gate.wait()
        results.append(push(s, zips["v1" if i % 2 else "v2"]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(pushers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with s.lock:
        for status, _, doc in results:
            if status == 200:
                s.floor = max(s.floor, int(doc["version"]))
    statuses = Counter(
        "409 superseded"
        if st == 409 and doc.get("error", {}).get("detail", {}).get("superseded")
        else str(st)
        for st, _, doc in results
    )
    return {
        "fault": "concurrent push",
        "answers": dict(statuses),
        "slowest_s": round(max(took for _, took, _ in results), 2),
    }


def fault_loop(s: Shared, zips: dict[str, bytes], args: argparse.Namespace, tmp: Path) -> None:
    """One fault every --fault-interval seconds, each on its own thread (a slow load outlasts the interval)."""
    running: list[threading.Thread] = []

    def run(n: int, at: float) -> None:
        kind = n % 3
        if kind == 0:
            outcome = fault_kill(s)
        elif kind == 1:
            outcome = fault_slow(s, tmp / f"slowpoke-{n}", args.slow_seconds, n)
        else:
            outcome = fault_concurrent(s, zips, args.pushers)
        outcome["t"] = round(at, 1)
        print(f"  fault at {at:5.0f}s: {json.dumps(outcome)}", flush=True)
        with s.lock:
            s.faults.append(outcome)

    n = 0
    while not s.stop.wait(args.fault_interval):
        thread = threading.Thread(target=run, args=(n, time.monotonic() - s.started), daemon=True)
        thread.start()
        running.append(thread)
        n += 1
    for thread in running:
        thread.join(timeout=200)


def take_sample(s: Shared, serve_pid: int, *, jstat: bool = False) -> None:
    """RSS of serve and of each serving process; Metaspace from /metrics (``jstat``: from jstat as well,
    a cross-check; each jstat starts a JVM, so only the first and the last sample have it)."""
    metaspace = metaspace_from_metrics(s.base)
    processes = []
    for rec in serving_records(s.repo):
        pid = int(rec["pid"])
        rss = rss_bytes(pid)
        if rss is None:
            continue  # a dead worker's record, not yet removed
        meta = metaspace.get(pid)
        checked = metaspace_from_jstat(pid) if jstat or meta is None else None
        process = {
            "pid": pid,
            "kind": rec.get("kind"),
            "rss": rss,
            "metaspace": meta if meta is not None else checked,
        }
        if jstat:
            process["metaspace_jstat"] = checked
        processes.append(process)
    sample = {
        "t": round(time.monotonic() - s.started),
        "serve_rss": rss_bytes(serve_pid),
        "processes": processes,
        "metaspace_source": "metrics" if metaspace else "jstat",
    }
    with s.lock:
        s.samples.append(sample)


def sample_loop(s: Shared, serve_pid: int, interval: float) -> None:
    first = True
    while True:
        take_sample(s, serve_pid, jstat=first)
        first = False
        if s.stop.wait(interval):
            return


# ------------------------------------------------------------------------------------------ the report


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def report(s: Shared, args: argparse.Namespace, elapsed: float) -> dict[str, Any]:
    failures = sum(n for st, n in s.statuses.items() if st != 200) + s.conn_errors
    swap_times = sorted(d for _, d, st in s.swaps if st == 200)
    swap_statuses = Counter(st for _, _, st in s.swaps)
    summary = {
        "minutes": round(elapsed / 60, 2),
        "requests": s.requests,
        "rps": round(s.requests / elapsed),
        "failures": failures,
        "failures_within_5s_of_a_kill": s.failures_after_kill,
        "failures_otherwise": failures - s.failures_after_kill,
        "connection_errors": s.conn_errors,
        "statuses": dict(s.statuses),
        "stale": len(s.stale),
        "swaps": len(s.swaps),
        "swap_statuses": dict(swap_statuses),
        "swap_p50_ms": round(statistics.median(swap_times) * 1000) if swap_times else None,
        "swap_p99_ms": round(swap_times[int(0.99 * (len(swap_times) - 1))] * 1000) if swap_times else None,
        "swap_max_ms": round(swap_times[-1] * 1000) if swap_times else None,
        "versions_served": len(s.versions),
        "last_confirmed_version": s.floor,
    }
    print("\n=== soak summary ===")
    for key, value in summary.items():
        print(f"{key:32s} {value}")
    if s.failure_samples:
        print("failure samples:", *s.failure_samples[:10], sep="\n  ")
    if s.stale:
        print("stale answers:", *s.stale[:10], sep="\n  ")
    if s.swap_errors:
        print("swap errors:", *s.swap_errors[:10], sep="\n  ")
    slowest = sorted(s.swaps, key=lambda swap: -swap[1])[:5]
    print("slowest swaps:", *(f"t={t:.1f}s {d:.2f}s -> {st}" for t, d, st in slowest), sep="\n  ")
    print("\nper minute: requests, failures (after a kill), stale, swaps by status")
    for minute, c in sorted(s.per_minute.items()):
        swaps = {k[5:]: v for k, v in c.items() if k.startswith("swap ")}
        print(
            f"  {minute:3d}: {c['requests']:7d} {c['failures']:4d} ({c['failures_after_kill']:3d}) "
            f"{c['stale']:3d}  {swaps}"
        )
    print("\nfaults:")
    for f in s.faults:
        print("  ", json.dumps(f))
    source = s.samples[-1]["metaspace_source"] if s.samples else "-"
    print(f"\nmemory (MiB): t, serve master RSS; per serving process kind:pid RSS/Metaspace (from {source})")
    for sample in s.samples:
        cells = " ".join(
            f"{p['kind']}:{p['pid']} {mib(p['rss'])}/{mib(p['metaspace'])}" for p in sample["processes"]
        )
        print(f"  {sample['t']:5d}s {mib(sample['serve_rss']):>5s}  {cells}")
        checked = [
            f"{p['kind']}:{p['pid']} {mib(p['metaspace_jstat'])}"
            for p in sample["processes"]
            if "metaspace_jstat" in p
        ]
        if checked:
            print(f"         Metaspace in use by jstat -gc (MU): {' '.join(checked)}")
    return {
        "summary": summary,
        "faults": s.faults,
        "samples": s.samples,
        "per_minute": s.per_minute,
        "swaps": s.swaps,
        "failure_samples": s.failure_samples,
        "stale_samples": s.stale[:50],
        "swap_errors": s.swap_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8, help="load threads (keep-alive connections)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--grpc-processes", type=int, default=1)
    parser.add_argument("--swap-interval", type=float, default=1.0)
    parser.add_argument("--fault-interval", type=float, default=30.0)
    parser.add_argument("--slow-seconds", type=float, default=20.0, help="the slow model's constructor")
    parser.add_argument("--pushers", type=int, default=5, help="clients of a concurrent push")
    parser.add_argument("--sample-interval", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="write the whole report here")
    args = parser.parse_args()

    bundles = build_sample_bundles()
    zips = {"v1": write_bundle_zip(bundles["iris"]), "v2": write_bundle_zip(bundles["iris-v2"])}
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp_name:
        tmp = Path(tmp_name)
        proc, info = start_serve(bundles["iris"], args, tmp)
        base = f"http://127.0.0.1:{info['http_port']}"
        token = Path(info["token_file"]).read_text().strip()
        s = Shared(base, "127.0.0.1", int(info["http_port"]), token, tmp / "repo")
        s.floor = int(requests.get(f"{base}/models/iris", timeout=30).json()["version"])
        print(
            f"serve pid {proc.pid} on {base} (gRPC port {info.get('grpc_port')}), {args.workers} workers, "
            f"{args.grpc_processes} gRPC process(es); {args.minutes:g} min of load x{args.concurrency}, a swap "
            f"every {args.swap_interval:g}s, a fault every {args.fault_interval:g}s",
            flush=True,
        )
        threads = [
            threading.Thread(target=load_loop, args=(s,), daemon=True) for _ in range(args.concurrency)
        ]
        threads.append(threading.Thread(target=swap_loop, args=(s, zips, args.swap_interval), daemon=True))
        threads.append(threading.Thread(target=fault_loop, args=(s, zips, args, tmp), daemon=True))
        sampler = threading.Thread(target=sample_loop, args=(s, proc.pid, args.sample_interval), daemon=True)
        s.started = time.monotonic()
        for t in [*threads, sampler]:
            t.start()
        try:
            s.stop.wait(args.minutes * 60)
        finally:
            s.stop.set()
            elapsed = time.monotonic() - s.started
            for t in threads:
                t.join(timeout=200)
            sampler.join(timeout=30)
            take_sample(s, proc.pid, jstat=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                print("serve did not stop within 90 s of SIGTERM", file=sys.stderr)
        doc = report(s, args, elapsed)
        log = (tmp / "serve.log").read_text(errors="replace")
        errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
        print(f"\nserve log: {len(log.splitlines())} lines, {len(errors)} error lines")
        for line in errors[:10]:
            print("  ", line[:300])
        if args.json:
            args.json.write_text(
                json.dumps({**doc, "args": vars(args) | {"json": str(args.json)}}, indent=1, default=str)
            )


if __name__ == "__main__":
    main()
