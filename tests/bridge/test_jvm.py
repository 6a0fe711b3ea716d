"""JVM lifecycle: finding it, starting once, options, stats, fork safety, the host library build."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge import jvm
from bridge.errors import JvmNotFoundError, JvmOptionsError
from tests.bridge.conftest import REPO, run_python


def test_start_is_idempotent_and_stats(jvm_started):
    jvm.start_jvm()
    assert jvm.jvm_started()
    s = jvm.jvm_stats()
    assert s["loaded_classes"] > 500 and s["metaspace_used"] > 0 and s["heap_used"] > 0
    assert set(s) >= {"loaded_classes", "unloaded_classes", "metaspace_used", "heap_used"}


def test_require_jvm_options(jvm_started):
    jvm.require_jvm_options(["-Djava.security.manager=allow"])  # every bridge JVM has it
    with pytest.raises(JvmOptionsError) as e:
        jvm.require_jvm_options(
            ["--add-opens=java.base/java.lang=ALL-UNNAMED", "-Djava.security.manager=allow"]
        )
    assert e.value.detail["missing"] == ["--add-opens=java.base/java.lang=ALL-UNNAMED"]
    with pytest.raises(JvmOptionsError):
        jvm.start_jvm(["-Dmodel.runner.test=1"])  # running: options can no longer be added


def test_jvm_not_found_lists_paths(monkeypatch, tmp_path):
    monkeypatch.setattr(
        jvm, "_jvm_candidates", lambda: [tmp_path / "a" / "libjvm.so", tmp_path / "b" / "libjvm.so"]
    )
    with pytest.raises(JvmNotFoundError) as e:
        jvm.find_jvm()
    assert e.value.detail["tried"] == [str(tmp_path / "a" / "libjvm.so"), str(tmp_path / "b" / "libjvm.so")]
    assert "JAVA_HOME" in e.value.message


def test_options_and_heap_at_start_in_a_fresh_process():
    proc = run_python(
        textwrap.dedent("""
        from bridge import jvm
        jvm.start_jvm(["-Dmodel.runner.flag=yes", "--add-opens=java.base/java.lang=ALL-UNNAMED"], max_heap="96m")
        jvm.require_jvm_options(["-Dmodel.runner.flag=yes", "-Xmx96m"])
        import jpype
        print(jpype.JClass("java.lang.System").getProperty("model.runner.flag"))
        print(int(jpype.JClass("java.lang.Runtime").getRuntime().maxMemory()) // (1 << 20))
    """)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    flag, heap = proc.stdout.split()
    assert flag == "yes" and 80 <= int(heap) <= 96


def test_no_jvm_use_after_fork():
    proc = run_python(
        textwrap.dedent("""
        import os
        from bridge import jvm
        from bridge.errors import BridgeError
        jvm.start_jvm()
        pid = os.fork()
        if pid == 0:
            try:
                jvm.start_jvm()
                os._exit(1)
            except BridgeError as e:
                os._exit(7 if "fork" in e.message and not jvm.jvm_started() else 2)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "7"


@pytest.mark.slow
@pytest.mark.timeout(300)  # three processes compile the host library (each given 240 s)
def test_host_library_build_is_shared_and_atomic(tmp_path):
    """Three processes build the host library into an empty cache at once: one build, one result."""
    code = "from bridge.build import host_classes; import shutil; print(host_classes(shutil.which('javac')))"
    env = {
        **os.environ,
        "MODEL_RUNNER_CACHE_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1
    built = Path(paths.pop())
    assert (built / "OK").is_file()
    assert (built / "org" / "modelrunner" / "host" / "Slot.class").is_file()
    assert sorted(p.name for p in (tmp_path / "host").iterdir() if not p.name.endswith(".lock")) == [
        built.name
    ]
