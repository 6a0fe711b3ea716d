"""Before/after of the Java JSON bytes path: JSON requests of Java models parsed and printed by the host
library (bridge/java/.../ProtoJson.java) instead of through a Python message.

    python bench/json_bytes_bench.py [--rev HEAD] [--duration 5] [--rounds 3] [--concurrency 16] [--workers 2]

"before" is ``--rev`` checked out in a temporary git worktree; "after" is the same revision with this
work tree's changes to the files of that path (``--paths``) applied on top, so that nothing else that
differs between the work tree and the revision is measured. Both services serve the same sample bundles
(built once, from this tree) side by side, and take turns round after round so that load from elsewhere
on the machine hits both alike (as bench/compare_revisions.py, which compares two whole revisions once
the change is committed). Prints requests/s, p50 and p99 per target (median round) and the ratio
after/before. Results go to bench/BENCHMARKS.md.

``--in-process N`` instead: N calls of Java iris Classify in JSON in this process, no HTTP: per-call
microseconds with the host's mapping and with the Python message path (six turns each, taking
turns; medians of all but the first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import FLOWER, hey, start_runner, stop

from runner.contract import Contract
from runner.samples import build_sample_bundles, find_repo_root

PATHS = (
    "bridge/java/org/modelrunner/host/ProtoJson.java",
    "bridge/java/org/modelrunner/host/Slot.java",
    "bridge/java/org/modelrunner/host/Schema.java",
    "bridge/schema.py",
    "bridge/model.py",
    "runner/runtimes/java.py",
    "runner/serving/dataplane.py",
)


def worktree(root: Path, rev: str, dest: Path) -> None:
    subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(dest), rev],
        check=True,
        capture_output=True,
    )


def apply_changes(root: Path, rev: str, dest: Path, paths: list[str], patch: Path | None) -> None:
    """The work tree's changes to ``paths`` (against ``rev``), or ``patch`` and the new files among
    ``paths``, on top of the checkout ``dest``."""
    tracked = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--", *paths], capture_output=True, text=True, check=True
    ).stdout.split()
    if patch is not None:
        diff = patch.read_bytes()
    else:
        diff = subprocess.run(
            ["git", "-C", str(root), "diff", rev, "--", *tracked], capture_output=True, check=True
        ).stdout
    if diff:
        subprocess.run(["git", "-C", str(dest), "apply", "--recount"], input=diff, check=True)
    for path in paths:
        if path not in tracked and (root / path).is_file():  # new files
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, dest / path)


def in_process(calls: int, turns: int = 6) -> None:
    """Per call of Java iris Classify in JSON in this process, without HTTP: the host's mapping (one
    crossing, bytes in and out) against the Python message path (JSON -> message -> bytes -> Java -> bytes
    -> message -> JSON, as runner.contract.codec does it)."""
    from bridge.model import JavaModel

    folder = build_sample_bundles()["iris"]
    contract = Contract.compile((folder / "model.proto").read_text())
    entry = json.loads((folder / "metadata.json").read_text())["entry_point"]
    body = json.dumps(FLOWER).encode()
    in_cls, out_cls = contract.input_class("Classify"), contract.output_class("Classify")
    with JavaModel.load(artifact_dir=folder, class_name=entry, service=contract.service) as model:

        def host() -> bytes:
            return model.call_json("Classify", body, json_in=True, json_out=True)

        def python() -> bytes:
            message = contract.decode(in_cls, body, "application/json")
            answer = model.call("Classify", message.SerializeToString())
            return contract.encode(out_cls.FromString(answer), "application/json")

        assert host() == python()
        figures: dict[str, list[float]] = {"host mapping": [], "Python message": []}
        for _ in range(turns):  # taking turns, so that load from elsewhere hits both alike
            for label, fn in (("host mapping", host), ("Python message", python)):
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                figures[label].append((time.perf_counter() - start) / calls * 1e6)
        for label, runs in figures.items():
            runs = runs[1:]  # the first turn warms the JIT and the caches
            print(
                f"{label}: {statistics.median(runs):.1f} us per call, median of {len(runs)} turns of {calls} "
                f"calls (best {min(runs):.1f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the revision before the change (default HEAD)")
    parser.add_argument("--paths", nargs="*", default=list(PATHS), help="the files of the change")
    parser.add_argument(
        "--patch",
        type=Path,
        help="apply this patch (and copy the new files among --paths) instead of the work tree's diff of "
        "--paths: when other uncommitted work shares those files",
    )
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--in-process", type=int, default=0, help="only the in-process part, N calls")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process)
        return

    root = find_repo_root()
    bundles = build_sample_bundles()
    contract = Contract.compile((root / "protos" / "iris.proto").read_text())
    batch = {"rows": [FLOWER] * 10}
    bodies = {
        "Java iris JSON": ("iris", "Classify", json.dumps(FLOWER).encode(), "application/json"),
        "Java iris JSON, batch of 10": (
            "iris",
            "ClassifyBatch",
            json.dumps(batch).encode(),
            "application/json",
        ),
        "Java iris protobuf": (
            "iris",
            "Classify",
            contract.input_class("Classify")(**FLOWER).SerializeToString(),
            "application/x-protobuf",
        ),
    }
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="json-bytes-") as tmp_name:
        tmp = Path(tmp_name)
        trees = {"before": tmp / "before", "after": tmp / "after"}
        servers: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any]]] = {}
        try:
            for label, tree in trees.items():
                worktree(root, args.rev, tree)
                if label == "after":
                    apply_changes(root, args.rev, tree, args.paths, args.patch)
                work = tmp / f"work-{label}"
                work.mkdir()
                servers[label] = start_runner([bundles["iris"]], args.workers, args.threads, work, cwd=tree)
            for _ in range(args.rounds):
                for target, (model, rpc, body, media) in bodies.items():
                    for label, (_, info) in servers.items():
                        url = f"http://127.0.0.1:{info['http_port']}/models/{model}/methods/{rpc}"
                        results.setdefault((target, label), []).append(
                            hey(url, body, media, args.duration, args.concurrency, tmp)
                        )
        finally:
            for proc, _ in servers.values():
                stop(proc)
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )

    print(
        f"{args.workers} workers x {args.threads} threads, hey -c {args.concurrency}, "
        f"{args.rounds} rounds of {args.duration:g} s, medians"
    )
    print("| target | before req/s | after req/s | ratio | before p50 / p99 ms | after p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for target in bodies:
        row = {}
        for label in ("before", "after"):
            runs = results[(target, label)]
            row[label] = (
                statistics.median(r["rps"] for r in runs),
                statistics.median(r["p50_ms"] for r in runs),
                statistics.median(r["p99_ms"] for r in runs),
                sum(r["non_2xx"] for r in runs),
            )
        (b_rps, b50, b99, b_bad), (a_rps, a50, a99, a_bad) = row["before"], row["after"]
        failed = b_bad + a_bad
        print(
            f"| {target} | {b_rps:.0f} | {a_rps:.0f} | {a_rps / b_rps:.2f} | {b50:.1f} / {b99:.1f} | "
            f"{a50:.1f} / {a99:.1f} |" + (f" {failed} non-2xx" if failed else "")
        )


if __name__ == "__main__":
    main()
