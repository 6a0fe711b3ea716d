"""kill -9 a publishing process at each step of the publish: the repository must open afterwards with
either the old or the new version current, nothing torn, staging clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.store import CRASH_ENV, PUBLISH_STEPS, Repository, folder_sha256

PUBLISHER = """
import sys
from pathlib import Path
from runner.store import Repository
repo = Repository(Path(sys.argv[1]))
with repo.staging_dir() as stage:
    (stage / "bundle").mkdir()
    (stage / "bundle" / "metadata.json").write_text('{"tag": "new"}')
    (stage / "bundle" / "big.bin").write_bytes(b"n" * 3_000_000)
    repo.publish("m", stage / "bundle", expected_version=1, caller="crasher")
"""


def make_v1(root: Path, tmp_path: Path) -> Repository:
    repo = Repository(root)
    src = tmp_path / "v1"
    src.mkdir()
    (src / "metadata.json").write_text('{"tag": "old"}')
    (src / "big.bin").write_bytes(b"o" * 3_000_000)
    assert repo.publish("m", src, expected_version=None, caller="setup") == 1
    return repo


def assert_consistent(repo: Repository) -> int:
    current = repo.current_version("m")
    assert current in (1, 2)
    folder = repo.version_dir("m", current)
    tag = json.loads((folder / "metadata.json").read_text())["tag"]
    assert tag == {1: "old", 2: "new"}[current]
    assert (folder / "big.bin").read_bytes() == tag[0].encode() * 3_000_000  # complete, not torn
    history = repo.history("m")
    assert history[-1]["version"] == current
    assert history[-1]["sha256"] == folder_sha256(folder)
    assert list((repo.root / "staging").iterdir()) == []
    model_dir = repo.root / "models" / "m"
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"] == []
    assert repo.versions("m") == list(range(1, current + 1))
    return current


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_kill_during_publish_leaves_old_or_new_version(tmp_path: Path, step: str) -> None:
    root = tmp_path / "repo"
    make_v1(root, tmp_path)
    env = {**os.environ, CRASH_ENV: step}
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISHER, str(root)], env=env, capture_output=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    repo = Repository(root)  # open after the crash: repairs leftovers
    current = assert_consistent(repo)
    expected = 1 if step in ("staging_copy", "version_move", "pointer_tmp") else 2
    assert current == expected
    if step == "pointer_rename":
        assert repo.history("m")[-1]["action"] == "recovered"
    # The repository keeps working: the next publish gets the next number and goes through.
    nxt = repo.publish("m", repo.version_dir("m", current), expected_version=current, caller="after")
    assert nxt == current + 1 and repo.current_version("m") == nxt


def test_publish_without_crash_completes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_v1(root, tmp_path)
    proc = subprocess.run([sys.executable, "-c", PUBLISHER, str(root)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert assert_consistent(Repository(root)) == 2
