"""Real dumps of the Acumos Python client for the tests.

The client (acumos 1.0.1) installs only on Python < 3.10 and dumps dill pickles that load only under
the Python that wrote them, so the dumps are made in a Python 3.9 virtual environment with acumos,
scikit-learn and Acumos' own runner (acumos-model-runner, started by ``start_acumos_model_runner``),
built once under build/test-acumos (keyed by a hash of the interpreter and the
packages), with the scripts of tests/e2e/acumos_scripts (dumps keyed by the environment and the
script). Needs a Python 3.9 (found as model-runner finds one: runner.runtimes.environments) and
``protoc`` on PATH (the client compiles its generated contract with it); the tests skip without.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runner.errors import InvalidBundle
from runner.runtimes.environments import Interpreter, find_interpreter, uv_path
from runner.settings import Settings
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "test-acumos"
SCRIPTS = Path(__file__).resolve().parent / "acumos_scripts"
ACUMOS_PYTHON = "3.9"
PACKAGES = ("acumos==1.0.1", "scikit-learn==1.6.1", "numpy==2.0.2", "setuptools<81")
"""Pinned: a dump lists the versions it was made with, and the served model's environment installs
exactly those. setuptools: acumos imports pkg_resources (a venv made by uv has none)."""
RUNNER_PACKAGES = (
    "acumos-model-runner==0.2.6",
    "PyYAML==5.4.1",
    "connexion[swagger-ui]==2.15.1",
    "Flask==3.1.3",
    "Werkzeug==3.1.9",
    "gunicorn==23.0.0",
)
"""Acumos' own runner of Python dumps, in the same environment (it loads the dump's pickle, so the same
Python and packages): the peer the tests and bench/acumos_bench.py compare with. PyYAML < 6: it calls
``yaml.load`` without a Loader; the web stack pinned as resolved when this was written."""
INSTALL_TIMEOUT = 900


def interpreter() -> Interpreter:
    """The Python 3.9 the dumps are made with (pytest.skip when there is none, or no protoc)."""
    if shutil.which("protoc") is None:
        pytest.skip("protoc is not on PATH (the Acumos client compiles its contract with it)")
    try:
        return find_interpreter(ACUMOS_PYTHON, Settings())
    except InvalidBundle as err:
        pytest.skip(f"no Python {ACUMOS_PYTHON} for the Acumos client: {err.message}")


@contextmanager
def _locked() -> Iterator[None]:
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def acumos_python() -> Path:
    """The python of a Python 3.9 environment with the Acumos client, scikit-learn and acumos-model-runner."""
    found = interpreter()
    packages = [*PACKAGES, *RUNNER_PACKAGES]
    spec = {"python": found.path, "version": list(found.version), "packages": packages}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    venv = BUILD / f"venv-{key}"
    python = venv / "bin" / "python"
    if (venv / "complete").is_file():
        return python
    with _locked():
        if (venv / "complete").is_file():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        # built in place (a venv names its folder), marked complete last; with uv when installed (seconds
        # instead of minutes), as model-runner builds environments
        uv = uv_path()
        if uv:
            create = [uv, "venv", "--quiet", "--python", found.path, str(venv)]
            install = [uv, "pip", "install", "--quiet", "--python", str(python), *packages]
        else:
            create = [found.path, "-m", "venv", str(venv)]
            install = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
            install += packages
        subprocess.run(create, check=True, capture_output=True, timeout=120)
        done = subprocess.run(
            install,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(
                f"installing {' '.join(packages)} for Python {ACUMOS_PYTHON} failed:\n{done.stderr[-4000:]}"
            )
        (venv / "complete").write_text(json.dumps(spec) + "\n")
    return python


def dump(script: str, name: str) -> Path:
    """The dump folder ``name`` written by tests/e2e/acumos_scripts/``script`` (made once)."""
    python = acumos_python()
    source = (SCRIPTS / script).read_bytes()
    key = hashlib.sha256(str(python).encode() + b"\0" + source).hexdigest()[:12]
    out = BUILD / f"dump-{Path(script).stem}-{key}"
    if (out / name / "model.zip").is_file():
        return out / name
    with _locked():
        if (out / name / "model.zip").is_file():
            return out / name
        tmp = BUILD / f".tmp-dump-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        done = subprocess.run(
            [str(python), str(SCRIPTS / script), str(tmp)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp,
            check=False,
        )
        if done.returncode != 0 or not (tmp / name / "model.zip").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.fail(f"{script} did not dump {name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        shutil.rmtree(out, ignore_errors=True)
        os.rename(tmp, out)
    return out / name


def call_directly(dump_dir: Path, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each call ({"method", "request": bytes}) made on the dump by the Acumos client itself, in the
    Python that dumped it: [{"response": bytes} | {"error": class name, "message"}]."""
    done = subprocess.run(
        [str(acumos_python()), str(SCRIPTS / "call_dump.py"), str(dump_dir)],
        input=json.dumps([{"method": c["method"], "request": c["request"].hex()} for c in calls]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    for answer in answers:
        if "response" in answer:
            answer["response"] = bytes.fromhex(answer["response"])
    return answers


class AcumosModelRunner:
    """A running ``acumos_model_runner`` (gunicorn, sync workers) serving a copy of a dump."""

    def __init__(self, proc: subprocess.Popen[bytes], folder: Path, log: Path, port: int) -> None:
        self.proc = proc
        self.folder = folder
        self.log = log
        self.port = port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to gunicorn's arbiter (it stops its workers), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_LISTENING_RE = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def start_acumos_model_runner(
    dump_dir: Path, tmp: Path, *, workers: int = 1, timeout: float = 120
) -> AcumosModelRunner:
    """``acumos_model_runner DUMP --host 127.0.0.1 --port 0 --workers N`` on a copy of the dump under
    ``tmp`` (it writes oas.yaml and unpacks model.zip into the folder it serves), waited on until
    gunicorn logs the port it bound and the model answers on /model/artifacts/protobuf."""
    python = acumos_python()
    folder = tmp / f"acumos-model-runner-{dump_dir.name}"
    shutil.copytree(dump_dir, folder)
    log = tmp / "acumos-model-runner.log"
    command = [str(python), "-m", "acumos_model_runner.runner", str(folder)]
    command += ["--host", "127.0.0.1", "--port", "0", "--workers", str(workers)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    port: list[int] = []

    def answering() -> bool:
        if proc.poll() is not None:
            return True
        if not port:
            found = _LISTENING_RE.search(log.read_text(errors="replace"))
            if found is None:
                return False
            port.append(int(found.group(1)))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/model/artifacts/protobuf", timeout=5):
                return True
        except OSError:
            return False  # the worker is still loading the model

    runner = AcumosModelRunner(proc, folder, log, 0)
    try:
        wait_for(answering, timeout, "acumos_model_runner to answer", interval=0.1, describe=runner.log_text)
    except BaseException:
        runner.stop(timeout=10)
        raise
    if proc.poll() is not None:
        pytest.fail(f"acumos_model_runner exited with {proc.returncode}:\n{runner.log_text()[-4000:]}")
    runner.port = port[0]
    return runner
