"""Required fields over HTTP: a request that leaves one out is answered 400 (bad_input) naming it, on the
JSON path, the protobuf path and the Open Inference Protocol route, for Java and Python models; the
same field sent as 0 is served. Real models, real registry, the Flask test client."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.contract import Contract
from runner.serving import onboarding
from tests.http.conftest import Env, make_env
from tests.runner.serving.test_required_fields import IRIS_FIELDS, required_iris_proto

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PROTOBUF = "application/x-protobuf"
UNDERWRITER = "org.modelrunner.tests.required.Underwriter"


def with_required(src: Path, dest: Path, name: str) -> Path:
    """A copy of an iris bundle whose IrisInput fields are all required."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "model.proto").write_text(required_iris_proto())
    meta = json.loads((dest / "metadata.json").read_text())
    meta.update(name=name, required={"IrisInput": IRIS_FIELDS})
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="module")
def env(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from tests.bridge.conftest import build_bundle

    work = tmp_path_factory.mktemp("required")
    underwriter = onboarding.bundle_from_jar(
        build_bundle("required") / "model.jar",
        class_name=UNDERWRITER,
        dest=work / "underwriter",
        validate=False,
    )
    bundles = {
        "iris-java": with_required(sample_bundles["iris"], work / "iris-java", "iris-java"),
        "iris-py": with_required(sample_bundles["iris-python"], work / "iris-py", "iris-py"),
        "underwriter": underwriter,
    }
    env = make_env(work / "repo", bundles)
    yield env
    env.registry.stop()


@pytest.fixture(scope="module")
def iris() -> Contract:
    return Contract.compile(required_iris_proto())


def post(env: Env, path: str, body: Any, content_type: str = "application/json") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return env.client.post(path, data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize("model", ["iris-java", "iris-py"])
def test_json_request_missing_a_field_is_refused_naming_it(env: Env, model: str) -> None:
    partial = {k: v for k, v in SETOSA.items() if k != "petal_width"}
    r = post(env, f"/models/{model}/methods/Classify", partial)
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["kind"] == "bad_input"
    assert error["message"] == "missing required field petal_width (in iris.IrisInput)"
    assert error["detail"]["missing"] == ["petal_width"]
    assert r.headers["X-Model-Name"] == model and r.headers["X-Model-Version"] == "1"
    # several missing, and in a batch: each named with its path
    r = post(env, f"/models/{model}/methods/ClassifyBatch", {"rows": [SETOSA, {"sepal_length": 1.0}]})
    assert r.status_code == 400
    assert r.get_json()["error"]["detail"]["missing"] == [
        "rows[1].sepal_width",
        "rows[1].petal_length",
        "rows[1].petal_width",
    ]


@pytest.mark.parametrize("model", ["iris-java", "iris-py"])
def test_present_with_value_zero_is_served(env: Env, model: str, iris: Contract) -> None:
    zeros = dict.fromkeys(IRIS_FIELDS, 0)
    r = post(env, f"/models/{model}/methods/Classify", zeros)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["species"] in ("setosa", "versicolor", "virginica")
    body = iris.input_class("Classify")(**dict.fromkeys(IRIS_FIELDS, 0.0)).SerializeToString()
    r = post(env, f"/models/{model}/methods/Classify", body, PROTOBUF)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert iris.output_class("Classify").FromString(r.get_data()).species
    r = post(env, f"/models/{model}/methods/Classify", SETOSA)
    assert r.get_json()["species"] == "setosa"


@pytest.mark.parametrize("model", ["iris-java", "iris-py"])
def test_protobuf_request_missing_a_field_is_refused_naming_it(env: Env, model: str, iris: Contract) -> None:
    partial = iris.input_class("Classify")(sepal_length=5.1, sepal_width=3.5, petal_length=1.4)
    r = post(env, f"/models/{model}/methods/Classify", partial.SerializeToString(), PROTOBUF)
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["kind"] == "bad_input" and error["detail"]["missing"] == ["petal_width"]
    assert "petal_width" in error["message"]
    # an rpc without required fields still passes its bytes through unread
    matrix = iris.input_class("ClassifyMatrix")(rows=[{"values": [5.1, 3.5, 1.4, 0.2]}])
    r = post(env, f"/models/{model}/methods/ClassifyMatrix", matrix.SerializeToString(), PROTOBUF)
    assert r.status_code == 200
    assert list(iris.output_class("ClassifyMatrix").FromString(r.get_data()).indices) == [0]


@pytest.mark.parametrize("model", ["iris-java", "iris-py"])
def test_oip_request_missing_a_tensor_is_refused_naming_it(env: Env, model: str) -> None:
    def tensors(values: dict[str, float]) -> dict[str, Any]:
        return {
            "inputs": [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in values.items()]
        }

    partial = {k: v for k, v in SETOSA.items() if k != "sepal_width"}
    r = env.client.post(f"/v2/models/{model}/infer", json=tensors(partial))
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]  # the V2 spec's error body: {"error": "<message>"}
    assert error.startswith("missing input 'sepal_width' of Classify:"), error
    r = env.client.post(f"/v2/models/{model}/infer", json=tensors(dict.fromkeys(IRIS_FIELDS, 0.0)))
    assert r.status_code == 200, r.get_data(as_text=True)


def test_generated_java_contract_refuses_missing_primitives(env: Env) -> None:
    applicant = {"age": 40, "income": 50000.0, "city": "Lyon", "address": {"zip": "69001", "floor": 0}}
    r = post(env, "/models/underwriter/methods/Score", applicant)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json() == {"value": 70.0}
    r = post(env, "/models/underwriter/methods/Score", {"income": 50000.0, "address": {"zip": "69001"}})
    assert r.status_code == 400
    assert r.get_json()["error"]["detail"]["missing"] == ["age", "address.floor"]
    # city (a String), address (a record) and bonus (a Double) may be left out
    assert post(env, "/models/underwriter/methods/Score", {"age": 0, "income": 0}).get_json() == {
        "value": 0.0
    }
    assert post(env, "/models/underwriter/methods/Rate", {"base": 2, "years": 3}).get_json() == {"value": 6.0}
    r = post(env, "/models/underwriter/methods/Rate", {"base": 2, "bonus": 1})
    assert r.status_code == 400 and r.get_json()["error"]["detail"]["missing"] == ["years"]
    # records inside a List<Loan> parameter: each element is checked
    loans = {"loans": [{"amount": 10.0, "bank": "a"}, {"bank": "b"}, {"amount": 0}]}
    r = post(env, "/models/underwriter/methods/Total", loans)
    assert r.status_code == 400 and r.get_json()["error"]["detail"]["missing"] == ["loans[1].amount"]
    del loans["loans"][1]
    assert post(env, "/models/underwriter/methods/Total", loans).get_json() == {"value": 10.0}


def test_openapi_lists_required_fields_of_inputs(env: Env) -> None:
    paths = env.client.get("/openapi.json").get_json()["paths"]

    def schemas(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
        post = paths[path]["post"]
        return (
            post["requestBody"]["content"]["application/json"]["schema"],
            post["responses"]["200"]["content"]["application/json"]["schema"],
        )

    request, reply = schemas("/models/iris-py/methods/Classify")
    assert request["required"] == IRIS_FIELDS
    assert "required" not in reply
    batch, _ = schemas("/models/iris-py/methods/ClassifyBatch")
    assert batch["properties"]["rows"]["items"]["required"] == IRIS_FIELDS and "required" not in batch
    score, _ = schemas("/models/underwriter/methods/Score")
    assert score["required"] == ["age", "income"]
    assert score["properties"]["address"]["required"] == ["floor"]
