"""What the per-request metrics, request ids and access log cost: CPU time per request, with and without.

    python bench/metrics_cost.py [--rounds 20] [--requests 2000] [--threads 1]

The real Flask app of a serving process over the Java iris sample (multiprocess metrics folder set, as
under `serve`), called in-process through WSGI, so no HTTP parsing or socket work dilutes the difference.
Five variants take turns round after round (load from elsewhere on the machine hits them alike); each
figure is the median of the rounds' CPU microseconds per request (``time.process_time``):

- none: the predict path alone (runner.serving.metrics' tracking replaced by a no-op, no middleware);
- metrics: the predict path with its metrics (runner.serving.metrics);
- ids: the request-id middleware (runner.http.access) with the access log off, no metrics;
- ids + access log: the same with the text access log;
- all: the app as `serve` builds it.

A real request also spends CPU in gunicorn (parsing, the socket, the buffering worker's event loop): the
differences are to be read against the CPU per request of `serve` (bench/compare_revisions.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-cost-")

from runner.http.access import RequestIds
from runner.http.app import create_app
from runner.samples import build_sample_bundles
from runner.serving import metrics
from runner.serving.access import AccessLog
from runner.serving.admin import Admin
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository

BODY = json.dumps({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}).encode()


class _NoTracking:
    def __enter__(self) -> _NoTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant and round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="metrics-cost-repo-")) / "repo"
    repository = Repository(root)
    Admin(repository, swap_timeout=60).upload("iris", build_sample_bundles()["iris"], caller="bench")
    registry = Registry(repository, BundleLoader(Settings()), poll_interval=1.0)
    registry.start()
    sys.stderr = open(os.devnull, "w")  # the access lines, for the whole run
    full = create_app(Settings(repo=root, admin_token="bench"), registry, repository).wsgi_app
    predict_path = full.app  # type: ignore[attr-defined]  # RequestIds -> PredictPath
    real = (metrics.track, metrics.serving)
    no_tracking = _NoTracking()
    variants: dict[str, tuple[Callable[..., Iterable[bytes]], bool]] = {
        "none": (predict_path, False),
        "metrics": (predict_path, True),
        "ids": (RequestIds(predict_path, AccessLog("off", "http")), False),
        "ids + access log": (RequestIds(predict_path, AccessLog("text", "http")), False),
        "all": (full, True),
    }
    statuses: set[str] = set()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.add(status)

    def run(app: Callable[..., Iterable[bytes]], n: int) -> float:
        def worker(k: int) -> None:
            for _ in range(k):
                environ = {
                    "REQUEST_METHOD": "POST",
                    "PATH_INFO": "/models/iris/methods/Classify",
                    "CONTENT_TYPE": "application/json",
                    "CONTENT_LENGTH": str(len(BODY)),
                    "wsgi.input": io.BytesIO(BODY),
                }
                list(app(environ, start_response))

        threads = [threading.Thread(target=worker, args=(n // args.threads,)) for _ in range(args.threads)]
        began = time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (time.process_time() - began) / n * 1e6

    try:
        run(full, args.requests)  # warm up
        results: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants.items())
        for r in range(args.rounds):
            for name, (app, tracking) in order[r % len(order) :] + order[: r % len(order)]:
                if not tracking:
                    metrics.track, metrics.serving = (lambda _p: no_tracking), (lambda *_a: None)  # type: ignore[assignment,return-value]
                try:
                    results[name].append(run(app, args.requests))
                finally:
                    metrics.track, metrics.serving = real
    finally:
        registry.stop()
    if statuses != {"200 OK"}:
        raise SystemExit(f"not every request succeeded: {statuses}")
    base = statistics.median(results["none"])
    print(f"| variant | CPU us/request (median of {args.rounds} rounds, {args.threads} thread(s)) | added |")
    print("|---|---|---|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median - base:+.1f} |")


if __name__ == "__main__":
    main()
