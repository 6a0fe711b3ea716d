"""Onboarding benchmark: how long from a JAR to a served model, and from `push` to the new version answering.

    python bench/onboard_bench.py [--runs 3] [--workers 2] [--grpc]

1. cold start: `model-runner serve model.jar --class org.modelrunner.samples.iris.IrisClassifier` with a
   fresh repository, timed from the command's start to the first successful prediction (the client polls
   every 20 ms). Target: < 10 s on the project machine.
2. push: against that running service, `model-runner push iris <iris-v2 bundle>` (the CLI, a subprocess)
   and `Client.push` (in process), timed from the start of the push until a prediction answers with
   the new version (for the CLI also until the command returns).

Prints a Markdown block for bench/BENCHMARKS.md with the date, the command and the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}


def predict(url: str, timeout: float = 5) -> requests.Response | None:
    try:
        return requests.post(f"{url}/models/iris/methods/Classify", json=ROW, timeout=timeout)
    except requests.RequestException:
        return None


def wait_for_version(url: str, version: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        resp = predict(url)
        if (
            resp is not None
            and resp.status_code == 200
            and resp.headers.get("X-Model-Version") == str(version)
        ):
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"version {version} never answered")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cold_start(
    jar: Path, work: Path, workers: int, grpc: bool
) -> tuple[float, subprocess.Popen[bytes], str, Path]:
    """Seconds from `serve model.jar --class` to the first 200, and the running service."""
    repo = work / "repo"
    port = free_port()
    grpc_port = str(free_port()) if grpc else "-1"
    cmd = [
        "model-runner",
        "serve",
        str(jar),
        "--class",
        IRIS_CLASS,
        "--name",
        "iris",
        "--repo",
        str(repo),
        "--http-port",
        str(port),
        "--grpc-port",
        grpc_port,
        "--workers",
        str(workers),
    ]
    log = open(work / "serve.log", "wb")
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
    deadline = t0 + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {(work / 'serve.log').read_text()[-3000:]}")
        resp = predict(url, timeout=2)
        if resp is not None and resp.status_code == 200:
            return time.monotonic() - t0, proc, url, repo
        time.sleep(0.02)
    stop(proc)
    raise TimeoutError("no prediction within 300 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grpc", action="store_true", help="also start the gRPC server (a free port)")
    ap.add_argument("--pushes", type=int, default=5, help="pushes per run (alternating iris-v2 / iris)")
    args = ap.parse_args()

    from runner.client import Client
    from runner.samples import build_sample_bundles

    bundles = build_sample_bundles()  # built (or cached) before any timing
    cold: list[float] = []
    push_cli_return: list[float] = []
    push_cli_answer: list[float] = []
    push_api: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="mr-onboard-bench-") as tmp:
            work = Path(tmp)
            jar = work / "model.jar"
            shutil.copyfile(bundles["iris"] / "model.jar", jar)
            seconds, proc, url, repo = cold_start(jar, work, args.workers, args.grpc)
            cold.append(seconds)
            print(f"run {run + 1}: serve model.jar -> first prediction {seconds:.2f} s", file=sys.stderr)
            try:
                token = (repo / "admin-token").read_text().strip()
                client = Client(url, token)
                version = 1
                for i in range(args.pushes):
                    source = bundles["iris-v2"] if i % 2 == 0 else bundles["iris"]
                    version += 1
                    if i % 2 == 0:  # the CLI, as a person types it
                        t0 = time.monotonic()
                        subprocess.run(
                            ["model-runner", "push", "iris", str(source), "--url", url, "--token", token],
                            check=True,
                            capture_output=True,
                            env=env(),
                        )
                        returned = time.monotonic()
                        answered = wait_for_version(url, version, t0 + 120)
                        push_cli_return.append(returned - t0)
                        push_cli_answer.append(answered - t0)
                    else:  # the Python client (no process start-up)
                        t0 = time.monotonic()
                        result = client.push("iris", source)
                        assert result["version"] == version, result
                        answered = wait_for_version(url, version, t0 + 120)
                        push_api.append(answered - t0)
            finally:
                stop(proc)

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "-"
        return f"median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"

    cmd = " ".join(["python", "bench/onboard_bench.py", *sys.argv[1:]])
    print(f"""
### Onboarding: JAR to first prediction, push to new version ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)

Command: `{cmd}` ({os.cpu_count()} cores, {args.workers} HTTP workers, gRPC {"on" if args.grpc else "off"}; iris sample JAR).

| Measure | Result |
|---|---|
| `model-runner serve model.jar --class {IRIS_CLASS}` to the first 200 (target < 10 s) | {fmt(cold)} |
| `model-runner push iris <bundle>` (CLI) until the command returns | {fmt(push_cli_return)} |
| `model-runner push iris <bundle>` (CLI) until a prediction answers with the new version | {fmt(push_cli_answer)} |
| `Client.push` until a prediction answers with the new version | {fmt(push_api)} |
""")
    print(
        json.dumps(
            {
                "cold_start": cold,
                "push_cli_return": push_cli_return,
                "push_cli_answer": push_cli_answer,
                "push_api": push_api,
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
