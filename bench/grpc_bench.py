"""gRPC throughput and latency: model-runner (Java iris, Python iris) against MLServer (sklearn iris,
Open Inference Protocol gRPC), in one run, with the same client load.

Setup: a fresh repository with the sample bundles ``iris`` (Java POJO) and ``iris-python``, served by
``--server-procs`` standalone ``python -m runner.grpc`` processes sharing one port (SO_REUSEPORT);
MLServer from bench/mlserver_peer.py (its own virtualenv, an sklearn LogisticRegression on iris).

Client: ``--client-procs`` processes (spawned, not forked), each with ``--conns`` connections and
``--inflight`` calls in flight per process (asynchronous futures: a closed loop, a new call as soon as
one ends). One row per call (a single flower). Each target gets a warm-up, then ``--duration``
seconds; targets are measured in turn, ``--rounds`` times, and the median round is reported.

Ceiling row ``bare``: the same number of gRPC processes with the same thread pool and options, one
generic handler echoing the request bytes (bench/bare_servers.py): the gRPC stack with none of our code.

    python bench/grpc_bench.py [--duration 10] [--rounds 2] [--client-procs 2] [--inflight 32]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
READY = re.compile(r"model-runner grpc ready host=\S+ port=(\d+) pid=(\d+)")


# --------------------------------------------------------------------------- client (spawned processes)


def _client(
    target: str,
    path: str,
    payload: bytes,
    metadata: tuple,
    conns: int,
    inflight: int,
    warmup: float,
    duration: float,
    start_at: float,
    out: Any,
) -> None:
    import grpc

    channels = [
        grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(conns)
    ]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=30)
    stubs = [ch.unary_unary(path) for ch in channels]
    lock = threading.Lock()
    done = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []
    state = {"active": inflight}
    while time.time() < start_at:
        time.sleep(0.001)
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + duration

    def launch(i: int) -> None:
        t0 = time.perf_counter()
        fut = stubs[i % len(stubs)].future(payload, metadata=metadata, timeout=30)
        fut.add_done_callback(lambda f: finished(f, t0, i))

    def finished(f: Any, t0: float, i: int) -> None:
        now = time.perf_counter()
        err = f.exception()
        if t0 >= t_measure and now <= t_end:
            with lock:
                if err is None:
                    latencies.append(now - t0)
                else:
                    failures.append(f"{err.code()}: {err.details()}")
        if now < t_end:
            launch(i + 1)
        else:
            with lock:
                state["active"] -= 1
                if state["active"] == 0:
                    done.set()

    for i in range(inflight):
        launch(i)
    done.wait(warmup + duration + 60)
    for ch in channels:
        ch.close()
    out.put((latencies, failures[:5], len(failures)))


def measure(target: str, path: str, payload: bytes, metadata: tuple, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # every client starts together (spawning takes a moment)
    procs = [
        ctx.Process(
            target=_client,
            args=(
                target,
                path,
                payload,
                metadata,
                args.conns,
                args.inflight,
                args.warmup,
                args.duration,
                start_at,
                out,
            ),
        )
        for _ in range(args.client_procs)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=args.warmup + args.duration + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    failed = sum(r[2] for r in results)
    n = len(lat)
    if n == 0:
        return {
            "calls": 0,
            "failed": failed,
            "calls_per_s": 0.0,
            "p50_ms": None,
            "p99_ms": None,
            "errors": [e for r in results for e in r[1]],
        }
    return {
        "calls": n,
        "failed": failed,
        "calls_per_s": round(n / args.duration, 1),
        "p50_ms": round(lat[n // 2] * 1e3, 3),
        "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1e3, 3),
        "errors": [e for r in results for e in r[1]],
    }


# --------------------------------------------------------------------------- servers


class RunnerProcesses:
    """``n`` standalone ``python -m runner.grpc`` processes on one port."""

    def __init__(self, repo: Path, n: int, threads: int | None = None, calls: str = "guarded"):
        from runner.settings import Settings

        settings = Settings(repo=repo, grpc_port=0, poll_interval=0.2, calls=calls)
        self.env = {**os.environ, **settings.to_env()}
        self.procs: list[subprocess.Popen[str]] = []
        self.extra = ["--threads", str(threads)] if threads else []
        self.port = self._start([])
        for _ in range(n - 1):
            assert self._start(["--port", str(self.port)]) == self.port

    def _start(self, extra: list[str]) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner.grpc", "--log-level", "WARNING", *self.extra, *extra],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = READY.search(line)
        if not m:
            self.stop()
            raise RuntimeError(f"runner.grpc did not start: {line!r}")
        return int(m.group(1))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class BareProcesses:
    """bench/bare_servers.py grpc: ``n`` processes echoing the request bytes on one port."""

    def __init__(self, n: int, threads: int | None = None):
        cmd = [sys.executable, str(ROOT / "bench" / "bare_servers.py"), "grpc", "--procs", str(n)]
        self.proc = subprocess.Popen(
            cmd + (["--threads", str(threads)] if threads else []), stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        m = re.search(r"port=(\d+)", self.proc.stdout.readline())
        if not m:
            self.stop()
            raise RuntimeError("bare gRPC server did not start")
        self.port = int(m.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


MODELS = {
    "java": "iris",
    "python": "iris-python",
    "java-oip": "iris",
    "java-inline": "iris",
    "python-inline": "iris-python",
}


def prepare_repository(repo: Path, names: list[str]) -> None:
    from runner.samples import build_sample_bundles
    from runner.store import Repository

    bundles = build_sample_bundles()
    repository = Repository(repo)
    for name in names:
        if name not in bundles:
            raise SystemExit(f"sample bundle {name!r} is not built (got {sorted(bundles)})")
        repository.publish(name, bundles[name], expected_version=None, caller="grpc_bench")


def check_answers(
    runner_target: str,
    names: list[str],
    ml_target: str,
    ml_model: str,
    iris_req: bytes,
    oip_req: bytes,
    iris: Any,
    oip: Any,
) -> None:
    """One call to each target, checked, before any load (a benchmark of errors is worthless)."""
    import grpc

    with grpc.insecure_channel(runner_target) as ch:
        for model in names:
            body = ch.unary_unary("/iris.IrisClassifier/Classify")(
                iris_req, metadata=(("x-model-name", model),), timeout=30
            )
            species = iris.output_class("Classify").FromString(body).species
            assert species == "setosa", (model, species)
    if ml_target:
        with grpc.insecure_channel(ml_target) as ch:
            body = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")(oip_req, timeout=30)
            resp = oip.output_class("ModelInfer").FromString(body)
            values = [list(o.contents.int64_contents) or list(o.contents.int_contents) for o in resp.outputs]
            assert resp.model_name == ml_model and values and values[0] == [0], resp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per target and round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--conns", type=int, default=2, help="connections per client process")
    parser.add_argument("--inflight", type=int, default=32, help="calls in flight per client process")
    parser.add_argument("--server-procs", type=int, default=2, help="runner.grpc processes on the port")
    parser.add_argument("--server-threads", type=int, default=None, help="threads per runner.grpc process")
    parser.add_argument(
        "--targets",
        default="java,java-inline,python,python-inline,mlserver,bare",
        help="bare: the ceiling, an echo handler on the same gRPC setup (no model); java-oip: Java iris "
        "through model-runner's own Open Inference Protocol service (typed contents, as sent to MLServer); "
        "java-inline, python-inline: processes serving with the `calls` setting inline",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench" / "grpc_bench.json")
    args = parser.parse_args()

    from google.protobuf import json_format

    from runner.contract import Contract
    from runner.grpc.oip import oip_contract

    iris = Contract.compile((ROOT / "protos" / "iris.proto").read_text())
    iris_req = json_format.ParseDict(FLOWER, iris.input_class("Classify")()).SerializeToString()
    oip = oip_contract()  # the service's own protos/grpc_predict_v2.proto
    targets = args.targets.split(",")

    load_start = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say how busy it was
    tmp = Path(tempfile.mkdtemp(prefix="grpc-bench-"))
    runner = inline = peer = bare = None
    try:
        names = sorted({MODELS[t] for t in targets if t in MODELS})
        prepare_repository(tmp / "repo", names)
        runner = RunnerProcesses(tmp / "repo", args.server_procs, args.server_threads)
        runner_target = f"127.0.0.1:{runner.port}"
        if any(t.endswith("-inline") for t in targets):  # the same repository, `calls` inline
            inline = RunnerProcesses(tmp / "repo", args.server_procs, args.server_threads, calls="inline")
        inline_target = f"127.0.0.1:{inline.port}" if inline is not None else ""
        from mlserver_peer import start_mlserver

        peer = start_mlserver(tmp / "mlserver") if "mlserver" in targets else None
        ml_target = f"127.0.0.1:{peer.grpc_port}" if peer is not None else ""
        ml_model = peer.model if peer is not None else ""
        oip_req = json_format.ParseDict(
            {
                "model_name": ml_model,
                "inputs": [
                    {
                        "name": "input-0",
                        "datatype": "FP64",
                        "shape": [1, 4],
                        "contents": {"fp64_contents": list(FLOWER.values())},
                    }
                ],
            },
            oip.input_class("ModelInfer")(),
        ).SerializeToString()
        # the same flower as four FP64 tensors (the contract's fields) to model-runner's own OIP service
        runner_oip_req = json_format.ParseDict(
            {
                "model_name": "iris",
                "inputs": [
                    {"name": k, "datatype": "FP64", "shape": [1], "contents": {"fp64_contents": [v]}}
                    for k, v in FLOWER.items()
                ],
            },
            oip.input_class("ModelInfer")(),
        ).SerializeToString()
        check_answers(runner_target, names, ml_target, ml_model, iris_req, oip_req, iris, oip)
        if "java-oip" in targets:
            import grpc

            with grpc.insecure_channel(runner_target) as ch:
                body = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
                    runner_oip_req, timeout=30
                )
                out = oip.output_class("ModelInfer").FromString(body).outputs[0].contents.bytes_contents
                assert list(out) == [b"setosa"], out
        if "bare" in targets:
            bare = BareProcesses(args.server_procs, args.server_threads)

        plan = {
            "java": (runner_target, "/iris.IrisClassifier/Classify", iris_req, (("x-model-name", "iris"),)),
            "python": (
                runner_target,
                "/iris.IrisClassifier/Classify",
                iris_req,
                (("x-model-name", "iris-python"),),
            ),
            "java-inline": (
                inline_target,
                "/iris.IrisClassifier/Classify",
                iris_req,
                (("x-model-name", "iris"),),
            ),
            "python-inline": (
                inline_target,
                "/iris.IrisClassifier/Classify",
                iris_req,
                (("x-model-name", "iris-python"),),
            ),
            "mlserver": (ml_target, "/inference.GRPCInferenceService/ModelInfer", oip_req, ()),
            "java-oip": (runner_target, "/inference.GRPCInferenceService/ModelInfer", runner_oip_req, ()),
        }
        if bare is not None:
            plan["bare"] = (f"127.0.0.1:{bare.port}", "/bare.Echo/Echo", iris_req, ())
        rounds: dict[str, list[dict]] = {t: [] for t in targets}
        for r in range(args.rounds):
            for t in targets:
                res = measure(*plan[t], args)
                rounds[t].append(res)
                print(
                    f"round {r + 1} {t:9s} {res['calls_per_s']:9.1f} calls/s  p50 {res['p50_ms']} ms  "
                    f"p99 {res['p99_ms']} ms  failed {res['failed']}",
                    flush=True,
                )
    finally:
        if bare is not None:
            bare.stop()
        if peer is not None:
            peer.stop()
        if runner is not None:
            runner.stop()
        if inline is not None:
            inline.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {}
    for t, rs in rounds.items():
        rs = sorted(rs, key=lambda x: x["calls_per_s"])
        summary[t] = rs[(len(rs) - 1) // 2]  # the median round (lower median)
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/grpc_bench.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "results": summary,
        "rounds": rounds,
    }
    if "mlserver" in summary and summary["mlserver"]["calls_per_s"]:
        base = summary["mlserver"]["calls_per_s"]
        result["ratio_vs_mlserver"] = {t: round(s["calls_per_s"] / base, 2) for t, s in summary.items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print()
    print("| target | calls/s | p50 ms | p99 ms | failed | x MLServer |")
    print("|---|---|---|---|---|---|")
    for t, s in summary.items():
        ratio = result.get("ratio_vs_mlserver", {}).get(t, "")
        print(f"| {t} | {s['calls_per_s']} | {s['p50_ms']} | {s['p99_ms']} | {s['failed']} | {ratio} |")
    print(
        f"\n{result['date']}  {result['command']}  ({result['machine']}; load average "
        f"{result['load_average']['start'][0]} -> {result['load_average']['end'][0]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
