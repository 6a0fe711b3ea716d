"""model-runner against Acumos' own runner on the same dumped Acumos Python model: requests/s and latency,
side by side in one run, the same load from `hey` (keep-alive, protobuf bodies).

The model is the iris classifier of the Acumos client's tutorial (scikit-learn random forest) plus a
trivial ``scale`` method, dumped by the real `acumos` 1.0.1 client under Python 3.9
(tests/e2e/acumos_dumps.py builds the environment and the dump under build/test-acumos, once). The same
dump is served by

- acumos-model-runner 0.2.6 (``acumos_model_runner DUMP --workers N``: gunicorn, sync workers, as it ships),
- model-runner ``serve DUMP --workers N --threads T`` (the dump's own Python 3.9 environment, the model in
  a child process per serving process: ``"isolation": "process"``),

and `hey` drives ``POST /model/methods/{method}`` with the same protobuf body, ``Content-Type`` and
``Accept: application/vnd.google.protobuf``, in interleaved rounds (acumos, model-runner, acumos, ...) so
that load from elsewhere on the machine hits both alike; the median round (by requests/s) is reported.
Each target's answer is checked first (both give the same bytes). ``classify`` predicts three flowers
(the forest's predict dominates); ``scale`` multiplies two numbers (the server's own cost).

    python bench/acumos_bench.py [--duration 10] [--concurrency 16] [--rounds 3] [--workers 1] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' dump builder
from http_bench import parse_hey, start_runner, stop
from isolation_http_bench import load_averages, median_round

from runner.contract import Contract
from tests.e2e.acumos_dumps import dump, start_acumos_model_runner

PROTOBUF = "application/vnd.google.protobuf"
ROWS = {  # a setosa, a versicolor, a virginica
    "sepal_length": [5.1, 6.4, 6.3],
    "sepal_width": [3.5, 3.2, 3.3],
    "petal_length": [1.4, 4.5, 6.0],
    "petal_width": [0.2, 1.5, 2.5],
}
TARGETS = ("acumos-model-runner", "model-runner")


def bodies(contract: Contract) -> dict[str, bytes]:
    return {
        "classify": contract.input_class("classify")(**ROWS).SerializeToString(),
        "scale": contract.input_class("scale")(value=2.0, factor=3.0).SerializeToString(),
    }


def call(base: str, method: str, body: bytes) -> bytes:
    r = requests.post(
        f"{base}/model/methods/{method}",
        data=body,
        headers={"Content-Type": PROTOBUF, "Accept": PROTOBUF},
        timeout=60,
    )
    if r.status_code != 200:
        raise SystemExit(f"{base}: {method} answered {r.status_code}: {r.text[:300]}")
    return r.content


def hey(
    url: str, body_file: Path, duration: float, concurrency: int, *, warmup: bool = False
) -> dict[str, Any]:
    """hey with protobuf Content-Type and Accept (Acumos' runner requires both); its parsed summary
    (a warm-up may be too short for hey to give percentiles)."""
    out = subprocess.run(
        ["hey", "-z", f"{duration}s", "-c", str(concurrency), "-m", "POST"]
        + ["-T", PROTOBUF, "-A", PROTOBUF, "-D", str(body_file), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = parse_hey(out)
    if not warmup and (result["p50_ms"] is None or result["p99_ms"] is None):
        raise SystemExit(f"hey against {url} gave no latency distribution:\n{out}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per round and target")
    parser.add_argument("--concurrency", type=int, default=16, help="hey -c: connections at once")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target (median)")
    parser.add_argument("--workers", type=int, default=1, help="serving processes of each runner")
    parser.add_argument("--threads", type=int, default=8, help="model-runner serve --threads (per worker)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of hey load per target first")
    parser.add_argument("--methods", default="classify,scale", help="comma list of the dump's methods")
    args = parser.parse_args()
    if min(args.duration, args.concurrency, args.rounds, args.workers, args.threads) <= 0:
        parser.error("--duration, --concurrency, --rounds, --workers and --threads must be positive")
    methods = args.methods.split(",")

    load_before = os.getloadavg()
    dump_dir = dump("dump_iris.py", "iris-acumos")
    contract = Contract.compile((dump_dir / "model.proto").read_text("utf-8"))
    made = bodies(contract)
    unknown = sorted(set(methods) - set(made))
    if unknown:
        parser.error(f"--methods: {', '.join(unknown)}: the dump's methods are {', '.join(made)}")
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {(t, m): [] for t in TARGETS for m in methods}
    with tempfile.TemporaryDirectory(prefix="acumos-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "acumos").mkdir()
        (tmp / "runner").mkdir()
        acumos = start_acumos_model_runner(dump_dir, tmp / "acumos", workers=args.workers)
        proc = None
        try:
            proc, info = start_runner([dump_dir], args.workers, args.threads, tmp / "runner")
            bases = {
                "acumos-model-runner": acumos.base,
                "model-runner": f"http://127.0.0.1:{info['http_port']}",
            }
            for method in methods:
                body_file = tmp / f"{method}.bin"
                body_file.write_bytes(made[method])
                answers = {target: call(base, method, made[method]) for target, base in bases.items()}
                if answers["acumos-model-runner"] != answers["model-runner"]:
                    raise SystemExit(f"{method}: the runners answer differently: {answers}")
                if args.warmup > 0:
                    for base in bases.values():
                        hey(
                            f"{base}/model/methods/{method}",
                            body_file,
                            args.warmup,
                            args.concurrency,
                            warmup=True,
                        )
            for _ in range(args.rounds):
                for method in methods:
                    for target in TARGETS:
                        url = f"{bases[target]}/model/methods/{method}"
                        rounds[target, method].append(
                            hey(url, tmp / f"{method}.bin", args.duration, args.concurrency)
                        )
        finally:
            if proc is not None:
                stop(proc)
            acumos.stop()

    results = {key: median_round(rs) for key, rs in rounds.items()}
    load = load_averages(load_before)
    print(
        f"# acumos_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{os.cpu_count()} cores, load average (1/5/15 min) {load}; "
        f"workers={args.workers} (both) threads={args.threads} (model-runner) concurrency={args.concurrency} "
        f"duration={args.duration}s x {args.rounds} rounds, median round (hey, keep-alive, protobuf)"
    )
    print(f"# command: {shlex.join(sys.orig_argv)}")
    print()
    print(
        f"| {'method':<8} | {'target':<19} | {'req/s':>8} | {'x Acumos':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} |"
    )
    print(f"|{'-' * 10}|{'-' * 21}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for method in methods:
        peer = results["acumos-model-runner", method]["rps"]
        for target in TARGETS:
            r = results[target, method]
            print(
                f"| {method:<8} | {target:<19} | {r['rps']:>8.0f} | {r['rps'] / peer:>8.2f} | {r['p50_ms']:>7.2f} "
                f"| {r['p99_ms']:>7.2f} | {r['non_2xx']:>7} |  rounds req/s: {r['rounds_rps']}"
            )
    print()
    print(json.dumps({f"{t} {m}": r for (t, m), r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
