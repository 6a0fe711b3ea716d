"""Swaps seen over gRPC without a restart: a proto-only swap adding an rpc, and swaps under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import grpc
import pytest
from google.protobuf import json_format

from runner.contract import Contract
from runner.serving.admin import Admin
from tests.grpc.conftest import (
    IRIS_PROTO,
    SETOSA,
    SHOUT_RPC,
    TOOLS_PROTO,
    Env,
    renamed_copy,
    tools_bundle,
)
from tests.grpc.reflection_client import ReflectionClient
from tests.waiting import wait_for


def test_proto_only_swap_adds_an_rpc(env: Env) -> None:
    env.publish("tools", tools_bundle(env.scratch()))
    server_before = env.server
    client = ReflectionClient(env.channel())
    svc = client.service("tools.Tools")
    assert "Shout" not in svc.methods
    with pytest.raises(grpc.RpcError) as err:
        env.channel().unary_unary("/tools.Tools/Shout")(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    # proto-only: the current version's files with a contract that has one more rpc. The admin call
    # answers once every live serving process (here: this gRPC server's registry) serves it.
    answer = Admin(env.repo, swap_timeout=60).replace_proto("tools", TOOLS_PROTO % SHOUT_RPC, caller="test")
    assert answer["version"] == 2 and env.server is server_before

    # visible at once: no waiting after the acknowledgement
    svc = client.service("tools.Tools")
    assert sorted(svc.methods) == ["Echo", "Fail", "Shout", "Sleep"]
    out, md = client.call(svc, "Shout", svc.input_class("Shout")(text="hey"))
    assert out.text == "HEY!"
    assert md == {"x-model-name": "tools", "x-model-version": "2"}


@dataclass
class Answer:
    started: float
    version: str
    label: str


class Load:
    """Clients calling one model continuously from several threads, recording every answer."""

    def __init__(
        self,
        env: Env,
        model: str,
        path: str,
        request: bytes,
        decode: Callable[[bytes], str],
        threads: int = 4,
    ):
        self.answers: list[Answer] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        stubs = [env.channel().unary_unary(path) for _ in range(threads)]
        self._threads = [threading.Thread(target=self._run, args=(s, model, request, decode)) for s in stubs]

    def _run(self, stub: Any, model: str, request: bytes, decode: Callable[[bytes], str]) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                body, call = stub.with_call(request, metadata=(("x-model-name", model),), timeout=30)
            except grpc.RpcError as err:
                with self._lock:
                    self.failures.append(f"{err.code()}: {err.details()}")
                continue
            version = dict(call.initial_metadata())["x-model-version"]
            with self._lock:
                self.answers.append(Answer(started, version, decode(body)))

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def count(self) -> int:
        with self._lock:
            return len(self.answers)


def _swap_under_load(
    env: Env,
    model: str,
    path: str,
    request: bytes,
    label: Callable[[bytes], str],
    versions: list[tuple[Path, str]],
) -> None:
    """Publish each (bundle, label it answers) in turn under load. Zero failed calls; after each
    swap's acknowledgement (every live serving process reports the new version) no call is
    answered by an older version, and each version answers with its own label."""
    first, first_label = versions[0]
    env.publish(model, first)
    acks: list[tuple[float, int, str]] = []

    def let_calls_run(load: Load, n: int = 50) -> None:
        target = load.count() + n
        wait_for(lambda: load.count() >= target, what=f"{n} more calls")

    with Load(env, model, path, request, label) as load:
        for bundle, expected in versions[1:]:
            let_calls_run(load)
            version = env.repo.publish(model, bundle, expected_version=None, caller="test")
            assert env.repo.fleet.wait_until_served(model, version, timeout=120) == []
            acks.append((time.monotonic(), version, expected))
        let_calls_run(load)
    assert load.failures == []
    assert {a.label for a in load.answers if a.version == "1"} == {first_label}
    for acked_at, version, expected in acks:
        late = [a for a in load.answers if a.started > acked_at]
        assert late, "no call after the swap"
        stale = [a for a in late if int(a.version) < version]
        assert stale == [], f"{len(stale)} answers by an old version after version {version} was acknowledged"
        assert {a.label for a in late if a.version == str(version)} == {expected}
    assert {a.version for a in load.answers} == {str(v) for v in range(1, len(versions) + 1)}


def test_swap_under_load_python(env: Env) -> None:
    tools = Contract.compile(TOOLS_PROTO % "")
    request = tools.input_class("Echo")(text="x").SerializeToString()
    out_cls = tools.output_class("Echo")

    def label(body: bytes) -> str:
        return out_cls.FromString(body).text.partition(":")[0]

    versions = [(tools_bundle(env.scratch(), label=f"v{i}"), f"v{i}") for i in (1, 2, 3)]
    _swap_under_load(env, "tools", "/tools.Tools/Echo", request, label, versions)


def test_swap_under_load_java(env: Env, sample_bundles: dict[str, Path]) -> None:
    """Java iris -> iris-v2 -> iris again, under load."""
    iris = Contract.compile(IRIS_PROTO)
    request = json_format.ParseDict(SETOSA, iris.input_class("Classify")()).SerializeToString()
    out_cls = iris.output_class("Classify")

    def label(body: bytes) -> str:
        return out_cls.FromString(body).species

    iris_v2 = renamed_copy(sample_bundles["iris-v2"], env.scratch(), "iris")
    versions = [
        (sample_bundles["iris"], "setosa"),
        (iris_v2, "Iris-setosa"),
        (sample_bundles["iris"], "setosa"),
    ]
    _swap_under_load(env, "iris", "/iris.IrisClassifier/Classify", request, label, versions)
