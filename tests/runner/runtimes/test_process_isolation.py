"""isolation = "process" (runner.runtimes.process, runner.runtimes.child): real child processes, real
faults (a segfault, an exit past every guard, SIGKILL, a busy loop, a Java OutOfMemoryError)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runner.bundle import Metadata, open_bundle
from runner.contract import Contract
from runner.errors import BadInput, DeadlineExceeded, InvalidBundle, ModelError, NotReady
from runner.runtimes import load_model
from runner.runtimes.process import ProcessModel
from runner.serving.dataplane import DataPlane
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.serving.validate import validate_bundle
from runner.settings import Settings
from runner.store import Repository
from tests.bridge.conftest import FAULTS_PROTO, build_bundle
from tests.e2e.serve_process import alive
from tests.runner.repo_helpers import write_echo_bundle
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
IRIS_PROTO = (ROOT / "protos" / "iris.proto").read_text()
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

# sepal_length picks the fault; every other value answers with the child's pid
FAULTY = """
    import ctypes, os, signal, threading, time

    class Faulty:
        def __init__(self):
            if os.environ.get("FAULTY_LOAD") == "segfault":
                ctypes.string_at(0)
            mark = os.environ.get("FAULTY_LOAD_ONCE")  # loads once; crashes at load while the file exists
            if mark:
                if os.path.exists(mark):
                    ctypes.string_at(0)
                open(mark, "w").close()

        def Classify(self, request):
            how = int(request.sepal_length)
            if how == 1:
                ctypes.CDLL(None)._exit(7)        # past the Python exit guard: the process ends
            if how == 2:
                ctypes.string_at(0)               # segfault
            if how == 3:
                while True:                       # never returns
                    pass
            if how == 4:
                os._exit(9)                       # the exit guard turns it into an error
            if how == 5:
                marks = os.environ.get("FAULTY_MARKS")
                if marks:  # tells the test the call runs
                    open(os.path.join(marks, str(threading.get_ident())), "w").close()
                time.sleep(float(request.sepal_width))
            return {"species": str(os.getpid())}

        def ClassifyBatch(self, request):
            return {}

        def ClassifyMatrix(self, request):
            return {}
"""


def python_bundle(folder: Path, code: str = FAULTY, entry: str = "faulty:Faulty", **meta: object) -> Path:
    folder.mkdir(parents=True)
    (folder / (entry.split(":")[0] + ".py")).write_text(textwrap.dedent(code))
    (folder / "model.proto").write_text(IRIS_PROTO)
    metadata = {"name": "faulty", "runtime": "python", "entry_point": entry, "isolation": "process", **meta}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def load(folder: Path, settings: Settings | None = None) -> tuple[ProcessModel, Contract]:
    bundle = open_bundle(folder)
    contract = Contract.compile(bundle.proto_text, include_dir=folder)
    model = load_model(folder, bundle.metadata, contract, settings or Settings())
    assert isinstance(model, ProcessModel)
    return model, contract


def classify(
    model: ProcessModel, contract: Contract, how: float = 0, timeout: float | None = 30, **more: float
) -> str:
    request = contract.input_class("Classify")(sepal_length=how, **more).SerializeToString()
    species: str = (
        contract.output_class("Classify").FromString(model.invoke("Classify", request, timeout)).species
    )
    return species


@pytest.fixture
def faulty(tmp_path: Path):
    model, contract = load(python_bundle(tmp_path / "faulty"))
    yield model, contract
    model.close()


def child_pid(model: ProcessModel) -> int:
    child = model._child
    assert child is not None
    return child.pid


# ------------------------------------------------------------------------------------------ Python


def test_python_answers_the_same_bytes_as_in_process(sample_bundles):
    folder = sample_bundles["iris-python"]
    bundle = open_bundle(folder)
    contract = Contract.compile(bundle.proto_text, include_dir=folder)
    inside = load_model(folder, bundle.metadata, contract, Settings())
    outside = load_model(folder, bundle.metadata, contract, Settings(isolation="process"))
    try:
        assert isinstance(outside, ProcessModel) and not isinstance(inside, ProcessModel)
        assert outside.bindings == inside.bindings
        for rpc, examples in bundle.metadata.examples.items():
            for example in examples:
                request = contract.parse_dict(contract.input_class(rpc), example).SerializeToString()
                assert outside.invoke(rpc, request, 10) == inside.invoke(rpc, request, 10)
    finally:
        inside.close()
        outside.close()


def test_bundle_isolation_overrides_the_setting(tmp_path):
    folder = python_bundle(tmp_path / "b", isolation="in-process")
    bundle = open_bundle(folder)
    contract = Contract.compile(bundle.proto_text, include_dir=folder)
    model = load_model(folder, bundle.metadata, contract, Settings(isolation="process"))
    try:
        assert not isinstance(model, ProcessModel)
    finally:
        model.close()


def test_isolation_is_validated_with_its_name():
    with pytest.raises(InvalidBundle) as err:
        Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "m:M", "isolation": "thread"})
    assert "'isolation' 'thread' must be one of 'in-process', 'process'" in err.value.message
    with pytest.raises(BadInput) as refused:
        Settings.from_env({"MODEL_RUNNER_ISOLATION": "container"})
    assert (
        "MODEL_RUNNER_ISOLATION" in refused.value.message and "in-process or process" in refused.value.message
    )
    meta = Metadata.from_dict(
        {"name": "m", "runtime": "python", "entry_point": "m:M", "isolation": "process"}
    )
    assert meta.isolation == "process" and Metadata.from_dict(meta.to_dict()) == meta


def test_exit_past_the_guard_fails_that_call_then_the_child_is_restarted(faulty):
    model, contract = faulty
    first = child_pid(model)
    assert classify(model, contract) == str(first)
    with pytest.raises(ModelError) as err:
        classify(model, contract, 1)
    assert err.value.message == (
        "the model process of faulty version staged exited with code 7 while running Classify; "
        "it is being restarted"
    )
    assert err.value.detail["exit_code"] == 7 and err.value.detail["pid"] == first
    assert classify(model, contract) not in ("", str(first))  # the next call waits for the new child
    assert not alive(first)


def test_segfault_fails_that_call_then_the_child_is_restarted(faulty):
    model, contract = faulty
    first = child_pid(model)
    with pytest.raises(ModelError) as err:
        classify(model, contract, 2)
    assert "exited with signal SIGSEGV while running Classify; it is being restarted" in err.value.message
    assert err.value.detail["signal"] == "SIGSEGV"
    assert classify(model, contract) != str(first)


def test_guarded_os_exit_is_a_model_error_and_the_child_serves_on(faulty):
    model, contract = faulty
    with pytest.raises(ModelError) as err:
        classify(model, contract, 4)
    assert "os._exit(9)" in err.value.message
    assert classify(model, contract)


def test_sigkill_fails_the_calls_in_flight_only_and_the_next_ones_succeed(tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FAULTY_MARKS", str(marks))
    model, contract = load(python_bundle(tmp_path / "faulty"))
    first = child_pid(model)
    errors: list[BaseException] = []

    def sleeper() -> None:
        try:
            classify(model, contract, 5, sepal_width=60)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    callers = [threading.Thread(target=sleeper) for _ in range(3)]
    for t in callers:
        t.start()
    try:
        wait_for(lambda: len(list(marks.iterdir())) == 3, 30, "three calls running in the child")
        os.kill(first, signal.SIGKILL)  # what the out-of-memory killer does
        for t in callers:
            t.join(30)
        assert len(errors) == 3 and all(isinstance(e, ModelError) for e in errors), errors
        assert all("exited with signal SIGKILL while running Classify" in e.message for e in errors)  # type: ignore[attr-defined]
        assert "out-of-memory" in errors[0].detail["hint"]  # type: ignore[attr-defined]
        assert classify(model, contract) != str(first)
    finally:
        model.close()


def test_busy_loop_answers_deadline_exceeded_at_the_deadline_then_the_child_is_replaced(tmp_path):
    settings = Settings(stuck_grace=0.5)  # default 2 s
    model, contract = load(python_bundle(tmp_path / "faulty"), settings)
    try:
        first = child_pid(model)
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            classify(model, contract, 3, timeout=0.5)
        took = time.monotonic() - began
        assert 0.5 <= took < 1.0, took
        assert err.value.detail == {"rpc": "Classify", "timeout": 0.5, "isolation": "process"}
        assert classify(model, contract) == str(first)  # the stuck child serves on until replaced
        wait_for(lambda: child_pid(model) != first, 60, "the stuck child to be replaced")
        wait_for(lambda: not alive(first), 30, "the stuck child to be killed")
        assert classify(model, contract) == str(child_pid(model))
    finally:
        model.close()


def test_a_late_answer_within_the_grace_keeps_the_child(faulty):
    model, contract = faulty
    first = child_pid(model)
    with pytest.raises(DeadlineExceeded):
        classify(model, contract, 5, sepal_width=0.6, timeout=0.2)
    wait_for(lambda: model._child is not None and len(model._child._idle) >= 1, 10, "the connection back")
    assert classify(model, contract) == str(first)
    assert child_pid(model) == first


def test_load_error_is_the_same_core_error(tmp_path):
    code = "class Broken:\n    def __init__(self):\n        raise RuntimeError('licence file missing')\n"
    with pytest.raises(InvalidBundle) as err:
        load(python_bundle(tmp_path / "broken", code, "broken:Broken"))
    assert "the constructor raised RuntimeError: licence file missing" in err.value.message
    assert err.value.detail["exception_class"] == "RuntimeError"


def test_crash_while_loading_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULTY_LOAD", "segfault")
    with pytest.raises(InvalidBundle) as err:
        load(python_bundle(tmp_path / "faulty"))
    assert (
        err.value.message
        == "the model process of faulty version staged exited with signal SIGSEGV while loading"
    )


def test_restarts_that_crash_at_load_back_off_and_calls_say_why(tmp_path, monkeypatch):
    mark = tmp_path / "loaded-once"
    monkeypatch.setenv("FAULTY_LOAD_ONCE", str(mark))
    model, contract = load(python_bundle(tmp_path / "faulty"))
    try:
        with pytest.raises(ModelError):
            classify(model, contract, 2)
        with pytest.raises(NotReady) as err:
            classify(model, contract)
        assert err.value.message == (
            "the model process of faulty version staged is being restarted; its last start failed: "
            "the model process of faulty version staged exited with signal SIGSEGV while loading"
        )
        mark.unlink()  # the next attempt (after its back-off) loads
        wait_for(lambda: model._child is not None, 60, "a restart that loads")
        assert classify(model, contract) == str(child_pid(model))
    finally:
        model.close()


def test_close_leaves_no_process(faulty):
    model, contract = faulty
    classify(model, contract)
    pid = child_pid(model)
    model.close()
    assert not alive(pid)
    with pytest.raises(NotReady):
        classify(model, contract)


def test_the_child_dies_with_its_parent(tmp_path):
    folder = python_bundle(tmp_path / "faulty")
    code = f"""
import sys
from pathlib import Path
from runner.bundle import open_bundle
from runner.contract import Contract
from runner.runtimes import load_model
from runner.settings import Settings
b = open_bundle(Path({str(folder)!r}))
m = load_model(b.root, b.metadata, Contract.compile(b.proto_text), Settings())
print(m._child.pid, flush=True)
sys.stdin.read()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.kill()
        parent.wait()
        wait_for(lambda: not alive(pid), 30, "the child to die with its parent")
    finally:
        parent.kill()
        parent.wait()


def test_other_models_are_not_affected(tmp_path, sample_bundles):
    faulty, contract = load(python_bundle(tmp_path / "faulty"))
    iris_bundle = open_bundle(sample_bundles["iris-python"])
    iris_contract = Contract.compile(iris_bundle.proto_text, include_dir=iris_bundle.root)
    iris = load_model(iris_bundle.root, iris_bundle.metadata, iris_contract, Settings(isolation="process"))
    request = iris_contract.parse_dict(iris_contract.input_class("Classify"), SETOSA).SerializeToString()
    try:
        failures: list[BaseException] = []
        stop = threading.Event()

        def steady() -> None:
            while not stop.is_set():
                try:
                    iris.invoke("Classify", request, 10)
                except BaseException as err:  # noqa: BLE001
                    failures.append(err)

        callers = [threading.Thread(target=steady) for _ in range(3)]
        for t in callers:
            t.start()
        for how in (1, 2, 1):
            with pytest.raises(ModelError):
                classify(faulty, contract, how)
        stop.set()
        for t in callers:
            t.join()
        assert failures == []
    finally:
        faulty.close()
        iris.close()


def test_validation_runs_the_examples_in_a_child(tmp_path, sample_bundles):
    folder = tmp_path / "iris-python"
    shutil.copytree(sample_bundles["iris-python"], folder)
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "isolation": "process"}))
    report = validate_bundle(open_bundle(folder), settings=Settings())
    assert report.outputs["Classify"][0]["species"] == "setosa"
    python_bundle(tmp_path / "faulty", examples={"Classify": [{"sepal_length": 2}]})
    with pytest.raises(InvalidBundle) as err:
        validate_bundle(open_bundle(tmp_path / "faulty"), settings=Settings())
    assert (
        "Classify failed on its example 1: the model process of faulty version staged exited with signal SIGSEGV"
        in (err.value.message)
    )


# -------------------------------------------------------------------------------------------- Java

FAULT_CLASS = "org.modelrunner.tests.faults.FaultModel"


def java_faults_bundle(folder: Path, **meta: object) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(build_bundle("faults") / "model.jar", folder / "model.jar")
    (folder / "model.proto").write_text(FAULTS_PROTO)
    metadata = {
        "name": "faults",
        "runtime": "java",
        "entry_point": FAULT_CLASS,
        "isolation": "process",
        **meta,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def call_faults(model: ProcessModel, contract: Contract, rpc: str, timeout: float = 30) -> str:
    request = contract.input_class(rpc)(text="ok", n=7).SerializeToString()
    text: str = contract.output_class(rpc).FromString(model.invoke(rpc, request, timeout)).text
    return text


def test_java_iris_answers_in_its_own_jvm(sample_bundles):
    code = f"""
import sys
from runner.bundle import open_bundle
from runner.contract import Contract
from runner.runtimes import load_model, prepare_runtimes
from runner.settings import Settings
b = open_bundle({str(sample_bundles["iris"])!r})
c = Contract.compile(b.proto_text, include_dir=b.root)
s = Settings(isolation="process")
prepare_runtimes([b.metadata], s)
m = load_model(b.root, b.metadata, c, s)
req = c.parse_dict(c.input_class("Classify"), {SETOSA!r}).SerializeToString()
print(c.output_class("Classify").FromString(m.invoke("Classify", req, 10)).species)
print("parent jvm:", "jpype" in sys.modules)
m.close()
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == ["setosa", "parent jvm: False"]


def test_java_exit_and_oom_in_the_child(tmp_path):
    # a small heap of the child's own JVM, from the bundle's options
    model, contract = load(java_faults_bundle(tmp_path / "faults", jvm_options=["-Xmx48m"]))
    try:
        first = child_pid(model)
        assert call_faults(model, contract, "Echo") == "ok#7"
        for rpc in ("Exit", "Halt"):
            with pytest.raises(ModelError) as err:
                call_faults(model, contract, rpc)
            assert err.value.detail.get("exit") or "exited" in err.value.message, err.value.message
            assert call_faults(model, contract, "Echo") == "ok#7"
        with pytest.raises(ModelError) as oom:
            call_faults(model, contract, "Hog")
        assert "OutOfMemoryError" in oom.value.message or "exited" in oom.value.message, oom.value.message
        assert call_faults(model, contract, "Echo") == "ok#7"
        assert alive(first) or child_pid(model) != first
    finally:
        model.close()
    assert not list(Path.cwd().glob("hs_err_pid*.log"))


def test_java_spin_past_the_deadline_replaces_the_child(tmp_path):
    settings = Settings(stuck_grace=0.5)
    model, contract = load(java_faults_bundle(tmp_path / "faults"), settings)
    try:
        first = child_pid(model)
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            call_faults(model, contract, "Spin", timeout=0.5)
        assert time.monotonic() - began < 1.0
        assert call_faults(model, contract, "Echo") == "ok#7"
        wait_for(lambda: child_pid(model) != first, 60, "the stuck child to be replaced")
        wait_for(lambda: not alive(first), 30, "the stuck child to be killed")
        assert call_faults(model, contract, "Echo") == "ok#7"
    finally:
        model.close()


# ------------------------------------------------------------------------------- the registry's view


def test_swap_drains_the_old_version_then_closes_its_child(tmp_path):
    repo = Repository(tmp_path / "repo")
    repo.publish("echo", write_echo_bundle(tmp_path / "v1", "v1"), expected_version=None, caller="test")
    registry = Registry(repo, BundleLoader(Settings(isolation="process")), poll_interval=0.02)
    registry.start()
    try:
        plane = DataPlane(registry, predict_timeout=30)

        def say(wait_for: str = "") -> dict:
            result = plane.predict(
                "echo", "Say", json.dumps({"text": "hi", "wait_for": wait_for}).encode(), "application/json"
            )
            return {**json.loads(result.body), "version": result.version}

        assert say() == {"text": "hi", "label": "v1", "version": 1}
        old = registry.snapshot()["echo"].model
        assert isinstance(old, ProcessModel)
        old_pid = child_pid(old)
        release = tmp_path / "release"
        slow: dict = {}
        caller = threading.Thread(target=lambda: slow.update(say(str(release))))
        caller.start()
        wait_for(lambda: registry.in_flight().get("echo") == 1, 30, "the slow call in flight")
        repo.publish("echo", write_echo_bundle(tmp_path / "v2", "v2"), expected_version=1, caller="test")
        wait_for(lambda: registry.snapshot()["echo"].version == 2, 60, "the flip to version 2")
        assert say() == {"text": "hi", "label": "v2", "version": 2}
        assert alive(old_pid)  # still draining the slow call
        release.touch()
        caller.join(30)
        assert slow == {"text": "hi", "label": "v1", "version": 1}
        wait_for(lambda: not alive(old_pid), 30, "version 1's child to be closed once drained")
        new_pid = child_pid(registry.snapshot()["echo"].model)  # type: ignore[arg-type]
    finally:
        registry.stop()
    assert not alive(new_pid)


def test_java_crash_fails_the_calls_it_ran_and_its_report_stays_out_of_the_working_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the child's working directory too
    model, contract = load(java_faults_bundle(tmp_path / "faults"))
    try:
        first = child_pid(model)
        errors: list[BaseException] = []

        def sleeper() -> None:
            try:
                call_faults(model, contract, "Sleep")
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        # one pooled connection: the call takes it, so once in flight it is the child's to answer (a call
        # that finds its child gone before it is sent goes to the next child instead)
        assert call_faults(model, contract, "Echo") == "ok#7"
        caller = threading.Thread(target=sleeper)
        caller.start()
        wait_for(lambda: model._child is not None and model._child.in_flight == 1, 30, "the call in flight")
        os.kill(first, signal.SIGSEGV)  # the JVM's crash handler: hs_err, then abort
        caller.join(60)
        assert len(errors) == 1 and isinstance(errors[0], ModelError), errors
        assert "exited with signal SIGABRT while running Sleep" in errors[0].message
        report = errors[0].detail.get("jvm_crash_report")
        assert report and Path(report).is_file() and Path(report).parent != tmp_path
        assert call_faults(model, contract, "Echo") == "ok#7"
    finally:
        model.close()
    assert not list(tmp_path.glob("hs_err_pid*.log")) and not list(tmp_path.glob("core*"))
