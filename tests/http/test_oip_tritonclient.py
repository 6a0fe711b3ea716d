"""The Open Inference Protocol (KServe V2) REST routes as tritonclient's HTTP client sees them: a real server
(the app in werkzeug's threaded WSGI server) over the real sample models (Java iris, Python iris) and a
Python model echoing one field of every kind; binary tensor data (the client's default) and JSON data,
compressed requests, and errors whose ``str(e)`` names the problem."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.http.conftest import Env, make_env

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
VIRGINICA = (6.7, 3.0, 5.2, 2.3)
SETOSA = (5.1, 3.5, 1.4, 0.2)

# A model whose one rpc echoes a message holding a field of every kind the V2 mapping knows.
KINDS_PROTO = textwrap.dedent("""
    syntax = "proto3";
    package kinds;
    enum Colour { RED = 0; GREEN = 1; BLUE = 2; }
    message Point { double x = 1; double y = 2; }
    message Everything {
      double d = 1;
      float f = 2;
      int32 i32 = 3;
      int64 i64 = 4;
      uint32 u32 = 5;
      uint64 u64 = 6;
      bool flag = 7;
      string text = 8;
      bytes blob = 9;
      Colour colour = 10;
      repeated double values = 11;
      repeated string words = 12;
      Point point = 13;
      repeated Point points = 14;
      map<string, double> weights = 15;
      optional double maybe = 16;
    }
    service Kinds { rpc Echo (Everything) returns (Everything); }
""")
KINDS_MODEL = textwrap.dedent('''
    class Kinds:
        """Echoes its request."""

        def Echo(self, request):  # noqa: N802 (named like the rpc)
            return request
''')


def write_kinds_bundle(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "kinds_model.py").write_text(KINDS_MODEL)
    (dest / "model.proto").write_text(KINDS_PROTO)
    meta = {"name": "kinds", "runtime": "python", "entry_point": "kinds_model:Kinds", "description": "test"}
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


@contextmanager
def served(env: Env) -> Iterator[str]:
    """``env``'s app behind werkzeug's threaded WSGI server on a free port: yields host:port."""
    server = make_server("127.0.0.1", 0, env.app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="oip-test-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        env.registry.stop()


@pytest.fixture(scope="module")
def server(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("oip-tritonclient")
    bundles = {
        "iris": sample_bundles["iris"],
        "iris-python": sample_bundles["iris-python"],
        "kinds": write_kinds_bundle(work / "kinds"),
    }
    with served(make_env(work / "repo", bundles)) as address:
        yield address


@pytest.fixture
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server, connection_timeout=30, network_timeout=60)
    yield client
    client.close()


def flower(values: tuple[float, ...], *, binary: bool = True) -> list[triton.InferInput]:
    inputs = []
    for name, value in zip(FEATURES, values):
        tensor = triton.InferInput(name, [1], "FP64")
        tensor.set_data_from_numpy(np.array([value], dtype=np.float64), binary_data=binary)
        inputs.append(tensor)
    return inputs


def error_of(call: Any, *args: Any, **kwargs: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call(*args, **kwargs)
    str(info.value)  # what user code does with an exception: it must not raise (a dict body made it)
    return info.value


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.get_server_metadata() == {
        "name": "model-runner",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }


def test_model_ready_per_version(client: triton.InferenceServerClient) -> None:
    assert client.is_model_ready("iris") is True
    assert client.is_model_ready("iris", "1") is True
    assert client.is_model_ready("iris", "7") is False
    assert client.is_model_ready("nobody") is False


def test_model_metadata_as_the_spec_shapes_it(client: triton.InferenceServerClient) -> None:
    meta = client.get_model_metadata("iris")
    assert meta == {
        "name": "iris",
        "versions": ["1"],
        "platform": "model-runner_java",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [1]} for n in FEATURES],
        "outputs": [
            {"name": "species", "datatype": "BYTES", "shape": [1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1]},
        ],
        "parameters": {
            "method": "Classify",
            "methods": "Classify,ClassifyBatch,ClassifyMatrix",
            "service": "iris.IrisClassifier",
        },
    }
    assert client.get_model_metadata("iris", "1") == meta
    assert client.get_model_metadata("iris-python")["platform"] == "model-runner_python"
    err = error_of(client.get_model_metadata, "iris", "7")
    assert err.status() == "404" and "serves version 1, not 7" in str(err)


def test_message_fields_are_reported_not_dropped(client: triton.InferenceServerClient) -> None:
    meta = client.get_model_metadata("kinds")
    inputs = {t["name"]: t for t in meta["inputs"]}
    assert list(inputs) == [
        "d", "f", "i32", "i64", "u32", "u64", "flag", "text", "blob", "colour",
        "values", "words", "point", "points", "weights", "maybe",
    ]  # fmt: skip
    assert {n: t["datatype"] for n, t in inputs.items() if t["datatype"] != "BYTES"} == {
        "d": "FP64", "f": "FP32", "i32": "INT32", "i64": "INT64", "u32": "UINT32", "u64": "UINT64",
        "flag": "BOOL", "values": "FP64", "maybe": "FP64",
    }  # fmt: skip
    json_text = {"content_type": "application/json"}
    assert inputs["point"] == {
        "name": "point",
        "datatype": "BYTES",
        "shape": [-1],
        "parameters": {**json_text, "message": "kinds.Point", "optional": True},
    }
    assert inputs["points"]["shape"] == [-1]
    assert inputs["points"]["parameters"] == {**json_text, "message": "kinds.Point"}
    assert inputs["weights"]["shape"] == [1]
    assert inputs["weights"]["parameters"] == {**json_text, "message": "map<string, double>"}
    assert inputs["maybe"] == {
        "name": "maybe",
        "datatype": "FP64",
        "shape": [-1],
        "parameters": {"optional": True},
    }
    assert inputs["values"] == {"name": "values", "datatype": "FP64", "shape": [-1]}
    assert inputs["d"] == {"name": "d", "datatype": "FP64", "shape": [1]}


@pytest.mark.parametrize("model", ["iris", "iris-python"])
def test_infer_with_binary_tensors_the_default(client: triton.InferenceServerClient, model: str) -> None:
    result = client.infer(model, flower(VIRGINICA), request_id="req-7")
    answer = result.get_response()
    assert answer["model_name"] == model and answer["model_version"] == "1" and answer["id"] == "req-7"
    # no outputs named: the client asks for every output as binary data
    assert result.get_output("probabilities")["parameters"] == {"binary_data_size": 24}
    assert result.as_numpy("species").tolist() == [b"virginica"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float64 and probabilities.shape == (3,)
    assert int(np.argmax(probabilities)) == 2 and abs(float(probabilities.sum()) - 1.0) < 1e-6


def test_infer_with_json_tensors_and_chosen_outputs(client: triton.InferenceServerClient) -> None:
    outputs = [
        triton.InferRequestedOutput("species", binary_data=False),
        triton.InferRequestedOutput("probabilities", binary_data=True),
    ]
    result = client.infer("iris", flower(SETOSA, binary=False), outputs=outputs)
    species = result.get_output("species")
    assert species == {"name": "species", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}
    assert result.get_output("probabilities")["parameters"] == {"binary_data_size": 24}
    assert int(np.argmax(result.as_numpy("probabilities"))) == 0
    # one output only, as JSON
    only = client.infer(
        "iris", flower(SETOSA), outputs=[triton.InferRequestedOutput("species", binary_data=False)]
    )
    assert [t["name"] for t in only.get_response()["outputs"]] == ["species"]
    assert only.as_numpy("species").tolist() == ["setosa"]  # JSON data: numpy holds it as str


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_infer_with_a_compressed_request(client: triton.InferenceServerClient, algorithm: str) -> None:
    for binary in (True, False):
        result = client.infer(
            "iris", flower(VIRGINICA, binary=binary), request_compression_algorithm=algorithm
        )
        assert result.as_numpy("species").tolist() == [b"virginica"]


def _everything(*, binary: bool) -> tuple[list[triton.InferInput], dict[str, Any]]:
    """Inputs for every field of kinds.Everything (``maybe`` left out), and what each output holds."""
    values: dict[str, tuple[str, np.ndarray]] = {
        "d": ("FP64", np.array([1.5])),
        "f": ("FP32", np.array([0.25], dtype=np.float32)),
        "i32": ("INT32", np.array([-7], dtype=np.int32)),
        "i64": ("INT64", np.array([2**60 + 1], dtype=np.int64)),
        "u32": ("UINT32", np.array([4_000_000_000], dtype=np.uint32)),
        "u64": ("UINT64", np.array([2**63 + 5], dtype=np.uint64)),
        "flag": ("BOOL", np.array([True])),
        "text": ("BYTES", np.array(["héllo".encode()], dtype=np.object_)),
        "blob": ("BYTES", np.array([b"\x00\xff\x10" if binary else b"plain"], dtype=np.object_)),
        "colour": ("BYTES", np.array([b"GREEN"], dtype=np.object_)),
        "values": ("FP64", np.array([[1.0, 2.0], [3.0, 4.0]])),
        "words": ("BYTES", np.array([b"a", b"bb", b""], dtype=np.object_)),
        "point": ("BYTES", np.array([b'{"x": 1, "y": 2}'], dtype=np.object_)),
        "points": ("BYTES", np.array([b'{"x": 3}', b'{"y": -4.5}'], dtype=np.object_)),
        "weights": ("BYTES", np.array([b'{"a": 0.5, "b": 2}'], dtype=np.object_)),
    }
    inputs = []
    for name, (datatype, array) in values.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs, {name: array for name, (_, array) in values.items()}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_kind_of_field_round_trips(client: triton.InferenceServerClient, binary: bool) -> None:
    inputs, sent = _everything(binary=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in [*sent, "maybe"]]
    result = client.infer("kinds", inputs, outputs=outputs)

    def out(name: str) -> list[Any]:
        got = result.as_numpy(name)
        assert got is not None, name
        return [v.encode() if isinstance(v, str) else v for v in got.tolist()]  # JSON data comes as str

    for name in ("d", "f", "i32", "i64", "u32", "u64", "flag", "text", "blob", "colour", "words"):
        assert out(name) == sent[name].tolist(), name
    assert result.get_output("i64")["datatype"] == "INT64"
    assert out("values") == [1.0, 2.0, 3.0, 4.0]  # a repeated field answers one dimension
    assert result.get_output("values")["shape"] == [4]
    assert json.loads(out("point")[0]) == {"x": 1.0, "y": 2.0}
    assert [json.loads(p) for p in out("points")] == [{"x": 3.0, "y": 0.0}, {"x": 0.0, "y": -4.5}]
    assert json.loads(out("weights")[0]) == {"a": 0.5, "b": 2.0}
    assert result.get_output("maybe")["shape"] == [0]  # left out: the model left it unset
    assert out("maybe") == []


def test_errors_name_the_problem(client: triton.InferenceServerClient) -> None:
    err = error_of(client.infer, "nobody", flower(SETOSA))
    assert err.status() == "404" and str(err) == "[404] no model 'nobody'"

    err = error_of(client.infer, "iris", flower(SETOSA)[:2])
    assert err.status() == "400"
    assert "missing inputs 'petal_length', 'petal_width'" in str(err)

    bad_shape = flower(SETOSA)
    bad_shape[0] = triton.InferInput("sepal_length", [2], "FP64")
    bad_shape[0].set_data_from_numpy(np.array([5.1, 5.2]))
    err = error_of(client.infer, "iris", bad_shape)
    assert err.status() == "400"
    assert "input 'sepal_length' is a single value (field double sepal_length)" in str(err)

    miscounted = flower(SETOSA)
    miscounted[1] = triton.InferInput("sepal_width", [2], "FP64")
    miscounted[1].set_data_from_numpy(np.array([3.5, 3.6]))
    miscounted[1].set_shape([1])  # says shape [1], sends 16 bytes of data
    err = error_of(client.infer, "iris", miscounted)
    assert "input 'sepal_width': shape [1] holds 1 element, its data has 2" in str(err)

    as_fp32 = flower(SETOSA)
    as_fp32[2] = triton.InferInput("petal_length", [1], "FP32")
    as_fp32[2].set_data_from_numpy(np.array([1.4], dtype=np.float32))
    err = error_of(client.infer, "iris", as_fp32)
    assert "input 'petal_length' is FP64 (field double petal_length), not FP32" in str(err)

    err = error_of(client.infer, "iris", flower(SETOSA), outputs=[triton.InferRequestedOutput("colour")])
    assert err.status() == "400" and "output 'colour' is not an output of Classify" in str(err)

    err = error_of(client.infer, "iris", flower(SETOSA), model_version="3")
    assert err.status() == "404" and "serves version 1, not 3" in str(err)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_real_serve_answers_tritonclient(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """The same client against `model-runner serve` (gunicorn's buffering workers in front of the app)."""
    from tests.e2e.serve_process import start_serve

    serve = start_serve([str(sample_bundles["iris-python"])], tmp_path, workers=1)
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{serve.port}", network_timeout=60)
        assert client.is_server_ready() and client.is_model_ready("iris-python")
        assert client.get_model_metadata("iris-python")["platform"] == "model-runner_python"
        for algorithm in (None, "gzip", "deflate"):
            result = client.infer("iris-python", flower(VIRGINICA), request_compression_algorithm=algorithm)
            assert result.as_numpy("species").tolist() == [b"virginica"]
        err = error_of(client.infer, "iris-python", flower(VIRGINICA)[:3])
        assert err.status() == "400" and "missing input 'petal_width' of Classify" in str(err)
        client.close()
    finally:
        serve.stop()
