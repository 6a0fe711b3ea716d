"""The Flask app over a real Repository + Registry (real JVM for the Java samples): predictions, content
negotiation, every error kind with its status, admin auth, uploads, swaps, proto swaps, rollback,
If-Match, body limits, OpenAPI, metrics."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runner.bundle import write_bundle_zip
from runner.contract import Contract
from runner.errors import Kind
from runner.http.app import create_app
from runner.http.errors import HTTP_STATUS

from .conftest import TOKEN, Env, make_env

ROOT = Path(__file__).resolve().parents[2]
IRIS_PROTO = (ROOT / "protos" / "iris.proto").read_text()
FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
PB = "application/x-protobuf"
PB_GOOGLE = "application/vnd.google.protobuf"
IRIS_SAMPLES = ("iris", "iris-proto", "iris-python")


def _error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["kind"] == kind, body
    assert body["error"]["message"]
    assert isinstance(body["error"]["detail"], dict)
    return body["error"]


def _iris_contract() -> Contract:
    return Contract.compile(IRIS_PROTO)


# ------------------------------------------------------------------------------------ the error table


def test_every_kind_has_its_status() -> None:
    expected = {
        Kind.BAD_INPUT: 400,
        Kind.AMBIGUOUS: 400,
        Kind.NOT_FOUND: 404,
        Kind.METHOD_NOT_FOUND: 404,
        Kind.UNSUPPORTED_MEDIA: 415,
        Kind.INVALID_BUNDLE: 422,
        Kind.INVALID_CONTRACT: 422,
        Kind.CONFLICT: 409,
        Kind.PRECONDITION_FAILED: 412,
        Kind.UNAUTHENTICATED: 401,
        Kind.FORBIDDEN: 403,
        Kind.TOO_LARGE: 413,
        Kind.MODEL_ERROR: 500,
        Kind.DEADLINE: 504,
        Kind.NOT_READY: 503,
        Kind.SWAP_TIMEOUT: 504,
        Kind.INTERNAL: 500,
    }
    assert HTTP_STATUS == expected
    assert set(HTTP_STATUS) == set(Kind)


# ------------------------------------------------------------------------------------ predictions


@pytest.mark.parametrize("name", IRIS_SAMPLES)
def test_json_prediction(shared_env: Env, name: str) -> None:
    r = shared_env.client.post(f"/models/{name}/methods/Classify", json=FLOWER)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["X-Model-Name"] == name
    assert r.headers["X-Model-Version"] == "1"
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert body["species"] == "setosa"
    assert len(body["probabilities"]) == 3

    r = shared_env.client.post(f"/models/{name}/methods/ClassifyBatch", json={"rows": [FLOWER, VIRGINICA]})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [p["species"] for p in r.get_json()["predictions"]] == ["setosa", "virginica"]

    r = shared_env.client.post(
        f"/models/{name}/methods/ClassifyMatrix",
        json={"rows": [{"values": list(FLOWER.values())}, {"values": list(VIRGINICA.values())}]},
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["indices"] == [0, 2]


@pytest.mark.parametrize("name", IRIS_SAMPLES)
@pytest.mark.parametrize("media", [PB, PB_GOOGLE])
def test_protobuf_prediction(shared_env: Env, name: str, media: str) -> None:
    contract = _iris_contract()
    request = contract.input_class("ClassifyBatch")(rows=[FLOWER, VIRGINICA]).SerializeToString()
    r = shared_env.client.post(f"/models/{name}/methods/ClassifyBatch", data=request, content_type=media)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == media
    assert r.headers["X-Model-Name"] == name and r.headers["X-Model-Version"] == "1"
    out = contract.output_class("ClassifyBatch").FromString(r.data)
    assert [p.species for p in out.predictions] == ["setosa", "virginica"]


def test_content_negotiation(shared_env: Env) -> None:
    contract = _iris_contract()
    c = shared_env.client
    pb_in = contract.input_class("Classify")(**FLOWER).SerializeToString()
    # JSON in, protobuf out
    r = c.post("/models/iris/methods/Classify", json=FLOWER, headers={"Accept": PB})
    assert r.status_code == 200 and r.mimetype == PB
    assert contract.output_class("Classify").FromString(r.data).species == "setosa"
    # protobuf in, JSON out
    r = c.post(
        "/models/iris/methods/Classify",
        data=pb_in,
        content_type=PB_GOOGLE,
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json()["species"] == "setosa"
    # */* and no Accept: the request's own format
    r = c.post("/models/iris/methods/Classify", data=pb_in, content_type=PB, headers={"Accept": "*/*"})
    assert r.mimetype == PB
    r = c.post("/models/iris/methods/Classify", data=pb_in, content_type=PB)
    assert r.mimetype == PB
    # q-values decide
    r = c.post(
        "/models/iris/methods/Classify",
        json=FLOWER,
        headers={"Accept": f"application/json;q=0.2, {PB};q=0.9"},
    )
    assert r.mimetype == PB
    # charset parameters are fine
    r = c.post(
        "/models/iris/methods/Classify",
        data=json.dumps(FLOWER),
        content_type="application/json; charset=utf-8",
    )
    assert r.status_code == 200
    # nothing acceptable / unreadable request
    _error(
        c.post("/models/iris/methods/Classify", json=FLOWER, headers={"Accept": "text/html"}),
        415,
        "unsupported_media",
    )
    _error(
        c.post("/models/iris/methods/Classify", data="a=1", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media",
    )


def test_prediction_errors(shared_env: Env) -> None:
    c = shared_env.client
    err = _error(c.post("/models/nope/methods/Classify", json=FLOWER), 404, "not_found")
    assert "nope" in err["message"]
    err = _error(c.post("/models/iris/methods/Nope", json=FLOWER), 404, "method_not_found")
    assert "Classify" in json.dumps(err)  # names the methods there are
    r = c.post("/models/iris/methods/Nope", json=FLOWER)
    assert r.headers["X-Model-Name"] == "iris" and r.headers["X-Model-Version"] == "1"
    err = _error(
        c.post("/models/iris/methods/Classify", data="{not json", content_type="application/json"),
        400,
        "bad_input",
    )
    err = _error(c.post("/models/iris/methods/Classify", json={"sepal_length": "long"}), 400, "bad_input")
    assert "sepal_length" in json.dumps(err)
    err = _error(c.post("/models/iris/methods/Classify", json={"petal_colour": 1}), 400, "bad_input")
    assert "petal_colour" in json.dumps(err)
    _error(c.post("/models/iris/methods/Classify", data=b"\xff\xff\xff", content_type=PB), 400, "bad_input")
    # the model raised: 500 with the model's exception
    failed = c.post("/models/toy/methods/Echo", json={"text": "boom"})
    err = _error(failed, 500, "model_error")
    assert "ValueError" in json.dumps(err) and "asked to fail" in json.dumps(err)
    assert failed.headers["X-Model-Name"] == "toy" and failed.headers["X-Model-Version"] == "1"
    assert c.post("/models/toy/methods/Echo", json={"text": "hi"}).get_json() == {"value": "hi"}
    # the call overran its deadline: 504
    err = _error(
        c.post("/models/toy/methods/Sleep", json={"seconds": 3}, headers={"X-Timeout-Seconds": "0.3"}),
        504,
        "deadline",
    )
    _error(
        c.post("/models/toy/methods/Sleep", json={"seconds": 0}, headers={"X-Timeout-Seconds": "soon"}),
        400,
        "bad_input",
    )
    # unknown endpoint and wrong verb: JSON errors too
    _error(c.get("/no/such/endpoint"), 404, "not_found")
    assert c.get("/models/iris/methods/Classify").status_code == 405
    assert "POST" in c.get("/models/iris/methods/Classify").headers["Allow"]
    assert c.get("/models/iris/methods/Classify").get_json()["error"]["message"]


def test_single_model_paths_need_a_single_model(shared_env: Env, iris_env: Env) -> None:
    err = _error(shared_env.client.post("/model/methods/Classify", json=FLOWER), 400, "bad_input")
    assert "iris" in json.dumps(err)
    _error(shared_env.client.get("/model/artifacts/protobuf"), 400, "bad_input")

    c = iris_env.client
    r = c.post("/model/methods/Classify", json=FLOWER)
    assert r.status_code == 200 and r.get_json()["species"] == "setosa"
    assert r.headers["X-Model-Name"] == "iris"
    r = c.get("/model/artifacts/protobuf")
    assert r.status_code == 200 and "service IrisClassifier" in r.get_data(as_text=True)
    r = c.get("/model/artifacts/metadata")
    assert (
        r.status_code == 200 and r.get_json()["entry_point"] == "org.modelrunner.samples.iris.IrisClassifier"
    )


# ------------------------------------------------------------------------------------ read-only endpoints


def test_listing_and_artifacts(shared_env: Env) -> None:
    c = shared_env.client
    models = {m["name"]: m for m in c.get("/models").get_json()["models"]}
    assert set(models) >= {"iris", "toy"}
    assert models["iris"]["runtime"] == "java" and models["iris"]["version"] == 1
    assert models["iris"]["methods"] == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    one = c.get("/models/iris").get_json()
    assert one["versions"] == [1] and one["service"] == "iris.IrisClassifier"
    assert list(one["served_by"].values()) == [1]
    assert c.get("/models/iris/versions").get_json() == {"name": "iris", "version": 1, "versions": [1]}
    history = c.get("/models/iris/history").get_json()["history"]
    assert history[-1]["version"] == 1 and history[-1]["caller"] == "test-setup"
    r = c.get("/models/iris/proto")
    assert r.status_code == 200 and r.mimetype == "text/plain" and "rpc Classify" in r.get_data(as_text=True)
    assert r.headers["X-Model-Version"] == "1"
    assert c.get("/models/iris/metadata").get_json()["runtime"] == "java"
    for path in (
        "/models/nope",
        "/models/nope/versions",
        "/models/nope/history",
        "/models/nope/proto",
        "/models/nope/metadata",
    ):
        _error(c.get(path), 404, "not_found")
    _error(c.get("/models/Bad..Name"), 400, "bad_input")


def test_health_openapi_metrics(shared_env: Env) -> None:
    c = shared_env.client
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 200 and r.get_json()["ready"] is True and r.get_json()["models"]["iris"] == 1
    doc = c.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    op = doc["paths"]["/models/iris/methods/Classify"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert "sepal_length" in json.dumps(schema)
    assert "/models/toy/methods/Sleep" in doc["paths"]
    # the metrics of this process (no multiprocess folder in tests): counts compared before and after
    ok = {"model": "iris", "version": "1", "method": "Classify", "protocol": "http", "outcome": "ok"}
    before = scrape(c)
    c.post("/models/iris/methods/Classify", json=FLOWER)
    after = scrape(c)
    assert (
        sample(after, "model_runner_requests_total", ok)
        == sample(before, "model_runner_requests_total", ok) + 1
    )
    assert sample(after, "model_runner_request_duration_seconds_count", ok) >= 1
    assert sample(after, "model_runner_model_version", {"model": "iris", "process": "http"}) >= 1
    # errors are counted with their kind; names that matched nothing never become labels
    c.post("/models/iris/methods/Classify", json={"petal_colour": 1})
    c.post("/models/no-such-model-xyz/methods/Classify", json=FLOWER)
    c.post("/models/iris/methods/NoSuchMethodXyz", json=FLOWER)
    text = c.get("/metrics").get_data(as_text=True)
    assert "no-such-model-xyz" not in text and "NoSuchMethodXyz" not in text
    families = scrape(c)
    assert sample(families, "model_runner_requests_total", {**ok, "outcome": "bad_input"}) >= 1
    unknown = {"model": "unknown", "version": "unknown", "method": "unknown", "protocol": "http"}
    assert sample(families, "model_runner_requests_total", {**unknown, "outcome": "not_found"}) >= 1
    no_method = {**ok, "method": "unknown", "outcome": "method_not_found"}
    assert sample(families, "model_runner_requests_total", no_method) >= 1


def scrape(client: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics parsed: sample name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def sample(
    families: dict[str, list[tuple[dict[str, str], float]]], name: str, labels: dict[str, str]
) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(v for got, v in families.get(name, []) if labels.items() <= got.items())


# ------------------------------------------------------------------------------------ admin


def test_admin_auth(iris_env: Env, sample_bundles: dict[str, Path]) -> None:
    c = iris_env.client
    zipped = write_bundle_zip(sample_bundles["iris-v2"])
    for headers, status, kind in (
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic abc"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer wrong"}, 403, "forbidden"),
    ):
        for call in (
            lambda h: c.put("/models/iris", data=zipped, content_type="application/zip", headers=h),
            lambda h: c.put("/models/iris/proto", data=IRIS_PROTO, headers=h),
            lambda h: c.post("/models/iris/rollback", headers=h),
            lambda h: c.delete("/models/iris", headers=h),
            lambda h: c.put("/model", data=zipped, content_type="application/zip", headers=h),
            lambda h: c.put("/proto", data=IRIS_PROTO, headers=h),
        ):
            r = call(headers)
            _error(r, status, kind)
            if status == 401:
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert iris_env.repository.versions("iris") == [1]
    r = c.put("/models/iris", data=zipped, content_type="application/zip", headers=iris_env.auth)
    assert r.status_code == 200, r.get_data(as_text=True)

    # no token configured at all: admin is off, reads still work
    settings = iris_env.settings
    settings_no_token = type(settings)(**{**settings.__dict__, "admin_token": None, "admin_token_file": None})
    app = create_app(settings_no_token, iris_env.registry, iris_env.repository, admin=iris_env.admin)
    _error(app.test_client().delete("/models/iris", headers=iris_env.auth), 403, "forbidden")
    assert app.test_client().get("/models/iris").status_code == 200


def test_default_deadline_and_bad_proto_native_input(shared_env: Env) -> None:
    # without X-Timeout-Seconds the service's predict_timeout still bounds the call
    settings = type(shared_env.settings)(**{**shared_env.settings.__dict__, "predict_timeout": 0.3})
    c = create_app(settings, shared_env.registry, shared_env.repository, admin=shared_env.admin).test_client()
    _error(c.post("/models/toy/methods/Sleep", json={"seconds": 3}), 504, "deadline")
    if "iris-proto" in shared_env.registry.snapshot():
        # bytes that do not parse as the input message are the caller's fault, also for proto-native models
        _error(
            c.post("/models/iris-proto/methods/Classify", data=b"\xff\xff\xff", content_type=PB),
            400,
            "bad_input",
        )


def test_token_from_file(iris_env: Env, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    settings = type(iris_env.settings)(
        **{**iris_env.settings.__dict__, "admin_token": None, "admin_token_file": token_file}
    )
    c = create_app(settings, iris_env.registry, iris_env.repository, admin=iris_env.admin).test_client()
    _error(c.post("/models/iris/rollback", headers=iris_env.auth), 403, "forbidden")
    # the right token gets past auth (and rollback of a single version is then refused by the core)
    r = c.post("/models/iris/rollback", headers={"Authorization": "Bearer from-a-file"})
    assert r.status_code not in (401, 403)


def test_upload_swaps_and_every_answer_says_its_version(
    iris_env: Env, sample_bundles: dict[str, Path]
) -> None:
    c = iris_env.client
    r = c.put(
        "/models/iris",
        data=write_bundle_zip(sample_bundles["iris-v2"]),
        content_type="application/zip",
        headers=iris_env.auth,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["version"] == 2 and body["previous_version"] == 1
    assert body["served_by"] == [iris_env.registry.process_id]
    assert r.headers["ETag"] == '"2"'
    # the 200 came after this process serves version 2: no answer from version 1 any more
    r = c.post("/models/iris/methods/Classify", json=FLOWER)
    assert r.headers["X-Model-Version"] == "2" and r.get_json()["species"] == "Iris-setosa"
    history = c.get("/models/iris/history").get_json()["history"]
    assert [h["version"] for h in history] == [1, 2]
    assert history[-1]["caller"].startswith("http:")

    # multipart: the bundle as a part
    files = {"bundle": (io.BytesIO(write_bundle_zip(sample_bundles["iris"])), "iris.zip")}
    r = c.put("/models/iris", data=files, content_type="multipart/form-data", headers=iris_env.auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["version"] == 3
    assert c.post("/models/iris/methods/Classify", json=FLOWER).get_json()["species"] == "setosa"

    # multipart: only a JAR (Acumos PUT /model): proto, metadata and lib come from the current version
    jar = (sample_bundles["iris-v2"] / "model.jar").read_bytes()
    r = c.put(
        "/model",
        data={"model": (io.BytesIO(jar), "iris-v2.jar")},
        content_type="multipart/form-data",
        headers=iris_env.auth,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["version"] == 4
    r = c.post("/model/methods/Classify", json=FLOWER)
    assert r.headers["X-Model-Version"] == "4" and r.get_json()["species"] == "Iris-setosa"


def test_new_model_from_parts(iris_env: Env, sample_bundles: dict[str, Path]) -> None:
    c = iris_env.client
    folder = sample_bundles["iris-v2"]
    jar = (folder / "model.jar").read_bytes()
    # a new model needs its metadata and proto
    err = _error(
        c.put(
            "/models/iris2",
            data={"model": (io.BytesIO(jar), "m.jar")},
            content_type="multipart/form-data",
            headers=iris_env.auth,
        ),
        400,
        "bad_input",
    )
    assert "metadata" in err["message"]
    parts: dict[str, Any] = {
        "model": (io.BytesIO(jar), "model.jar"),
        "proto": (io.BytesIO((folder / "model.proto").read_bytes()), "model.proto"),
        "metadata": (io.BytesIO((folder / "metadata.json").read_bytes()), "metadata.json"),
    }
    libs = sorted((folder / "lib").glob("*.jar")) if (folder / "lib").exists() else []
    if libs:
        parts["lib"] = [(io.BytesIO(p.read_bytes()), p.name) for p in libs]
    r = c.put("/models/iris2", data=parts, content_type="multipart/form-data", headers=iris_env.auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    r = c.post("/models/iris2/methods/Classify", json=FLOWER)
    assert r.status_code == 200 and r.get_json()["species"] == "Iris-setosa"
    _error(
        c.put(
            "/models/iris3",
            data={"other": (io.BytesIO(b"x"), "x")},
            content_type="multipart/form-data",
            headers=iris_env.auth,
        ),
        400,
        "bad_input",
    )
    _error(
        c.put("/models/iris3", data="text", content_type="text/plain", headers=iris_env.auth),
        415,
        "unsupported_media",
    )
    _error(
        c.put("/models/iris3", data=b"", content_type="application/zip", headers=iris_env.auth),
        400,
        "bad_input",
    )


def _bundle_copy(folder: Path, tmp: Path) -> Path:
    dest = tmp / f"copy-{len(list(tmp.iterdir()))}"
    shutil.copytree(folder, dest)
    return dest


def test_broken_uploads_are_refused_and_nothing_changes(
    iris_env: Env, sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    c, repo = iris_env.client, iris_env.repository
    work = tmp_path / "work"
    work.mkdir()
    bad_jar = _bundle_copy(sample_bundles["iris"], work)
    (bad_jar / "model.jar").write_bytes(b"not a jar")
    bad_proto = _bundle_copy(sample_bundles["iris"], work)
    (bad_proto / "model.proto").write_text(
        IRIS_PROTO.replace("double sepal_width = 2;", "double sepal_width = ;")
    )
    unbound = _bundle_copy(sample_bundles["iris"], work)
    (unbound / "model.proto").write_text(
        IRIS_PROTO.replace(
            "rpc Classify (IrisInput)",
            "rpc Categorize (IrisInput) returns (IrisPrediction);\n  rpc Classify (IrisInput)",
        )
    )
    cases = [
        (bad_jar, "invalid_bundle", "jar"),
        (bad_proto, "invalid_contract", "line"),
        (unbound, "invalid_bundle", "Categorize"),
    ]
    for folder, kind, word in cases:
        r = c.put(
            "/models/iris",
            data=write_bundle_zip(folder),
            content_type="application/zip",
            headers=iris_env.auth,
        )
        err = _error(r, 422, kind)
        assert word.lower() in json.dumps(err).lower(), err
    err = _error(
        c.put(
            "/models/iris",
            data=b"PK\x03\x04 broken zip",
            content_type="application/zip",
            headers=iris_env.auth,
        ),
        422,
        "invalid_bundle",
    )
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    err = _error(
        c.put("/models/iris", data=evil.getvalue(), content_type="application/zip", headers=iris_env.auth),
        422,
        "invalid_bundle",
    )
    assert repo.versions("iris") == [1] and repo.current_version("iris") == 1
    assert len(repo.history("iris")) == 1
    assert [e for e in (repo.root / "staging").iterdir() if not e.name.endswith(".lock")] == []
    r = c.post("/models/iris/methods/Classify", json=FLOWER)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"


def test_if_match(iris_env: Env, sample_bundles: dict[str, Path]) -> None:
    c = iris_env.client
    zipped = write_bundle_zip(sample_bundles["iris-v2"])
    err = _error(
        c.put(
            "/models/iris",
            data=zipped,
            content_type="application/zip",
            headers={**iris_env.auth, "If-Match": "7"},
        ),
        412,
        "precondition_failed",
    )
    assert "1" in json.dumps(err)
    _error(
        c.put(
            "/models/iris",
            data=zipped,
            content_type="application/zip",
            headers={**iris_env.auth, "If-Match": "latest"},
        ),
        400,
        "bad_input",
    )
    r = c.put(
        "/models/iris",
        data=zipped,
        content_type="application/zip",
        headers={**iris_env.auth, "If-Match": '"1"'},
    )
    assert r.status_code == 200 and r.get_json()["version"] == 2
    # a second client that still believes in version 1 loses
    _error(
        c.put("/models/iris/proto", data=IRIS_PROTO, headers={**iris_env.auth, "If-Match": "1"}),
        412,
        "precondition_failed",
    )
    _error(
        c.post("/models/iris/rollback", headers={**iris_env.auth, "If-Match": "1"}),
        412,
        "precondition_failed",
    )
    assert iris_env.repository.current_version("iris") == 2


def test_rollback_and_delete(iris_env: Env, sample_bundles: dict[str, Path]) -> None:
    c = iris_env.client
    for family in ("iris-v2", "iris"):
        r = c.put(
            "/models/iris",
            data=write_bundle_zip(sample_bundles[family]),
            content_type="application/zip",
            headers=iris_env.auth,
        )
        assert r.status_code == 200
    assert iris_env.repository.current_version("iris") == 3
    r = c.post("/models/iris/rollback", headers=iris_env.auth)
    assert r.status_code == 200 and r.get_json()["version"] == 2
    r = c.post("/models/iris/methods/Classify", json=FLOWER)
    assert r.headers["X-Model-Version"] == "2" and r.get_json()["species"] == "Iris-setosa"
    r = c.post("/models/iris/rollback?version=1", headers=iris_env.auth)
    assert r.status_code == 200 and r.get_json()["version"] == 1
    assert c.post("/models/iris/methods/Classify", json=FLOWER).headers["X-Model-Version"] == "1"
    _error(c.post("/models/iris/rollback?version=99", headers=iris_env.auth), 404, "not_found")
    _error(c.post("/models/iris/rollback?version=two", headers=iris_env.auth), 400, "bad_input")
    actions = [h["action"] for h in c.get("/models/iris/history").get_json()["history"]]
    assert actions[-2:] == ["rollback", "rollback"]

    r = c.delete("/models/iris", headers=iris_env.auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    _error(c.post("/models/iris/methods/Classify", json=FLOWER), 404, "not_found")
    assert c.get("/models").get_json()["models"] == []
    _error(c.delete("/models/iris", headers=iris_env.auth), 404, "not_found")


def narrowed_bundle(iris: Path, dest: Path) -> Path:
    """The iris bundle without the ClassifyMatrix rpc (contract and examples)."""
    shutil.copytree(iris, dest)
    proto = (dest / "model.proto").read_text()
    (dest / "model.proto").write_text(
        "\n".join(line for line in proto.splitlines() if "rpc ClassifyMatrix" not in line)
    )
    meta = json.loads((dest / "metadata.json").read_text())
    meta.get("examples", {}).pop("ClassifyMatrix", None)
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def test_proto_swap(iris_env: Env, sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    c = iris_env.client
    # renumbering a field breaks binary clients: refused without the flag, with the report
    renumbered = IRIS_PROTO.replace("double sepal_width = 2;", "double sepal_width = 5;")
    err = _error(
        c.put("/models/iris/proto", data=renumbered, content_type="text/plain", headers=iris_env.auth),
        409,
        "conflict",
    )
    assert "sepal_width" in json.dumps(err["detail"])
    assert iris_env.repository.current_version("iris") == 1
    r = c.put(
        "/models/iris/proto?allow_breaking=true",
        data=renumbered,
        content_type="text/plain",
        headers=iris_env.auth,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["version"] == 2 and r.get_json()["breaking_changes"]
    r = c.post("/models/iris/methods/Classify", json=FLOWER)
    assert r.headers["X-Model-Version"] == "2" and r.get_json()["species"] == "setosa"

    # a version without ClassifyMatrix, then a proto-only swap that adds it (not breaking: no flag)
    narrow = narrowed_bundle(sample_bundles["iris"], tmp_path / "narrow")
    # a whole bundle whose contract drops a method breaks clients too: refused without the flag
    err = _error(
        c.put(
            "/models/iris",
            data=write_bundle_zip(narrow),
            content_type="application/zip",
            headers=iris_env.auth,
        ),
        409,
        "conflict",
    )
    assert "ClassifyMatrix" in json.dumps(err["detail"]) and iris_env.repository.current_version("iris") == 2
    r = c.put(
        "/models/iris?allow_breaking=true",
        data=write_bundle_zip(narrow),
        content_type="application/zip",
        headers=iris_env.auth,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    _error(c.post("/models/iris/methods/ClassifyMatrix", json={"rows": []}), 404, "method_not_found")
    r = c.put(
        "/proto",
        data={"proto": (io.BytesIO(IRIS_PROTO.encode()), "model.proto")},
        content_type="multipart/form-data",
        headers=iris_env.auth,
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["version"] == 4
    r = c.post("/models/iris/methods/ClassifyMatrix", json={"rows": [{"values": list(FLOWER.values())}]})
    assert r.status_code == 200 and r.get_json()["indices"] == [0] and r.headers["X-Model-Version"] == "4"
    assert "ClassifyMatrix" in c.get("/models/iris/proto").get_data(as_text=True)

    err = _error(
        c.put("/models/iris/proto", data='syntax = "proto3";\nmessage {', headers=iris_env.auth),
        422,
        "invalid_contract",
    )
    assert "line" in json.dumps(err).lower()
    # an rpc no Java method serves
    unbound = IRIS_PROTO.replace(
        "rpc Classify (IrisInput)",
        "rpc Categorize (IrisInput) returns (IrisPrediction);\n  rpc Classify (IrisInput)",
    )
    err = _error(c.put("/models/iris/proto", data=unbound, headers=iris_env.auth), 422, "invalid_bundle")
    assert "Categorize" in json.dumps(err)
    _error(c.put("/models/iris/proto", data="", headers=iris_env.auth), 400, "bad_input")
    _error(
        c.put("/models/iris/proto?allow_breaking=maybe", data=IRIS_PROTO, headers=iris_env.auth),
        400,
        "bad_input",
    )
    _error(c.put("/models/nope/proto", data=IRIS_PROTO, headers=iris_env.auth), 404, "not_found")
    assert iris_env.repository.current_version("iris") == 4


def test_body_limits(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    env = make_env(
        tmp_path / "repo", {"iris": sample_bundles["iris"]}, max_body_bytes=4096, max_message_bytes=512
    )
    try:
        c = env.client
        err = _error(
            c.put("/models/iris", data=b"x" * 5000, content_type="application/zip", headers=env.auth),
            413,
            "too_large",
        )
        assert "4096" in err["message"]
        rows = {"rows": [FLOWER] * 20}
        _error(c.post("/models/iris/methods/ClassifyBatch", json=rows), 413, "too_large")
        assert c.post("/models/iris/methods/Classify", json=FLOWER).status_code == 200
    finally:
        env.registry.stop()


def test_not_ready_and_swap_timeout(iris_env: Env, sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    c, repo = iris_env.client, iris_env.repository
    # a version that cannot load here (published behind the validator's back): 503 until fixed
    broken = tmp_path / "broken"
    shutil.copytree(sample_bundles["iris"], broken)
    (broken / "model.jar").write_bytes(b"garbage")
    repo.publish("ghostly", broken, expected_version=None, caller="test")
    iris_env.registry.poll_now()
    _error(c.post("/models/ghostly/methods/Classify", json=FLOWER), 503, "not_ready")
    r = c.get("/readyz")
    assert r.status_code == 503 and "ghostly" in r.get_json()["errors"]
    repo.delete("ghostly", caller="test")
    iris_env.registry.poll_now()

    # a serving process that never catches up: the admin call answers 504 naming it
    repo.fleet.record_serving("laggard-process", {"kind": "http", "models": {"iris": 1}})
    settings = type(iris_env.settings)(**{**iris_env.settings.__dict__, "swap_timeout": 0.5})
    from runner.serving.admin import Admin

    app = create_app(settings, iris_env.registry, repo, admin=Admin(repo, swap_timeout=0.5))
    r = app.test_client().put(
        "/models/iris",
        data=write_bundle_zip(sample_bundles["iris-v2"]),
        content_type="application/zip",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    err = _error(r, 504, "swap_timeout")
    assert "laggard-process" in json.dumps(err)
    repo.fleet.remove_serving("laggard-process")
