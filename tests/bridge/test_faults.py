"""Faults of a model never take the process down: exceptions, System.exit/Runtime.halt, overrunning calls,
OutOfMemoryError; broken artifacts fail at load time with a clear error."""

from __future__ import annotations

import textwrap
import zipfile

import pytest

from bridge.errors import BindError, JavaDeadlineError, JavaExitError, JavaLoadError, JavaModelError
from bridge.model import JavaModel
from tests.bridge.conftest import FAULTS_PROTO, compile_contract, run_python

FAULT_CLASS = "org.modelrunner.tests.faults.FaultModel"


@pytest.fixture(scope="module")
def faults(faults_bundle, faults_contract, jvm_started):
    model = JavaModel.load(
        artifact_dir=faults_bundle, class_name=FAULT_CLASS, service=faults_contract.service
    )
    yield model
    model.close()


def req(contract, text="x", n=1) -> bytes:
    return contract.input_class("Echo")(text=text, n=n).SerializeToString()


def echo(model, contract) -> str:
    return contract.output_class("Echo").FromString(model.call("Echo", req(contract, "ok", 7))).text


def test_model_exception_carries_class_message_stack(faults, faults_contract):
    with pytest.raises(JavaModelError) as e:
        faults.call("Fail", req(faults_contract, n=42))
    assert not isinstance(e.value, JavaExitError)
    d = e.value.detail
    assert d["java_class"] == "java.lang.IllegalStateException"
    assert d["java_message"] == "bad row 42"
    assert "FaultModel.check" in d["java_stack"] and "FaultModel.fail" in d["java_stack"]
    assert echo(faults, faults_contract) == "ok#7"


@pytest.mark.parametrize("rpc,status", [("Exit", 3), ("Halt", 4), ("SneakyExit", 5)])
def test_exit_and_halt_do_not_end_the_process(faults, faults_contract, rpc, status):
    with pytest.raises(JavaExitError) as e:
        faults.call(rpc, req(faults_contract))
    assert e.value.detail["status"] == status
    assert echo(faults, faults_contract) == "ok#7"


@pytest.mark.parametrize("rpc", ["Sleep", "Spin"])  # Sleep ends on interrupt; Spin ignores it: Thread.stop
def test_deadline_stops_the_call_and_the_process_keeps_serving(faults, faults_contract, rpc):
    with pytest.raises(JavaDeadlineError) as e:
        faults.call(rpc, req(faults_contract), timeout=0.2)
    assert e.value.detail["timeout_ms"] == 200
    assert echo(faults, faults_contract) == "ok#7"
    # the thread that was interrupted/stopped serves the next timed call normally
    assert (
        faults_contract.output_class("Echo")
        .FromString(faults.call("Echo", req(faults_contract, "again", 1), timeout=5))
        .text
        == "again#1"
    )


def test_deadline_on_other_threads_while_calls_continue(faults, faults_contract):
    import threading

    errors: list[BaseException] = []

    def stuck():
        try:
            faults.call("Spin", req(faults_contract), timeout=0.3)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    t = threading.Thread(target=stuck)
    t.start()
    for _ in range(50):
        assert echo(faults, faults_contract) == "ok#7"
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], JavaDeadlineError)


def test_out_of_memory_is_reported_and_the_process_keeps_serving(faults_bundle):
    code = textwrap.dedent(f"""
        from pathlib import Path
        from bridge import jvm
        from bridge.errors import JavaModelError
        from bridge.model import JavaModel
        from tests.bridge.conftest import FAULTS_PROTO, compile_contract
        jvm.start_jvm(max_heap="64m")
        c = compile_contract(FAULTS_PROTO)
        m = JavaModel.load(artifact_dir=Path({str(faults_bundle)!r}), class_name={FAULT_CLASS!r}, service=c.service)
        req = c.input_class("Echo")(text="ok", n=1).SerializeToString()
        for _ in range(3):
            try:
                m.call("Hog", req)
                print("NO ERROR")
            except JavaModelError as e:
                print("OOM", e.detail["java_class"])
            print("ECHO", c.output_class("Echo").FromString(m.call("Echo", req)).text)
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert lines.count("OOM java.lang.OutOfMemoryError") == 3, proc.stdout
    assert lines.count("ECHO ok#1") == 3


# ---------------------------------------------------------------------------- load-time errors


def test_jar_that_is_not_a_zip(faults_bundle, copy_bundle, faults_contract, jvm_started):
    folder = copy_bundle(faults_bundle)
    (folder / "model.jar").write_text("this is not a jar")
    with pytest.raises(JavaLoadError, match="model.jar is not a JAR"):
        JavaModel.load(artifact_dir=folder, class_name=FAULT_CLASS, service=faults_contract.service)


def test_missing_model_jar(tmp_path, faults_contract, jvm_started):
    with pytest.raises(JavaLoadError, match="model.jar not found"):
        JavaModel.load(artifact_dir=tmp_path, class_name=FAULT_CLASS, service=faults_contract.service)


def test_lib_jar_that_is_not_a_zip(faults_bundle, copy_bundle, faults_contract, jvm_started):
    folder = copy_bundle(faults_bundle)
    (folder / "lib").mkdir(exist_ok=True)
    (folder / "lib" / "broken.jar").write_bytes(b"\x00\x01")
    with pytest.raises(JavaLoadError, match="broken.jar is not a JAR"):
        JavaModel.load(artifact_dir=folder, class_name=FAULT_CLASS, service=faults_contract.service)


def test_missing_class(faults_bundle, faults_contract, jvm_started):
    with pytest.raises(JavaLoadError, match="class org.acme.Nope not found in model.jar") as e:
        JavaModel.load(
            artifact_dir=faults_bundle, class_name="org.acme.Nope", service=faults_contract.service
        )
    assert not isinstance(e.value, BindError)


def test_constructor_that_throws(faults_bundle, faults_contract, jvm_started):
    c = compile_contract(FAULTS_PROTO.split("service")[0] + "service S { rpc Echo (Req) returns (Reply); }")
    with pytest.raises(JavaLoadError) as e:
        JavaModel.load(
            artifact_dir=faults_bundle,
            class_name="org.modelrunner.tests.faults.BadCtorModel",
            service=c.service,
        )
    assert "constructor of org.modelrunner.tests.faults.BadCtorModel threw" in e.value.message
    assert e.value.detail["java_class"] == "java.lang.IllegalStateException"
    assert e.value.detail["java_message"] == "licence file missing"


def test_no_usable_constructor(faults_bundle, jvm_started):
    c = compile_contract(FAULTS_PROTO.split("service")[0] + "service S { rpc Echo (Req) returns (Reply); }")
    with pytest.raises(
        JavaLoadError, match=r"no constructor taking \(java.nio.file.Path\), \(String\) or \(\)"
    ):
        JavaModel.load(
            artifact_dir=faults_bundle,
            class_name="org.modelrunner.tests.faults.NoCtorModel",
            service=c.service,
        )


def test_method_that_does_not_exist(faults_bundle, jvm_started):
    c = compile_contract(
        FAULTS_PROTO.replace("rpc Hog (Req) returns (Reply);", "rpc Predict (Req) returns (Reply);")
    )
    with pytest.raises(JavaLoadError) as e:
        JavaModel.load(artifact_dir=faults_bundle, class_name=FAULT_CLASS, service=c.service)
    assert isinstance(e.value, BindError)
    assert e.value.detail["problems"] == [
        {"rpc": "Predict", "message": "", "field": "", "reason": e.value.detail["problems"][0]["reason"]}
    ]
    assert "no public method 'predict' in class " + FAULT_CLASS in e.value.detail["problems"][0]["reason"]


def test_zip_without_the_class_files_is_a_missing_class(tmp_path, faults_contract, jvm_started):
    with zipfile.ZipFile(tmp_path / "model.jar", "w") as z:
        z.writestr("README.txt", "empty")
    with pytest.raises(JavaLoadError, match="not found"):
        JavaModel.load(artifact_dir=tmp_path, class_name=FAULT_CLASS, service=faults_contract.service)
