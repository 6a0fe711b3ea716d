"""The fault matrix, end to end: for each model fault, in-process and isolated (``isolation = "process"``),
a real `serve` (one gunicorn worker, so the healthy models share the process with the faulty one) keeps
answering the healthy models (the Java and the Python iris samples, over HTTP keep-alive connections) with
no failure at all while the fault happens; the faulty call is answered 504 at its deadline (hangs) or 500
with a model error saying what happened (exit, signal, OutOfMemoryError); the next call to the faulty model
is answered.

One `serve` per isolation mode (a class-scoped fixture: a class per mode), every fault of the mode through
it. max_stuck_calls is 100 so that the worker never retires here (retirement is tested in
test_stuck_calls.py); stuck_grace is 0.5 s so that a hang is stuck (logged; isolated: its child replaced)
soon after its deadline; each hang is released at the end of its case, so that no thread burns a core for
the rest of the run.

Heaps: in-process the JVM is shared, so its heap is what the OutOfMemoryError exhausts: 128 MB
(MODEL_RUNNER_JVM_MAX_HEAP), reached in well under a second by the model's 8 MB arrays, and leaving the
healthy Java model's small allocations room once the failing array is refused. Isolated, the faulty model's
own JVM gets -Xmx48m (its bundle's jvm_options); the worker's JVM keeps the default heap.

A segfault is a case of the isolated mode only: in-process it ends the serving process by nature (gunicorn
replaces it; nothing in the process can answer its calls), which is what isolation is for."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.bridge.conftest import FAULTS_PROTO, build_bundle
from tests.e2e.load import HealthyLoad
from tests.e2e.serve_process import Serve, alive, children_of, start_serve
from tests.runner.runtimes.test_process_isolation import python_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

MODES = ("in-process", "process")
HEALTHY = ("iris", "iris-python")
DEADLINE = 1.0
DEADLINE_MARGIN = 3.0  # generous: two cores shared with the load and a JVM or two
STUCK_GRACE = 0.5  # seconds past its deadline a call still running is stuck (default 2)

MATRIX_CLASS = "org.modelrunner.tests.faults.MatrixModel"
JAVA_PROTO = FAULTS_PROTO.split("service")[0] + "service Matrix {\n  rpc Fault (Req) returns (Reply);\n}\n"

# sepal_length picks the fault; any other value answers with the serving pid
PYTHON_FAULTS = """
    import ctypes, os, sys

    RELEASE = {release!r}

    class Faulty:
        def Classify(self, request):
            how = int(request.sepal_length)
            if how == 1:
                os._exit(9)
            if how == 2:
                sys.exit(5)
            if how == 3:
                ctypes.string_at(0)  # segfault
            if how == 4:
                while not os.path.exists(RELEASE):  # a busy loop nothing stops (the test ends it)
                    pass
            return {{"species": str(os.getpid())}}

        def ClassifyBatch(self, request):
            return {{}}

        def ClassifyMatrix(self, request):
            return {{}}
"""


@dataclass
class Served:
    serve: Serve
    mode: str
    release: Path  # ends the Python busy loop once it exists
    workers: list[int] = field(default_factory=list)

    def post(self, model: str, rpc: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return requests.post(
            f"{self.serve.base}/models/{model}/methods/{rpc}", json=body, headers=headers, timeout=60
        )


def java_bundle(folder: Path, mode: str) -> Path:
    """MatrixModel (tests/bridge/java/faults): one rpc, Fault, whose request's n picks the fault."""
    folder.mkdir(parents=True)
    shutil.copy(build_bundle("faults") / "model.jar", folder / "model.jar")
    (folder / "model.proto").write_text(JAVA_PROTO)
    meta: dict[str, Any] = {
        "name": "java-faults",
        "runtime": "java",
        "entry_point": MATRIX_CLASS,
        "isolation": mode,
        "examples": {"Fault": [{"text": "ok", "n": 0}]},
    }
    if mode == "process":
        meta["jvm_options"] = ["-Xmx48m"]  # the child's own JVM; in-process the heap is the shared one
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def python_faults_bundle(folder: Path, mode: str, release: Path) -> Path:
    return python_bundle(
        folder,
        textwrap.dedent(PYTHON_FAULTS).format(release=str(release)),
        name="python-faults",
        isolation=mode,
        examples={"Classify": [{"sepal_length": 0}]},
    )


@pytest.fixture(scope="class")
def served(
    request: pytest.FixtureRequest, sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One `serve` for the class's isolation mode (``mode``), every fault of the class through it."""
    mode: str = request.cls.mode
    tmp = tmp_path_factory.mktemp(f"fault-matrix-{mode}")
    release = tmp / "release-busy-loop"
    env = {"MODEL_RUNNER_MAX_STUCK_CALLS": "100", "MODEL_RUNNER_STUCK_GRACE": str(STUCK_GRACE)}
    if mode == "in-process":
        env["MODEL_RUNNER_JVM_MAX_HEAP"] = "128m"
    healthy = [str(sample_bundles[name]) for name in HEALTHY]
    faulty = [
        str(java_bundle(tmp / "java-faults", mode)),
        str(python_faults_bundle(tmp / "python-faults", mode, release)),
    ]
    serve = start_serve([*healthy, *faulty], tmp, workers=1, threads=8, env_extra=env)
    try:
        result = Served(serve, mode, release, children_of(serve.proc.pid))
        assert len(result.workers) == 1, serve.log_text()[-3000:]
        yield result
    finally:
        release.touch()
        serve.stop()
    assert not list(tmp.glob("core*")) and not list(tmp.glob("hs_err_pid*.log"))


@dataclass(frozen=True)
class Fault:
    name: str
    model: str
    rpc: str
    body: dict[str, Any]
    expect: dict[str, tuple[str, ...]]  # mode -> what the 500's message says; empty: a hang (504)
    next_rpc: str
    next_body: dict[str, Any]
    modes: tuple[str, ...] = MODES


PY_OK: dict[str, Any] = {"sepal_length": 0}
JAVA_OK: dict[str, Any] = {"text": "ok", "n": 0}


def java(n: int) -> dict[str, Any]:
    return {"text": "ok", "n": n}


FAULTS = [
    Fault("java-catch-throwable", "java-faults", "Fault", java(3), {}, "Fault", JAVA_OK),
    Fault(
        "java-system-exit",
        "java-faults",
        "Fault",
        java(1),
        {mode: ("fault called System.exit/Runtime.halt(3); the call failed",) for mode in MODES},
        "Fault",
        JAVA_OK,
    ),
    Fault(
        "java-out-of-memory",
        "java-faults",
        "Fault",
        java(2),
        {mode: ("fault threw java.lang.OutOfMemoryError: Java heap space",) for mode in MODES},
        "Fault",
        JAVA_OK,
    ),
    Fault("python-busy-loop", "python-faults", "Classify", {"sepal_length": 4}, {}, "Classify", PY_OK),
    Fault(
        "python-os-exit",
        "python-faults",
        "Classify",
        {"sepal_length": 1},
        {mode: ("the model called os._exit(9); the process keeps serving",) for mode in MODES},
        "Classify",
        PY_OK,
    ),
    Fault(
        "python-sys-exit",
        "python-faults",
        "Classify",
        {"sepal_length": 2},
        {mode: ("the model called sys.exit(5); the process keeps serving",) for mode in MODES},
        "Classify",
        PY_OK,
    ),
    Fault(
        "python-segfault",
        "python-faults",
        "Classify",
        {"sepal_length": 3},
        {"process": ("exited with signal SIGSEGV while running Classify", "it is being restarted")},
        "Classify",
        PY_OK,
        modes=("process",),
    ),
]


def check_fault(served: Served, fault: Fault) -> None:
    request_id = f"fault-matrix-{served.mode}-{fault.name}"
    with HealthyLoad(served.serve.base, HEALTHY) as load:
        load.wait_answers()
        began = time.monotonic()
        r = served.post(
            fault.model,
            fault.rpc,
            fault.body,
            **{"X-Timeout-Seconds": str(DEADLINE), "X-Request-Id": request_id},
        )
        took = time.monotonic() - began
        if not fault.expect:  # a hang: answered at its deadline
            assert r.status_code == 504, r.text
            assert r.json()["error"]["kind"] == "deadline", r.text
            assert DEADLINE <= took < DEADLINE + DEADLINE_MARGIN, took
            # the call goes on running, stuck, while the load goes on: in-process it holds its thread
            # (burning a core), isolated its child is replaced
            wait_for(
                lambda: reported_stuck(served, fault),
                60,
                f"the serve log to report the stuck {fault.model} call",
                describe=lambda: served.serve.log_text()[-3000:],
            )
        else:
            assert r.status_code == 500, r.text
            error = r.json()["error"]
            assert error["kind"] == "model_error", r.text
            for words in fault.expect[served.mode]:
                assert words in error["message"], error["message"]
        # the model stays available: its next call is answered
        again = served.post(fault.model, fault.next_rpc, fault.next_body)
        assert again.status_code == 200, again.text
        load.wait_answers()  # the healthy models keep answering after the fault too
        if fault.name == "java-catch-throwable":  # ends the stuck loop (in-process it holds a core)
            assert served.post("java-faults", "Fault", java(4)).status_code == 200
        elif fault.name == "python-busy-loop":
            served.release.touch()
    assert load.failures == [], load.failures[:5]
    assert all(n >= 10 for n in load.answered.values()), load.answered
    # the serving process lived through it (an isolated fault ends a child at most)
    assert children_of(served.serve.proc.pid) == served.workers and all(alive(p) for p in served.workers)


def reported_stuck(served: Served, fault: Fault) -> bool:
    """In-process, the stuck call is logged (a Java one without its request id: the bridge's list of
    stuck calls does not carry it); isolated, its child is replaced (so the next faults of the model
    reach the fresh child, not the one being replaced)."""
    log = served.serve.log_text().splitlines()
    if served.mode == "in-process":
        tag = f"[model={fault.model} version=1 "
        return any(tag in line and f"call {fault.rpc} is stuck" in line for line in log)
    what = f"the model process of {fault.model} version 1"
    return any(what in line and f"still runs {fault.rpc}" in line for line in log) and any(
        what in line and "replaced pid" in line and f"({fault.rpc} still running" in line for line in log
    )


def faults_of(mode: str) -> list[object]:
    return [pytest.param(f, id=f.name) for f in FAULTS if mode in f.modes]


class TestInProcess:
    mode = "in-process"

    @pytest.mark.parametrize("fault", faults_of(mode))
    def test_a_fault_touches_nothing_else(self, served: Served, fault: Fault) -> None:
        check_fault(served, fault)


class TestIsolated:
    mode = "process"

    @pytest.mark.parametrize("fault", faults_of(mode))
    def test_a_fault_touches_nothing_else(self, served: Served, fault: Fault) -> None:
        check_fault(served, fault)
