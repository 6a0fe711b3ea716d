"""The versioned store: versions, pointer, history, locking, rollback, delete, cleanup."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from runner.errors import BadInput, NotFound, PreconditionFailed
from runner.store import Repository, folder_sha256, validate_name


def make_folder(base: Path, tag: str) -> Path:
    folder = base / f"src-{tag}"
    (folder / "lib").mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"tag": tag}))
    (folder / "lib" / "data.txt").write_text(tag * 100)
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo")


def test_publish_creates_versions_pointer_and_history(repo: Repository, tmp_path: Path) -> None:
    assert repo.models() == []
    assert repo.current_version("iris") is None
    v1 = repo.publish("iris", make_folder(tmp_path, "a"), expected_version=None, caller="alice")
    v2 = repo.publish("iris", make_folder(tmp_path, "b"), expected_version=1, caller="bob", action="upload")
    assert (v1, v2) == (1, 2)
    assert repo.models() == ["iris"]
    assert repo.current_version("iris") == 2
    assert repo.versions("iris") == [1, 2]
    assert (repo.version_dir("iris", 2) / "lib" / "data.txt").read_text() == "b" * 100
    assert (repo.root / "models" / "iris" / "current").read_text() == "2\n"
    history = repo.history("iris")
    assert [(h["action"], h["version"], h["previous_version"], h["caller"]) for h in history] == [
        ("publish", 1, None, "alice"),
        ("upload", 2, 1, "bob"),
    ]
    assert history[1]["sha256"] == folder_sha256(repo.version_dir("iris", 2))
    assert all(isinstance(h["time"], float) for h in history)


def test_expected_version_mismatch_is_refused_and_changes_nothing(repo: Repository, tmp_path: Path) -> None:
    repo.publish("m", make_folder(tmp_path, "a"), expected_version=0, caller="x")  # 0: must be new
    with pytest.raises(PreconditionFailed) as info:
        repo.publish("m", make_folder(tmp_path, "b"), expected_version=0, caller="x")
    assert info.value.detail["current_version"] == 1
    with pytest.raises(PreconditionFailed):
        repo.rollback("m", version=1, expected_version=5, caller="x")
    assert repo.versions("m") == [1] and len(repo.history("m")) == 1


@pytest.mark.parametrize("bad", ["", "Iris", "../x", "a/b", ".hidden", "-x", "x" * 64, "a b", None])
def test_invalid_names_are_refused(repo: Repository, tmp_path: Path, bad: object) -> None:
    with pytest.raises(BadInput):
        validate_name(bad)
    with pytest.raises(BadInput):
        repo.publish(bad, make_folder(tmp_path, "a"), expected_version=None, caller="x")  # type: ignore[arg-type]
    assert validate_name("iris-v2.1_a") == "iris-v2.1_a"


def test_rollback_previous_follows_history_not_numbers(repo: Repository, tmp_path: Path) -> None:
    for tag in "abc":
        repo.publish("m", make_folder(tmp_path, tag), expected_version=None, caller="x")
    assert repo.rollback("m", caller="x") == 2
    assert repo.rollback("m", caller="x") == 1  # keeps going back, does not flip to 3
    with pytest.raises(NotFound):
        repo.rollback("m", caller="x")
    assert repo.current_version("m") == 1
    v4 = repo.publish("m", make_folder(tmp_path, "d"), expected_version=1, caller="x")
    assert v4 == 4  # numbers are never reused
    assert repo.rollback("m", caller="x") == 1  # the version current before 4, not 3
    assert repo.rollback("m", version=3, expected_version=1, caller="y") == 3
    assert repo.rollback("m", caller="x") == 1
    with pytest.raises(NotFound):
        repo.rollback("m", version=9, caller="x")
    last = repo.history("m")[-1]
    assert (last["action"], last["mode"], last["version"], last["previous_version"]) == (
        "rollback",
        "previous",
        1,
        3,
    )


def test_delete_removes_pointer_and_records_it(repo: Repository, tmp_path: Path) -> None:
    repo.publish("m", make_folder(tmp_path, "a"), expected_version=None, caller="x")
    assert repo.delete("m", caller="carol") == 1
    assert repo.current_version("m") is None and repo.models() == []
    assert repo.versions("m") == [1]  # kept until cleanup
    assert repo.history("m")[-1] | {"time": 0} == {
        "time": 0,
        "action": "delete",
        "version": None,
        "previous_version": 1,
        "sha256": None,
        "caller": "carol",
    }
    with pytest.raises(NotFound):
        repo.delete("m", caller="x")
    with pytest.raises(NotFound):
        repo.delete("never", caller="x")
    # Rolling back a deleted model brings it back; publishing continues the numbering.
    assert repo.rollback("m", caller="x") == 1
    assert repo.publish("m", make_folder(tmp_path, "b"), expected_version=1, caller="x") == 2


def test_cleanup_keeps_current_served_previous_and_last_n(repo: Repository, tmp_path: Path) -> None:
    for tag in "abcdef":
        repo.publish("m", make_folder(tmp_path, tag), expected_version=None, caller="x")
    repo.rollback("m", caller="x")
    repo.rollback("m", caller="x")  # current 4; a rollback would go to 3
    repo.fleet.record_serving("other-proc", {"kind": "http", "models": {"m": 2}})  # still served somewhere
    removed = repo.cleanup(keep_last=1)
    assert removed == {"m": [1, 5]}
    assert repo.versions("m") == [2, 3, 4, 6]
    assert repo.current_version("m") == 4
    assert repo.history("m")[-1]["removed"] == [1, 5]
    assert not [p for p in (repo.root / "models" / "m" / "versions").iterdir() if p.name.startswith(".")]
    assert repo.rollback("m", caller="x") == 3
    assert repo.rollback("m", caller="x") == 2
    with pytest.raises(NotFound):
        repo.rollback("m", caller="x")  # 1 was removed: nothing earlier to go to
    assert repo.cleanup(keep_last=5) == {}


def test_staging_dir_is_removed_and_wiped_at_open(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo")
    with repo.staging_dir() as stage:
        (stage / "f").write_text("x")
        # Another process opening the repository must not wipe a staging folder in use.
        Repository(tmp_path / "repo")
        assert (stage / "f").exists()
    assert not stage.exists()
    with pytest.raises(RuntimeError), repo.staging_dir() as stage2:
        raise RuntimeError("boom")
    assert not stage2.exists()
    leftover = repo.root / "staging" / "crashed-upload"
    (leftover / "x").mkdir(parents=True)
    Repository(tmp_path / "repo")
    assert list((repo.root / "staging").iterdir()) == []


def _publish_many(root: str, worker: int, count: int, src: str) -> list[int]:
    repo = Repository(Path(root))
    return [repo.publish("m", Path(src), expected_version=None, caller=f"w{worker}") for _ in range(count)]


def test_concurrent_publishers_in_threads_get_distinct_versions(repo: Repository, tmp_path: Path) -> None:
    src = make_folder(tmp_path, "a")
    results: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            v = repo.publish("m", src, expected_version=None, caller="t")
            with lock:
                results.append(v)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 21))
    assert [h["version"] for h in repo.history("m")] == list(range(1, 21))
    assert [h["previous_version"] for h in repo.history("m")] == [None, *range(1, 20)]


def test_concurrent_publishers_in_processes_get_distinct_versions(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo")
    src = make_folder(tmp_path, "a")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        per_worker = pool.starmap(_publish_many, [(str(repo.root), w, 6, str(src)) for w in range(4)])
    got = sorted(v for vs in per_worker for v in vs)
    assert got == list(range(1, 25))  # no lost and no duplicate version
    history = repo.history("m")
    assert [h["version"] for h in history] == list(range(1, 25))
    # Each publish saw the one before it: they never interleaved.
    assert [h["previous_version"] for h in history] == [None, *range(1, 24)]
    assert repo.current_version("m") == 24
    assert all(repo.version_dir("m", v).joinpath("lib", "data.txt").exists() for v in got)


def test_torn_history_line_is_tolerated_and_terminated(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo")
    repo.publish("m", make_folder(tmp_path, "a"), expected_version=None, caller="x")
    with open(repo.root / "models" / "m" / "history.jsonl", "ab") as fh:
        fh.write(b'{"action": "pub')
    repo = Repository(tmp_path / "repo")
    repo.publish("m", make_folder(tmp_path, "b"), expected_version=1, caller="x")
    assert [h["version"] for h in repo.history("m")] == [1, 2]
