"""How long a Python bundle's own environment takes to build (runner.runtimes.environments), with uv and
with ``python -m venv`` + pip, and to find again once built.

    python bench/environment_build_bench.py [--requirement six==1.15.0]

Each installer builds into a fresh temporary repository (pip's and uv's own download caches stay warm, as
on a server that has built environments before). Prints seconds per build and per reuse.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

from runner.bundle import Metadata
from runner.runtimes import environments
from runner.settings import Settings


def timed_builds(requirement: str, installer: str) -> tuple[float, float]:
    """Seconds to build the environment of a bundle requiring ``requirement``, then to find it again."""
    uv = environments.uv_path if installer == "uv" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(environments, "uv_path", uv):
        bundle = Path(tmp) / "bundle"
        bundle.mkdir()
        (bundle / "requirements.txt").write_text(requirement + "\n")
        meta = Metadata(name="bench", runtime="python", entry_point="model:Model")
        settings = Settings(repo=Path(tmp) / "repo")
        start = time.monotonic()
        environments.ensure_environment(bundle, meta, settings)
        built = time.monotonic() - start
        start = time.monotonic()
        environments.ensure_environment(bundle, meta, settings)
        return built, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requirement", default="six==1.15.0")
    args = parser.parse_args()
    installers = ["uv", "pip"] if environments.uv_path() else ["pip"]
    print("| installer | build s | reuse ms |\n|---|---|---|")
    for installer in installers:
        built, reused = timed_builds(args.requirement, installer)
        print(f"| {installer} | {built:.1f} | {reused * 1000:.1f} |")


if __name__ == "__main__":
    main()
