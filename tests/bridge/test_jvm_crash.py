"""A JVM crash (here a native segfault in a process running a bridge JVM) writes its report (hs_err) into the
temp dir, never into the process's working directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bridge.conftest import REPO

CRASH = textwrap.dedent("""
    import ctypes, os, resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file either
    from bridge import jvm
    jvm.start_jvm()
    print(jvm.error_file(os.getpid()), flush=True)
    ctypes.string_at(0)  # a native library's segfault
""")


@pytest.mark.timeout(180)
def test_a_jvm_crash_writes_its_report_to_the_temp_dir_not_the_working_dir(tmp_path: Path) -> None:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = dict(
        os.environ, TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", CRASH],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == -signal.SIGABRT, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = Path(proc.stdout.splitlines()[0])
    assert report.parent == tmp and report.name.startswith("model-runner-hs_err_pid"), proc.stdout
    assert report.is_file(), proc.stdout[-3000:]
    assert "SIGSEGV" in report.read_text(errors="replace")
    assert f"# An error report file with more information is saved as:\n# {report}\n" in proc.stdout
    assert list(cwd.iterdir()) == []
