"""The transport-free predict entry: content negotiation, the fast path, every error kind, gRPC routing,
the deadline rule."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.contract import Contract
from runner.errors import (
    AmbiguousModel,
    BadInput,
    DeadlineExceeded,
    MethodNotFound,
    ModelError,
    NotFound,
    NotReady,
    UnsupportedMedia,
)
from runner.serving.dataplane import DataPlane, response_media
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
from tests.runner.repo_helpers import ECHO_PROTO, FAIL_PROTO, write_echo_bundle

JSON = "application/json"
VND = "application/vnd.google.protobuf"
XPB = "application/x-protobuf"

OTHER_PROTO = ECHO_PROTO.replace("package echo;", "package other;")


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(FAIL_PROTO)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repository, Registry]]:
    tmp = tmp_path_factory.mktemp("dp")
    repo = Repository(tmp / "repo")
    for name, label, proto in (
        ("echo", "e1", FAIL_PROTO),
        ("twin", "t1", FAIL_PROTO),
        ("other", "o1", OTHER_PROTO),
    ):
        repo.publish(
            name,
            write_echo_bundle(tmp / name, label, name=name, proto=proto),
            expected_version=None,
            caller="t",
        )
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.05)
    registry.start()
    yield repo, registry
    registry.stop()


@pytest.fixture
def plane(served: tuple[Repository, Registry]) -> DataPlane:
    return DataPlane(served[1])


def req_bytes(contract: Contract, text: str) -> bytes:
    return contract.input_class("Say")(text=text).SerializeToString()


def test_json_in_json_out(plane: DataPlane) -> None:
    result = plane.predict("echo", "Say", b'{"text": "hello"}', "application/json; charset=utf-8")
    assert json.loads(result.body) == {"text": "hello", "label": "e1"}
    assert (result.content_type, result.model, result.version) == (JSON, "echo", 1)


@pytest.mark.parametrize("media", [VND, XPB])
def test_binary_in_binary_out(plane: DataPlane, contract: Contract, media: str) -> None:
    result = plane.predict("echo", "Say", req_bytes(contract, "bin"), media)
    assert result.content_type == media
    reply = contract.output_class("Say").FromString(result.body)
    assert (reply.text, reply.label) == ("bin", "e1")


def test_cross_media(plane: DataPlane, contract: Contract) -> None:
    out = plane.predict("echo", "Say", b'{"text": "j"}', JSON, accept=VND)
    assert out.content_type == VND
    assert contract.output_class("Say").FromString(out.body).text == "j"
    back = plane.predict("echo", "Say", req_bytes(contract, "b"), XPB, accept="application/json")
    assert back.content_type == JSON and json.loads(back.body) == {"text": "b", "label": "e1"}
    wild = plane.predict("echo", "Say", req_bytes(contract, "w"), VND, accept="*/*")
    assert wild.content_type == VND


def test_accept_header_q_values() -> None:
    assert response_media(None, JSON) == JSON
    assert response_media("", VND) == VND
    assert response_media("text/html, application/x-protobuf;q=0.5, application/json;q=0.9", VND) == JSON
    assert response_media("text/html;q=1, */*;q=0.1", XPB) == XPB
    with pytest.raises(UnsupportedMedia):
        response_media("application/json;q=0, text/html", JSON)


def test_unsupported_media(plane: DataPlane) -> None:
    with pytest.raises(UnsupportedMedia) as info:
        plane.predict("echo", "Say", b"text=1", "application/x-www-form-urlencoded")
    assert JSON in info.value.detail["supported"]
    with pytest.raises(UnsupportedMedia):
        plane.predict("echo", "Say", b"{}", None)
    with pytest.raises(UnsupportedMedia) as info:
        plane.predict("echo", "Say", b"{}", JSON, accept="text/csv")
    assert "text/csv" in info.value.message


def test_bad_json_names_the_problem(plane: DataPlane) -> None:
    with pytest.raises(BadInput) as info:
        plane.predict("echo", "Say", b'{"text": ', JSON)
    assert "line 1" in info.value.message
    with pytest.raises(BadInput) as info:
        plane.predict("echo", "Say", b'{"txet": "x"}', JSON)
    assert info.value.detail["field"] == "txet"
    with pytest.raises(BadInput):
        plane.predict("echo", "Say", b'["not", "an", "object"]', JSON)


def test_garbage_binary_is_bad_input(plane: DataPlane) -> None:
    with pytest.raises(BadInput):
        plane.predict("echo", "Say", b"\xff\xff\xff\xff", VND)


def test_unknown_model_and_method(plane: DataPlane) -> None:
    with pytest.raises(NotFound) as info:
        plane.predict("nope", "Say", b"{}", JSON)
    assert not isinstance(info.value, MethodNotFound)
    with pytest.raises(MethodNotFound) as minfo:
        plane.predict("echo", "Shout", b"{}", JSON)
    assert minfo.value.detail["methods"] == ["Say", "Fail"]


def test_model_error_carries_the_models_exception(plane: DataPlane) -> None:
    with pytest.raises(ModelError) as info:
        plane.predict("echo", "Fail", b'{"text": "boom"}', JSON)
    assert "cannot echo boom" in info.value.message


def test_single_model_default(plane: DataPlane, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        plane.predict(None, "Say", b"{}", JSON)
    assert info.value.detail["models"] == ["echo", "other", "twin"]
    repo = Repository(tmp_path / "one")
    repo.publish(
        "solo", write_echo_bundle(tmp_path / "solo", "s1", name="solo"), expected_version=None, caller="t"
    )
    with Registry(repo, BundleLoader(Settings()), poll_interval=0.05) as registry:
        result = DataPlane(registry).predict(None, "Say", b'{"text": "x"}', JSON)
        assert (result.model, json.loads(result.body)["label"]) == ("solo", "s1")
    with (
        Registry(Repository(tmp_path / "empty"), BundleLoader(Settings()), poll_interval=0.05) as registry,
        pytest.raises(NotFound),
    ):
        DataPlane(registry).predict(None, "Say", b"{}", JSON)


def test_not_ready(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo")
    repo.publish("echo", write_echo_bundle(tmp_path / "e", "e1"), expected_version=None, caller="t")
    registry = Registry(repo, BundleLoader(Settings()))  # not started
    with pytest.raises(NotReady):
        DataPlane(registry).predict("echo", "Say", b"{}", JSON)
    repo.publish(
        "late",
        write_echo_bundle(tmp_path / "l", "l1", name="late", init_code="raise OSError('disk')"),
        expected_version=None,
        caller="t",
    )
    with registry:
        with pytest.raises(NotReady) as info:
            DataPlane(registry).predict("late", "Say", b"{}", JSON)
        assert "disk" in info.value.message


# --- routing by service (the gRPC edge's), the deadline rule, the started hook ---


def test_routing_by_service_and_method(plane: DataPlane, contract: Contract) -> None:
    request = req_bytes(contract, "r")
    # the one model serving other.Echo/Say, no name needed
    result = plane.predict(None, "Say", request, XPB, service="other.Echo")
    assert (result.model, contract.output_class("Say").FromString(result.body).label) == ("other", "o1")
    # two models serve echo.Echo: a name picks one, none is ambiguous and says how to pick
    assert plane.predict("twin", "Say", request, XPB, service="echo.Echo").model == "twin"
    with pytest.raises(AmbiguousModel) as ambiguous:
        plane.predict(None, "Say", request, XPB, service="echo.Echo")
    assert ambiguous.value.detail["candidates"] == ["echo", "twin"]
    assert "x-model-name" in ambiguous.value.message
    # a named model that does not serve the service called; a method or a service nobody serves
    with pytest.raises(MethodNotFound) as wrong:
        plane.predict("other", "Say", request, XPB, service="echo.Echo")
    assert "other.Echo" in wrong.value.message
    with pytest.raises(MethodNotFound) as method:
        plane.predict(None, "Fail", request, XPB, service="other.Echo")
    assert method.value.detail["methods"] == ["Say"]
    with pytest.raises(MethodNotFound) as service:
        plane.predict(None, "Say", request, XPB, service="nothing.Here")
    assert service.value.detail["services"] == ["echo.Echo", "other.Echo"]


def test_started_names_the_version_before_the_model_runs(plane: DataPlane, contract: Contract) -> None:
    seen: list[tuple[str, int, str]] = []
    plane.predict(
        "echo", "Say", b'{"text": "s"}', JSON, started=lambda lv, rpc: seen.append((lv.name, lv.version, rpc))
    )
    assert seen == [("echo", 1, "Say")]
    with pytest.raises(ModelError):  # the model raised after started: the edge had named the version
        plane.predict(
            "echo",
            "Fail",
            b'{"text": "s"}',
            JSON,
            started=lambda lv, rpc: seen.append((lv.name, lv.version, rpc)),
        )
    assert seen[-1] == ("echo", 1, "Fail")


def test_predict_timeout_bounds_every_call(served: tuple[Repository, Registry], tmp_path: Path) -> None:
    plane = DataPlane(served[1], predict_timeout=0.3)
    release = tmp_path / "release"
    body = json.dumps({"text": "slow", "wait_for": str(release)}).encode()
    try:
        for client_deadline in (None, 60.0):  # a client allowing more does not lift the service's bound
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as info:
                plane.predict("echo", "Say", body, JSON, timeout=client_deadline)
            assert time.monotonic() - started < 10
            assert (info.value.detail["model"], info.value.detail["version"]) == ("echo", 1)
    finally:
        release.touch()  # the abandoned calls end
