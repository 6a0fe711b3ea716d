"""The predict hot path in one process, without HTTP: what one request costs in Python and in the Java call.

    python bench/hot_path_bench.py [--calls 20000] [--turns 5]

Two parts, each taking turns (the first turn warms up and is dropped; the median of the rest is printed):

- the Java call alone: the iris sample's Classify through bridge.model.JavaModel, JSON in and out (the
  host maps it), with no deadline (on this thread), with a 30 s deadline the default way (``guarded``: on
  a host call thread, the caller waiting) and with ``"calls": "inline"`` (on this thread, interrupted at
  the deadline);
- one whole request: ``POST /models/iris/methods/Classify`` (JSON) through the app serve's HTTP workers
  run (runner.http.gunicorn_app.build_worker_app: request ids, access log to /dev/null, metrics, data
  plane), called as a WSGI app, with the service's ``calls`` setting guarded and inline, and with the
  Java call replaced by a constant answer (``stubbed``: what the request costs in Python alone).

Results: bench/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
BODY = json.dumps(FLOWER).encode()
PATH = "/models/iris/methods/Classify"


def turns(fns: dict[str, Callable[[], Any]], calls: int, count: int) -> dict[str, float]:
    """µs per call of each function: ``count`` turns of ``calls`` calls, in turn; median without the first."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(count):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            runs[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(r[1:]) for name, r in runs.items()}


def java_calls(calls: int, count: int) -> dict[str, float]:
    from bridge.model import JavaModel
    from runner.contract import Contract
    from runner.samples import build_sample_bundles

    folder = build_sample_bundles()["iris"]
    contract = Contract.compile((folder / "model.proto").read_text())
    entry = json.loads((folder / "metadata.json").read_text())["entry_point"]

    def load() -> JavaModel:
        return JavaModel.load(artifact_dir=folder, class_name=entry, service=contract.service)

    with load() as guarded, load() as inline:
        inline.set_inline_calls(True)

        def call(model: JavaModel, timeout: float | None) -> Callable[[], bytes]:
            return lambda: model.call_json("Classify", BODY, json_in=True, json_out=True, timeout=timeout)

        fns = {
            "no deadline": call(guarded, None),
            "30 s deadline, guarded": call(guarded, 30.0),
            "30 s deadline, inline": call(inline, 30.0),
        }
        answers = {fn() for fn in fns.values()}
        assert len(answers) == 1, answers
        return turns(fns, calls, count)


def requests(calls: int, count: int) -> dict[str, float]:
    from runner.http.gunicorn_app import build_worker_app
    from runner.samples import build_sample_bundles
    from runner.settings import Settings
    from runner.store import Repository

    repo = Path(tempfile.mkdtemp(prefix="hot-path-bench-")) / "repo"
    Repository.from_settings(Settings(repo=repo)).publish(
        "iris", build_sample_bundles()["iris"], expected_version=None, caller="bench"
    )
    sys.stderr = open(os.devnull, "w")  # the access lines
    apps = {mode: build_worker_app(Settings(repo=repo, calls=mode)) for mode in ("guarded", "inline")}
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def request(app: Any) -> Callable[[], bytes]:
        def one() -> bytes:
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": PATH,
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(BODY)),
                "wsgi.input": io.BytesIO(BODY),
                "HTTP_ACCEPT": "*/*",
                "SERVER_NAME": "bench",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http",
            }
            return b"".join(app(environ, start_response))

        return one

    deadline = time.monotonic() + 60
    while not all(request(app)() and statuses[-1].startswith("200") for app in apps.values()):
        if time.monotonic() > deadline:  # the registries load in the background
            raise SystemExit(f"the app does not answer 200: {statuses[-1:]}")
        time.sleep(0.2)
    fns = {f"whole request, calls {mode}": request(app) for mode, app in apps.items()}
    real = turns(fns, calls, count)

    import bridge.model

    body = request(apps["inline"])()  # the stub answers what the model answered
    bridge.model.JavaModel.call_json = lambda self, rpc, request, **kw: body  # type: ignore[method-assign]
    stubbed = turns({"whole request, Java call stubbed": request(apps["inline"])}, calls, count)
    assert all(s.startswith("200") for s in statuses), set(statuses)
    return {**real, **stubbed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per turn")
    parser.add_argument("--turns", type=int, default=5, help="turns per function (the first is dropped)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    figures = {**java_calls(args.calls, args.turns), **requests(args.calls, args.turns)}
    print(
        f"# hot_path_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: median of "
        f"{args.turns - 1} turns of {args.calls} calls; load average {load:.2f} -> {os.getloadavg()[0]:.2f}",
        file=sys.__stdout__,
    )
    for name, us in figures.items():
        print(f"| {name} | {us:.1f} µs |", file=sys.__stdout__)
    sys.__stdout__.flush()
    os._exit(0)  # the registries' threads and the JVM: nothing left to wait for


if __name__ == "__main__":
    main()
