"""A real `model-runner serve` in a subprocess, for the end-to-end tests of restarts, slow clients and
process supervision: started with the arguments a test gives, waited on through its ready file, its
process tree (gunicorn workers, gRPC processes) read from /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_for


class Serve:
    """One `serve` process: its log, its ready file's facts, its children."""

    def __init__(self, proc: subprocess.Popen[bytes], repo: Path, log: Path, ready: Path) -> None:
        self.proc = proc
        self.repo = repo
        self.log = log
        self.ready = ready
        self.info: dict[str, Any] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.info['http_port']}"

    @property
    def port(self) -> int:
        return int(self.info["http_port"])

    @property
    def auth(self) -> dict[str, str]:
        token = Path(self.info["token_file"]).read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pids of serve's child processes now (workers, gRPC processes, helpers)."""
        return children_of(self.proc.pid)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, then wait (SIGKILL and fail after ``timeout``); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"serve did not exit within {timeout:g} s of SIGTERM:\n{self.log_text()[-4000:]}")
            except BaseException:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL serve and every process it started (cleanup of a failed test); nothing once it exited."""
        if self.proc.poll() is not None:
            return
        pids = [self.proc.pid, *descendants_of(self.proc.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def start_serve(
    args: list[str],
    tmp: Path,
    *,
    workers: int = 1,
    threads: int = 4,
    grpc_processes: int = 0,
    env_extra: dict[str, str] | None = None,
    timeout: float = 300,
    log_name: str = "serve.log",
) -> Serve:
    """Start `model-runner serve ARGS` on ``tmp``/repo (ports 0) and wait until it is ready."""
    repo = tmp / "repo"
    ready = tmp / "ready.json"
    ready.unlink(missing_ok=True)
    log = tmp / log_name
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    env.update(env_extra or {})
    grpc = ["--grpc-port", "0", "--grpc-processes", str(grpc_processes)] if grpc_processes else []
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "serve",
        *args,
        "--repo",
        str(repo),
        "--http-port",
        "0",
        *(grpc or ["--grpc-port", "-1"]),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--ready-file",
        str(ready),
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    served = Serve(proc, repo, log, ready)
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None,
            timeout,
            "serve to write its ready file",
            interval=0.1,
            describe=lambda: served.log_text()[-6000:],
        )
    except BaseException:
        served.kill()
        raise
    if not ready.exists():
        pytest.fail(f"serve exited with {proc.returncode}:\n{served.log_text()[-6000:]}")
    served.info = json.loads(ready.read_text())
    return served


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            continue
    return sorted(set(out))


def descendants_of(pid: int) -> list[int]:
    out: list[int] = []
    for child in children_of(pid):
        out += [child, *descendants_of(child)]
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return ""
