"""Acumos routes and media against the real app serving an Acumos generic-java model (built from source):
`PUT /model`, `PUT /proto`, `PUT /model/configuration` called as Acumos clients call them (multipart parts
`model`, `proto`, `modelConfig`), uploads of the current content answered "unchanged", the
`acumos_compat` media rules of `POST /model/methods/*`, `path_prefix`, and the utility routes
`/getBinary*` and `/transform*`."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.bundle import write_bundle_zip
from runner.contract import Contract
from runner.serving.onboarding import bundle_from_jar
from tests.e2e.acumos_java import CONFIG, MODEL_CLASS, PROTO, acumos_files
from tests.http.conftest import Env, make_env

NAME = "iris-scorer"
CONTRACT = Contract.compile(PROTO)
DataFrame = CONTRACT.input_class("classify")
Species = CONTRACT.output_class("classify")
ROWS = [(5.1, 3.5, 1.4, 0.2), (6.7, 3.0, 5.2, 2.3)]  # setosa, virginica
CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


def frame(rows: list[tuple[float, ...]] = ROWS) -> bytes:
    message: Any = DataFrame()
    for sl, sw, pl, pw in rows:
        message.rows.add(sepal_length=sl, sepal_width=sw, petal_length=pl, petal_width=pw)
    return bytes(message.SerializeToString())


def species(body: bytes) -> list[str]:
    message: Any = Species.FromString(body)
    return list(message.species)


@pytest.fixture(scope="module")
def acumos_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle `onboard model.jar --proto model.proto --artifacts DIR` makes (no --class)."""
    root = tmp_path_factory.mktemp("acumos-java")
    files = acumos_files(root / "files")
    return bundle_from_jar(
        files.jar,
        class_name=None,
        proto=files.proto,
        artifacts=files.artifacts,
        dest=root / "bundle",
        validate=False,
    )


@pytest.fixture
def env(acumos_bundle: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    overrides = getattr(request, "param", {})
    made = make_env(tmp_path / "repo", {NAME: acumos_bundle}, **overrides)
    yield made
    made.registry.stop()


def served(env: Env, version: int) -> None:
    env.registry.poll_now()
    assert env.registry.snapshot()[NAME].version == version


def predict(env: Env, method: str, body: bytes, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return env.client.post(f"/model/methods/{method}", data=body, headers=headers or {}, **kw)


def parts(**files: bytes | str) -> dict[str, Any]:
    return {k: (io.BytesIO(v.encode() if isinstance(v, str) else v), f"{k}.bin") for k, v in files.items()}


# ---------------------------------------------------------------------------------------------- uploads


def test_uploads_of_the_current_content_answer_unchanged_and_create_no_version(
    env: Env, acumos_bundle: Path
) -> None:
    history = len(env.repository.history(NAME))
    jar = (acumos_bundle / "model.jar").read_bytes()
    same = [
        env.client.put("/model", data=parts(model=jar), headers=env.auth),
        env.client.put("/proto", data=parts(proto=PROTO), headers=env.auth),
        env.client.put("/model/configuration", data=parts(modelConfig=CONFIG), headers=env.auth),
        env.client.put(
            f"/models/{NAME}",
            data=write_bundle_zip(env.repository.version_dir(NAME, 1)),
            headers={**env.auth, "Content-Type": "application/zip"},
        ),
        env.client.put(f"/models/{NAME}/proto", data=PROTO, headers=env.auth),
    ]
    for answer in same:
        assert answer.status_code == 200, answer.json
        assert answer.json["unchanged"] is True
        assert answer.json["version"] == 1
    assert env.repository.versions(NAME) == [1]
    assert len(env.repository.history(NAME)) == history  # nothing published, nothing recorded


def test_a_model_config_part_on_put_model_is_taken(env: Env, acumos_bundle: Path) -> None:
    jar = (acumos_bundle / "model.jar").read_bytes()
    shout = CONFIG.replace("modelMethod=classify", "modelMethod=shout")
    answer = env.client.put("/model", data=parts(model=jar, modelConfig=shout), headers=env.auth)
    assert answer.status_code == 200, answer.json
    assert answer.json["version"] == 2 and "unchanged" not in answer.json
    assert (env.repository.version_dir(NAME, 2) / "modelConfig.properties").read_text() == shout
    served(env, 2)
    # predict has no method of its own: modelMethod serves it
    reply = predict(env, "predict", frame(), {"Content-Type": "application/x-protobuf"})
    assert species(reply.data) == ["SETOSA", "VIRGINICA"]


def test_put_model_configuration_replaces_the_config_as_a_new_version_validated_first(env: Env) -> None:
    shout = CONFIG.replace("modelMethod=classify", "modelMethod=shout")
    answer = env.client.put("/model/configuration", data=parts(modelConfig=shout), headers=env.auth)
    assert answer.status_code == 200, answer.json
    assert answer.json["version"] == 2 and answer.json["previous_version"] == 1
    served(env, 2)
    assert species(predict(env, "predict", frame(), {"Content-Type": "application/x-protobuf"}).data) == [
        "SETOSA",
        "VIRGINICA",
    ]
    again = env.client.put("/model/configuration", data=parts(modelConfig=shout), headers=env.auth)
    assert again.status_code == 200 and again.json["unchanged"] is True and again.json["version"] == 2

    broken = CONFIG.replace("modelMethod=classify", "modelMethod=noSuchMethod")
    refused = env.client.put("/model/configuration", data=parts(modelConfig=broken), headers=env.auth)
    assert refused.status_code == 422, refused.json
    assert "noSuchMethod" in refused.json["error"]["message"] + str(refused.json["error"]["detail"])
    assert env.repository.current_version(NAME) == 2 and env.repository.versions(NAME) == [1, 2]

    missing = env.client.put("/model/configuration", data=parts(config=shout), headers=env.auth)
    assert missing.status_code == 400 and "modelConfig" in missing.json["error"]["message"]
    assert env.client.put("/model/configuration", data=parts(modelConfig=shout)).status_code == 401


# ---------------------------------------------------------------------------------------------- media


@pytest.mark.parametrize("env", [{"acumos_compat": True}], indirect=True)
def test_acumos_compat_reads_protobuf_whatever_the_content_type(env: Env) -> None:
    for content_type in ("application/json", "text/plain", None):
        headers = {"Content-Type": content_type} if content_type else {}
        reply = predict(env, "classify", frame(), headers)
        assert reply.status_code == 200, (content_type, reply.data[:300])
        assert reply.headers["Content-Type"] == "application/octet-stream"
        assert species(reply.data) == ["setosa", "virginica"]
    asked = predict(
        env,
        "classify",
        frame(),
        {"Content-Type": "application/x-protobuf", "Accept": "application/octet-stream"},
    )
    assert asked.status_code == 200 and asked.headers["Content-Type"] == "application/octet-stream"
    assert species(asked.data) == ["setosa", "virginica"]
    # a JSON body is still JSON (no protobuf message starts with '{')
    as_json = predict(
        env, "classify", b'{"rows": [{"petal_length": 6.0}]}', {"Content-Type": "application/json"}
    )
    assert as_json.status_code == 200 and as_json.json == {"species": ["virginica"]}


def test_without_acumos_compat_the_media_rules_stay(env: Env) -> None:
    assert predict(env, "classify", frame(), {"Content-Type": "application/json"}).status_code == 400
    assert predict(env, "classify", frame(), {"Content-Type": "text/plain"}).status_code == 415
    octet = predict(
        env,
        "classify",
        frame(),
        {"Content-Type": "application/x-protobuf", "Accept": "application/octet-stream"},
    )
    assert octet.status_code == 415


@pytest.mark.parametrize("env", [{"path_prefix": "/modelrunner"}], indirect=True)
def test_every_route_also_answers_under_the_path_prefix(env: Env) -> None:
    proto = {"Content-Type": "application/x-protobuf"}
    for path in ("/modelrunner/model/methods/classify", "/model/methods/classify"):
        reply = env.client.post(path, data=frame(), headers=proto)
        assert reply.status_code == 200 and species(reply.data) == ["setosa", "virginica"]
    assert env.client.get("/modelrunner/healthz").status_code == 200
    assert env.client.get("/modelrunner/model/artifacts/protobuf").data.decode() == PROTO
    unchanged = env.client.put("/modelrunner/proto", data=parts(proto=PROTO), headers=env.auth)
    assert unchanged.status_code == 200 and unchanged.json["unchanged"] is True
    assert (
        env.client.post("/modelrunnerx/model/methods/classify", data=frame(), headers=proto).status_code
        == 404
    )


# ---------------------------------------------------------------------------------------------- utility routes


def test_get_binary_default_turns_a_csv_with_header_into_the_input_message(env: Env) -> None:
    answer = env.client.post("/getBinaryDefault", data={**parts(csvFile=CSV), "operation": "classify"})
    assert answer.status_code == 200, answer.json
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.data == frame()
    # columns by their header names, in any order; a column naming no field is ignored (a label)
    shuffled = (
        "label,petal_width,petal_length,sepal_width,sepal_length\nx,0.2,1.4,3.5,5.1\ny,2.3,5.2,3.0,6.7\n"
    )
    again = env.client.post("/getBinaryDefault?operation=classify", data=parts(csvFile=shuffled))
    assert again.status_code == 200 and again.data == frame()


def test_get_binary_refuses_what_acumos_answers_with_an_empty_200(env: Env) -> None:
    def post(csv: str, operation: str | None = "classify") -> Any:
        form = {**parts(csvFile=csv), **({"operation": operation} if operation else {})}
        return env.client.post("/getBinaryDefault", data=form)

    no_operation = post(CSV, None)
    assert no_operation.status_code == 400 and "operation" in no_operation.json["error"]["message"]
    assert post(CSV, "nope").status_code == 404
    bad = post("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,wide,5.2,2.3\n")
    assert bad.status_code == 400
    assert "line 3, column 2 (sepal_width)" in bad.json["error"]["message"]
    no_header = post("5.1,3.5,1.4,0.2\n")
    assert no_header.status_code == 400 and "header" in no_header.json["error"]["message"]
    header_only = post("sepal_length,petal_length\n")
    assert header_only.status_code == 400 and "no rows" in header_only.json["error"]["message"]
    wrong_part = env.client.post("/getBinaryDefault", data={**parts(file=CSV), "operation": "classify"})
    assert wrong_part.status_code == 400 and "csvFile" in wrong_part.json["error"]["message"]


def test_get_binary_with_a_proto_part_follows_acumos_csv_semantics(env: Env) -> None:
    proto = textwrap.dedent("""\
        syntax = "proto3";
        message In { double x = 1; repeated int64 ys = 2; Inner inner = 3; }
        message Inner { string name = 1; bool ok = 2; }
        message Out { string s = 1; }
        service S { rpc Run (In) returns (Out); }
    """)
    csv = "x,ys,name,ys,ok\n1,2,a,3,true\n4,-5,b,,FALSE\n"
    answer = env.client.post("/getBinary", data=parts(csvFile=csv, proto=proto))  # one rpc: no operation
    assert answer.status_code == 200, answer.json
    contract = Contract.compile(proto)
    message: Any = contract.input_class("Run").FromString(answer.data)
    # a singular field takes the last line's cell; a repeated one every cell of its columns, line by line
    assert message.x == 4.0 and list(message.ys) == [2, 3, -5]
    assert message.inner.name == "b" and message.inner.ok is False
    assert (
        env.repository.read_proto(NAME) if hasattr(env.repository, "read_proto") else True
    )  # served contract untouched
    # the served contract is untouched
    assert env.client.get("/model/artifacts/protobuf").data.decode() == PROTO


def test_get_binary_json_default_and_transform_default(env: Env) -> None:
    json_file = (
        '{"rows": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},'
        ' {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}]}'
    )
    binary = env.client.post(
        "/getBinaryJSONDefault", data={**parts(jsonFile=json_file), "operation": "classify"}
    )
    assert binary.status_code == 200 and binary.data == frame()
    bad = env.client.post(
        "/getBinaryJSONDefault", data={**parts(jsonFile='{"rows": [{"petal": 1}]}'), "operation": "classify"}
    )
    assert bad.status_code == 400 and "petal" in bad.json["error"]["message"]

    by_csv = env.client.post("/transformCSVDefault", data={**parts(csvFile=CSV), "operation": "classify"})
    assert by_csv.status_code == 200, by_csv.json
    assert by_csv.headers["Content-Type"] == "application/octet-stream"
    assert by_csv.headers["X-Model-Version"] == "1"
    assert species(by_csv.data) == ["setosa", "virginica"]
    by_json = env.client.post(
        "/transformJSONDefault", data={**parts(jsonFile=json_file), "operation": "classify"}
    )
    assert by_json.status_code == 200 and species(by_json.data) == ["setosa", "virginica"]
    count = env.client.post("/transformCSVDefault", data={**parts(csvFile=CSV), "operation": "count"})
    message: Any = CONTRACT.output_class("count").FromString(count.data)
    assert message.rows == 2

    refused = env.client.post("/transformCSV", data={**parts(csvFile=CSV, model=b"jar", proto=PROTO)})
    assert refused.status_code == 400 and "transformCSVDefault" in str(refused.json["error"])


def test_the_bundle_names_the_class_from_model_config(acumos_bundle: Path) -> None:
    metadata = json.loads((acumos_bundle / "metadata.json").read_text())
    assert metadata["entry_point"] == MODEL_CLASS and metadata["name"] == NAME
    assert (acumos_bundle / "modelConfig.properties").read_text() == CONFIG
