"""Fixtures of the bridge tests: the JVM (once per session, in this process), test JARs compiled from
tests/bridge/java with javac (cached under build/test-bridge by source hash), contracts."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.contract import Contract

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = REPO / "build" / "test-bridge"


def javac() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "javac").is_file():
        return str(Path(home) / "bin" / "javac")
    found = shutil.which("javac")
    if not found:
        pytest.skip("javac not found")
    return found


def build_bundle(project: str, *, parameters: bool = True) -> Path:
    """A bundle folder holding model.jar compiled from tests/bridge/java/<project> (plus its resources/)."""
    src = HERE / "java" / project
    sources = sorted(p for p in src.rglob("*.java"))
    resources = (
        sorted(p for p in (src / "resources").rglob("*") if p.is_file())
        if (src / "resources").is_dir()
        else []
    )
    h = hashlib.sha256(f"{parameters}".encode())
    for p in sources + resources:
        h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes())
    out = BUILD / f"{project}-{'p' if parameters else 'np'}-{h.hexdigest()[:12]}"
    if (out / "model.jar").is_file():
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "model.jar").is_file():
            return out
        tmp = BUILD / f".tmp-{project}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "classes").mkdir(parents=True)
        cmd = [javac(), "--release", "17", "-nowarn", "-d", str(tmp / "classes"), *map(str, sources)]
        if parameters:
            cmd.insert(1, "-parameters")
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with zipfile.ZipFile(tmp / "model.jar", "w") as z:
            for p in sorted((tmp / "classes").rglob("*.class")):
                z.write(p, p.relative_to(tmp / "classes").as_posix())
            for p in resources:
                z.write(p, p.relative_to(src / "resources").as_posix())
        shutil.rmtree(tmp / "classes")
        shutil.rmtree(out, ignore_errors=True)
        os.rename(tmp, out)
    return out


@pytest.fixture(scope="session")
def jvm_started() -> None:
    from bridge import jvm

    jvm.start_jvm()


@pytest.fixture
def copy_bundle(tmp_path: Path) -> Callable[[Path], Path]:
    """Copies a bundle folder to tmp_path (tests that add files or corrupt it)."""

    def copy(src: Path) -> Path:
        dest = tmp_path / src.name
        shutil.copytree(src, dest)
        return dest

    return copy


@pytest.fixture(scope="session")
def faults_bundle() -> Path:
    return build_bundle("faults")


@pytest.fixture(scope="session")
def kitchen_bundle() -> Path:
    return build_bundle("kitchen")


@pytest.fixture(scope="session")
def kitchen_positional_bundle() -> Path:
    """The kitchen model compiled without -parameters: parameters bind by position."""
    return build_bundle("kitchen", parameters=False)


@pytest.fixture(scope="session")
def acumos_bundle() -> Path:
    return build_bundle("acumos")


@pytest.fixture(scope="session")
def iris_contract() -> Contract:
    return Contract.compile((REPO / "protos" / "iris.proto").read_text())


def compile_contract(text: str) -> Contract:
    return Contract.compile(text)


FAULTS_PROTO = """
syntax = "proto3";
package faults;
message Req { string text = 1; int32 n = 2; }
message Reply { string text = 1; }
service Faults {
  rpc Echo (Req) returns (Reply);
  rpc Fail (Req) returns (Reply);
  rpc Exit (Req) returns (Reply);
  rpc Halt (Req) returns (Reply);
  rpc SneakyExit (Req) returns (Reply);
  rpc Sleep (Req) returns (Reply);
  rpc Spin (Req) returns (Reply);
  rpc Hog (Req) returns (Reply);
  rpc Busy (Req) returns (Reply);
  rpc Where (Req) returns (Reply);
}
"""


@pytest.fixture(scope="session")
def faults_contract() -> Contract:
    return Contract.compile(FAULTS_PROTO)


def run_python(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (a fresh JVM); returns the completed process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
        check=False,
    )
