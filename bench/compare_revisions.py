"""Before/after: the same HTTP load against `serve` from another git revision and from this work tree.

    python bench/compare_revisions.py REV [--duration 5] [--rounds 3] [--concurrency 16] [--workers 1]

A refactor must not cost speed. REV is checked out into a temporary git worktree; both services serve
the same sample bundles (built once, from this tree) side by side, and the targets take turns round
after round so that load from elsewhere on the machine hits both alike. Prints requests/s and p99 per
target and revision, and the ratio this tree / REV (median round). Results go to bench/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import FLOWER, hey, start_runner, stop

from runner.contract import Contract
from runner.samples import build_sample_bundles, find_repo_root


def worktree(root: Path, rev: str, dest: Path) -> None:
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(dest), rev], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare this work tree with")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    root = find_repo_root()
    bundles = build_sample_bundles()
    contract = Contract.compile((root / "protos" / "iris.proto").read_text())
    bodies = {
        "Java iris JSON": ("iris", json.dumps(FLOWER).encode(), "application/json"),
        "Java iris protobuf": (
            "iris",
            contract.input_class("Classify")(**FLOWER).SerializeToString(),
            "application/x-protobuf",
        ),
        "Python iris JSON": ("iris-python", json.dumps(FLOWER).encode(), "application/json"),
    }
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp_name:
        tmp = Path(tmp_name)
        old_tree = tmp / "old"
        worktree(root, args.rev, old_tree)
        servers: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any]]] = {}
        try:
            for label, cwd in ((args.rev, old_tree), ("this tree", root)):
                work = tmp / label.replace(" ", "-")
                work.mkdir()
                servers[label] = start_runner(
                    [bundles["iris"], bundles["iris-python"]], args.workers, args.threads, work, cwd=cwd
                )
            for _ in range(args.rounds):
                for target, (model, body, media) in bodies.items():
                    for label, (_, info) in servers.items():
                        url = f"http://127.0.0.1:{info['http_port']}/models/{model}/methods/Classify"
                        results.setdefault((target, label), []).append(
                            hey(url, body, media, args.duration, args.concurrency, tmp)
                        )
        finally:
            for proc, _ in servers.values():
                stop(proc)
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(old_tree)], check=False
            )

    print(f"| target | {args.rev} req/s | this tree req/s | ratio | {args.rev} p99 ms | this tree p99 ms |")
    print("|---|---|---|---|---|---|")
    for target in bodies:
        old = results[(target, args.rev)]
        new = results[(target, "this tree")]
        old_rps = statistics.median(r["rps"] for r in old)
        new_rps = statistics.median(r["rps"] for r in new)
        old_p99 = statistics.median(r["p99_ms"] for r in old)
        new_p99 = statistics.median(r["p99_ms"] for r in new)
        failed = sum(r["non_2xx"] for r in old + new)
        print(
            f"| {target} | {old_rps:.0f} | {new_rps:.0f} | {new_rps / old_rps:.2f} | {old_p99:.1f} | "
            f"{new_p99:.1f} |" + (f" {failed} non-2xx" if failed else "")
        )


if __name__ == "__main__":
    main()
