"""Admin: upload (zip, folder, parts), proto replacement, rollback, delete; refusals leave no trace."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.bundle import write_bundle_zip
from runner.errors import (
    BadInput,
    Conflict,
    InvalidBundle,
    InvalidContract,
    ModelRunnerError,
    NotFound,
    PreconditionFailed,
    SwapTimeout,
    TooLarge,
)
from runner.serving.admin import Admin, UploadParts
from runner.serving.dataplane import DataPlane
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
from tests.runner.repo_helpers import ECHO_PROTO, FAIL_PROTO, MODEL_PY, write_echo_bundle
from tests.runner.serving.slow_models import GatedLoader, hold_in_constructor
from tests.waiting import wait_for

JSON = "application/json"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo")


@pytest.fixture
def served(repo: Repository) -> Iterator[Registry]:
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    registry.start()
    yield registry
    registry.stop()


def state(repo: Repository) -> dict:
    """Everything a refused change must leave as it was (the serving records aside)."""
    files = sorted(
        str(p.relative_to(repo.root))
        for p in repo.root.rglob("*")
        if "serving" not in p.relative_to(repo.root).parts and "__pycache__" not in p.parts
    )
    return {
        "files": files,
        "pointers": repo.pointers(),
        "history": {p.name: repo.history(p.name) for p in (repo.root / "models").iterdir()},
    }


def label_of(registry: Registry, name: str = "echo") -> tuple[str, int]:
    result = DataPlane(registry).predict(name, "Say", b'{"text": "x"}', JSON)
    return json.loads(result.body)["label"], result.version


def test_upload_zip_folder_and_parts_then_serve(repo: Repository, served: Registry, tmp_path: Path) -> None:
    admin = Admin(repo, swap_timeout=30)
    data = write_bundle_zip(write_echo_bundle(tmp_path / "z", "zip"))
    first = admin.upload("echo", data, expected_version=0, caller="alice")
    assert first["name"] == "echo" and first["version"] == 1 and first["previous_version"] is None
    assert first["served_by"] == [served.process_id]  # answered once the live process serves it
    assert label_of(served) == ("zip", 1)
    assert first["sha256"] == repo.history("echo")[-1]["sha256"]

    second = admin.upload(
        "echo", write_echo_bundle(tmp_path / "f", "folder"), expected_version=1, caller="bob"
    )
    assert (second["version"], second["previous_version"]) == (2, 1)
    assert label_of(served) == ("folder", 2)

    # Parts: only the model file changes; proto and metadata come from the current version.
    parts = UploadParts(files={"echo_model.py": MODEL_PY.format(label="parts", init_code="pass").encode()})
    third = admin.upload("echo", parts, expected_version=None, caller="carol")
    assert third["version"] == 3
    assert label_of(served) == ("parts", 3)
    assert (repo.version_dir("echo", 3) / "model.proto").read_text() == ECHO_PROTO
    assert [h["caller"] for h in repo.history("echo")] == ["alice", "bob", "carol"]
    assert list((repo.root / "staging").iterdir()) == []


def test_parts_for_a_new_model_need_metadata_and_proto(repo: Repository) -> None:
    with pytest.raises(BadInput) as info:
        Admin(repo).upload("new", UploadParts(jar=b"PK"), caller="x")
    assert info.value.detail["missing"] == ["metadata", "proto"]
    assert list((repo.root / "staging").iterdir()) == []


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _bundle_entries(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    "case", ["syntax_error", "no_metadata", "ctor_raises", "example_fails", "zip_slip", "zip_bomb", "not_zip"]
)
def test_broken_bundle_is_refused_leaving_repository_and_staging_unchanged(
    repo: Repository, served: Registry, tmp_path: Path, case: str
) -> None:
    admin = Admin(repo, swap_timeout=30)
    admin.upload("echo", write_echo_bundle(tmp_path / "good", "good"), caller="x")
    before = state(repo)
    entries = _bundle_entries(write_echo_bundle(tmp_path / "bad", "bad"))
    expected: type[Exception] = InvalidBundle
    if case == "syntax_error":
        entries["model.proto"] = ECHO_PROTO.replace("string label = 2;", "strin label = 2;").encode()
        expected = InvalidContract
    elif case == "no_metadata":
        del entries["metadata.json"]
    elif case == "ctor_raises":
        entries["echo_model.py"] = MODEL_PY.format(
            label="bad", init_code="raise RuntimeError('no weights')"
        ).encode()
    elif case == "example_fails":
        entries["model.proto"] = FAIL_PROTO.encode()  # Fail raises on the generated example input
    elif case == "zip_slip":
        entries["../../escape.py"] = b"print('pwned')"
    elif case == "zip_bomb":
        entries["data.bin"] = b"\0" * (50 * 1024 * 1024)
        expected = TooLarge
    data = b"definitely not a zip" if case == "not_zip" else _zip(entries)
    with pytest.raises((expected, InvalidBundle, TooLarge)) as info:
        admin.upload("echo", data, expected_version=1, caller="mallory")
    assert isinstance(info.value, expected), info.value
    assert info.value.message
    if case == "syntax_error":
        assert info.value.detail["line"] == ECHO_PROTO.splitlines().index("  string label = 2;") + 1
    if case == "ctor_raises":
        assert "no weights" in info.value.message
    assert state(repo) == before
    assert list((repo.root / "staging").iterdir()) == []
    assert not (tmp_path / "escape.py").exists() and not (repo.root / "escape.py").exists()
    assert label_of(served) == ("good", 1)


def test_expected_version_is_checked(repo: Repository, tmp_path: Path) -> None:
    admin = Admin(repo)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    before = state(repo)
    with pytest.raises(PreconditionFailed) as info:
        admin.upload("echo", write_echo_bundle(tmp_path / "b", "b"), expected_version=0, caller="x")
    assert info.value.detail["current_version"] == 1
    with pytest.raises(PreconditionFailed):
        admin.replace_proto("echo", ECHO_PROTO, allow_breaking=False, expected_version=7, caller="x")
    with pytest.raises(PreconditionFailed):
        admin.rollback("echo", version=1, expected_version=3, caller="x")
    assert state(repo) == before


def test_invalid_name(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        Admin(repo).upload("../Echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    assert list((repo.root / "models").iterdir()) == []


def test_replace_proto(repo: Repository, served: Registry, tmp_path: Path) -> None:
    admin = Admin(repo, swap_timeout=30)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    compatible = ECHO_PROTO.replace("string label = 2;", "string label = 2;\n  int64 count = 3;")
    result = admin.replace_proto("echo", compatible, allow_breaking=False, expected_version=1, caller="p")
    assert result["version"] == 2 and "breaking_changes" not in result
    assert (repo.version_dir("echo", 2) / "echo_model.py").read_text() == (
        repo.version_dir("echo", 1) / "echo_model.py"
    ).read_text()
    body = json.loads(DataPlane(served).predict("echo", "Say", b'{"text": "x"}', JSON).body)
    assert body == {"text": "x", "label": "a", "count": "0"}  # the new field is served (int64 as a string)
    assert repo.history("echo")[-1]["action"] == "proto"

    breaking = compatible.replace("string label = 2;", "int32 label = 2;")
    before = state(repo)
    with pytest.raises(Conflict) as info:
        admin.replace_proto("echo", breaking, allow_breaking=False, expected_version=None, caller="p")
    assert any("label" in change for change in info.value.detail["breaking_changes"])
    assert state(repo) == before and list((repo.root / "staging").iterdir()) == []

    with pytest.raises(InvalidContract) as cinfo:
        admin.replace_proto(
            "echo", 'syntax = "proto3";\nmessage {', allow_breaking=True, expected_version=None, caller="p"
        )
    assert cinfo.value.detail["line"] == 2
    with pytest.raises(NotFound):
        admin.replace_proto("ghost", ECHO_PROTO, allow_breaking=True, expected_version=None, caller="p")
    assert state(repo) == before


def test_upload_can_refuse_breaking_contract(repo: Repository, tmp_path: Path) -> None:
    admin = Admin(repo)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    renamed = ECHO_PROTO.replace("string label = 2;", "string label = 7;")  # field number changed
    with pytest.raises(Conflict):  # refused by default, as a proto-only swap is
        admin.upload("echo", write_echo_bundle(tmp_path / "b", "b", proto=renamed), caller="x")
    result = admin.upload(
        "echo", write_echo_bundle(tmp_path / "c", "c", proto=renamed), allow_breaking=True, caller="x"
    )
    assert (
        result["breaking_changes"]
        and repo.history("echo")[-1]["breaking_changes"] == result["breaking_changes"]
    )


def test_rollback_and_delete_wait_for_serving(repo: Repository, served: Registry, tmp_path: Path) -> None:
    admin = Admin(repo, swap_timeout=30)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    admin.upload("echo", write_echo_bundle(tmp_path / "b", "b"), caller="x")
    result = admin.rollback("echo", version=None, expected_version=2, caller="ops")
    assert (result["version"], result["previous_version"], result["served_by"]) == (1, 2, [served.process_id])
    assert label_of(served) == ("a", 1)
    gone = admin.delete("echo", caller="ops")
    assert (gone["version"], gone["previous_version"]) == (None, 1)
    with pytest.raises(NotFound):
        label_of(served)
    with pytest.raises(NotFound):
        admin.delete("echo", caller="ops")
    with pytest.raises(NotFound):
        admin.rollback("never", version=None, expected_version=None, caller="ops")


def test_swap_timeout_names_the_laggards(repo: Repository, served: Registry, tmp_path: Path) -> None:
    admin = Admin(repo, swap_timeout=0.5)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    # A live process (heartbeating, live pid) that never moves to the new version.
    stop = threading.Event()

    def stuck_worker() -> None:
        while True:
            repo.fleet.record_serving(
                "stuck-worker", {"pid": os.getpid(), "kind": "http", "models": {"echo": 1}}
            )
            if stop.wait(0.2):
                return

    beat = threading.Thread(target=stuck_worker)
    beat.start()
    try:
        with pytest.raises(SwapTimeout) as info:
            admin.upload("echo", write_echo_bundle(tmp_path / "b", "b"), caller="x")
    finally:
        stop.set()
        beat.join()
    assert info.value.detail["laggards"] == ["stuck-worker"] and info.value.detail["version"] == 2
    assert "stuck-worker" in info.value.message
    assert repo.current_version("echo") == 2  # published; only the wait timed out
    repo.fleet.remove_serving("stuck-worker")


def test_swap_timeout_reports_a_load_failure_in_a_serving_process(
    repo: Repository, served: Registry, tmp_path: Path
) -> None:
    """Validation passes here but the serving process fails to load: the admin learns why at once."""
    admin = Admin(repo, swap_timeout=60)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    # The model refuses to load on the registry's watcher thread only: validation (this thread) passes.
    code = (
        "import threading\n"
        "        if threading.current_thread().name.startswith('registry-'):\n"
        "            raise RuntimeError('gpu missing')"
    )
    folder = write_echo_bundle(tmp_path / "b", "b", init_code=code)
    with pytest.raises(SwapTimeout) as info:
        admin.upload("echo", folder, caller="x")
    err = info.value
    assert err.detail["laggards"] == [served.process_id]
    assert "gpu missing" in err.message and err.detail["version"] == 2
    assert repo.current_version("echo") == 2  # published; this process could not load it
    assert label_of(served) == ("a", 1)  # the old version keeps serving


def test_settings_keep_versions_cleans_up_after_each_swap(repo: Repository, tmp_path: Path) -> None:
    from runner.settings import Settings

    admin = Admin(repo, settings=Settings(repo=repo.root, keep_versions=2))
    for label in "abcd":
        admin.upload("echo", write_echo_bundle(tmp_path / label, label), caller="x")
    assert repo.versions("echo") == [3, 4]
    assert admin.rollback("echo", caller="x")["version"] == 3


SERVING_PROCESS = """
import sys, time
from pathlib import Path
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
registry = Registry(
    Repository(Path(sys.argv[1])), BundleLoader(Settings()), process_kind="grpc", poll_interval=0.02
)
registry.start()
print(registry.process_id, flush=True)
sys.stdin.read()  # serve until the test closes our stdin
registry.stop()
"""


def test_admin_waits_for_every_serving_process(repo: Repository, served: Registry, tmp_path: Path) -> None:
    import subprocess
    import sys

    admin = Admin(repo, swap_timeout=60)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVING_PROCESS, str(repo.root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        other = proc.stdout.readline().decode().strip()
        assert other and other != served.process_id
        result = admin.upload("echo", write_echo_bundle(tmp_path / "b", "b"), caller="x")
        assert result["served_by"] == sorted([served.process_id, other])
        assert repo.fleet.live_processes()[other]["models"] == {"echo": 2}
        gone = admin.delete("echo", caller="x")
        assert gone["previous_version"] == 2
        assert repo.fleet.live_processes()[other]["models"] == {}
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    assert other not in repo.fleet.live_processes()  # stop() removed its record


def test_java_upload_then_acumos_style_jar_only_swap(
    repo: Repository, served: Registry, sample_bundles: dict[str, Path]
) -> None:
    """A Java bundle validated in this process's JVM; then `PUT /model` with only a new JAR (iris-v2)."""
    admin = Admin(repo, swap_timeout=60)
    row = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
    first = admin.upload("iris", sample_bundles["iris"], expected_version=0, caller="dev")
    assert first["served_by"] == [served.process_id]
    assert json.loads(DataPlane(served).predict("iris", "Classify", row, JSON).body)["species"] == "setosa"

    jar = (sample_bundles["iris-v2"] / "model.jar").read_bytes()
    second = admin.upload("iris", UploadParts(jar=jar), expected_version=1, caller="dev")
    assert second["version"] == 2
    result = DataPlane(served).predict("iris", "Classify", row, JSON)
    assert (json.loads(result.body)["species"], result.version) == ("Iris-setosa", 2)
    assert (repo.version_dir("iris", 2) / "model.proto").read_text() == (
        sample_bundles["iris"] / "model.proto"
    ).read_text()

    # A JAR whose class is missing is refused at validation; version 2 keeps serving.
    before = state(repo)
    with pytest.raises(InvalidBundle):
        admin.upload("iris", UploadParts(jar=_zip({"readme.txt": b"no classes"})), caller="dev")
    assert state(repo) == before and list((repo.root / "staging").iterdir()) == []
    assert DataPlane(served).predict("iris", "Classify", row, JSON).version == 2


def test_proto_swap_that_removes_an_rpc_drops_its_examples(repo: Repository, tmp_path: Path) -> None:
    admin = Admin(repo)
    two_rpcs = ECHO_PROTO.replace(
        "rpc Say (Req) returns (Resp);", "rpc Say (Req) returns (Resp);\n  rpc Shout (Req) returns (Resp);"
    )
    folder = write_echo_bundle(
        tmp_path / "a", "a", proto=two_rpcs, examples={"Say": [{"text": "hi"}], "Shout": [{"text": "hey"}]}
    )
    with (folder / "echo_model.py").open("a") as model:
        model.write(
            "\n    def Shout(self, req):\n        return {'text': req.text.upper(), 'label': LABEL}\n"
        )
    admin.upload("echo", folder, caller="x")

    with pytest.raises(Conflict):  # removing an rpc breaks clients: needs the flag
        admin.replace_proto("echo", ECHO_PROTO, allow_breaking=False, caller="p")
    result = admin.replace_proto("echo", ECHO_PROTO, allow_breaking=True, caller="p")
    assert result["version"] == 2
    kept = json.loads((repo.version_dir("echo", 2) / "metadata.json").read_text())
    assert kept["examples"] == {"Say": [{"text": "hi"}]}
    v1 = json.loads((repo.version_dir("echo", 1) / "metadata.json").read_text())
    assert set(v1["examples"]) == {"Say", "Shout"}  # the old version is immutable


def test_a_bundle_needing_jvm_options_a_live_process_lacks_is_refused(
    repo: Repository, sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """JVM options are fixed at JVM start: the swap must not half-apply (load here, fail there)."""
    import shutil

    from runner.runtimes.java import ensure_jvm, running_jvm_options

    ensure_jvm((), Settings())  # this process's JVM (every JVM runs with -Xrs)
    assert "-Xrs" in (running_jvm_options() or [])
    folder = shutil.copytree(sample_bundles["iris"], tmp_path / "iris")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["jvm_options"] = ["-Xrs"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    admin = Admin(repo)
    # another serving process whose JVM runs without it, and one that has no JVM yet (it will start
    # its JVM with every bundle's options, so it is no obstacle)
    repo.fleet.record_serving("worker-old-jvm", {"kind": "http", "models": {}, "jvm_options": ["-Xmx1g"]})
    repo.fleet.record_serving("worker-no-jvm", {"kind": "grpc", "models": {}, "jvm_options": None})
    before = state(repo)
    with pytest.raises(InvalidBundle) as info:
        admin.upload("iris", folder, caller="x")
    assert "-Xrs" in info.value.message and "worker-old-jvm" in info.value.message
    assert info.value.detail["missing_jvm_options"] == {"worker-old-jvm": ["-Xrs"]}
    assert state(repo) == before and list((repo.root / "staging").iterdir()) == []

    repo.fleet.remove_serving("worker-old-jvm")
    repo.fleet.remove_serving("worker-no-jvm")
    assert admin.upload("iris", folder, caller="x", expected_version=0)["version"] == 1


def test_a_model_slower_to_load_than_load_timeout_is_refused_before_publish(
    repo: Repository, tmp_path: Path
) -> None:
    """Validation has a time limit: a constructor still running at load_timeout is refused (422) with
    the limit named, nothing is published, and the abandoned load is recorded until it ends."""
    # the quick versions get the default limit: on a loaded machine even they may take over 0.5 s
    quick = Admin(repo, Settings(repo=repo.root))
    admin = Admin(repo, Settings(repo=repo.root, load_timeout=0.5))
    quick.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    before = state(repo)
    started, release = tmp_path / "started", tmp_path / "release"
    slow = write_echo_bundle(
        tmp_path / "slow", "slow", init_code=hold_in_constructor(release, started=started)
    )
    try:
        with pytest.raises(InvalidBundle) as info:
            admin.upload("echo", slow, caller="x")
        assert started.exists()  # it was loading, and still is: nothing waited for it
        assert "load_timeout" in info.value.message and "0.5s" in info.value.message
        assert info.value.detail["load_timeout"] == 0.5 and info.value.detail["phase"] == "load"
        from runner.serving.loading import abandoned_loads

        assert [load["what"] for load in abandoned_loads()] == [info.value.detail["what"]]
        assert state(repo) == before and list((repo.root / "staging").iterdir()) == []
    finally:
        release.touch()
    wait_for(lambda: abandoned_loads() == [], what="the abandoned load to end and be closed")
    assert quick.upload("echo", write_echo_bundle(tmp_path / "b", "b"), caller="x")["version"] == 2


def test_concurrent_pushes_superseded_ones_answer_at_once_and_truthfully(
    repo: Repository, tmp_path: Path
) -> None:
    """Five pushes at once without If-Match: the versions published before the last one are superseded
    before any serving process serves them. Their callers learn it as soon as the pointer moves past
    their version (409 conflict naming what superseded it and what is current), not at swap_timeout;
    only the last publish's caller waits for the swap and gets 200."""
    admin = Admin(repo, swap_timeout=100)
    admin.upload("echo", write_echo_bundle(tmp_path / "base", "base"), caller="ops")
    gate = threading.Event()  # the serving process loads nothing after version 1 until the gate opens
    registry = Registry(repo, GatedLoader(gate, held_from=2), poll_interval=0.02)
    registry.start()
    answers: dict[int, dict | ModelRunnerError] = {}

    def push(i: int) -> None:
        folder = write_echo_bundle(tmp_path / f"p{i}", f"p{i}")
        try:
            answers[i] = admin.upload("echo", folder, caller=f"client{i}")
        except ModelRunnerError as err:
            answers[i] = err

    threads = [threading.Thread(target=push, args=(i,)) for i in range(5)]
    try:
        for thread in threads:
            thread.start()
        # every superseded caller is answered while the serving process still serves version 1
        wait_for(lambda: len(answers) == 4, timeout=60, what="the four superseded pushes to answer")
        assert registry.snapshot()["echo"].version == 1 and not gate.is_set()
        gate.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        gate.set()
        registry.stop()
    assert len(answers) == 5 and repo.current_version("echo") == 6
    published = {e["version"]: e["caller"] for e in repo.history("echo")}
    won = [i for i, answer in answers.items() if isinstance(answer, dict)]
    assert len(won) == 1, answers
    winner = answers[won[0]]
    assert isinstance(winner, dict) and winner["version"] == 6 and published[6] == f"client{won[0]}"
    assert winner["served_by"] == [registry.process_id]
    for i, answer in answers.items():
        if i in won:
            continue
        assert isinstance(answer, Conflict), answer
        version = answer.detail["version"]
        assert 2 <= version <= 5 and published[version] == f"client{i}"
        assert answer.detail["superseded_by"] == version + 1
        assert answer.detail["superseded_by_caller"] == published[version + 1]
        assert version + 1 <= answer.detail["current_version"] <= 6
        assert f"version {version} of 'echo'" in answer.message and "superseded" in answer.message


def test_a_delete_superseded_by_a_publish_answers_at_once(repo: Repository, tmp_path: Path) -> None:
    admin = Admin(repo, swap_timeout=100)
    admin.upload("echo", write_echo_bundle(tmp_path / "a", "a"), caller="x")
    stop = threading.Event()

    def stuck_worker() -> None:  # a live process (heartbeating, live pid) that still serves version 1
        while True:
            repo.fleet.record_serving(
                "stuck-worker", {"pid": os.getpid(), "kind": "http", "models": {"echo": 1}}
            )
            if stop.wait(0.2):
                return

    beat = threading.Thread(target=stuck_worker)
    beat.start()
    wait_for(lambda: "stuck-worker" in repo.fleet.live_processes(), what="the stuck worker's record")
    answer: list[BaseException] = []

    def delete() -> None:
        try:
            admin.delete("echo", caller="ops")
        except ModelRunnerError as err:
            answer.append(err)

    deleting = threading.Thread(target=delete)
    try:
        deleting.start()
        wait_for(lambda: repo.current_version("echo") is None, what="the delete to be recorded")
        v2 = repo.publish("echo", write_echo_bundle(tmp_path / "b", "b"), expected_version=0, caller="dev")
        deleting.join(timeout=60)
        assert answer and not deleting.is_alive()  # answered at once, not after swap_timeout
    finally:
        stop.set()
        beat.join()
        repo.fleet.remove_serving("stuck-worker")
    err = answer[0]
    assert isinstance(err, Conflict) and err.detail["superseded"] is True
    assert (err.detail["superseded_by"], err.detail["superseded_by_caller"]) == (v2, "dev")
    assert err.detail["current_version"] == v2 and err.detail["laggards"] == ["stuck-worker"]
    assert "'echo' was deleted" in err.message and f"version {v2} (upload by dev)" not in err.message
    assert f"version {v2} (publish by dev)" in err.message
