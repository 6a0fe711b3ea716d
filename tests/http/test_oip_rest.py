"""The Open Inference Protocol (KServe V2) REST routes byte by byte, over real HTTP (the app in werkzeug's
threaded WSGI server) and real Python models: the spec's error body on every /v2 answer, each
validation error naming its problem, binary tensor data written and read by hand, compressed bodies
(gzip, deflate) within the body limit, health and readiness per model and version."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.http.conftest import make_env
from tests.http.test_oip_tritonclient import served, write_kinds_bundle
from tests.waiting import wait_for

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SETOSA = (5.1, 3.5, 1.4, 0.2)
VIRGINICA = (6.7, 3.0, 5.2, 2.3)
LIMIT = 64 * 1024  # the service's max_body_bytes in these tests
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def base(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("oip-rest")
    bundles = {"iris": sample_bundles["iris-python"], "kinds": write_kinds_bundle(work / "kinds")}
    with served(make_env(work / "repo", bundles, max_body_bytes=LIMIT)) as address:
        yield f"http://{address}"


def flower(values: tuple[float, ...] = SETOSA, **extra: Any) -> dict[str, Any]:
    inputs = [{"name": n, "datatype": "FP64", "shape": [1], "data": [v]} for n, v in zip(FEATURES, values)]
    return {"inputs": inputs, **extra}


def infer(base: str, body: dict[str, Any] | bytes, model: str = "iris", **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{base}/v2/models/{model}/infer", data=data, headers=headers, timeout=60)


def spec_error(r: requests.Response, status: int) -> str:
    """The message of a V2 error answer, checking it has exactly the spec's body ``{"error": $string}``."""
    assert r.status_code == status, r.text
    doc = r.json()
    assert list(doc) == ["error"] and isinstance(doc["error"], str), doc
    return str(doc["error"])


def species(r: requests.Response) -> list[Any]:
    assert r.status_code == 200, r.text
    return next(t["data"] for t in r.json()["outputs"] if t["name"] == "species")


# ------------------------------------------------------------------------------------- health, metadata


def test_server_health_and_metadata(base: str) -> None:
    live = requests.get(f"{base}/v2/health/live", timeout=30)
    assert live.status_code == 200 and live.json() == {"live": True}
    ready = requests.get(f"{base}/v2/health/ready", timeout=30)
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    server = {"name": "model-runner", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
    assert requests.get(f"{base}/v2", timeout=30).json() == server
    assert requests.get(f"{base}/v2/", timeout=30).json() == server
    r = requests.get(f"{base}/v2/models/iris/ready", timeout=30)
    assert r.status_code == 200 and r.json() == {"name": "iris", "ready": True}
    assert spec_error(requests.get(f"{base}/v2/models/nobody/ready", timeout=30), 404) == "no model 'nobody'"
    msg = spec_error(requests.get(f"{base}/v2/models/iris/versions/2/ready", timeout=30), 404)
    assert msg == "model 'iris' has no version 2"


def test_every_v2_error_has_the_spec_body_and_other_routes_keep_theirs(base: str) -> None:
    assert spec_error(requests.get(f"{base}/v2/models/nobody", timeout=30), 404) == "no model 'nobody'"
    assert spec_error(infer(base, flower(), model="nobody"), 404) == "no model 'nobody'"
    # paths and verbs the V2 routes do not have (tritonclient's repository extension, say)
    r = requests.post(f"{base}/v2/repository/index", timeout=30)
    assert spec_error(r, 404) == "no endpoint POST /v2/repository/index"
    r = requests.get(f"{base}/v2/models/iris/infer", timeout=30)
    assert spec_error(r, 405) == "GET is not allowed on /v2/models/iris/infer"
    assert "POST" in r.headers["Allow"]
    # a body over the service's limit
    r = infer(base, b"{" + b" " * (LIMIT + 1) + b"}")
    assert "larger than the limit" in spec_error(r, 413)
    # the service's own routes keep the service's error object
    own = requests.get(f"{base}/models/nobody", timeout=30)
    assert own.status_code == 404 and own.json()["error"]["kind"] == "not_found"


# ------------------------------------------------------------------------------------------ validation


def _with(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    body = flower()
    change(body)
    return body


def _tensor(i: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["inputs"][i].update(fields)

    return change


def _drop(i: int, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body["inputs"][i].pop(key)


INVALID: dict[str, tuple[Any, int, str]] = {
    "every missing input": (
        {"inputs": []},
        400,
        "missing inputs 'sepal_length', 'sepal_width', 'petal_length', 'petal_width' of Classify",
    ),
    "one missing input": (
        _with(lambda b: b["inputs"].pop(1)),
        400,
        "missing input 'sepal_width' of Classify: send every input",
    ),
    "unknown datatype": (
        _with(_tensor(0, datatype="FLOAT64")),
        400,
        "input 'sepal_length': unknown datatype 'FLOAT64' (V2 datatypes: BOOL, UINT8,",
    ),
    "BOOL into FP64": (
        _with(_tensor(0, datatype="BOOL", data=[True])),
        400,
        "input 'sepal_length' is FP64 (field double sepal_length), not BOOL",
    ),
    "true as an FP64 element": (
        _with(_tensor(2, data=[True])),
        400,
        "input 'petal_length' is FP64: element 0 is true, not a number",
    ),
    "a string as an FP64 element": (
        _with(_tensor(2, data=["1.4"])),
        400,
        "input 'petal_length' is FP64: element 0 is \"1.4\", not a number",
    ),
    "shape holding more than the data": (
        _with(_tensor(1, shape=[2, 3])),
        400,
        "input 'sepal_width': shape [2, 3] holds 6 elements, its data has 1",
    ),
    "two values for a single field": (
        _with(_tensor(3, shape=[2], data=[0.2, 0.3])),
        400,
        "input 'petal_width' is a single value (field double petal_width): send a tensor of one element, not 2",
    ),
    "duplicate input names": (
        _with(lambda b: b["inputs"].append(dict(b["inputs"][0]))),
        400,
        "input 'sepal_length' is given twice",
    ),
    "an input that is no field": (
        _with(lambda b: b["inputs"].append({"name": "petal_colour", "datatype": "BYTES", "shape": [1]})),
        400,
        "input 'petal_colour' is not an input of Classify (its inputs: sepal_length, sepal_width,",
    ),
    "unknown requested output": (
        flower(outputs=[{"name": "species"}, {"name": "colour"}]),
        400,
        "output 'colour' is not an output of Classify (its outputs: species, probabilities)",
    ),
    "an output asked twice": (
        flower(outputs=[{"name": "species"}, {"name": "species"}]),
        400,
        "output 'species' is asked for twice",
    ),
    "classification asked": (
        flower(outputs=[{"name": "species", "parameters": {"classification": 2}}]),
        400,
        "output 'species': the classification extension is not implemented",
    ),
    "negative dimension": (
        _with(_tensor(0, shape=[-1])),
        400,
        "input 'sepal_length': \"shape\" is a list of dimensions (integers >= 0), not [-1]",
    ),
    "no datatype": (_with(_drop(0, "datatype")), 400, "input 'sepal_length' has no \"datatype\""),
    "no shape": (_with(_drop(0, "shape")), 400, "input 'sepal_length': \"shape\" is a list of dimensions"),
    "no data": (_with(_drop(0, "data")), 400, "input 'sepal_length' has no \"data\""),
    "data not an array": (_with(_tensor(0, data=5.1)), 400, "input 'sepal_length': \"data\" is an array"),
    "id not a string": (flower(id=42), 400, '"id" is a string, not a number'),
    "parameters not an object": (flower(parameters=[1]), 400, "parameters is an object, not an array"),
    "a parameter that is an object": (flower(parameters={"x": {}}), 400, "parameters.x is an object"),
    "no inputs": ({"id": "1"}, 400, 'a V2 inference request needs "inputs"'),
    "not an object": (
        [1, 2],
        400,
        'a V2 inference request is a JSON object with a list "inputs", not an array',
    ),
    "unknown rpc": (flower(parameters={"method": "Nope"}), 404, "parameters.method 'Nope' is not an rpc"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_each_invalid_request_is_refused_naming_the_problem(base: str, case: str) -> None:
    body, status, message = INVALID[case]
    assert message in spec_error(infer(base, body), status)


def test_the_data_plane_checks_still_apply(base: str) -> None:
    # enum names and message JSON are checked by the contract's own JSON mapping, after the tensors
    body = _kinds_body()
    body["inputs"][9]["data"] = ["PURPLE"]
    assert "colour" in spec_error(infer(base, body, model="kinds"), 400)


def _kinds_body(**changes: Any) -> dict[str, Any]:
    inputs = {
        "d": ("FP64", [1], [1.5]),
        "f": ("FP32", [1], [0.5]),
        "i32": ("INT32", [1], [-3]),
        "i64": ("INT64", [1], [2**62]),
        "u32": ("UINT32", [1], [7]),
        "u64": ("UINT64", [1], [2**64 - 1]),
        "flag": ("BOOL", [1], [False]),
        "text": ("BYTES", [1], ["x"]),
        "blob": ("BYTES", [1], ["y"]),
        "colour": ("BYTES", [1], ["BLUE"]),
        "values": ("FP64", [0], []),
        "words": ("BYTES", [2], ["a", "b"]),
        "points": ("BYTES", [0], []),
        "weights": ("BYTES", [1], ["{}"]),
    }
    for name, value in changes.items():
        if value is None:
            del inputs[name]
        else:
            inputs[name] = value
    return {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, (d, s, v) in inputs.items()]}


KINDS_INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "INT32 out of range": (
        _kinds_body(i32=("INT32", [1], [2**31])),
        "input 'i32' is INT32: element 0 is 2147483648, not an integer from -2147483648 to 2147483647",
    ),
    "UINT64 negative": (_kinds_body(u64=("UINT64", [1], [-1])), "input 'u64' is UINT64: element 0 is -1"),
    "a float for an integer": (
        _kinds_body(i64=("INT64", [1], [1.5])),
        "input 'i64' is INT64: element 0 is 1.5",
    ),
    "a number for BYTES": (_kinds_body(text=("BYTES", [1], [3])), "input 'text' is BYTES: element 0 is 3"),
    "a message that is not JSON": (
        _kinds_body(point=("BYTES", [1], ["{x"])),
        "input 'point': element 0 is not JSON",
    ),
    "two messages for a single one": (
        _kinds_body(point=("BYTES", [2], ["{}", "{}"])),
        "input 'point' is a single value (field kinds.Point point): send a tensor of one element "
        "(or none, to leave it unset), not 2",
    ),
    "a map as two elements": (
        _kinds_body(weights=("BYTES", [2], ["{}", "{}"])),
        "input 'weights' is a single value (field map<string, double> weights)",
    ),
    "a missing repeated field": (_kinds_body(values=None), "missing input 'values' of Echo"),
    "a missing map": (_kinds_body(weights=None, words=None), "missing inputs 'words', 'weights' of Echo"),
}


@pytest.mark.parametrize("case", list(KINDS_INVALID))
def test_each_invalid_tensor_of_every_kind_is_refused(base: str, case: str) -> None:
    body, message = KINDS_INVALID[case]
    assert message in spec_error(infer(base, body, model="kinds"), 400)


def test_optional_inputs_may_be_left_out_and_every_other_is_served(base: str) -> None:
    r = infer(base, _kinds_body(), model="kinds")
    assert r.status_code == 200, r.text
    outputs = {t["name"]: t for t in r.json()["outputs"]}
    assert outputs["u64"]["data"] == [2**64 - 1] and outputs["i64"]["data"] == [2**62]  # exact integers
    assert outputs["point"] == {"name": "point", "datatype": "BYTES", "shape": [0], "data": []}
    assert outputs["maybe"]["shape"] == [0] and outputs["values"]["shape"] == [0]
    assert outputs["weights"]["data"] == ["{}"] and outputs["colour"]["data"] == ["BLUE"]
    body = _kinds_body(maybe=("FP64", [1], [2.5]), point=("BYTES", [1, 1], ['{"x": 1}']))
    outputs = {t["name"]: t for t in infer(base, body, model="kinds").json()["outputs"]}
    assert outputs["maybe"]["data"] == [2.5] and json.loads(outputs["point"]["data"][0]) == {
        "x": 1.0,
        "y": 0.0,
    }


def test_bytes_that_are_not_text_are_answered_only_as_binary(base: str) -> None:
    header, tail = _binary_request(
        {"inputs": [{"name": "blob", "datatype": "BYTES", "shape": [1]}]}, [_bytes_tensor([b"\xff\xfe"])]
    )
    body = _kinds_body(blob=None)
    body["inputs"].append(header["inputs"][0])
    request = json.dumps(body).encode()
    r = infer(base, request + tail, model="kinds", **{HEADER: str(len(request))})
    assert "output 'blob' holds bytes that are not UTF-8 text" in spec_error(r, 400)
    body["outputs"] = [{"name": "blob", "parameters": {"binary_data": True}}]
    request = json.dumps(body).encode()
    r = infer(base, request + tail, model="kinds", **{HEADER: str(len(request))})
    answer, data = _binary_answer(r)
    assert answer["outputs"][0]["parameters"] == {"binary_data_size": 6}
    assert data == _bytes_tensor([b"\xff\xfe"])


# ---------------------------------------------------------------------------------- binary tensor data


def _fp64(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def _bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def _binary_request(body: dict[str, Any], chunks: list[bytes]) -> tuple[dict[str, Any], bytes]:
    """``body`` with binary_data_size set on each input from ``chunks`` (in order), and the tail."""
    for tensor, chunk in zip(body["inputs"], chunks):
        tensor.pop("data", None)
        tensor.setdefault("parameters", {})["binary_data_size"] = len(chunk)
    return body, b"".join(chunks)


def _binary_answer(r: requests.Response) -> tuple[dict[str, Any], bytes]:
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    length = int(r.headers[HEADER])
    return json.loads(r.content[:length]), r.content[length:]


def test_binary_inputs_and_outputs_by_hand(base: str) -> None:
    header, tail = _binary_request(flower(VIRGINICA, id="b-1"), [_fp64(v) for v in VIRGINICA])
    header["outputs"] = [
        {"name": "probabilities", "parameters": {"binary_data": True}},
        {"name": "species", "parameters": {"binary_data": True}},
    ]
    text = json.dumps(header).encode()
    r = infer(base, text + tail, **{HEADER: str(len(text)), "Content-Type": "application/octet-stream"})
    answer, data = _binary_answer(r)
    assert answer["id"] == "b-1" and answer["model_name"] == "iris" and answer["model_version"] == "1"
    assert [t["name"] for t in answer["outputs"]] == ["probabilities", "species"]  # the order asked
    assert answer["outputs"][0] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [3],
        "parameters": {"binary_data_size": 24},
    }
    probabilities = struct.unpack("<3d", data[:24])
    assert max(range(3), key=probabilities.__getitem__) == 2
    assert data[24:] == _bytes_tensor([b"virginica"])
    assert int(r.headers["Content-Length"]) == len(r.content)

    # every output as binary data by the request's parameter; one of them back to JSON by its own
    header["outputs"] = [{"name": "species", "parameters": {"binary_data": False}}, {"name": "probabilities"}]
    header["parameters"] = {"binary_data_output": True}
    text = json.dumps(header).encode()
    answer, data = _binary_answer(infer(base, text + tail, **{HEADER: str(len(text))}))
    assert answer["outputs"][0]["data"] == ["virginica"] and len(data) == 24

    # JSON and binary inputs mixed; a JSON answer has no header
    mixed, tail = _binary_request(flower(SETOSA), [_fp64(SETOSA[0])])
    mixed["inputs"][1:] = flower(SETOSA)["inputs"][1:]
    text = json.dumps(mixed).encode()
    r = infer(base, text + tail, **{HEADER: str(len(text))})
    assert species(r) == ["setosa"] and HEADER not in r.headers
    assert r.headers["Content-Type"] == "application/json"


def test_binary_data_that_does_not_add_up_is_refused(base: str) -> None:
    header, tail = _binary_request(flower(SETOSA), [_fp64(v) for v in SETOSA])
    text = json.dumps(header).encode()

    def send(body: bytes, length: str) -> str:
        return spec_error(infer(base, body, **{HEADER: length}), 400)

    msg = spec_error(infer(base, text + tail), 400)  # without the header
    assert msg.startswith("the JSON of the request is not UTF-8 text (byte ")
    assert msg.endswith(" (binary tensor data needs the Inference-Header-Content-Length header)")
    assert f"a number from 0 to {len(text) + 32}, not 'ten'" in send(text + tail, "ten")
    assert "a number from 0" in send(text + tail, str(len(text) + 33))
    msg = send(text + tail[:-8], str(len(text)))
    assert "input 'petal_width': binary_data_size 8 goes past the binary data (0 bytes left of 24" in msg
    msg = send(text + tail + b"\x00", str(len(text)))
    assert "33 bytes of binary data after its JSON header, its inputs' binary_data_size add up to 32" in msg

    header["inputs"][0]["data"] = [5.1]
    both = json.dumps(header).encode()
    assert "input 'sepal_length' has both \"data\" and parameters.binary_data_size" in send(
        both + tail, str(len(both))
    )
    odd, odd_tail = _binary_request(flower(SETOSA), [b"\x00" * 7, *(_fp64(v) for v in SETOSA[1:])])
    text = json.dumps(odd).encode()
    msg = send(text + odd_tail, str(len(text)))
    assert "input 'sepal_length': 7 bytes of binary data are not whole FP64 elements (8 bytes each)" in msg


def test_binary_bool_and_bytes_are_checked(base: str) -> None:
    body = _kinds_body(flag=None, words=None)
    body["inputs"] += [
        {"name": "flag", "datatype": "BOOL", "shape": [1]},
        {"name": "words", "datatype": "BYTES", "shape": [2]},
    ]

    def send(flag: bytes, words: bytes) -> requests.Response:
        header, tail = _binary_request({"inputs": body["inputs"][-2:]}, [flag, words])
        text = json.dumps(body).encode()
        return infer(base, text + tail, model="kinds", **{HEADER: str(len(text))})

    ok = send(b"\x01", _bytes_tensor([b"x", "é".encode()]))
    outputs = {t["name"]: t["data"] for t in ok.json()["outputs"]}
    assert outputs["flag"] == [True] and outputs["words"] == ["x", "é"]
    assert "input 'flag': BOOL element 0 is byte 2; a BOOL is one byte, 0 or 1" in spec_error(
        send(b"\x02", _bytes_tensor([b"x", b"y"])), 400
    )
    msg = spec_error(send(b"\x01", _bytes_tensor([b"x"]) + b"\x05\x00"), 400)
    assert "input 'words': BYTES binary data ends inside the 4-byte length of element 1" in msg
    msg = spec_error(send(b"\x01", _bytes_tensor([b"x"]) + struct.pack("<I", 9) + b"abc"), 400)
    assert "input 'words': BYTES element 1 says 9 bytes, 3 are left in its binary data" in msg
    msg = spec_error(send(b"\x01", _bytes_tensor([b"x", b"\xff"])), 400)
    assert "input 'words': element 1 is not UTF-8 text (byte 0); the field is a string" in msg


# ------------------------------------------------------------------------------------ compressed bodies


@pytest.mark.parametrize(
    "encoding,compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # the raw stream some clients send
        ("gzip, identity", gzip.compress),
    ],
    ids=["gzip", "deflate", "raw-deflate", "gzip-identity"],
)
def test_compressed_bodies(base: str, encoding: str, compress: Callable[[bytes], bytes]) -> None:
    plain = json.dumps(flower(VIRGINICA)).encode()
    assert species(infer(base, compress(plain), **{"Content-Encoding": encoding})) == ["virginica"]
    # binary tensor data inside: the header gives the length of the JSON before compression
    header, tail = _binary_request(flower(VIRGINICA), [_fp64(v) for v in VIRGINICA])
    text = json.dumps(header).encode()
    r = infer(base, compress(text + tail), **{"Content-Encoding": encoding, HEADER: str(len(text))})
    assert species(r) == ["virginica"]


def test_compressed_bodies_are_bounded_and_checked(base: str) -> None:
    plain = json.dumps(flower()).encode()
    # small on the wire, past max_body_bytes once decompressed
    bomb = gzip.compress(plain[:-1] + b" " * LIMIT + b"}")
    assert len(bomb) < LIMIT
    msg = spec_error(infer(base, bomb, **{"Content-Encoding": "gzip"}), 413)
    assert f"request body larger than the limit of {LIMIT} bytes once decompressed (gzip)" in msg
    # exactly the limit is fine
    exact = plain[:-1] + b" " * (LIMIT - len(plain)) + b"}"
    assert species(infer(base, gzip.compress(exact), **{"Content-Encoding": "gzip"})) == ["setosa"]

    assert "the body is not gzip data" in spec_error(infer(base, plain, **{"Content-Encoding": "gzip"}), 400)
    assert "the body is not deflate data" in spec_error(
        infer(base, b"\x00garbage", **{"Content-Encoding": "deflate"}), 400
    )
    truncated = gzip.compress(plain)[:-12]
    assert "the gzip body is truncated" in spec_error(
        infer(base, truncated, **{"Content-Encoding": "gzip"}), 400
    )
    extra = gzip.compress(plain) + b"junk"
    assert "the gzip body has 4 bytes after its end" in spec_error(
        infer(base, extra, **{"Content-Encoding": "gzip"}), 400
    )
    msg = spec_error(infer(base, plain, **{"Content-Encoding": "br"}), 415)
    assert msg == "Content-Encoding 'br' is not supported: send gzip, deflate or identity"


# -------------------------------------------------------------------------------- readiness, versions


def test_model_and_server_readiness_follow_versions_and_load_errors(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    env = make_env(tmp_path / "repo", {"iris": sample_bundles["iris-python"]})
    second = env.repository.publish("iris", sample_bundles["iris-python"], expected_version=1, caller="test")
    broken = tmp_path / "broken"
    shutil.copytree(sample_bundles["iris-python"], broken, ignore=shutil.ignore_patterns("__pycache__"))
    model = broken / "iris_model.py"
    model.write_text(
        model.read_text().replace("self.artifact_dir = artifact_dir", "raise RuntimeError('no weights')")
    )
    env.repository.publish("broken", broken, expected_version=None, caller="test")  # past validation
    wait_for(
        lambda: "broken" in env.registry.load_errors() and env.registry.snapshot()["iris"].version == second,
        what="v2 of iris served and broken's load error",
    )
    with served(env) as address:
        base = f"http://{address}"

        def get(path: str) -> requests.Response:
            return requests.get(f"{base}{path}", timeout=30)

        assert get(f"/v2/models/iris/versions/{second}/ready").json() == {"name": "iris", "ready": True}
        r = get("/v2/models/iris/versions/1/ready")  # stored, no longer current
        assert r.status_code == 400 and r.json() == {"name": "iris", "ready": False}
        assert spec_error(get("/v2/models/iris/versions/9/ready"), 404) == "model 'iris' has no version 9"
        assert (
            spec_error(get("/v2/models/iris/versions/1"), 404)
            == f"model 'iris' serves version {second}, not 1"
        )
        assert get("/v2/models/iris").json()["versions"] == [str(second)]

        r = get("/v2/models/broken/ready")
        assert r.status_code == 400 and r.json() == {"name": "broken", "ready": False}
        r = get("/v2/health/ready")
        assert r.status_code == 400 and r.json() == {"ready": False}
        assert get("/v2/health/live").json() == {"live": True}
        msg = spec_error(infer(base, flower(), model="broken"), 503)
        assert msg.startswith("model 'broken' is not loaded:") and "no weights" in msg
