"""Builds the host library (bridge/java) with javac, once per source hash, into a shared cache.

Several gunicorn workers may start at once: a file lock serialises the build and the result appears
atomically (compile into a temporary folder, then rename).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bridge.errors import BridgeError, JvmNotFoundError

JAVA_SOURCES = Path(__file__).resolve().parent / "java"


def cache_dir() -> Path:
    """MODEL_RUNNER_CACHE_DIR, else $XDG_CACHE_HOME/model-runner, else ~/.cache/model-runner."""
    explicit = os.environ.get("MODEL_RUNNER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "model-runner"


def host_sources() -> list[Path]:
    return sorted(JAVA_SOURCES.rglob("*.java"))


def sources_digest() -> str:
    h = hashlib.sha256()
    for src in host_sources():
        h.update(src.relative_to(JAVA_SOURCES).as_posix().encode() + b"\0")
        h.update(src.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def host_classes(javac: str | None) -> Path:
    """The folder of compiled host classes for the current sources (built on first use)."""
    digest = sources_digest()
    root = cache_dir() / "host"
    final = root / digest
    if (final / "OK").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "OK").is_file():
            return final
        if not javac:
            raise JvmNotFoundError(
                "javac not found: the bridge's host library is built from source on first use and needs a JDK "
                "(set JAVA_HOME to a JDK 17+, or install openjdk-17-jdk-headless)",
                {"tried": ["$JAVA_HOME/bin/javac", "javac on PATH"]},
            )
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
        try:
            proc = subprocess.run(
                [
                    javac,
                    "--release",
                    "17",
                    "-encoding",
                    "UTF-8",
                    "-nowarn",
                    "-d",
                    str(tmp),
                    *[str(s) for s in host_sources()],
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise BridgeError(
                    f"building the host library failed:\n{proc.stderr[-4000:]}",
                    {"javac": javac, "stderr": proc.stderr[-4000:]},
                )
            (tmp / "OK").write_text(digest)
            if final.exists():  # left by a crashed build (no OK marker)
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
