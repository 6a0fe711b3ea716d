"""Tiny Python bundles for the repository/registry/dataplane/admin tests (written into tmp dirs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from runner.serving.loading import BundleLoader
from runner.serving.registry import LoadedVersion
from runner.settings import Settings

ECHO_PROTO = """syntax = "proto3";
package echo;

message Req {
  string text = 1;
  string wait_for = 2;  // a file path: the call blocks until it exists (lets tests hold a call in flight)
}

message Resp {
  string text = 1;
  string label = 2;
}

service Echo {
  rpc Say (Req) returns (Resp);
}
"""

FAIL_PROTO = ECHO_PROTO.replace(
    "rpc Say (Req) returns (Resp);", "rpc Say (Req) returns (Resp);\n  rpc Fail (Req) returns (Resp);"
)

MODEL_PY = """
import os
import time

LABEL = {label!r}


class EchoModel:
    def __init__(self, artifact_dir=None):
        {init_code}

    def Say(self, req):
        if req.wait_for:
            deadline = time.time() + 60
            while not os.path.exists(req.wait_for) and time.time() < deadline:
                time.sleep(0.005)
        return {{"text": req.text, "label": LABEL}}

    def Fail(self, req):
        raise ValueError("cannot echo " + req.text)
"""


def write_echo_bundle(
    folder: Path,
    label: str = "v1",
    *,
    name: str = "echo",
    init_code: str = "pass",
    proto: str = ECHO_PROTO,
    examples: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """A Python bundle: echo_model.py (EchoModel answering Say with its label), model.proto, metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "echo_model.py").write_text(MODEL_PY.format(label=label, init_code=init_code))
    (folder / "model.proto").write_text(proto)
    metadata: dict[str, Any] = {
        "name": name,
        "runtime": "python",
        "entry_point": "echo_model:EchoModel",
        "description": f"echo {label}",
    }
    if examples is not None:
        metadata["examples"] = examples
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


class TrackingModel:
    """Wraps a real model to record when it is closed (and how many calls were running then)."""

    def __init__(self, model: Any, version: int, closed: list[int]):
        self._model = model
        self._version = version
        self._closed = closed

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        return self._model.invoke(method, request, timeout=timeout)

    def close(self) -> None:
        self._closed.append(self._version)
        self._model.close()


class TrackingLoader(BundleLoader):
    """The registry's real hooks, with models wrapped in TrackingModel (closed versions go to ``closed``)."""

    def __init__(self, closed: list[int]):
        super().__init__(Settings())
        self.closed = closed

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        loaded = super().load(name, version, version_dir)
        return dataclasses.replace(loaded, model=TrackingModel(loaded.model, version, self.closed))
