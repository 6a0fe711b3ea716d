"""Models that are slow to load, held by explicit signals (files the test creates), for the tests of
load time limits, concurrent loads and superseded swaps."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from runner.serving.loading import BundleLoader
from runner.serving.registry import LoadedVersion
from runner.settings import Settings

HOLD_BOUND = 90
"""Seconds a held constructor waits at most for its release (only so that a test failing half-way
leaves no thread behind for ever; every test releases what it holds)."""


def hold_in_constructor(release: Path, *, started: Path | None = None, on_threads: str = "") -> str:
    """``init_code`` for tests.runner.repo_helpers.write_echo_bundle: the constructor (on threads whose
    name starts with ``on_threads``; every thread when empty) creates ``started``, then waits until the
    file ``release`` exists."""
    lines = [
        "import os, threading, time",
        f"if threading.current_thread().name.startswith({on_threads!r}):",
    ]
    if started is not None:
        lines.append(f"    open({str(started)!r}, 'w').close()")
    lines += [
        f"    deadline = time.time() + {HOLD_BOUND}",
        f"    while not os.path.exists({str(release)!r}) and time.time() < deadline:",
        "        time.sleep(0.005)",
    ]
    return "\n        ".join(lines)


class GatedLoader(BundleLoader):
    """The registry's real hooks, except that a load of a version >= ``held_from`` first waits until
    ``gate`` is set (``waiting`` counts the loads held so far)."""

    def __init__(self, gate: threading.Event, held_from: int, settings: Settings | None = None):
        super().__init__(settings or Settings())
        self.gate = gate
        self.held_from = held_from
        self.waiting: list[tuple[str, int]] = []

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        if version >= self.held_from:
            self.waiting.append((name, version))
            self.gate.wait(HOLD_BOUND)
        return super().load(name, version, version_dir)


SLOW_JAVA_PROTO = """syntax = "proto3";
package slow;

message Req { string text = 1; }
message Resp { string text = 1; string label = 2; }

service Slow {
  rpc Say (Req) returns (Resp);
}
"""

SLOW_JAVA = (
    """package slow;

import java.nio.file.Files;
import java.nio.file.Path;

/** Answers with its label; its constructor waits for the file named in hold.txt when there is one. */
public class SlowModel {
    public static class Req { public String text; }
    public static class Resp { public String text; public String label; }

    private final String label;

    public SlowModel(Path dir) throws Exception {
        label = Files.readString(dir.resolve("label.txt")).trim();
        Path hold = dir.resolve("hold.txt");
        if (Files.exists(hold)) {
            Path release = Path.of(Files.readString(hold).trim());
            long deadline = System.currentTimeMillis() + HOLD_BOUND_MS;
            while (!Files.exists(release) && System.currentTimeMillis() < deadline) {
                Thread.sleep(5);
            }
        }
    }

    public Resp say(Req req) {
        Resp out = new Resp();
        out.text = req.text;
        out.label = label;
        return out;
    }
}
"""
).replace("HOLD_BOUND_MS", f"{HOLD_BOUND * 1000}L")


def slow_java_jar(folder: Path) -> Path:
    """model.jar of slow.SlowModel, compiled with javac into ``folder``."""
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("javac not found")
    src = folder / "src" / "slow" / "SlowModel.java"
    src.parent.mkdir(parents=True)
    src.write_text(SLOW_JAVA)
    classes = folder / "classes"
    subprocess.run([javac, "--release", "17", "-d", str(classes), str(src)], check=True, capture_output=True)
    jar = folder / "model.jar"
    shutil.make_archive(str(folder / "model"), "zip", classes)
    (folder / "model.zip").rename(jar)
    return jar


def write_slow_java_bundle(folder: Path, jar: Path, label: str, *, hold: Path | None = None) -> Path:
    """A Java bundle of slow.SlowModel answering ``label``; its constructor waits for ``hold`` if given."""
    folder.mkdir(parents=True)
    shutil.copyfile(jar, folder / "model.jar")
    (folder / "model.proto").write_text(SLOW_JAVA_PROTO)
    (folder / "label.txt").write_text(label)
    if hold is not None:
        (folder / "hold.txt").write_text(str(hold))
    metadata = {"name": "slowjava", "runtime": "java", "entry_point": "slow.SlowModel"}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder
