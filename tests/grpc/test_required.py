"""Required fields over gRPC: a request that leaves one out is answered INVALID_ARGUMENT naming it, with
``x-error-kind: bad_input``, for Java and Python models; the same field sent as 0 is served."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from runner.contract import Contract
from tests.grpc.conftest import Env, iris_python_bundle, renamed_copy
from tests.runner.serving.test_required_fields import IRIS_FIELDS, required_iris_proto


def require_iris(folder: Path) -> Path:
    (folder / "model.proto").write_text(required_iris_proto())
    meta = json.loads((folder / "metadata.json").read_text())
    meta["required"] = {"IrisInput": IRIS_FIELDS}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("model", ["iris-java", "iris-py"])
def test_missing_field_is_invalid_argument_naming_it(
    make_env: Callable[..., Env], sample_bundles: dict[str, Path], model: str
) -> None:
    env = make_env()
    if model == "iris-java":
        folder = renamed_copy(sample_bundles["iris"], env.scratch(), model)
    else:
        folder = iris_python_bundle(env.scratch(), name=model)
    env.publish(model, require_iris(folder))
    iris = Contract.compile(required_iris_proto())
    request_class, reply_class = iris.input_class("Classify"), iris.output_class("Classify")
    call = env.channel().unary_unary(
        "/iris.IrisClassifier/Classify",
        request_serializer=request_class.SerializeToString,
        response_deserializer=reply_class.FromString,
    )
    with pytest.raises(grpc.RpcError) as info:
        call(
            request_class(sepal_length=5.1, petal_length=1.4), metadata=(("x-model-name", model),), timeout=30
        )
    err = info.value
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "missing required fields sepal_width, petal_width (in iris.IrisInput)"
    trailing = dict(err.trailing_metadata())
    assert trailing["x-error-kind"] == "bad_input"
    assert json.loads(trailing["x-error-detail"])["missing"] == ["sepal_width", "petal_width"]
    zeros = request_class(**dict.fromkeys(IRIS_FIELDS, 0.0))
    assert call(zeros, metadata=(("x-model-name", model),), timeout=30).species
    setosa = request_class(sepal_length=5.1, sepal_width=3.5, petal_length=1.4, petal_width=0.2)
    assert call(setosa, timeout=30).species == "setosa"  # resolved without the header too
