"""Inline calls (bundle ``"calls": "inline"``): a timed call runs on its caller's own thread, with no
hand-off to a host call thread; the watchdog only interrupts it at its deadline (never Thread.stop, which
could land on the caller after the call), so a model that ignores the interrupt holds its caller until it
returns, and the caller's thread serves the next call normally."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.errors import JavaDeadlineError, JavaExitError
from bridge.model import JavaModel

FAULT_CLASS = "org.modelrunner.tests.faults.FaultModel"


@pytest.fixture(scope="module")
def inline(faults_bundle, faults_contract, jvm_started):
    model = JavaModel.load(
        artifact_dir=faults_bundle, class_name=FAULT_CLASS, service=faults_contract.service
    )
    model.set_inline_calls(True)
    yield model
    model.close()


def text(model, contract, rpc: str, n: int = 1, timeout: float | None = 5.0) -> str:
    request = contract.input_class(rpc)(text="x", n=n).SerializeToString()
    return str(contract.output_class(rpc).FromString(model.call(rpc, request, timeout)).text)


def test_a_timed_call_runs_on_the_callers_thread(inline, faults_contract, faults_bundle):
    where = text(inline, faults_contract, "Where")
    assert not where.startswith("model-call-") and "interrupted" not in where
    with JavaModel.load(
        artifact_dir=faults_bundle, class_name=FAULT_CLASS, service=faults_contract.service
    ) as guarded:  # the default: a host call thread
        assert text(guarded, faults_contract, "Where").startswith("model-call-")
    assert text(inline, faults_contract, "Echo", 7) == "x#7"


def test_an_interrupted_call_answers_the_deadline_error_and_the_thread_serves_on(inline, faults_contract):
    started = time.monotonic()
    with pytest.raises(JavaDeadlineError) as err:
        text(inline, faults_contract, "Sleep", timeout=0.2)  # Thread.sleep ends on the interrupt
    assert time.monotonic() - started < 5
    assert err.value.detail["timeout_ms"] == 200
    # the interrupt was cleared: the same thread's next calls run normally
    assert "interrupted" not in text(inline, faults_contract, "Where")
    assert text(inline, faults_contract, "Echo", 3) == "x#3"


def test_a_model_that_ignores_the_interrupt_holds_its_caller_until_it_returns(inline, faults_contract):
    started = time.monotonic()
    with pytest.raises(JavaDeadlineError):
        text(inline, faults_contract, "Busy", n=800, timeout=0.2)
    # the guarded mode would have answered at 0.2 s; inline, the call ends when the model returns
    assert time.monotonic() - started >= 0.8
    # no Thread.stop was sent: nothing lands on this thread later
    for _ in range(50):
        assert text(inline, faults_contract, "Echo", 1) == "x#1"
    assert "interrupted" not in text(inline, faults_contract, "Where")


def test_other_callers_go_on_while_one_call_overruns(inline, faults_contract):
    errors: list[BaseException] = []

    def late() -> None:
        try:
            text(inline, faults_contract, "Sleep", timeout=0.3)
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            errors.append(err)

    thread = threading.Thread(target=late)
    thread.start()
    for _ in range(50):
        assert text(inline, faults_contract, "Echo", 2) == "x#2"
    thread.join(30)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], JavaDeadlineError)


def test_exit_is_trapped_inline_too(inline, faults_contract):
    with pytest.raises(JavaExitError) as err:
        text(inline, faults_contract, "Exit")
    assert err.value.detail["status"] == 3
    assert text(inline, faults_contract, "Echo", 4) == "x#4"
