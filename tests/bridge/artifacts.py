"""Builds the artifacts of the class-loader context and JNI tests from source: JARs (javac, with a class
path and extra resources), native libraries (gcc, JNI headers of the JDK found by bridge.jvm) and bundle
folders. Outputs are cached under build/test-bridge by a hash of their inputs, as conftest.build_bundle does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from tests.bridge.conftest import BUILD, HERE, javac

JAVA = HERE / "java"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:12]


def _cached(out: Path, build: Callable[[Path], None]) -> Path:
    """``out`` (a file), built by ``build(tmp)`` under the build lock unless it exists; appears atomically."""
    if out.is_file():
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        tmp = BUILD / f".tmp-{out.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            build(tmp)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp / out.name, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_jar(
    project: str, *, classpath: Sequence[Path] = (), resources: Mapping[str, Path] | None = None
) -> Path:
    """A JAR of tests/bridge/java/<project>: its classes (compiled against ``classpath``), the files under
    its resources/ folder, and ``resources`` (path inside the JAR -> file)."""
    src = JAVA / project
    sources = sorted(src.rglob("*.java"))
    res_dir = src / "resources"
    files = {p.relative_to(res_dir).as_posix(): p for p in sorted(res_dir.rglob("*")) if p.is_file()}
    files.update(resources or {})
    parts = [p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() for p in sources]
    parts += [name.encode() + b"\0" + p.read_bytes() for name, p in sorted(files.items())]
    parts += [p.read_bytes() for p in classpath]
    out = BUILD / f"{project}-{_digest(*parts)}.jar"

    def build(tmp: Path) -> None:
        classes = tmp / "classes"
        classes.mkdir()
        cmd = [javac(), "-parameters", "--release", "17", "-nowarn", "-d", str(classes)]
        if classpath:
            cmd += ["-cp", os.pathsep.join(map(str, classpath))]
        proc = subprocess.run([*cmd, *map(str, sources)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        with zipfile.ZipFile(tmp / out.name, "w") as z:
            for p in sorted(classes.rglob("*.class")):
                z.write(p, p.relative_to(classes).as_posix())
            for name, p in sorted(files.items()):
                z.write(p, name)

    return _cached(out, build)


def native_platform() -> str:
    """The bundle folder name of this platform under lib/native (``linux-x86_64``); skips elsewhere."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if platform.system() != "Linux" or arch not in ("x86_64", "aarch64"):
        pytest.skip(f"the JNI tests build a Linux shared library (this is {platform.system()} {machine})")
    return f"linux-{arch}"


def build_native(source: Path, library: str, defines: Mapping[str, str]) -> Path:
    """lib<library>.so compiled from C ``source`` with gcc against the JDK's JNI headers (skips without gcc)."""
    native_platform()
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the JNI tests build their native library from C source")
    from bridge.jvm import find_jvm

    home = find_jvm()[1]
    include = home / "include"
    if not (include / "jni.h").is_file():
        pytest.skip(f"no JNI headers in {include} (a JRE without the JDK's include/ folder)")
    flags = [f"-D{k}={v}" for k, v in sorted(defines.items())]
    out = BUILD / f"native-{_digest(source.read_bytes(), json.dumps(flags).encode())}" / f"lib{library}.so"

    def build(tmp: Path) -> None:
        cmd = [gcc, "-shared", "-fPIC", "-O2", *flags, f"-I{include}", f"-I{include / 'linux'}"]
        cmd += ["-o", str(tmp / out.name), str(source), "-ldl"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr

    return _cached(out, build)


def java_bundle(
    dest: Path,
    *,
    name: str,
    entry_point: str,
    proto: str,
    model_jar: Path,
    files: Mapping[str, Path] | None = None,
) -> Path:
    """A Java bundle folder at ``dest``: metadata.json, model.proto, model.jar and ``files`` (path in the
    bundle -> file, e.g. ``lib/acme-1.0.jar``, ``lib/native/linux-x86_64/libscorer.so``)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "metadata.json").write_text(
        json.dumps({"name": name, "runtime": "java", "entry_point": entry_point})
    )
    (dest / "model.proto").write_text(proto)
    shutil.copyfile(model_jar, dest / "model.jar")
    for rel, p in (files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest / rel)
    return dest
