"""A client built only from server reflection (v1 and v1alpha) discovers and calls the served models."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from tests.grpc.conftest import SETOSA, VERSICOLOR, VIRGINICA, Env, iris_python_bundle, tools_bundle
from tests.grpc.reflection_client import ReflectionClient, ReflectionError

ROWS = [SETOSA, VERSICOLOR, VIRGINICA]


def _call_iris(client: ReflectionClient, model: str) -> dict[str, str]:
    """Call every rpc of the iris contract on ``model``; returns the initial metadata of the last call."""
    svc = client.service("iris.IrisClassifier")
    assert sorted(svc.methods) == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    for row in ROWS:
        out, md = client.call(
            svc, "Classify", json_format.ParseDict(row, svc.input_class("Classify")()), model=model
        )
        assert out.species.lower().endswith(("setosa", "versicolor", "virginica"))
        assert md["x-model-name"] == model
    batch = json_format.ParseDict({"rows": ROWS}, svc.input_class("ClassifyBatch")())
    out, _ = client.call(svc, "ClassifyBatch", batch, model=model)
    species = [p.species.lower().rpartition("-")[2] for p in out.predictions]
    assert species == ["setosa", "versicolor", "virginica"]
    matrix = json_format.ParseDict(
        {"rows": [{"values": list(r.values())} for r in ROWS]}, svc.input_class("ClassifyMatrix")()
    )
    out, md = client.call(svc, "ClassifyMatrix", matrix, model=model)
    assert list(out.indices) == [0, 1, 2]
    return md


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_client_calls_python_models(env: Env, version: str) -> None:
    env.publish("iris-python", iris_python_bundle(env.scratch()))
    env.publish("challenger", iris_python_bundle(env.scratch(), name="challenger"))
    env.publish("tools", tools_bundle(env.scratch()))
    client = ReflectionClient(env.channel(), version)

    services = client.list_services()
    assert {
        "iris.IrisClassifier",
        "tools.Tools",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(services)

    for model in ("iris-python", "challenger"):
        md = _call_iris(client, model)
        assert md["x-model-version"] == "1"

    tools = client.service("tools.Tools")
    assert sorted(tools.methods) == ["Echo", "Fail", "Sleep"]
    # a method owned by one model needs no x-model-name
    out, md = client.call(tools, "Echo", tools.input_class("Echo")(text="hi"))
    assert out.text == "v1:hi"
    assert md == {"x-model-name": "tools", "x-model-version": "1"}


def test_reflection_lookups(env: Env) -> None:
    env.publish("iris-python", iris_python_bundle(env.scratch()))
    env.publish("tools", tools_bundle(env.scratch()))
    client = ReflectionClient(env.channel())

    # symbols: service, method, message, field; each answer holds the defining file
    for symbol in (
        "iris.IrisClassifier",
        "iris.IrisClassifier.Classify",
        "iris.IrisInput",
        "iris.IrisInput.sepal_length",
        "tools.Text",
    ):
        files = client.file_containing_symbol(symbol)
        assert files and files[0].package == symbol.split(".")[0]
    # each model's files are named after the model (every bundle calls its contract model.proto)
    (iris_file,) = client.file_containing_symbol("iris.IrisInput")
    (tools_file,) = client.file_containing_symbol("tools.Tools")
    assert (iris_file.name, tools_file.name) == ("iris-python/model.proto", "tools/model.proto")
    assert client.file_by_filename("tools/model.proto")[0].package == "tools"
    # the server's own services are described too
    assert client.file_containing_symbol("grpc.health.v1.Health.Check")[0].package == "grpc.health.v1"
    v1 = client.file_containing_symbol("grpc.reflection.v1.ServerReflection")[0]
    assert v1.package == "grpc.reflection.v1"
    assert client.service("grpc.reflection.v1.ServerReflection").methods == ["ServerReflectionInfo"]

    for ask in (
        lambda: client.file_containing_symbol("iris.Nope"),
        lambda: client.file_by_filename("nope.proto"),
        lambda: client.ask(
            file_containing_extension={"containing_type": "iris.IrisInput", "extension_number": 100}
        ),
        lambda: client.ask(all_extension_numbers_of_type="iris.Nope"),
    ):
        with pytest.raises(ReflectionError) as err:
            ask()
        assert err.value.code == grpc.StatusCode.NOT_FOUND.value[0]
    numbers = client.ask(all_extension_numbers_of_type="iris.IrisInput").all_extension_numbers_response
    assert numbers.base_type_name == "iris.IrisInput" and list(numbers.extension_number) == []


def test_reflection_follows_deletes(env: Env) -> None:
    env.publish("tools", tools_bundle(env.scratch()))
    client = ReflectionClient(env.channel())
    assert "tools.Tools" in client.list_services()
    env.repo.delete("tools", caller="test")
    env.wait_served("tools", None)
    assert "tools.Tools" not in client.list_services()
    with pytest.raises(ReflectionError):
        client.file_containing_symbol("tools.Tools")


def test_reflection_client_calls_every_sample(env: Env, sample_bundles: dict) -> None:
    """Every sample model (Java POJO, proto-native, Weka, Python) called through reflection only."""
    for name in ("iris", "iris-proto", "weka", "iris-python"):
        env.publish(name, sample_bundles[name], wait=False)
    for name in ("iris", "iris-proto", "weka", "iris-python"):
        env.wait_served(name, 1)
    assert env.registry.load_errors() == {}
    for version in ("v1", "v1alpha"):
        client = ReflectionClient(env.channel(), version)
        assert "iris.IrisClassifier" in client.list_services()
        for name in ("iris", "iris-proto", "weka", "iris-python"):
            md = _call_iris(client, name)
            assert md == {"x-model-name": name, "x-model-version": "1"}
    # a model exception reaches the client as INTERNAL naming the exception class and its message
    svc = ReflectionClient(env.channel()).service("iris.IrisClassifier")
    bad = json_format.ParseDict({"rows": [{"values": [1, 2, 3]}]}, svc.input_class("ClassifyMatrix")())
    raised = {
        "iris": "java.lang.IllegalArgumentException",
        "iris-proto": "java.lang.IllegalArgumentException",
        "weka": "java.lang.IllegalArgumentException",
        "iris-python": "ValueError",
    }
    for name, exception in raised.items():
        with pytest.raises(grpc.RpcError) as err:
            ReflectionClient(env.channel()).call(svc, "ClassifyMatrix", bad, model=name)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert exception in err.value.details() and "row 0 has 3" in err.value.details()


def test_stock_reflection_client_database(env: Env) -> None:
    """grpcio-reflection's own client-side descriptor database (v1alpha) resolves our services."""
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    env.publish("iris-python", iris_python_bundle(env.scratch()))
    env.publish("tools", tools_bundle(env.scratch()))
    db = ProtoReflectionDescriptorDatabase(env.channel())
    assert {"iris.IrisClassifier", "tools.Tools"} <= set(db.get_services())
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("iris.IrisClassifier")
    assert [m.name for m in service.methods] == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    assert pool.FindMessageTypeByName("iris.IrisInput").fields_by_name["petal_width"].number == 4
    assert pool.FindServiceByName("tools.Tools").methods_by_name["Echo"].input_type.full_name == "tools.Text"


def test_shared_service_with_different_contracts(env: Env) -> None:
    """A challenger whose contract has one more rpc: that rpc goes to it without x-model-name, and
    reflection describes the service with every method, consistently for services and messages."""
    env.publish("tools-b", tools_bundle(env.scratch(), name="tools-b", label="b", shout=True))
    env.publish("tools", tools_bundle(env.scratch()))  # loaded last, fewer methods
    client = ReflectionClient(env.channel())
    svc = client.service("tools.Tools")
    assert sorted(svc.methods) == ["Echo", "Fail", "Shout", "Sleep"]
    (service_file,) = client.file_containing_symbol("tools.Tools")
    (message_file,) = client.file_containing_symbol("tools.Text")
    assert service_file.name == message_file.name == "tools-b/model.proto"

    out, md = client.call(svc, "Shout", svc.input_class("Shout")(text="hi"))  # only tools-b has it
    assert out.text == "HI!" and md["x-model-name"] == "tools-b"
    with pytest.raises(grpc.RpcError) as err:
        client.call(svc, "Echo", svc.input_class("Echo")(text="hi"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "tools, tools-b" in err.value.details()
    out, md = client.call(svc, "Echo", svc.input_class("Echo")(text="hi"), model="tools")
    assert out.text == "v1:hi" and md["x-model-name"] == "tools"
