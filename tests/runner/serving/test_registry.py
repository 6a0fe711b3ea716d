"""The per-process registry: loads current versions, follows pointer changes, drains, reports serving."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from runner.errors import NotFound, NotReady
from runner.serving.dataplane import DataPlane
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
from tests.runner.repo_helpers import TrackingLoader, write_echo_bundle
from tests.runner.serving.slow_models import (
    hold_in_constructor,
    slow_java_jar,
    write_slow_java_bundle,
)
from tests.waiting import wait_for

JSON = "application/json"


def say(plane: DataPlane, text: str = "hi", model: str = "echo", wait_for_file: str = "") -> dict:
    body = json.dumps({"text": text, "wait_for": wait_for_file}).encode()
    result = plane.predict(model, "Say", body, JSON)
    return {**json.loads(result.body), "version": result.version}


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo")


def publish(repo: Repository, tmp_path: Path, label: str, name: str = "echo", **kw: object) -> int:
    src = write_echo_bundle(tmp_path / f"src-{name}-{label}", label, name=name, **kw)  # type: ignore[arg-type]
    return repo.publish(name, src, expected_version=None, caller="test")


def test_start_loads_every_current_model_and_records_serving(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "a1", name="a")
    publish(repo, tmp_path, "b1", name="b")
    publish(repo, tmp_path, "b2", name="b")
    closed: list[int] = []
    registry = Registry(repo, TrackingLoader(closed), process_kind="grpc", poll_interval=0.02)
    assert not registry.ready()
    with pytest.raises(NotReady), registry.acquire("a"):
        pass
    registry.start()
    try:
        assert registry.ready()
        assert {n: lv.version for n, lv in registry.snapshot().items()} == {"a": 1, "b": 2}
        plane = DataPlane(registry)
        assert say(plane, model="b") == {"text": "hi", "label": "b2", "version": 2}
        record = repo.fleet.live_processes()[registry.process_id]
        assert record["kind"] == "grpc" and record["models"] == {"a": 1, "b": 2} and record["ready"] is True
        with pytest.raises(NotFound), registry.acquire("nope"):
            pass
    finally:
        registry.stop()
    assert sorted(closed) == [1, 2]
    assert registry.process_id not in repo.fleet.live_processes()
    assert not (repo.root / "serving" / f"{registry.process_id}.json").exists()


def test_new_version_flips_while_in_flight_call_finishes_on_old(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "v1")
    closed: list[int] = []
    registry = Registry(repo, TrackingLoader(closed), poll_interval=0.02)
    registry.start()
    try:
        plane = DataPlane(registry)
        release = tmp_path / "release"
        slow: dict = {}
        thread = threading.Thread(target=lambda: slow.update(say(plane, "slow", wait_for_file=str(release))))
        thread.start()
        wait_for(lambda: registry.in_flight().get("echo") == 1, what="the slow call to start")

        v2 = publish(repo, tmp_path, "v2")
        # The registry notices the pointer by itself and reports the flip in its serving record.
        assert repo.fleet.wait_until_served("echo", v2, timeout=20) == []
        assert registry.snapshot()["echo"].version == 2
        assert say(plane, "new") == {"text": "new", "label": "v2", "version": 2}
        assert closed == []  # v1 still has a call in flight: not closed
        assert thread.is_alive()

        release.touch()
        thread.join(timeout=30)
        assert slow == {"text": "slow", "label": "v1", "version": 1}  # finished on the old version
        assert closed == [1]  # closed right after its last call ended
    finally:
        registry.stop()
    assert closed == [1, 2]


def test_failed_load_keeps_old_version_serving(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "v1")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    registry.start()
    try:
        plane = DataPlane(registry)
        v2 = publish(repo, tmp_path, "v2", init_code="raise RuntimeError('weights file missing')")
        # The failure is reported in the serving record: a publisher stops waiting for this process.
        assert repo.fleet.wait_until_served("echo", v2, timeout=60) == [registry.process_id]
        errors = wait_for(registry.load_errors, what="the load error")
        assert "weights file missing" in errors["echo"] and "version 2" in errors["echo"]
        record = repo.fleet.live_processes()[registry.process_id]
        assert record["errors"]["echo"]["version"] == 2 and record["models"] == {"echo": 1}
        assert say(plane) == {"text": "hi", "label": "v1", "version": 1}
        assert registry.ready()  # a version is loaded and serving

        v3 = publish(repo, tmp_path, "v3")
        assert repo.fleet.wait_until_served("echo", v3, timeout=20) == []
        assert say(plane)["label"] == "v3"
        assert registry.load_errors() == {}
    finally:
        registry.stop()


def test_model_that_never_loaded_is_not_ready(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "ok", name="good")
    publish(repo, tmp_path, "bad", name="broken", init_code="raise RuntimeError('no')")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    registry.start()
    try:
        assert not registry.ready()
        assert set(registry.snapshot()) == {"good"}
        with pytest.raises(NotReady) as info, registry.acquire("broken"):
            pass
        assert "failed to load" in info.value.message and info.value.detail["version"] == 1
        # Deleting the broken model makes the process ready again.
        repo.delete("broken", caller="test")
        wait_for(registry.ready, what="readiness")
    finally:
        registry.stop()


def test_deleted_model_is_unloaded_after_drain_and_rollback_reloads(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "v1")
    publish(repo, tmp_path, "v2")
    closed: list[int] = []
    registry = Registry(repo, TrackingLoader(closed), poll_interval=0.02)
    registry.start()
    try:
        plane = DataPlane(registry)
        repo.rollback("echo", caller="test")
        assert repo.fleet.wait_until_served("echo", 1, timeout=20) == []
        assert say(plane)["label"] == "v1"
        wait_for(lambda: closed == [2], what="version 2 to close")  # closed right after the flip is reported

        release = tmp_path / "release"
        thread = threading.Thread(target=say, args=(plane, "x"), kwargs={"wait_for_file": str(release)})
        thread.start()
        wait_for(lambda: registry.in_flight().get("echo") == 1, what="the call to start")
        repo.delete("echo", caller="test")
        assert repo.fleet.wait_until_served("echo", None, timeout=20) == []
        with pytest.raises(NotFound):
            say(plane)
        assert closed == [2]  # the in-flight call still holds version 1
        release.touch()
        thread.join(timeout=30)
        assert closed == [2, 1]
    finally:
        registry.stop()


def test_two_registries_share_a_repository(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "v1")
    first, second = (
        Registry(repo, BundleLoader(Settings()), poll_interval=0.02),
        Registry(repo, BundleLoader(Settings()), poll_interval=0.02, process_kind="grpc"),
    )
    first.start()
    second.start()
    try:
        assert first.process_id != second.process_id
        assert set(repo.fleet.live_processes()) == {first.process_id, second.process_id}
        v2 = publish(repo, tmp_path, "v2")
        assert repo.fleet.wait_until_served("echo", v2, timeout=20) == []
        # Two versions of the same module name were loaded side by side without clashing.
        assert say(DataPlane(first))["label"] == say(DataPlane(second))["label"] == "v2"
    finally:
        first.stop()
        second.stop()


def test_swaps_under_load_fail_no_call(repo: Repository, tmp_path: Path) -> None:
    publish(repo, tmp_path, "v1")
    closed: list[int] = []
    registry = Registry(repo, TrackingLoader(closed), poll_interval=0.01)
    registry.start()
    plane = DataPlane(registry)
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    failures: list[BaseException] = []

    def client(i: int) -> None:
        while not stop.is_set():
            try:
                reply = say(plane, f"c{i}")
                assert reply["label"] == f"v{reply['version']}"
                seen[i].append(reply["version"])
            except BaseException as err:  # noqa: BLE001 - collected and asserted below
                failures.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for label in ("v2", "v3", "v4", "v5"):
            version = publish(repo, tmp_path, label)
            assert repo.fleet.wait_until_served("echo", version, timeout=20) == []
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        registry.stop()
    assert failures == []
    for versions in seen:
        assert versions and versions == sorted(versions)  # once a client saw a version, never an older one
    assert {v for versions in seen for v in versions} >= {5}
    assert sorted(closed) == [1, 2, 3, 4, 5]  # every version closed exactly once


def test_java_and_python_bundles_in_one_repository(
    repo: Repository, tmp_path: Path, sample_bundles: dict[str, Path]
) -> None:
    repo.publish("iris", sample_bundles["iris"], expected_version=None, caller="test")
    repo.publish("iris-python", sample_bundles["iris-python"], expected_version=None, caller="test")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    registry.start()
    try:
        assert registry.ready(), registry.load_errors()
        plane = DataPlane(registry)
        row = json.dumps(
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        ).encode()
        for name in ("iris", "iris-python"):
            result = plane.predict(name, "Classify", row, JSON)
            assert json.loads(result.body)["species"] == "setosa", name
            assert (result.model, result.version) == (name, 1)
        # Swap the Java model for iris-v2 (other labels) while Python keeps serving.
        v2 = repo.publish("iris", sample_bundles["iris-v2"], expected_version=1, caller="test")
        assert repo.fleet.wait_until_served("iris", v2, timeout=60) == []
        assert json.loads(plane.predict("iris", "Classify", row, JSON).body)["species"] == "Iris-setosa"
        assert json.loads(plane.predict("iris-python", "Classify", row, JSON).body)["species"] == "setosa"
    finally:
        registry.stop()


def test_a_slow_load_of_one_model_does_not_delay_a_swap_of_another(
    repo: Repository, tmp_path: Path, sample_bundles: dict[str, Path]
) -> None:
    """Each model loads on its own thread: while model A's new version is still in its constructor,
    model B (the Java iris) swaps to its new version and A's old version keeps answering."""
    publish(repo, tmp_path, "a1", name="slow")
    repo.publish("iris", sample_bundles["iris"], expected_version=None, caller="test")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    started, release = tmp_path / "started", tmp_path / "release"
    registry.start()
    try:
        assert registry.ready(), registry.load_errors()
        plane = DataPlane(registry)
        a2 = publish(
            repo, tmp_path, "a2", name="slow", init_code=hold_in_constructor(release, started=started)
        )
        wait_for(started.exists, what="the load of model A's version 2 to start")
        b2 = repo.publish("iris", sample_bundles["iris-v2"], expected_version=1, caller="test")
        assert repo.fleet.wait_until_served("iris", b2, timeout=30) == []
        assert not release.exists()  # B swapped while A's constructor is still held
        row = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
        result = plane.predict("iris", "Classify", row, JSON)
        assert (json.loads(result.body)["species"], result.version) == ("Iris-setosa", 2)
        assert say(plane, model="slow") == {"text": "hi", "label": "a1", "version": 1}
        release.touch()
        assert repo.fleet.wait_until_served("slow", a2, timeout=60) == []
        assert say(plane, model="slow")["label"] == "a2"
    finally:
        release.touch()
        registry.stop()


def test_a_load_beyond_load_timeout_is_abandoned_and_reported_while_the_old_version_serves(
    repo: Repository, tmp_path: Path
) -> None:
    publish(repo, tmp_path, "v1")
    registry = Registry(repo, BundleLoader(Settings(load_timeout=0.5)), poll_interval=0.02)
    release = tmp_path / "release"
    registry.start()
    try:
        plane = DataPlane(registry)
        v2 = publish(repo, tmp_path, "v2", init_code=hold_in_constructor(release))
        # the serving record says why as soon as the limit passes: a waiting publisher stops waiting
        assert repo.fleet.wait_until_served("echo", v2, timeout=30) == [registry.process_id]
        record = repo.fleet.live_processes()[registry.process_id]
        error = record["errors"]["echo"]
        assert error["version"] == 2 and record["models"] == {"echo": 1}
        assert "load_timeout" in error["error"] and "0.5s" in error["error"] and "abandoned" in error["error"]
        assert say(plane) == {"text": "hi", "label": "v1", "version": 1}
        from runner.serving.loading import abandoned_loads

        abandoned = wait_for(
            lambda: repo.fleet.live_processes()[registry.process_id].get("abandoned_loads"),
            what="the abandoned load in the serving record",
        )
        assert [(load["model"], load["version"]) for load in abandoned] == [("echo", 2)]
        release.touch()
        wait_for(lambda: abandoned_loads() == [], what="the abandoned load to end and be closed")
        assert registry.snapshot()["echo"].version == 1  # a late load is not served: it was given up
        v3 = publish(repo, tmp_path, "v3")
        assert repo.fleet.wait_until_served("echo", v3, timeout=30) == []
        assert say(plane)["label"] == "v3" and registry.load_errors() == {}
    finally:
        release.touch()
        registry.stop()


def test_a_java_constructor_that_does_not_return_is_abandoned_and_later_loads_go_on(
    repo: Repository, tmp_path: Path
) -> None:
    """A Java thread cannot be stopped safely: the load is abandoned on its (daemon) thread, reported,
    the old version keeps serving, and the next version of the same model loads meanwhile."""
    from runner.serving.loading import abandoned_loads

    jar = slow_java_jar(tmp_path / "jar")
    release = tmp_path / "release"
    repo.publish(
        "slowjava", write_slow_java_bundle(tmp_path / "v1", jar, "j1"), expected_version=None, caller="t"
    )
    registry = Registry(repo, BundleLoader(Settings(load_timeout=1.0)), poll_interval=0.02)
    registry.start()
    try:
        assert registry.ready(), registry.load_errors()
        plane = DataPlane(registry)

        def label() -> tuple[str, int]:
            result = plane.predict("slowjava", "Say", b'{"text": "x"}', JSON)
            return json.loads(result.body)["label"], result.version

        assert label() == ("j1", 1)
        held = write_slow_java_bundle(tmp_path / "v2", jar, "j2", hold=release)
        v2 = repo.publish("slowjava", held, expected_version=1, caller="t")
        assert repo.fleet.wait_until_served("slowjava", v2, timeout=30) == [registry.process_id]
        error = registry.load_errors()["slowjava"]
        assert "version 2" in error and "load_timeout" in error and "1s" in error
        assert label() == ("j1", 1)
        v3 = repo.publish(
            "slowjava", write_slow_java_bundle(tmp_path / "v3", jar, "j3"), expected_version=2, caller="t"
        )
        assert repo.fleet.wait_until_served("slowjava", v3, timeout=30) == []
        assert label() == ("j3", 3)
        # version 2's constructor is still running on its abandoned thread
        assert [(load["model"], load["version"]) for load in abandoned_loads()] == [("slowjava", 2)]
    finally:
        release.touch()
        registry.stop()
    wait_for(lambda: abandoned_loads() == [], what="the abandoned Java load to end and be closed")


def test_python_models_with_other_module_names_load_while_one_is_held(
    repo: Repository, tmp_path: Path
) -> None:
    """Only Python bundles sharing a module name take turns loading (their plain names would shadow
    each other): while model A's constructor is held, Python model B (another module) swaps."""

    def publish_renamed(label: str) -> int:
        src = write_echo_bundle(tmp_path / f"src-other-{label}", label, name="other")
        (src / "echo_model.py").rename(src / "other_model.py")
        meta = json.loads((src / "metadata.json").read_text())
        (src / "metadata.json").write_text(json.dumps({**meta, "entry_point": "other_model:EchoModel"}))
        return repo.publish("other", src, expected_version=None, caller="test")

    publish(repo, tmp_path, "a1", name="slow")
    publish_renamed("b1")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.02)
    started, release = tmp_path / "started", tmp_path / "release"
    registry.start()
    try:
        plane = DataPlane(registry)
        a2 = publish(
            repo, tmp_path, "a2", name="slow", init_code=hold_in_constructor(release, started=started)
        )
        wait_for(started.exists, what="the load of model A's version 2 to start")
        b2 = publish_renamed("b2")
        assert repo.fleet.wait_until_served("other", b2, timeout=30) == []
        assert not release.exists()  # B swapped while A's constructor is still held
        assert say(plane, model="other") == {"text": "hi", "label": "b2", "version": 2}
        release.touch()
        assert repo.fleet.wait_until_served("slow", a2, timeout=60) == []
        assert say(plane, model="slow")["label"] == "a2"
    finally:
        release.touch()
        registry.stop()
