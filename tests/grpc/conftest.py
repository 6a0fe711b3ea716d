"""Fixtures of the gRPC transport tests: a real Repository in a tmp dir, a real Registry following it,
and a real gRPC server on port 0 in this process.

Python test bundles are written here (no Java needed); the Java samples come from the session fixture
``sample_bundles`` (built from source) in the tests that use them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from runner.grpc.server import create_server
from runner.samples import find_repo_root
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry, RegistryHooks
from runner.settings import Settings
from runner.store import Repository
from tests.waiting import wait_for

ROOT = find_repo_root()
IRIS_PROTO = (ROOT / "protos" / "iris.proto").read_text()

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VERSICOLOR = {"sepal_length": 7.0, "sepal_width": 3.2, "petal_length": 4.7, "petal_width": 1.4}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}

# A small Python model used for proto swaps, deadlines and model errors.
TOOLS_PROTO = """
syntax = "proto3";
package tools;
message Text { string text = 1; }
message Nap { double seconds = 1; }
service Tools {
  rpc Echo (Text) returns (Text);
  rpc Sleep (Nap) returns (Text);
  rpc Fail (Text) returns (Text);
%s
}
"""
SHOUT_RPC = "  rpc Shout (Text) returns (Text);"

TOOLS_PY = """
import threading

LABEL = %r
_closed = threading.Event()


class Tools:
    def Echo(self, request):
        return {"text": LABEL + ":" + request.text}

    def Shout(self, request):
        return {"text": request.text.upper() + "!"}

    def Sleep(self, request):
        # interruptible, so closing the model (end of the test) ends abandoned calls at once
        _closed.wait(request.seconds)
        return {"text": "slept"}

    def Fail(self, request):
        if request.text:  # the empty request (pre-swap validation) passes
            raise ValueError("cannot handle " + request.text)
        return {"text": ""}

    def close(self):
        _closed.set()
"""


def write_python_bundle(
    dest: Path, *, name: str, proto: str, files: dict[str, str], entry_point: str, **metadata: Any
) -> Path:
    """A Python bundle folder: metadata.json, model.proto and the given files."""
    dest.mkdir(parents=True)
    meta = {"name": name, "runtime": "python", "entry_point": entry_point, **metadata}
    (dest / "metadata.json").write_text(json.dumps(meta))
    (dest / "model.proto").write_text(proto)
    for fname, text in files.items():
        (dest / fname).write_text(text)
    return dest


def tools_bundle(dest: Path, *, name: str = "tools", label: str = "v1", shout: bool = False) -> Path:
    return write_python_bundle(
        dest,
        name=name,
        proto=TOOLS_PROTO % (SHOUT_RPC if shout else ""),
        files={"tools_model.py": TOOLS_PY % label},
        entry_point="tools_model:Tools",
    )


def iris_python_bundle(dest: Path, *, name: str = "iris-python") -> Path:
    """The iris-python sample assembled from its sources (no Gradle needed)."""
    shutil.copytree(
        ROOT / "runner" / "samples" / "iris-python", dest, ignore=shutil.ignore_patterns("__pycache__")
    )
    (dest / "model.proto").write_text(IRIS_PROTO)
    meta = json.loads((dest / "metadata.json").read_text())
    meta["name"] = name
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def renamed_copy(src: Path, dest: Path, name: str) -> Path:
    """A copy of a bundle folder under another model name."""
    shutil.copytree(src, dest)
    meta = json.loads((dest / "metadata.json").read_text())
    meta["name"] = name
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


class Env:
    """A repository, a registry following it and a gRPC server over that registry."""

    def __init__(self, root: Path, settings: Settings, hooks: RegistryHooks | None = None):
        self.root = root
        self.settings = settings
        self.repo = Repository(root / "repo")
        self.registry = Registry(
            self.repo, hooks or BundleLoader(settings), process_kind="grpc", poll_interval=0.05
        )
        self.server: Any = None
        self.port = 0
        self._n = 0
        self._channels: list[grpc.Channel] = []

    def start(self) -> None:
        self.registry.start()
        self.server, self.port = create_server(self.settings, self.registry, port=0)
        self.server.start()

    def stop(self) -> None:
        for ch in self._channels:
            ch.close()
        if self.server is not None:
            self.server.stop(None).wait()
        self.registry.stop()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(self.target)
        self._channels.append(ch)
        return ch

    def scratch(self) -> Path:
        self._n += 1
        return self.root / f"scratch-{self._n}"

    def publish(self, name: str, folder: Path, *, wait: bool = True) -> int:
        """Publish ``folder`` as the next version of ``name``; wait until this registry serves it."""
        version = self.repo.publish(name, folder, expected_version=None, caller="test")
        if wait:
            self.wait_served(name, version)
        return version

    def wait_served(self, name: str, version: int | None) -> None:
        def served() -> bool:
            live = self.registry.snapshot().get(name)
            return live is None if version is None else (live is not None and live.version == version)

        wait_for(served, what=f"{name} version {version} served")


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """Factory: ``make_env(hooks=None, **settings_overrides)`` -> a started Env (stopped at teardown);
    ``hooks`` replace the registry's (runner.serving.loading.BundleLoader)."""
    envs: list[Env] = []

    def make(hooks: RegistryHooks | None = None, **overrides: Any) -> Env:
        settings = Settings(repo=tmp_path / f"env{len(envs)}" / "repo", grpc_port=0, **overrides)
        env = Env(tmp_path / f"env{len(envs)}", settings, hooks)
        envs.append(env)
        env.start()
        return env

    yield make
    for env in envs:
        env.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()
