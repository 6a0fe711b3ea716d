"""What ``isolation = "process"`` costs per call: the same model in-process and in a child process
(runner.runtimes.process), side by side in one run, through the Model interface (binary request in,
binary answer out; no HTTP, no JSON), for the Java iris sample and the Python iris-python sample.

For each model and isolation: per-call p50 and p99 over ``--calls`` sequential calls (after a warm-up),
then calls/s with ``--threads`` callers at once; then the ratios and the p50 added by the process
boundary. Each call carries a deadline (5 s) as served calls do (the data plane always sets one); an
extra in-process row without a deadline shows the model's own cost (in-process, a deadline costs a
hand-off to a timed thread: Python's call pool, the JVM's timed call; an isolated child runs calls
untimed, its parent keeping the deadline).

    python -m runner.samples                 # builds build/samples/ once
    python bench/isolation_bench.py [--calls 20000] [--threads 4] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
TIMEOUT = 5.0


def measure(
    model, request: bytes, calls: int, threads: int, seconds: float, timeout: float | None = TIMEOUT
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(min(2000, calls)):
        model.invoke("Classify", request, timeout)
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        t = clock()
        model.invoke("Classify", request, timeout)
        times.append(clock() - t)
    times.sort()
    done = [0] * threads
    stop = threading.Event()

    def load(i: int) -> None:
        n = 0
        while not stop.is_set():
            model.invoke("Classify", request, timeout)
            n += 1
        done[i] = n

    workers = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
    began = clock()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return {
        "p50_us": statistics.median(times) * 1e6,
        "p99_us": times[int(len(times) * 0.99)] * 1e6,
        "calls_s": sum(done) / (clock() - began),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--models", default="iris,iris-python")
    args = parser.parse_args()

    from runner.bundle import open_bundle
    from runner.contract import Contract
    from runner.runtimes import load_model
    from runner.samples import build_sample_bundles
    from runner.settings import Settings

    bundles = build_sample_bundles()
    rows = []
    for name in args.models.split(","):
        bundle = open_bundle(bundles[name])
        contract = Contract.compile(bundle.proto_text, include_dir=bundle.root)
        request = contract.parse_dict(contract.input_class("Classify"), SETOSA).SerializeToString()
        figures = {}
        for isolation in ("in-process", "process"):
            model = load_model(bundle.root, bundle.metadata, contract, Settings(isolation=isolation))
            try:
                figures[isolation] = measure(model, request, args.calls, args.threads, args.seconds)
                if isolation == "in-process":  # the model's own cost: an in-process call without a deadline
                    figures["in-process, no deadline"] = measure(
                        model, request, args.calls, args.threads, args.seconds, timeout=None
                    )
            finally:
                model.close()
        rows.append((name, figures))

    head = f"{'model':<12} {'isolation':<32} {'p50 us':>8} {'p99 us':>8} {'calls/s':>9}"
    print(f"{head}   ({args.threads} threads for calls/s)")
    for name, figures in rows:
        for isolation, f in figures.items():
            print(f"{name:<12} {isolation:<32} {f['p50_us']:8.1f} {f['p99_us']:8.1f} {f['calls_s']:9.0f}")
        b = figures["process"]
        for base in ("in-process", "in-process, no deadline"):
            a = figures[base]
            print(
                f"{name:<12} {'ratio process / ' + base:<32} {b['p50_us'] / a['p50_us']:8.2f} "
                f"{b['p99_us'] / a['p99_us']:8.2f} {b['calls_s'] / a['calls_s']:9.2f}   "
                f"added p50: {b['p50_us'] - a['p50_us']:.1f} us"
            )


if __name__ == "__main__":
    main()
