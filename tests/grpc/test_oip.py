"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), called with tritonclient's
gRPC client (the client most KServe V2 users have) against a real server on port 0: health, metadata,
inference with raw binary and typed contents, errors a user can print, reflection; and the one data
plane: every edge (HTTP, OIP REST, gRPC, OIP gRPC) keeps the same deadline rule."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from runner.contract import Contract
from runner.http.app import create_app
from tests.grpc.conftest import (
    IRIS_PROTO,
    SETOSA,
    TOOLS_PROTO,
    TOOLS_PY,
    VIRGINICA,
    Env,
    iris_python_bundle,
    tools_bundle,
    write_python_bundle,
)
from tests.grpc.reflection_client import ReflectionClient
from tests.waiting import wait_for

FEATURES = list(SETOSA)
TOKEN = "oip-grpc-test-token-0123456789abcdef"


@pytest.fixture
def served(make_env: Callable[..., Env]) -> Env:
    """iris-python (FP64 inputs) and tools (a BYTES input; Sleep, Fail, Shout) on one gRPC server."""
    env = make_env()
    env.publish("iris-python", iris_python_bundle(env.scratch()))
    env.publish("tools", tools_bundle(env.scratch(), shout=True))
    return env


def client(env: Env) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(env.target)


def flower_inputs(flower: dict[str, float]) -> list[triton.InferInput]:
    """tritonclient's inputs: one FP64 tensor of shape [1] per feature (sent as raw_input_contents)."""
    inputs = []
    for name in FEATURES:
        tensor = triton.InferInput(name, [1], "FP64")
        tensor.set_data_from_numpy(np.array([flower[name]], dtype=np.float64))
        inputs.append(tensor)
    return inputs


def own_contract_answer(env: Env, flower: dict[str, float]) -> Any:
    """The same flower through the model's own gRPC contract."""
    iris = Contract.compile(IRIS_PROTO)
    out = env.channel().unary_unary("/iris.IrisClassifier/Classify")(
        iris.input_class("Classify")(**flower).SerializeToString(),
        metadata=(("x-model-name", "iris-python"),),
        timeout=30,
    )
    return iris.output_class("Classify").FromString(out)


def stub(env: Env) -> service_pb2_grpc.GRPCInferenceServiceStub:
    return service_pb2_grpc.GRPCInferenceServiceStub(env.channel())


def failure(call: Callable[[], Any]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


# --------------------------------------------------------------------------------- health, metadata


def test_health_and_metadata(served: Env) -> None:
    c = client(served)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("iris-python") and c.is_model_ready("iris-python", "1")
    assert not c.is_model_ready("iris-python", "2")  # not the version served

    server = c.get_server_metadata()
    assert server.name == "model-runner" and server.version

    meta = c.get_model_metadata("iris-python", as_json=True)
    assert (meta["name"], meta["versions"], meta["platform"]) == ("iris-python", ["1"], "model-runner_python")
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        (name, "FP64", ["1"]) for name in FEATURES
    ]
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [
        ("species", "BYTES"),
        ("probabilities", "FP64"),
    ]
    assert c.get_model_metadata("iris-python", "1").name == "iris-python"

    e = failure(lambda: c.get_model_metadata("iris-python", "7"))
    assert e.status() == "StatusCode.NOT_FOUND" and "version 1, not 7" in str(e)


def test_readiness_follows_the_registry(make_env: Callable[..., Env]) -> None:
    env = make_env()
    env.publish("tools", tools_bundle(env.scratch()))
    broken = tools_bundle(env.scratch(), name="broken")
    (broken / "tools_model.py").write_text("raise ImportError('broken on purpose')\n")
    env.repo.publish("broken", broken, expected_version=None, caller="test")
    wait_for(lambda: "broken" in env.registry.load_errors(), what="load error")
    c = client(env)
    assert c.is_server_live()
    assert not c.is_server_ready()  # a model of the repository is not loaded
    assert c.is_model_ready("tools") and not c.is_model_ready("broken")
    e = failure(lambda: c.get_model_metadata("broken"))
    assert e.status() == "StatusCode.UNAVAILABLE" and "broken on purpose" in str(e)


# -------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize("flower", [SETOSA, VIRGINICA], ids=["setosa", "virginica"])
def test_infer_fp64_raw_binary(served: Env, flower: dict[str, float]) -> None:
    result = client(served).infer("iris-python", flower_inputs(flower), request_id="r-1")
    expected = own_contract_answer(served, flower)
    assert result.as_numpy("species").tolist() == [expected.species.encode()]
    assert result.as_numpy("probabilities").tolist() == list(expected.probabilities)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris-python", "1", "r-1")
    assert len(response.raw_output_contents) == 2  # raw in, raw out
    assert [o.shape for o in response.outputs] == [[1], [3]]


def test_infer_fp64_contents(served: Env) -> None:
    request = service_pb2.ModelInferRequest(model_name="iris-python", id="typed")
    for name in FEATURES:
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[1])
        tensor.contents.fp64_contents.append(VIRGINICA[name])
    request.outputs.add(name="probabilities")  # only this one
    response, call = stub(served).ModelInfer.with_call(request, timeout=30)
    expected = own_contract_answer(served, VIRGINICA)
    assert not response.raw_output_contents  # typed contents in, typed contents out
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [("probabilities", "FP64", [3])]
    assert list(response.outputs[0].contents.fp64_contents) == list(expected.probabilities)
    assert response.id == "typed"
    assert dict(call.initial_metadata()) == {"x-model-name": "iris-python", "x-model-version": "1"}


def test_infer_bytes_and_the_method_parameter(served: Env) -> None:
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"hi there"], dtype=np.object_))
    shout = client(served).infer("tools", [text], parameters={"method": "Shout"})
    assert shout.as_numpy("text").tolist() == [b"HI THERE!"]
    echo = client(served).infer("tools", [text])  # the contract's first rpc
    assert echo.as_numpy("text").tolist() == [b"v1:hi there"]

    request = service_pb2.ModelInferRequest(model_name="tools")
    request.parameters["method"].string_param = "Shout"
    request.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"typed")
    response = stub(served).ModelInfer(request, timeout=30)
    assert list(response.outputs[0].contents.bytes_contents) == [b"TYPED!"]


# ----------------------------------------------------------------------------------------- errors


def test_errors_name_the_problem(served: Env) -> None:
    c = client(served)
    flower = flower_inputs(SETOSA)

    e = failure(lambda: c.infer("nope", flower))
    assert e.status() == "StatusCode.NOT_FOUND" and "nope" in str(e) and "nope" in e.message()
    e = failure(lambda: c.get_model_metadata("nope"))
    assert e.status() == "StatusCode.NOT_FOUND" and "nope" in str(e)
    e = failure(lambda: c.is_model_ready("nope"))
    assert e.status() == "StatusCode.NOT_FOUND" and "nope" in str(e)
    e = failure(lambda: c.infer("iris-python", flower, model_version="9"))
    assert e.status() == "StatusCode.NOT_FOUND" and "not 9" in str(e)

    # every missing input is named; the model is not asked about a flower of length 0
    e = failure(lambda: c.infer("iris-python", flower[:2]))
    assert e.status() == "StatusCode.INVALID_ARGUMENT"
    assert "'petal_length'" in str(e) and "'petal_width'" in str(e)

    # another datatype than the field's
    wrong = triton.InferInput("sepal_length", [1], "FP32")
    wrong.set_data_from_numpy(np.array([5.1], dtype=np.float32))
    e = failure(lambda: c.infer("iris-python", [wrong, *flower[1:]]))
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "FP32" in str(e) and "FP64" in str(e)

    # what this server does not implement: shared memory, the classification extension
    shared = triton.InferInput("sepal_length", [1], "FP64")
    shared.set_shared_memory("region-0", 8)
    e = failure(lambda: c.infer("iris-python", [shared, *flower[1:]]))
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "shared memory" in str(e)
    classify = triton.InferRequestedOutput("species", class_count=2)
    e = failure(lambda: c.infer("iris-python", flower, outputs=[classify]))
    assert e.status() == "StatusCode.INVALID_ARGUMENT" and "classification" in str(e)

    # an unknown rpc
    e = failure(lambda: c.infer("iris-python", flower, parameters={"method": "Nope"}))
    assert e.status() == "StatusCode.UNIMPLEMENTED" and "Nope" in str(e)

    # the model raises: INTERNAL with its exception
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"this"], dtype=np.object_))
    e = failure(lambda: c.infer("tools", [text], parameters={"method": "Fail"}))
    assert e.status() == "StatusCode.INTERNAL" and "ValueError" in str(e) and "cannot handle this" in str(e)

    # the client's deadline
    nap = triton.InferInput("seconds", [1], "FP64")
    nap.set_data_from_numpy(np.array([600.0]))
    started = time.monotonic()
    e = failure(lambda: c.infer("tools", [nap], parameters={"method": "Sleep"}, client_timeout=0.5))
    assert e.status() == "StatusCode.DEADLINE_EXCEEDED" and time.monotonic() - started < 10


def test_wire_errors(served: Env) -> None:
    """What only the gRPC wire can get wrong: raw contents that do not match the inputs."""
    s = stub(served)

    def refused(request: service_pb2.ModelInferRequest) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            s.ModelInfer(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(info.value.trailing_metadata())["x-error-kind"] == "bad_input"
        return info.value

    def raw_request(entries: list[bytes]) -> service_pb2.ModelInferRequest:
        request = service_pb2.ModelInferRequest(model_name="iris-python")
        for name in FEATURES:
            request.inputs.add(name=name, datatype="FP64", shape=[1])
        request.raw_input_contents.extend(entries)
        return request

    one = np.array([1.0]).tobytes()
    e = refused(raw_request([one] * 3))
    assert "3 entries for 4 inputs" in e.details()
    e = refused(raw_request([one, one, one, one[:5]]))
    assert "petal_width" in e.details() and "5 bytes" in e.details()
    mixed = raw_request([one] * 4)
    mixed.inputs[0].contents.fp64_contents.append(1.0)
    e = refused(mixed)
    assert "sepal_length" in e.details() and "one way" in e.details()
    typed = service_pb2.ModelInferRequest(model_name="iris-python")
    for name in FEATURES:
        typed.inputs.add(name=name, datatype="FP64", shape=[1]).contents.fp32_contents.append(1.0)
    e = refused(typed)
    assert "fp64_contents" in e.details() and "fp32_contents" in e.details()


# ------------------------------------------------------------------------------------- reflection


def test_listed_in_reflection(served: Env) -> None:
    reflection = ReflectionClient(served.channel())
    services = reflection.list_services()
    assert "inference.GRPCInferenceService" in services and "iris.IrisClassifier" in services
    service = reflection.service("inference.GRPCInferenceService")
    assert service.methods == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    # a client knowing only what reflection says can call it
    live = served.channel().unary_unary(
        "/inference.GRPCInferenceService/ServerLive",
        request_serializer=service.input_class("ServerLive").SerializeToString,
        response_deserializer=service.output_class("ServerLive").FromString,
    )(service.input_class("ServerLive")(), timeout=10)
    assert live.live is True


# ------------------------------------------------------------------------------ one data plane


@pytest.mark.parametrize("limit", ["bundle", "setting"])
def test_every_edge_keeps_the_one_deadline_rule(make_env: Callable[..., Env], limit: str) -> None:
    """A slow call is ended at the smallest limit, whichever edge it came through: the bundle's
    timeout_seconds or the service's predict_timeout, with the client allowing far more."""
    env = make_env(admin_token=TOKEN, **({"predict_timeout": 0.5} if limit == "setting" else {}))
    bundle = write_python_bundle(
        env.scratch(),
        name="tools",
        proto=TOOLS_PROTO % "",
        files={"tools_model.py": TOOLS_PY % "v1"},
        entry_point="tools_model:Tools",
        **({"timeout_seconds": 0.5} if limit == "bundle" else {}),
    )
    env.publish("tools", bundle)
    tools = Contract.compile(TOOLS_PROTO % "")
    http = create_app(env.settings, env.registry, env.repo).test_client()
    nap = {"seconds": 600.0}

    def own_http() -> None:
        r = http.post("/models/tools/methods/Sleep", json=nap, headers={"X-Timeout-Seconds": "60"})
        assert r.status_code == 504 and r.get_json()["error"]["kind"] == "deadline"

    def oip_http() -> None:
        tensor = {"name": "seconds", "datatype": "FP64", "shape": [1], "data": [600.0]}
        body = {"inputs": [tensor], "parameters": {"method": "Sleep"}}
        r = http.post("/v2/models/tools/infer", data=json.dumps(body), content_type="application/json")
        assert r.status_code == 504, r.get_data(as_text=True)

    def own_grpc() -> None:
        with pytest.raises(grpc.RpcError) as info:
            env.channel().unary_unary("/tools.Tools/Sleep")(
                tools.input_class("Sleep")(**nap).SerializeToString(), timeout=60
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert dict(info.value.trailing_metadata())["x-error-kind"] == "deadline"

    def oip_grpc() -> None:
        tensor = triton.InferInput("seconds", [1], "FP64")
        tensor.set_data_from_numpy(np.array([600.0]))
        e = failure(
            lambda: client(env).infer("tools", [tensor], parameters={"method": "Sleep"}, client_timeout=60)
        )
        assert e.status() == "StatusCode.DEADLINE_EXCEEDED" and "Sleep" in str(e)

    for edge in (own_http, oip_http, own_grpc, oip_grpc):
        started = time.monotonic()
        edge()
        assert time.monotonic() - started < 10, edge.__name__
