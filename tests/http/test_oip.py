"""The Open Inference Protocol (KServe V2) REST endpoints over the real sample models."""

from __future__ import annotations

import json
from typing import Any

from tests.http.conftest import Env

VIRGINICA = [6.7, 3.0, 5.2, 2.3]
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def infer_body(values: list[float], **extra: Any) -> dict[str, Any]:
    tensors = [{"name": n, "datatype": "FP64", "shape": [1], "data": [v]} for n, v in zip(FEATURES, values)]
    return {"id": "req-1", "inputs": tensors, **extra}


def test_server_health_and_model_metadata(shared_env: Env) -> None:
    c = shared_env.client
    assert c.get("/v2").get_json()["name"] == "model-runner"
    assert c.get("/v2/health/live").get_json() == {"live": True}
    assert c.get("/v2/health/ready").status_code == 200
    meta = c.get("/v2/models/iris").get_json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"] and meta["platform"] == "model-runner_java"
    assert [t["name"] for t in meta["inputs"]] == list(FEATURES)
    assert {t["datatype"] for t in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "species", "datatype": "BYTES", "shape": [1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1]},
    ]
    assert c.get("/v2/models/iris/ready").get_json() == {"name": "iris", "ready": True}
    assert c.get("/v2/models/iris/versions/1/ready").status_code == 200
    assert c.get("/v2/models/iris/versions/7/ready").status_code == 404
    assert c.get("/v2/models/nobody").status_code == 404


def test_infer_on_java_and_python_models(shared_env: Env) -> None:
    c = shared_env.client
    for model in ("iris", "iris-proto", "iris-python"):
        r = c.post(f"/v2/models/{model}/infer", json=infer_body(VIRGINICA))
        assert r.status_code == 200, r.get_data(as_text=True)
        answer = r.get_json()
        assert answer["model_name"] == model and answer["model_version"] == "1" and answer["id"] == "req-1"
        outputs = {t["name"]: t for t in answer["outputs"]}
        assert outputs["species"] == {
            "name": "species",
            "datatype": "BYTES",
            "shape": [1],
            "data": ["virginica"],
        }
        probabilities = outputs["probabilities"]
        assert probabilities["shape"] == [3] and max(probabilities["data"]) == probabilities["data"][2]
        assert r.headers["X-Model-Name"] == model and r.headers["X-Model-Version"] == "1"
    # only the outputs asked for; a named version
    r = c.post("/v2/models/iris/versions/1/infer", json=infer_body(VIRGINICA, outputs=[{"name": "species"}]))
    assert [t["name"] for t in r.get_json()["outputs"]] == ["species"]


def test_infer_errors_say_what_is_wrong(shared_env: Env) -> None:
    c = shared_env.client

    def error(body: Any, status: int, path: str = "/v2/models/iris/infer") -> str:
        r = c.post(path, json=body)
        assert r.status_code == status, r.get_data(as_text=True)
        doc = r.get_json()
        assert list(doc) == ["error"], doc  # the spec's error body: {"error": "<message>"}
        return str(doc["error"])

    assert "inputs" in error({"data": []}, 400)
    assert "petal_colour" in error({"inputs": [{"name": "petal_colour", "data": [1]}]}, 400)
    two = {"inputs": [{"name": "sepal_length", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}]}
    assert "send a tensor of one element, not 2" in error(two, 400)
    # ClassifyBatch takes messages: BYTES tensors of their JSON
    batch = {
        "inputs": [{"name": "rows", "datatype": "BYTES", "shape": [1], "data": [1]}],
        "parameters": {"method": "ClassifyBatch"},
    }
    assert "input 'rows' is BYTES: element 0 is 1, not a string" in error(batch, 400)
    assert "NoSuch" in error({"inputs": [], "parameters": {"method": "NoSuch"}}, 404)
    assert "version" in error(infer_body(VIRGINICA), 404, "/v2/models/iris/versions/9/infer")


def test_message_fields_travel_as_json_text(shared_env: Env) -> None:
    """ClassifyBatch's input and output are lists of messages: BYTES tensors, one JSON text each."""
    rows = [dict(zip(FEATURES, VIRGINICA)), dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2)))]
    body = {
        "inputs": [
            {"name": "rows", "datatype": "BYTES", "shape": [2], "data": [json.dumps(r) for r in rows]}
        ],
        "parameters": {"method": "ClassifyBatch"},
    }
    for model in ("iris", "iris-python"):
        r = shared_env.client.post(f"/v2/models/{model}/infer", json=body)
        assert r.status_code == 200, r.get_data(as_text=True)
        (predictions,) = r.get_json()["outputs"]
        assert predictions["name"] == "predictions" and predictions["datatype"] == "BYTES"
        assert predictions["shape"] == [2]
        assert [json.loads(p)["species"] for p in predictions["data"]] == ["virginica", "setosa"]
