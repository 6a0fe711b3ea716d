"""A Java call with a deadline is answered at its deadline whatever the model does: it runs on a host call
thread (``model-call-N``) while the caller waits at most until the deadline. A call the watchdog cannot stop
(its loop swallows ThreadDeath) keeps only its call thread; once a grace past its deadline it is listed by
``bridge.jvm.stuck_calls()`` until it leaves the model code, and counted by ``bridge.jvm.call_counts()``.
The model's close() is contained the same way.

The stubborn calls run in a fresh interpreter (run_python): a call that cannot be stopped burns a core, and
must not stay behind in the test process's JVM if a test fails half-way."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jpype
import pytest

from bridge.errors import JavaExitError, JavaModelError
from bridge.model import JavaModel
from runner.contract import Contract
from tests.bridge.conftest import FAULTS_PROTO, run_python

STUBBORN = "org.modelrunner.tests.faults.StubbornModel"
FAULT_CLASS = "org.modelrunner.tests.faults.FaultModel"
STUBBORN_PROTO = (
    FAULTS_PROTO.split("service")[0]
    + "service Stubborn {\n"
    + "".join(f"  rpc {rpc} (Req) returns (Reply);\n" for rpc in ("Stubborn", "Release", "ArmClose", "Where"))
    + "}\n"
)

# The head of every subprocess scenario: a stubborn model (tagged stubborn, version 3) and a healthy one.
PRELUDE = """
import json, sys, threading, time
from pathlib import Path
from bridge import jvm
from bridge.errors import JavaDeadlineError
from bridge.errors import JavaExitError, JavaModelError
from bridge.model import JavaModel
from runner.contract import Contract
from tests.waiting import wait_for

bundle = Path({bundle!r})
stub_contract = Contract.compile({stub_proto!r})
faults_contract = Contract.compile({faults_proto!r})
jvm.start_jvm({options!r})
stubborn = JavaModel.load(artifact_dir=bundle, class_name={stubborn!r}, service=stub_contract.service,
                          name="stubborn", version=3)
healthy = JavaModel.load(artifact_dir=bundle, class_name={fault!r}, service=faults_contract.service,
                         name="faults", version=1)
req = stub_contract.input_class("Stubborn")(text="ok", n=7).SerializeToString()

def echo(timeout):
    return faults_contract.output_class("Echo").FromString(healthy.call("Echo", req, timeout)).text

def live_threads():
    Thread = jpype.JClass("java.lang.Thread")
    return {{str(t.getName()) for t in Thread.getAllStackTraces().keySet()}}

import jpype
"""


def scenario(bundle: Path, body: str, options: tuple[str, ...] = ()) -> dict:
    code = PRELUDE.format(
        bundle=str(bundle),
        stub_proto=STUBBORN_PROTO,
        faults_proto=FAULTS_PROTO,
        options=list(options),
        stubborn=STUBBORN,
        fault=FAULT_CLASS,
    ) + textwrap.dedent(body)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_call_that_swallows_thread_death_is_answered_at_its_deadline_and_reported(faults_bundle):
    r = scenario(
        faults_bundle,
        """
        before = jvm.call_counts()
        answers, failures = [], []
        stop = threading.Event()

        def client():  # another model's calls, timed and untimed, all along
            while not stop.is_set():
                try:
                    answers.append(echo(5.0))
                    answers.append(echo(None))
                except BaseException as e:
                    failures.append(repr(e))

        t = threading.Thread(target=client)
        t.start()
        start = time.monotonic()
        try:
            stubborn.call("Stubborn", req, 1.0)
            error = None
        except JavaDeadlineError as e:
            error = {"type": type(e).__name__, "message": e.message, "detail": e.detail}
        answered_after = time.monotonic() - start
        answers_at_deadline = len(answers)
        stuck = wait_for(jvm.stuck_calls, 60, "the stubborn call to be listed as stuck")
        counts = jvm.call_counts()
        # the stuck call keeps being stopped (and swallows it): other calls go on being answered
        wait_for(lambda: len(answers) >= answers_at_deadline + 200, 60, "more healthy answers")
        still_stuck = jvm.stuck_calls()
        stop.set()
        t.join(60)
        stubborn.call("Release", req)  # the model's loop ends: the call leaves the model code
        wait_for(lambda: jvm.stuck_calls() == [], 60, "the stuck list to empty")
        gone = wait_for(lambda: stuck[0]["thread"] not in live_threads(), 60, "the stuck call thread to end")
        # a new timed call of the released model is answered
        released = stub_contract.output_class("Stubborn").FromString(stubborn.call("Stubborn", req, 5.0)).text
        print(json.dumps({"error": error, "answered_after": answered_after, "before": before, "counts": counts,
                          "stuck": stuck, "still_stuck": still_stuck, "answers": len(answers),
                          "bad_answers": [a for a in answers if a != "ok#7"], "failures": failures,
                          "after": jvm.call_counts(), "gone": gone, "released": released,
                          "java": int(jpype.JClass("java.lang.Runtime").version().feature())}))
        """,
    )
    assert r["error"] is not None and r["error"]["type"] == "JavaDeadlineError", r
    assert r["error"]["detail"]["timeout_ms"] == 1000
    assert "stubborn" in r["error"]["message"] and r["error"]["detail"]["abandoned"] is True
    # where the model was when its caller gave up: its own frames, for the log of the failed call
    assert "StubbornModel.stubborn" in r["error"]["detail"]["java_stack"]
    assert r["answered_after"] < 1.0 + 3.0, r  # answered at its deadline, not when (never) the model returns
    [call] = r["stuck"]
    assert (call["model"], call["version"], call["rpc"]) == ("stubborn", "3", "Stubborn")
    assert call["java_method"] == STUBBORN + ".stubborn"
    assert call["thread"].startswith("model-call-")
    assert call["overdue_seconds"] >= 2.0  # the default stuck grace
    assert "StubbornModel.churn" in call["stack"] and "StubbornModel.stubborn" in call["stack"]
    assert r["still_stuck"] and r["still_stuck"][0]["overdue_seconds"] >= call["overdue_seconds"]
    assert r["counts"]["abandoned"] == r["before"]["abandoned"] + 1
    assert r["counts"]["stuck"] == r["before"]["stuck"] + 1
    assert r["after"] == r["counts"]  # totals: ever abandoned / stuck, not current
    assert r["failures"] == [] and r["bad_answers"] == [] and r["answers"] >= 200
    # the watchdog went on stopping it: each Thread.stop (JDK < 20) a ThreadDeath the model swallowed
    swallowed = int(r["released"].split()[2])
    assert swallowed >= 1 if r["java"] < 20 else swallowed == 0, r


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_close_that_swallows_thread_death_does_not_hang_the_caller(faults_bundle):
    r = scenario(
        faults_bundle,
        """
        import logging
        records = []
        logging.getLogger("bridge.model").addHandler(type("H", (logging.Handler,), {"emit": lambda s, rec: records.append(rec.getMessage())})())
        stubborn.call("ArmClose", req)
        start = time.monotonic()
        stubborn.close()
        closed_after = time.monotonic() - start
        stuck = wait_for(jvm.stuck_calls, 60, "the stubborn close to be listed as stuck")
        counts = jvm.call_counts()
        echoed = echo(5.0)
        jpype.JClass("java.lang.System").setProperty("modelrunner.tests.stubborn.release", "true")
        wait_for(lambda: jvm.stuck_calls() == [], 60, "the stuck list to empty")
        print(json.dumps({"closed_after": closed_after, "stuck": stuck, "counts": counts, "echoed": echoed,
                          "records": records}))
        """,
        options=("-Dmodelrunner.closeTimeoutMillis=1000", "-Dmodelrunner.stuckGraceMillis=300"),
    )
    assert r["closed_after"] < 1.0 + 3.0, r
    [call] = r["stuck"]
    assert (call["model"], call["version"], call["rpc"]) == ("stubborn", "3", "close")
    assert call["java_method"] == STUBBORN + ".close"
    assert "StubbornModel.close" in call["stack"]
    assert r["counts"] == {"abandoned": 1, "stuck": 1}
    assert r["echoed"] == "ok#7"
    assert any("StubbornModel.close() overran 1000 ms and was abandoned" in m for m in r["records"]), r


def test_without_a_jvm_there_is_nothing_stuck_and_none_is_started():
    proc = run_python(
        textwrap.dedent("""
        import sys
        from runner.runtimes import java
        print(java.java_stuck_calls(), java.java_call_counts(), "bridge.jvm" in sys.modules)
        from bridge import jvm
        import jpype
        print(jvm.stuck_calls(), jvm.call_counts(), jpype.isJVMStarted())
        """),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "[] {'abandoned': 0, 'stuck': 0} False",
        "[] {'abandoned': 0, 'stuck': 0} False",
    ]


# ---------------------------------------------------------------------------- in this process


@pytest.fixture(scope="module")
def stubborn(faults_bundle: Path, jvm_started: None) -> Iterator[JavaModel]:
    contract = Contract.compile(STUBBORN_PROTO)
    with JavaModel.load(artifact_dir=faults_bundle, class_name=STUBBORN, service=contract.service) as model:
        yield model


def where(model: JavaModel, timeout: float | None) -> tuple[str, str]:
    reply = (
        Contract.compile(STUBBORN_PROTO).output_class("Where").FromString(model.call("Where", b"", timeout))
    )
    thread, loader = reply.text.split(" ", 1)
    return thread, loader


def test_timed_calls_run_on_a_reused_call_thread_with_the_models_context_loader(stubborn: JavaModel):
    caller = jpype.JClass("java.lang.Thread").currentThread()
    before = caller.getContextClassLoader()
    thread, loader = where(stubborn, 30.0)
    assert thread.startswith("model-call-") and loader == "model"
    # one caller's calls one after the other: the same (most recently idle) call thread
    assert {where(stubborn, 30.0)[0] for _ in range(20)} == {thread}
    assert caller.getContextClassLoader() == before
    # untimed calls run on the caller's own thread
    assert where(stubborn, None) == (str(caller.getName()), "model")
    assert caller.getContextClassLoader() == before


def test_timed_calls_keep_the_exit_guard_and_the_models_exception(faults_bundle: Path, jvm_started: None):
    contract = Contract.compile(FAULTS_PROTO)
    request = contract.input_class("Echo")(text="x", n=42).SerializeToString()
    with JavaModel.load(
        artifact_dir=faults_bundle, class_name=FAULT_CLASS, service=contract.service
    ) as faults:
        with pytest.raises(JavaExitError) as exited:
            faults.call("Exit", request, 30.0)
        assert exited.value.detail["status"] == 3
        with pytest.raises(JavaModelError) as failed:
            faults.call("Fail", request, 30.0)
        assert failed.value.detail["java_message"] == "bad row 42"
        assert "FaultModel.fail" in failed.value.detail["java_stack"]
        assert contract.output_class("Echo").FromString(faults.call("Echo", request, 30.0)).text == "x#42"
