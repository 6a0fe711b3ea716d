"""Edges that used to answer 500 (or worse) answer 4xx with a JSON error now, name what they were sent truly,
and keep their error bodies bounded: deep or non-object JSON on the V2 inference path, NUL characters in
model and method names, non-ASCII model names, a bundle whose metadata names another model, a zip of
zero-filled entries, a JSON true for a double, a Java StackOverflowError, Python tracebacks and unexpected
errors (nothing of the server's insides reaches a caller unless the error_traces setting says so).

Through the Flask test client over a real repository, registry and models (tests/http/test_edges_served.py
sends the NUL names through real gunicorn)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import struct
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.bundle import write_bundle_zip
from runner.http.app import create_app
from runner.http.errors import MAX_MESSAGE_CHARS
from runner.http.uploads import declared_name, name_warning
from runner.serving.admin import UploadParts
from tests.bridge.conftest import build_bundle
from tests.http.conftest import Env, make_env, write_toy_bundle

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")

# A Python model that fails on request: with a long message, or deep in its own code (a traceback).
EDGY_MODEL = textwrap.dedent("""
    class Edgy:
        def fail(self, size: int) -> str:
            if size:
                raise ValueError("x" * size)
            return ""

        def recurse(self, depth: int) -> int:
            return depth if depth <= 0 else self.recurse(depth + 1)
""")
EDGY_PROTO = textwrap.dedent("""
    syntax = "proto3";
    package edgy;
    message FailRequest { int32 size = 1; }
    message FailReply { string value = 1; }
    message RecurseRequest { int32 depth = 1; }
    message RecurseReply { int32 value = 1; }
    service Edgy {
      rpc Fail (FailRequest) returns (FailReply);
      rpc Recurse (RecurseRequest) returns (RecurseReply);
    }
""")
# The wire echo model of tests/bridge/java/wire: Overflow recurses until the JVM's stack overflows.
OVERFLOW_PROTO = textwrap.dedent("""
    syntax = "proto3";
    package wire;
    message Node { Node child = 1; int32 value = 2; string label = 3; }
    service WireEcho { rpc Overflow (Node) returns (Node); }
""")


def edgy_bundle(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "edgy_model.py").write_text(EDGY_MODEL)
    (dest / "model.proto").write_text(EDGY_PROTO)
    meta = {
        "name": "edgy",
        "runtime": "python",
        "entry_point": "edgy_model:Edgy",
        "examples": {"Fail": [{"size": 0}], "Recurse": [{"depth": 0}]},
    }
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def overflow_bundle(dest: Path) -> Path:
    shutil.copytree(build_bundle("wire"), dest)
    (dest / "model.proto").write_text(OVERFLOW_PROTO)
    meta = {
        "name": "overflow",
        "runtime": "java",
        "entry_point": "org.modelrunner.tests.wire.WireEcho",
        "examples": {"Overflow": [{"value": 0}]},
    }
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="module")
def env(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("edges")
    bundles = {
        "iris": sample_bundles["iris"],
        "iris-python": sample_bundles["iris-python"],
        "toy": write_toy_bundle(tmp / "toy"),
        "edgy": edgy_bundle(tmp / "edgy"),
        "overflow": overflow_bundle(tmp / "overflow"),
    }
    env = make_env(tmp / "repo", bundles)
    yield env
    env.registry.stop()


def error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["kind"] == kind, body
    assert isinstance(body["error"]["detail"], dict) and body["error"]["message"]
    return dict(body["error"])


def v2_error(response: Any, status: int) -> str:
    """The Open Inference Protocol's error body on /v2 routes: {"error": "<message>"}."""
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return str(body["error"])


def with_traces(env: Env) -> Any:
    """A client of the same service with the error_traces setting on."""
    settings = type(env.settings)(**{**env.settings.__dict__, "error_traces": True})
    return create_app(settings, env.registry, env.repository, admin=env.admin).test_client()


# ------------------------------------------------------------------------------ the V2 inference path


def test_v2_infer_refuses_json_nested_10k_deep(env: Env) -> None:
    # json's decoder recursed to a RecursionError: 500 internal; the depth limit applies here too now
    deep = "[" * 10_000 + "]" * 10_000
    for body in (
        deep,
        '{"inputs": ' + deep + "}",
        '{"id": "x", "inputs": [{"name": "a", "data": ' + deep + "}]}",
    ):
        message = v2_error(
            env.client.post("/v2/models/iris/infer", data=body, content_type="application/json"), 400
        )
        assert "nested deeper than 64" in message


@pytest.mark.parametrize("body", ["[1]", '"inputs"', "null", "1", "true", "", "[{}]"])
def test_v2_infer_refuses_a_body_that_is_not_an_object(env: Env, body: str) -> None:
    message = v2_error(
        env.client.post("/v2/models/iris/infer", data=body, content_type="application/json"), 400
    )
    assert "JSON object" in message


def test_v2_infer_refuses_bodies_that_are_not_json_or_utf8(env: Env) -> None:
    c = env.client
    v2_error(c.post("/v2/models/iris/infer", data="{not json", content_type="application/json"), 400)
    v2_error(c.post("/v2/models/iris/infer", data=b"\xff\xfe", content_type="application/json"), 400)


def test_v2_infer_with_odd_output_names_is_refused_naming_the_entry(env: Env) -> None:
    # a non-string output name was a 500; the protocol's validation refuses it, naming the entry
    tensors = [
        {"name": n, "datatype": "FP64", "shape": [1], "data": [v]} for n, v in zip(FEATURES, FLOWER.values())
    ]
    r = env.client.post(
        "/v2/models/iris/infer", json={"inputs": tensors, "outputs": [{"name": [1]}, {"name": "species"}]}
    )
    assert "outputs[0]" in v2_error(r, 400)


# ------------------------------------------------------------------------------ names in the URL


@pytest.mark.parametrize("path", ["/models/iris%00/methods/Classify", "/models/%00/methods/Classify"])
def test_a_model_name_with_nul_is_not_found_and_never_echoed_into_a_header(env: Env, path: str) -> None:
    r = env.client.post(path, json=FLOWER)
    err = error(r, 404, "not_found")
    assert err["detail"]["model"].endswith("\x00")
    assert "X-Model-Name" not in r.headers and "X-Model-Version" not in r.headers


@pytest.mark.parametrize("model", ["iris", "iris-python", "toy"])
def test_a_method_name_with_nul_is_not_found(env: Env, model: str) -> None:
    # the contract's method lookup (upb) stops at a NUL: "Classify\0" found Classify, and the Java model
    # then had no such binding (500 model_error)
    r = env.client.post(f"/models/{model}/methods/Classify%00", json=FLOWER)
    err = error(r, 404, "method_not_found")
    assert err["detail"]["method"] == "Classify\x00"
    assert r.headers["X-Model-Name"] == model  # the model was found: the header names it truly


def test_unicode_model_names_come_back_intact(env: Env) -> None:
    for name in ("été", "模型", "ü-ß"):
        quoted = "".join(f"%{b:02X}" for b in name.encode())
        err = error(env.client.post(f"/models/{quoted}/methods/Classify", json=FLOWER), 404, "not_found")
        assert err["detail"]["model"] == name and repr(name) in err["message"]
        err = error(env.client.get(f"/models/{quoted}"), 400, "bad_input")  # read routes: werkzeug's decoding
        assert err["detail"]["name"] == name


# ------------------------------------------------------------------------------ uploads


def test_a_bundle_named_otherwise_in_its_metadata_is_published_with_a_warning(
    env: Env, tmp_path: Path
) -> None:
    # the URL's name decides (Admin.upload's rule); the answer says so instead of saying nothing
    toy = write_toy_bundle(tmp_path / "toy")  # metadata.json: "name": "toy"
    r = env.client.put(
        "/models/toy-copy", data=write_bundle_zip(toy), content_type="application/zip", headers=env.auth
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    assert answer["name"] == "toy-copy"
    assert len(answer["warnings"]) == 1
    assert "'toy'" in answer["warnings"][0] and "'toy-copy'" in answer["warnings"][0]
    # the same name: no warning
    r = env.client.put(
        "/models/toy", data=write_bundle_zip(toy), content_type="application/zip", headers=env.auth
    )
    assert r.status_code == 200 and "warnings" not in r.get_json()
    # a multipart upload's metadata part is read the same way
    parts = UploadParts(jar=b"", metadata={"name": "elsewhere"})
    assert name_warning("toy", declared_name(parts)) is not None
    assert name_warning("toy", declared_name(UploadParts(jar=b""))) is None


def zeros_zip(entries: int, size: int = 1024 * 1024) -> bytes:
    """A bundle zip with ``entries`` deflated entries of ``size`` zero bytes each, written by hand: the
    zeros are compressed once (zipfile would compress each entry again, seconds of CPU for 900 MiB)."""
    zeros = bytes(size)
    deflated = _deflate(zeros)
    files: list[tuple[str, bytes, int, int]] = [  # name, compressed bytes, crc, size
        (n, _deflate(d), zlib.crc32(d), len(d))
        for n, d in (
            (
                "metadata.json",
                json.dumps({"name": "bomb", "runtime": "python", "entry_point": "m:M"}).encode(),
            ),
            ("model.proto", b'syntax = "proto3";'),
        )
    ]
    files += [(f"data/zeros-{i:04d}.bin", deflated, zlib.crc32(zeros), size) for i in range(entries)]
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, crc, length in files:
        offset = out.tell()
        raw = name.encode()
        out.write(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), length, len(raw), 0)
        )
        out.write(raw + data)
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(data),
                length,
                len(raw),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw
        )
    start = out.tell()
    out.write(central.getvalue())
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(central.getvalue()), start, 0)
    )
    return out.getvalue()


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def test_many_zero_filled_entries_are_refused_by_the_total_ratio(env: Env) -> None:
    # 900 entries of 1 MiB of zeros, about 1 MB on the wire: each entry is at the per-entry floor (1 MiB),
    # so only the whole archive's ratio tells; 901 MB per version were written before
    data = zeros_zip(900)
    assert len(data) < 2 * 1024 * 1024
    staging = env.repository.root / "staging"
    err = error(
        env.client.put("/models/bomb", data=data, content_type="application/zip", headers=env.auth),
        413,
        "too_large",
    )
    assert "zip bomb" in err["message"] and err["detail"]["unpacked"] >= 900 * 1024 * 1024
    assert env.repository.current_version("bomb") is None
    assert not any(staging.iterdir()) if staging.exists() else True


# ------------------------------------------------------------------------------ JSON values


def test_a_json_true_is_not_a_double(env: Env) -> None:
    for model in ("iris", "iris-python"):
        err = error(
            env.client.post(f"/models/{model}/methods/Classify", json={**FLOWER, "sepal_width": True}),
            400,
            "bad_input",
        )
        assert err["detail"]["path"] == "IrisInput.sepal_width"
    err = error(
        env.client.post("/models/iris/methods/ClassifyBatch", json={"rows": [FLOWER, {"petalWidth": False}]}),
        400,
        "bad_input",
    )
    assert err["detail"]["path"] == "IrisBatch.rows[1].petalWidth"


# ------------------------------------------------------------------------------ bounded error bodies


def test_a_java_stack_overflow_answers_a_bounded_error_and_logs_its_stack(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="runner.http.errors"):
        r = env.client.post("/models/overflow/methods/Overflow", json={"value": 1})
    err = error(r, 500, "model_error")
    assert "StackOverflowError" in err["message"]
    assert len(r.get_data()) < 4096, len(r.get_data())  # was 60 KB of stack trace
    assert "java_stack" not in err["detail"]
    request_id = err["detail"]["request_id"]
    assert r.headers["X-Request-Id"] == request_id
    logged = "\n".join(rec.getMessage() for rec in caplog.records if request_id in rec.getMessage())
    assert "java.lang.StackOverflowError" in logged and "WireEcho.overflow" in logged
    # the model still serves
    r = env.client.post("/models/overflow/methods/Overflow", json={"value": 0})
    assert r.status_code == 200
    # the setting sends traces to callers
    r = with_traces(env).post("/models/overflow/methods/Overflow", json={"value": 1})
    traced = error(r, 500, "model_error")
    assert "WireEcho.overflow" in traced["detail"]["java_stack"]


def test_python_tracebacks_and_paths_stay_in_the_server_log(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    root = str(env.repository.root)
    with caplog.at_level(logging.WARNING, logger="runner.http.errors"):
        r = env.client.post("/models/edgy/methods/Recurse", json={"depth": 1})
    err = error(r, 500, "model_error")
    assert "RecursionError" in err["message"]
    assert "traceback" not in err["detail"]
    assert root not in r.get_data(as_text=True) and "/edgy_model.py" not in r.get_data(as_text=True)
    assert any(
        root in rec.getMessage() and err["detail"]["request_id"] in rec.getMessage() for rec in caplog.records
    )
    traced = error(
        with_traces(env).post("/models/edgy/methods/Recurse", json={"depth": 1}), 500, "model_error"
    )
    assert "edgy_model.py" in traced["detail"]["traceback"]


def test_a_long_error_message_is_cut_to_1_kb(env: Env) -> None:
    r = env.client.post("/models/edgy/methods/Fail", json={"size": 100_000})
    err = error(r, 500, "model_error")
    assert (
        len(err["message"]) < MAX_MESSAGE_CHARS + 100
        and "more characters in the server log" in err["message"]
    )
    assert len(r.get_data()) < 8 * 1024
    assert all(len(v) < MAX_MESSAGE_CHARS + 100 for v in err["detail"].values() if isinstance(v, str))


def test_an_unexpected_error_names_no_insides(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/srv/secret/config.toml")

    # a fresh app: its own data plane, patched to fail as no core error would
    app = create_app(env.settings, env.registry, env.repository, admin=env.admin)
    plane = app.extensions["model_runner"]["dataplane"]
    monkeypatch.setattr(plane, "predict", broken)
    monkeypatch.setattr(plane, "infer", broken)
    c = app.test_client()
    tensors = [
        {"name": n, "datatype": "FP64", "shape": [1], "data": [v]} for n, v in zip(FEATURES, FLOWER.values())
    ]
    with caplog.at_level(logging.ERROR):
        # the predict path (WSGI middleware) and a Flask route (the V2 inference)
        answers = [
            c.post("/models/iris/methods/Classify", json=FLOWER),
            c.post("/v2/models/iris/infer", json={"inputs": tensors}),
        ]
    for r in answers:
        assert "/srv/secret" not in r.get_data(as_text=True)
        request_id = r.headers["X-Request-Id"]
        if r.request.path.startswith("/v2/"):  # the protocol's error body: one string
            message = v2_error(r, 500)
        else:
            err = error(r, 500, "internal")
            message = err["message"]
            assert err["detail"]["request_id"] == request_id
        assert "FileNotFoundError" in message and request_id in message
        assert any(
            request_id in rec.getMessage() and rec.exc_info and "/srv/secret" in str(rec.exc_info[1])
            for rec in caplog.records
        )


def test_the_grpc_edge_bounds_its_status_message_alike(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    import grpc

    from runner.grpc.server import create_server

    server, port = create_server(env.settings, env.registry, port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            fail = channel.unary_unary("/edgy.Edgy/Fail")
            request = env.registry.snapshot()["edgy"].contract.input_class("Fail")(size=100_000)
            with caplog.at_level(logging.WARNING, logger="runner.grpc.server"):
                with pytest.raises(grpc.RpcError) as info:
                    fail(request.SerializeToString(), metadata=(("x-model-name", "edgy"),), timeout=30)
            err: Any = info.value
            assert err.code() == grpc.StatusCode.INTERNAL
            assert len(err.details()) < MAX_MESSAGE_CHARS + 100, len(err.details())  # was 100 KB
            trailing = dict(err.trailing_metadata())
            assert trailing["x-error-kind"] == "model_error"
            assert any(trailing["x-request-id"] in rec.getMessage() for rec in caplog.records)
    finally:
        server.stop(None).wait()
