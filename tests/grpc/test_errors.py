"""Every core error kind reaches a gRPC client as its status code (one table), with a message a person
can act on; deadlines bound model calls and leave the server healthy."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runner import errors
from runner.bundle import Metadata
from runner.contract import Contract
from runner.errors import Kind
from runner.grpc.server import STATUS_BY_KIND
from runner.serving.loading import BundleLoader
from runner.serving.registry import LoadedVersion
from runner.settings import Settings
from tests.grpc.conftest import TOOLS_PROTO, Env, iris_python_bundle, tools_bundle
from tests.waiting import wait_for

C = grpc.StatusCode
# The error table of docs/api.md: core kind -> HTTP status and gRPC code.
EXPECTED = {
    Kind.BAD_INPUT: C.INVALID_ARGUMENT,
    Kind.NOT_FOUND: C.NOT_FOUND,
    Kind.METHOD_NOT_FOUND: C.UNIMPLEMENTED,
    Kind.AMBIGUOUS: C.FAILED_PRECONDITION,
    Kind.UNSUPPORTED_MEDIA: C.INVALID_ARGUMENT,
    Kind.INVALID_BUNDLE: C.FAILED_PRECONDITION,
    Kind.INVALID_CONTRACT: C.FAILED_PRECONDITION,
    Kind.CONFLICT: C.ABORTED,
    Kind.PRECONDITION_FAILED: C.ABORTED,
    Kind.UNAUTHENTICATED: C.UNAUTHENTICATED,
    Kind.FORBIDDEN: C.PERMISSION_DENIED,
    Kind.TOO_LARGE: C.RESOURCE_EXHAUSTED,
    Kind.MODEL_ERROR: C.INTERNAL,
    Kind.DEADLINE: C.DEADLINE_EXCEEDED,
    Kind.NOT_READY: C.UNAVAILABLE,
    Kind.SWAP_TIMEOUT: C.UNAVAILABLE,
    Kind.INTERNAL: C.INTERNAL,
}
ERROR_CLASSES = {
    cls.kind: cls
    for cls in (
        errors.BadInput,
        errors.NotFound,
        errors.MethodNotFound,
        errors.AmbiguousModel,
        errors.UnsupportedMedia,
        errors.InvalidBundle,
        errors.InvalidContract,
        errors.Conflict,
        errors.PreconditionFailed,
        errors.Unauthenticated,
        errors.Forbidden,
        errors.TooLarge,
        errors.ModelError,
        errors.DeadlineExceeded,
        errors.NotReady,
        errors.SwapTimeout,
        errors.ModelRunnerError,
    )
}


def test_the_table_maps_every_kind() -> None:
    assert set(ERROR_CLASSES) == set(Kind)
    assert STATUS_BY_KIND == EXPECTED


class RaisingModel:
    """Raises the core error whose kind the request (tools.Text) names; used through the real registry."""

    def __init__(self, contract: Contract):
        self.contract = contract

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        kind = Kind(self.contract.input_class(method).FromString(request).text)
        raise ERROR_CLASSES[kind](f"raised {kind.value} on purpose", {"why": kind.value})

    def close(self) -> None:
        pass


@pytest.fixture
def raising_env(make_env: Callable[..., Env], tmp_path: Path) -> Env:
    contract = Contract.compile(TOOLS_PROTO % "")

    class RaisingLoader(BundleLoader):
        def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
            meta = Metadata(name=name, runtime="python", entry_point="x:Y")
            return LoadedVersion(name, version, meta, contract, RaisingModel(contract))

    env = make_env(hooks=RaisingLoader(Settings()))
    env.publish("raiser", tools_bundle(tmp_path / "raiser"))
    return env


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
def test_every_kind_reaches_the_client(raising_env: Env, kind: Kind) -> None:
    contract = Contract.compile(TOOLS_PROTO % "")
    request = contract.input_class("Echo")(text=kind.value).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        raising_env.channel().unary_unary("/tools.Tools/Echo")(request, timeout=10)
    assert err.value.code() == EXPECTED[kind]
    assert err.value.details() == f"raised {kind.value} on purpose"
    trailing = dict(err.value.trailing_metadata())
    assert trailing["x-error-kind"] == kind.value
    assert json.loads(trailing["x-error-detail"]) == {"why": kind.value}
    # the call was answered by the model, and says which version
    assert dict(err.value.initial_metadata()) == {"x-model-name": "raiser", "x-model-version": "1"}


def _fail(
    channel: grpc.Channel, path: str, request: bytes = b"", model: str | None = None, timeout: float = 10
) -> grpc.RpcError:
    md = (("x-model-name", model),) if model else ()
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary(path)(request, metadata=md, timeout=timeout)
    return err.value


def test_errors_from_real_models(make_env: Callable[..., Env]) -> None:
    env = make_env(max_message_bytes=4096)
    env.publish("tools", tools_bundle(env.scratch()))
    env.publish("iris-a", iris_python_bundle(env.scratch(), name="iris-a"))
    env.publish("iris-b", iris_python_bundle(env.scratch(), name="iris-b"))
    ch = env.channel()
    tools = Contract.compile(TOOLS_PROTO % "")

    # bad input: bytes that are not a tools.Text
    e = _fail(ch, "/tools.Tools/Echo", b"\xff\xff\xff")
    assert e.code() == C.INVALID_ARGUMENT and "tools.Text" in e.details()

    # unknown model named in metadata
    e = _fail(ch, "/tools.Tools/Echo", model="nope")
    assert e.code() == C.NOT_FOUND and "nope" in e.details()

    # a model that does not serve the called service
    e = _fail(ch, "/tools.Tools/Echo", model="iris-a")
    assert e.code() == C.UNIMPLEMENTED and "iris.IrisClassifier" in e.details()

    # unknown method of a served service; unknown service
    e = _fail(ch, "/tools.Tools/Nope")
    assert e.code() == C.UNIMPLEMENTED and "Echo" in e.details()
    e = _fail(ch, "/nothing.Here/Echo")
    assert e.code() == C.UNIMPLEMENTED and "nothing.Here" in e.details()

    # ambiguous: two models share the contract and no x-model-name picks one
    e = _fail(ch, "/iris.IrisClassifier/Classify")
    assert e.code() == C.FAILED_PRECONDITION
    assert dict(e.trailing_metadata())["x-error-kind"] == "ambiguous"  # the kind and the table agree
    assert "iris-a" in e.details() and "iris-b" in e.details() and "x-model-name" in e.details()

    # the model raises: INTERNAL with its exception class and message
    e = _fail(ch, "/tools.Tools/Fail", tools.input_class("Fail")(text="this").SerializeToString())
    assert e.code() == C.INTERNAL
    assert "ValueError" in e.details() and "cannot handle this" in e.details()
    assert dict(e.trailing_metadata())["x-error-kind"] == "model_error"

    # too large for the configured max message size
    big = tools.input_class("Echo")(text="x" * 10_000).SerializeToString()
    e = _fail(ch, "/tools.Tools/Echo", big)
    assert e.code() == C.RESOURCE_EXHAUSTED

    # a model whose current version fails to load: not ready
    broken = tools_bundle(env.scratch(), name="broken")
    (broken / "tools_model.py").write_text("raise ImportError('broken on purpose')\n")
    env.repo.publish("broken", broken, expected_version=None, caller="test")
    wait_for(lambda: "broken" in env.registry.load_errors(), what="load error")
    e = _fail(ch, "/tools.Tools/Echo", model="broken")
    assert e.code() == C.UNAVAILABLE and "broken on purpose" in e.details()

    # and the server still answers
    out = ch.unary_unary("/tools.Tools/Echo")(
        tools.input_class("Echo")(text="ok").SerializeToString(),
        metadata=(("x-model-name", "tools"),),
        timeout=10,
    )
    assert tools.output_class("Echo").FromString(out).text == "v1:ok"


def _echo(env: Env, contract: Contract, model: str = "tools", timeout: float = 10) -> str:
    out = env.channel().unary_unary("/tools.Tools/Echo")(
        contract.input_class("Echo")(text="still here").SerializeToString(),
        metadata=(("x-model-name", model),),
        timeout=timeout,
    )
    return contract.output_class("Echo").FromString(out).text


def test_client_deadline_bounds_a_slow_model(env: Env) -> None:
    env.publish("tools", tools_bundle(env.scratch()))
    env.publish("other", tools_bundle(env.scratch(), name="other", label="other"))
    tools = Contract.compile(TOOLS_PROTO % "")
    sleep = tools.input_class("Sleep")(seconds=600).SerializeToString()
    stub = env.channel().unary_unary("/tools.Tools/Sleep")
    # more slow calls than the server has threads: none may hold a server thread past its deadline
    n = 40

    def slow_call(_: int) -> grpc.StatusCode:
        try:
            stub(sleep, metadata=(("x-model-name", "tools"),), timeout=0.5)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    with futures.ThreadPoolExecutor(n) as pool:
        codes = list(pool.map(slow_call, range(n)))
    assert codes == [C.DEADLINE_EXCEEDED] * n
    # The server stays healthy: calls and health checks answer at once (they would wait for the
    # 600 s sleeps if server threads were still stuck in them). Another model is used because the
    # abandoned Python calls still occupy the slow model's own call threads until they return.
    assert _echo(env, tools, model="other", timeout=20) == "other:still here"
    health = health_pb2_grpc.HealthStub(env.channel())
    for service in ("", "tools", "other"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=20).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_server_deadline_answers_deadline_exceeded(make_env: Callable[..., Env]) -> None:
    env = make_env(predict_timeout=0.5)
    env.publish("tools", tools_bundle(env.scratch()))
    tools = Contract.compile(TOOLS_PROTO % "")
    sleep = tools.input_class("Sleep")(seconds=600).SerializeToString()
    e = _fail(env.channel(), "/tools.Tools/Sleep", sleep, timeout=60)
    assert e.code() == C.DEADLINE_EXCEEDED and "Sleep" in e.details()
    assert dict(e.trailing_metadata())["x-error-kind"] == "deadline"
    assert _echo(env, tools) == "v1:still here"


def test_initial_metadata_names_model_and_version(env: Env) -> None:
    env.publish("tools", tools_bundle(env.scratch()))
    env.publish("tools", tools_bundle(env.scratch(), label="v2"))
    tools = Contract.compile(TOOLS_PROTO % "")
    _, call = (
        env.channel()
        .unary_unary("/tools.Tools/Echo")
        .with_call(tools.input_class("Echo")(text="a").SerializeToString(), timeout=10)
    )
    assert dict(call.initial_metadata()) == {"x-model-name": "tools", "x-model-version": "2"}
