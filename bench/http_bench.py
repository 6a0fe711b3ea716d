"""HTTP benchmark: model-runner (Java iris JSON + protobuf, Python iris) against MLServer (sklearn iris,
`parallel_workers: 0`) in the same run, equal worker counts, load from `hey`; then a swap bench.

    python bench/http_bench.py [--duration 10] [--concurrency 16] [--workers 1] [--swaps 50]

Prints a table (requests/s, p50, p99, non-2xx) and the swap figures (latency until every worker serves,
p50/p99 over --swaps swaps, failed requests under load during them). Results go to bench/BENCHMARKS.md.

Ceiling row "bare WSGI (no model)": a trivial WSGI app answering a fixed small JSON body, served by our
own gunicorn setup (runner.http.gunicorn_app.HttpServer: same worker class, workers, threads, keepalive;
bench/bare_servers.py): what the server stack alone allows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlserver_peer import start_mlserver, v2_iris_request

from runner.bundle import write_bundle_zip
from runner.contract import Contract
from runner.samples import build_sample_bundles, find_repo_root

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def start_runner(
    bundles: list[Path],
    workers: int,
    threads: int,
    tmp: Path,
    cwd: Path | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`serve` on ``bundles``; ``cwd``: the source tree whose `runner` runs (default: the installed one);
    ``extra_args``: more `serve` flags (e.g. ``--http-server granian``)."""
    ready = tmp / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "serve",
            *map(str, bundles),
            "--repo",
            str(tmp / "repo"),
            "--http-port",
            "0",
            "--grpc-port",
            "-1",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"serve failed:\n{(tmp / 'serve.log').read_text()[-4000:]}")
        time.sleep(0.2)
    return proc, json.loads(ready.read_text())


def start_bare_wsgi(workers: int, threads: int) -> tuple[subprocess.Popen[str], int]:
    """bench/bare_servers.py http: the ceiling reference (no model, same gunicorn config)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "bare_servers.py"),
            "http",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    match = re.search(r"port=(\d+)", proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("the bare WSGI server did not start")
    return proc, int(match.group(1))


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hey(
    url: str, body: bytes, content_type: str, duration: float, concurrency: int, tmp: Path
) -> dict[str, Any]:
    """Run hey; requests/s, p50/p99 (ms), responses by status, errors."""
    body_file = tmp / f"body-{abs(hash((url, content_type)))}"
    body_file.write_bytes(body)
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{duration}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            content_type,
            "-D",
            str(body_file),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_hey(out)


def parse_hey(out: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = 0
    if "Error distribution:" in out:
        errors = sum(
            int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", out.split("Error distribution:")[1], re.MULTILINE)
        )
    return {
        "rps": rps,
        "p50_ms": pct.get(50),
        "p99_ms": pct.get(99),
        "statuses": statuses,
        "errors": errors,
        "non_2xx": sum(n for c, n in statuses.items() if not 200 <= c < 300) + errors,
    }


def swap_bench(
    base: str, token: str, bundles: dict[str, Path], swaps: int, concurrency: int, tmp: Path
) -> dict[str, Any]:
    """`swaps` uploads alternating iris-v2 / iris while hey loads /models/iris; latency of each admin
    call (it answers once every worker serves the new version) and the failed requests meanwhile."""
    body_file = tmp / "swap-body.json"
    body_file.write_text(json.dumps(FLOWER))
    load = subprocess.Popen(
        [
            "hey",
            "-z",
            "3600s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body_file),
            f"{base}/models/iris/methods/Classify",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    zips = {"v2": write_bundle_zip(bundles["iris-v2"]), "v1": write_bundle_zip(bundles["iris"])}
    latencies, failures = [], 0
    session = requests.Session()
    for i in range(swaps):
        data = zips["v2" if i % 2 == 0 else "v1"]
        t0 = time.perf_counter()
        r = session.put(
            f"{base}/models/iris",
            data=data,
            timeout=120,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
        )
        latencies.append(time.perf_counter() - t0)
        if r.status_code != 200:
            failures += 1
            print(f"swap {i}: {r.status_code} {r.text[:300]}", file=sys.stderr)
        time.sleep(0.1)
    time.sleep(0.5)
    load.send_signal(signal.SIGINT)  # hey prints its summary on SIGINT
    out, _ = load.communicate(timeout=60)
    result = parse_hey(out)
    latencies.sort()
    return {
        "swaps": swaps,
        "swap_failures": failures,
        "swap_p50_ms": statistics.median(latencies) * 1000,
        "swap_p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000,
        "swap_max_ms": latencies[-1] * 1000,
        "requests_during": sum(result["statuses"].values()),
        "failed_requests": result["non_2xx"],
        "rps_during": result["rps"],
    }


def swaps(args: argparse.Namespace, bundles: dict[str, Path], tmp: Path) -> dict[str, Any]:
    """`serve` (``--swap-workers``) under load while ``--swaps`` uploads alternate (swap_bench)."""
    (tmp / "swap").mkdir()
    proc, info = start_runner(
        [bundles["iris"]], args.swap_workers, args.threads, tmp / "swap", extra_args=args.serve_flag
    )
    try:
        token = Path(info["token_file"]).read_text().strip()
        return swap_bench(
            f"http://127.0.0.1:{info['http_port']}", token, bundles, args.swaps, args.concurrency, tmp
        )
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on both sides (MLServer: 1 process)"
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--swaps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="turns per target (median reported)")
    parser.add_argument("--swap-workers", type=int, default=2)
    parser.add_argument("--swaps-only", action="store_true", help="only the swaps under load")
    parser.add_argument(
        "--serve-flag",
        action="append",
        default=[],
        help="a `serve` flag for model-runner's servers (repeatable: --serve-flag=--http-server "
        "--serve-flag=granian)",
    )
    args = parser.parse_args()

    bundles = build_sample_bundles()
    contract = Contract.compile((find_repo_root() / "protos" / "iris.proto").read_text())
    pb_body = contract.input_class("Classify")(**FLOWER).SerializeToString()
    json_body = json.dumps(FLOWER).encode()
    rounds: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.swaps_only:
            swap = swaps(args, bundles, tmp)
            print(f"swaps ({' '.join(args.serve_flag) or 'serve defaults'}): {json.dumps(swap)}")
            return
        # Both servers run side by side and the targets take turns, round after round, so that load
        # from elsewhere on the machine hits both alike; the median round is reported.
        peer = start_mlserver(tmp / "mlserver")
        (tmp / "runner").mkdir()
        proc, info = start_runner(
            [bundles["iris"], bundles["iris-python"]],
            args.workers,
            args.threads,
            tmp / "runner",
            extra_args=args.serve_flag,
        )
        base = f"http://127.0.0.1:{info['http_port']}"
        bare, bare_port = start_bare_wsgi(args.workers, args.threads)
        targets = [
            (
                "mlserver sklearn iris (V2 JSON)",
                peer.infer_url,
                json.dumps(v2_iris_request()).encode(),
                "application/json",
            ),
            (
                "model-runner Java iris JSON",
                f"{base}/models/iris/methods/Classify",
                json_body,
                "application/json",
            ),
            (
                "model-runner Java iris protobuf",
                f"{base}/models/iris/methods/Classify",
                pb_body,
                "application/x-protobuf",
            ),
            (
                "model-runner Python iris JSON",
                f"{base}/models/iris-python/methods/Classify",
                json_body,
                "application/json",
            ),
            (
                "bare WSGI (no model)",
                f"http://127.0.0.1:{bare_port}/models/iris/methods/Classify",
                json_body,
                "application/json",
            ),
        ]
        try:
            for _ in range(args.rounds):
                for name, url, body, media in targets:
                    rounds.setdefault(name, []).append(
                        hey(url, body, media, args.duration, args.concurrency, tmp)
                    )
        finally:
            peer.stop()
            stop(proc)
            stop(bare)
        swap = swaps(args, bundles, tmp)
    results = {name: sorted(rs, key=lambda r: r["rps"])[len(rs) // 2] for name, rs in rounds.items()}
    for name, rs in rounds.items():
        results[name]["rounds_rps"] = [round(r["rps"]) for r in rs]

    print(
        f"# http_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {os.cpu_count()} cores, "
        f"workers={args.workers} threads={args.threads} concurrency={args.concurrency} "
        f"duration={args.duration}s x {args.rounds} rounds, median round (hey)"
    )
    print(f"| {'target':<36} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for name, r in results.items():
        print(
            f"| {name:<36} | {r['rps']:>9.0f} | {r['p50_ms']:>7.2f} | {r['p99_ms']:>7.2f} | {r['non_2xx']:>7} |"
            f"  rounds: {r['rounds_rps']}"
        )
    ml = results["mlserver sklearn iris (V2 JSON)"]["rps"]
    for name, r in results.items():
        if name.startswith("model-runner") or name.startswith("bare"):
            print(f"{name}: {r['rps'] / ml:.2f}x MLServer requests/s")
    print(
        f"swaps ({args.swap_workers} workers, under load c={args.concurrency}): {swap['swaps']} swaps, "
        f"p50 {swap['swap_p50_ms']:.0f} ms, p99 {swap['swap_p99_ms']:.0f} ms, max {swap['swap_max_ms']:.0f} ms, "
        f"{swap['swap_failures']} failed swaps; {swap['requests_during']} requests during them, "
        f"{swap['failed_requests']} failed"
    )
    print(json.dumps({"results": results, "swap": swap}, indent=1))


if __name__ == "__main__":
    main()
