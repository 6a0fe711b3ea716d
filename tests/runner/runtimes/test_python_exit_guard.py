"""A Python model cannot end the serving process: sys.exit()/exit()/quit(), os._exit, os.abort and fatal
signals to the process itself answer a ModelError, the process lives and the next call answers. Other
callers of os._exit (the server, a process forked by the model) are not affected."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.contract import Contract
from runner.errors import InvalidBundle, ModelError
from runner.runtimes import Model
from runner.runtimes.python.model import PythonModel
from tests.bridge.conftest import REPO
from tests.runner.runtimes.test_python_model import SETOSA, call, load, make_bundle
from tests.waiting import wait_for

# Classify does what sepal_length selects (a fork: 30, a call held in flight: 20); ClassifyBatch exits on a
# thread the model starts; ClassifyMatrix is a function that is not the bundle's code (only the running
# call tells the guard it is the model's).
EXITS = """
    import os
    import posix
    import signal
    import sys
    import threading
    from os import _exit

    ACTIONS = {
        1: lambda: os._exit(3),
        2: lambda: sys.exit(3),
        3: lambda: exit(3),
        4: lambda: quit(),
        5: lambda: os.abort(),
        6: lambda: os.kill(os.getpid(), signal.SIGKILL),
        7: lambda: os.kill(0, signal.SIGTERM),
        8: lambda: os.killpg(os.getpgrp(), signal.SIGKILL),
        9: lambda: signal.raise_signal(signal.SIGTERM),
        10: lambda: signal.pthread_kill(threading.get_ident(), signal.SIGKILL),
        11: lambda: _exit(4),
        12: lambda: posix._exit(5),
        13: lambda: sys.exit("bye"),
        14: lambda: (os.kill(os.getpid(), 0), os.kill(os.getpid(), signal.SIGWINCH)),  # not exits
    }

    # a method whose code is not the bundle's (a library function): only the running call tells
    _vendor = {"__name__": "vendor_lib", "os": os}
    exec("def classify_matrix(request):\\n    os._exit(6)\\n", _vendor)


    class IrisClassifier:
        def __init__(self):
            self.started = threading.Event()
            self.gate = threading.Event()

        def Classify(self, request):
            n = int(request.sepal_length)
            if n == 20:  # a call in flight while another one tries to exit
                self.started.set()
                self.gate.wait(60)
                return {"species": "waited"}
            if n == 30:  # a child forked by the model exits as it likes
                pid = os.fork()
                if pid == 0:
                    os._exit(5)
                _, status = os.waitpid(pid, 0)
                return {"species": f"child {os.waitstatus_to_exitcode(status)}"}
            if n in ACTIONS:
                ACTIONS[n]()
            return {"species": "alive"}

        def ClassifyBatch(self, request):
            # a thread the model starts itself: no call runs on it, its frames are the model's
            caught = []

            def run():
                try:
                    os._exit(7)
                except SystemExit as err:
                    caught.append(str(err))

            t = threading.Thread(target=run)
            t.start()
            t.join()
            return {"predictions": [{"species": caught[0] if caught else "not blocked"}]}

        ClassifyMatrix = staticmethod(_vendor["classify_matrix"])
"""


def _bundle(folder: Path, source: str = EXITS) -> Path:
    return make_bundle(folder, {"iris_model.py": source})


@pytest.fixture(scope="module")
def exits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Model, Contract]]:
    model, contract = load(_bundle(tmp_path_factory.mktemp("exit-guard") / "b"))
    yield model, contract
    model.close()


def classify(exits: tuple[Model, Contract], n: int, timeout: float | None = None) -> str:
    """Classify's species (what the model did) for selector ``n``."""
    model, contract = exits
    return str(call(model, contract, "Classify", {**SETOSA, "sepal_length": n}, timeout)["species"])


PID = os.getpid()


@pytest.mark.parametrize(
    "n,what,status,sig",
    [
        (1, "os._exit(3)", 3, None),
        (2, "sys.exit(3)", 3, None),
        (3, "exit(3)", 3, None),
        (4, "quit()", None, None),
        (5, "os.abort()", None, "SIGABRT"),
        (6, f"os.kill({PID}, SIGKILL)", None, "SIGKILL"),
        (9, "signal.raise_signal(SIGTERM)", None, "SIGTERM"),
        (10, "signal.pthread_kill(", None, "SIGKILL"),
        (11, "os._exit(4)", 4, None),
        (12, "os._exit(5)", 5, None),
        (13, "sys.exit('bye')", "bye", None),
    ],
)
@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "pool"])
def test_an_exit_in_a_model_is_a_model_error_and_the_process_serves_on(
    exits: tuple[Model, Contract], n: int, what: str, status: object, sig: str | None, timeout: float | None
) -> None:
    with pytest.raises(ModelError) as e:
        classify(exits, n, timeout)
    assert f"iris-python.Classify: the model called {what}" in str(e.value)
    assert "the process keeps serving" in str(e.value)
    d = e.value.detail
    assert d["exit"] is True and d["status"] == status and d["rpc"] == "Classify"
    assert d["exit_call"].startswith(what)
    if sig is not None:
        assert d["signal"] == sig
    assert classify(exits, 0, timeout) == "alive"


def test_an_exit_in_library_code_the_model_calls_is_blocked(exits: tuple[Model, Contract]) -> None:
    model, contract = exits
    for timeout in (None, 5.0):
        with pytest.raises(ModelError, match=r"the model called os._exit\(6\)") as e:
            call(model, contract, "ClassifyMatrix", {}, timeout)
        assert e.value.detail["status"] == 6
    assert classify(exits, 0) == "alive"


def test_an_exit_on_a_thread_the_model_started_is_blocked(exits: tuple[Model, Contract]) -> None:
    model, contract = exits
    out = call(model, contract, "ClassifyBatch", {})
    assert (
        out["predictions"][0]["species"] == "the model called os._exit(7); blocked, the process keeps serving"
    )


def test_a_call_in_flight_answers_while_another_one_tries_to_exit(exits: tuple[Model, Contract]) -> None:
    model, _ = exits
    assert isinstance(model, PythonModel)
    instance = model.instance
    result: list[str] = []

    def slow() -> None:
        result.append(classify(exits, 20, 60.0))

    t = threading.Thread(target=slow)
    t.start()
    try:
        wait_for(instance.started.is_set, what="the slow call to start")  # type: ignore[attr-defined]
        with pytest.raises(ModelError, match="os._exit"):
            classify(exits, 1, 5.0)
    finally:
        instance.gate.set()  # type: ignore[attr-defined]
        t.join(60)
    assert result == ["waited"]


@pytest.mark.parametrize(
    "source,match",
    [
        ("import os\nos._exit(2)\n", r"cannot import iris_model: ModelExit: the model called os._exit\(2\)"),
        (
            "import os\nclass IrisClassifier:\n    def __init__(self):\n        os.abort()\n",
            r"the constructor raised ModelExit: the model called os.abort\(\)",
        ),
    ],
    ids=["import", "constructor"],
)
def test_an_exit_while_a_version_loads_is_an_invalid_bundle(tmp_path: Path, source: str, match: str) -> None:
    with pytest.raises(InvalidBundle, match=match):
        load(_bundle(tmp_path / "b", source))


def run_alone(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in its own session: a guard that failed would signal only its group."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        start_new_session=True,
        check=False,
    )


GROUP = """
from pathlib import Path
from runner.errors import ModelError
from tests.runner.runtimes.test_python_model import SETOSA, call, load

model, contract = load(Path({bundle!r}))
for n in (7, 8):  # os.kill(0, SIGTERM), os.killpg(os.getpgrp(), SIGKILL)
    try:
        call(model, contract, "Classify", {{**SETOSA, "sepal_length": n}})
    except ModelError as err:
        print(err, err.detail["signal"], flush=True)
print(call(model, contract, "Classify", {{**SETOSA, "sepal_length": 0}})["species"], flush=True)
"""


def test_fatal_signals_to_the_process_group_are_blocked(tmp_path: Path) -> None:
    proc = run_alone(GROUP.format(bundle=str(_bundle(tmp_path / "b"))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    term, kill, alive = proc.stdout.splitlines()
    assert (
        term
        == "iris-python.Classify: the model called os.kill(0, SIGTERM); the process keeps serving SIGTERM"
    )
    assert re.fullmatch(r"iris-python.Classify: the model called os.killpg\(\d+, SIGKILL\); .* SIGKILL", kill)
    assert alive == "alive"


SUBPROCESS = """
import os, sys, threading
from pathlib import Path
from runner.errors import ModelError
from tests.runner.runtimes.test_python_model import SETOSA, call, load

model, contract = load(Path({bundle!r}))
try:
    call(model, contract, "Classify", {{**SETOSA, "sepal_length": 1}})
except ModelError as err:
    print("blocked:", err, flush=True)
print(call(model, contract, "Classify", {{**SETOSA, "sepal_length": 30}})["species"], flush=True)
if {where!r} == "thread":
    t = threading.Thread(target=os._exit, args=(8,))
    t.start()
    t.join()
else:
    os._exit(7)
print("still running", flush=True)
"""


@pytest.mark.parametrize("where,code", [("main", 7), ("thread", 8)])
def test_os_exit_outside_a_model_still_exits(tmp_path: Path, where: str, code: int) -> None:
    bundle = _bundle(tmp_path / "b")
    proc = run_alone(SUBPROCESS.format(bundle=str(bundle), where=where))
    assert proc.returncode == code, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("blocked: iris-python.Classify: the model called os._exit(3)"), proc.stdout
    assert lines[1] == "child 5", proc.stdout  # the model's forked child ended with its own os._exit(5)
    assert "still running" not in proc.stdout


def test_signals_that_do_not_end_the_process_pass(exits: tuple[Model, Contract]) -> None:
    # signal 0 (is it alive?) and a signal ignored by default are not exits
    assert classify(exits, 14) == "alive"
