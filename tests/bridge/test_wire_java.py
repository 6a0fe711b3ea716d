"""The host's wire reader and repeated-field codecs tested on their own, in Java (no model, no Python in
the loop): tests/bridge/java/wiretests/.../WireTests.java, compiled against the host classes and run in a
JVM of its own. Each of its test methods is one test here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.build import host_classes
from tests.bridge.conftest import javac

SOURCE = (
    Path(__file__).resolve().parent / "java" / "wiretests" / "org" / "modelrunner" / "host" / "WireTests.java"
)
TESTS = sorted(re.findall(r"static void (test\w+)\(\)", SOURCE.read_text()))


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java") or pytest.skip("java not found")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each Java test's outcome: "ok", or its failure and stack."""
    compiler = javac()
    host = host_classes(compiler)
    out = tmp_path_factory.mktemp("wiretests")
    subprocess.run(
        [compiler, "--release", "17", "-nowarn", "-cp", str(host), "-d", str(out), str(SOURCE)],
        check=True,
        capture_output=True,
        text=True,
    )
    proc = subprocess.run(
        [java(), "-Xss512k", "-cp", os.pathsep.join([str(host), str(out)]), "org.modelrunner.host.WireTests"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    outcome: dict[str, str] = {}
    current = None
    for line in proc.stdout.splitlines():
        m = re.match(r"(ok|FAIL) (test\w+)", line)
        if m:
            current = m.group(2)
            outcome[current] = "ok" if m.group(1) == "ok" else line
        elif current and outcome[current] != "ok":
            outcome[current] += "\n" + line
    if not outcome:
        pytest.fail(
            f"WireTests did not run (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return outcome


@pytest.mark.parametrize("name", TESTS)
def test_wire_java(results: dict[str, str], name: str) -> None:
    assert name in results, f"{name} did not run"
    assert results[name] == "ok", results[name]
