"""An Acumos user's three files (model.jar, model.proto, modelConfig.properties) onboarded with no other
flag, served by a real `serve` (gunicorn workers, real JVM) with the Acumos settings, and called the
Acumos way: protobuf bodies labelled JSON under the context root, `PUT /model`, `PUT /model/configuration`
and a push from the CLI, each of the current content answered "unchanged" without a new version."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.contract import Contract
from tests.e2e.acumos_java import CONFIG, MODEL_CLASS, PROTO, acumos_files
from tests.e2e.serve_process import Serve, start_serve
from tests.e2e.test_cli import cli_env, ok, run_cli

pytestmark = pytest.mark.e2e

NAME = "iris-scorer"
# modelMethod in its list form: each method serves the rpc of its name
LIST_PROTO = PROTO.replace("  rpc predict (DataFrame) returns (Species);\n", "")
LIST_CONFIG = f"modelClassName={MODEL_CLASS}\nmodelMethod=classify,count\nmodelInputType=csv\n"
CONTRACT = Contract.compile(PROTO)


def frame() -> bytes:
    message: Any = CONTRACT.input_class("classify")()
    message.rows.add(sepal_length=5.1, sepal_width=3.5, petal_length=1.4, petal_width=0.2)
    message.rows.add(sepal_length=6.7, sepal_width=3.0, petal_length=5.2, petal_width=2.3)
    return bytes(message.SerializeToString())


def bundle_files(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_onboard_takes_class_and_methods_from_model_config(tmp_path: Path) -> None:
    files = acumos_files(tmp_path / "files")
    out = tmp_path / "scorer.zip"
    r = ok(run_cli("onboard", files.jar, "--proto", files.proto, "--artifacts", files.artifacts, "-o", out))
    assert "validated" in r.stdout
    content = bundle_files(out)
    meta = json.loads(content["metadata.json"])
    assert meta["entry_point"] == MODEL_CLASS and meta["name"] == NAME
    assert content["modelConfig.properties"].decode() == CONFIG

    # --config, the list form of modelMethod: one rpc per method, bound by name
    (tmp_path / "list.proto").write_text(LIST_PROTO)
    (tmp_path / "modelConfig.properties").write_text(LIST_CONFIG)
    listed = tmp_path / "listed.zip"
    r = ok(
        run_cli(
            "onboard",
            files.jar,
            "--proto",
            tmp_path / "list.proto",
            "--config",
            tmp_path / "modelConfig.properties",
            "-o",
            listed,
            "--json",
        )
    )
    summary = json.loads(r.stdout)
    assert summary["bindings"]["classify"]["java_method"] == "classify"
    assert summary["bindings"]["count"]["java_method"] == "count"
    meta = json.loads(bundle_files(listed)["metadata.json"])
    assert meta["methods"] == {"classify": {"java_method": "classify"}, "count": {"java_method": "count"}}
    assert bundle_files(listed)["modelConfig.properties"].decode() == LIST_CONFIG

    # a listed method without an rpc of its name is refused, naming it
    (tmp_path / "modelConfig.properties").write_text(LIST_CONFIG.replace("count", "shout"))
    r = run_cli(
        "onboard",
        files.jar,
        "--proto",
        tmp_path / "list.proto",
        "--config",
        tmp_path / "modelConfig.properties",
        "-o",
        tmp_path / "refused.zip",
    )
    assert r.returncode != 0 and "shout" in r.stderr and "no rpc shout" in r.stderr
    assert not (tmp_path / "refused.zip").exists()

    # without a modelConfig.properties naming the class, onboard still lists the candidates
    r = ok(run_cli("onboard", files.jar))
    assert MODEL_CLASS in r.stdout and "--class" in r.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, Path]]:
    tmp = tmp_path_factory.mktemp("acumos-serve")
    files = acumos_files(tmp / "files")
    bundle = tmp / "scorer.zip"
    ok(run_cli("onboard", files.jar, "--proto", files.proto, "--artifacts", files.artifacts, "-o", bundle))
    serve = start_serve(
        [str(bundle)],
        tmp,
        workers=2,
        env_extra={"MODEL_RUNNER_ACUMOS_COMPAT": "true", "MODEL_RUNNER_PATH_PREFIX": "/modelrunner"},
    )
    try:
        yield serve, tmp / "files"
    finally:
        serve.stop()


@pytest.mark.timeout(300)
def test_acumos_clients_work_unchanged_against_serve(served: tuple[Serve, Path]) -> None:
    serve, files = served
    base = serve.base + "/modelrunner"
    species = CONTRACT.output_class("classify")
    # an Acumos generic-runner client: protobuf labelled as JSON, or as nothing
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "text/plain"}, {}):
        for _ in range(4):  # both workers
            r = requests.post(f"{base}/model/methods/classify", data=frame(), headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert r.headers["Content-Type"] == "application/octet-stream"
            answer: Any = species.FromString(r.content)
            assert list(answer.species) == ["setosa", "virginica"]

    def versions() -> list[int]:
        doc = requests.get(f"{serve.base}/models/{NAME}/versions", timeout=30).json()
        return list(doc["versions"])

    jar = (files / "model.jar").read_bytes()
    # the same JAR, proto and config again: unchanged, no version
    for path, part, data in (
        ("/model", "model", jar),
        ("/proto", "proto", PROTO.encode()),
        ("/model/configuration", "modelConfig", CONFIG.encode()),
    ):
        r = requests.put(base + path, files={part: (part, io.BytesIO(data))}, headers=serve.auth, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["unchanged"] is True and r.json()["version"] == 1
    env = cli_env(MODEL_RUNNER_URL=serve.base, MODEL_RUNNER_TOKEN=serve.auth["Authorization"].split()[1])
    r = ok(
        run_cli(
            "push",
            NAME,
            files / "model.jar",
            "--proto",
            files / "model.proto",
            "--artifacts",
            files / "config",
            env=env,
        )
    )
    assert "unchanged" in r.stdout
    assert versions() == [1]

    # a new configuration: a new version, served by every worker once the call answers
    shout = CONFIG.replace("modelMethod=classify", "modelMethod=shout")
    r = requests.put(
        f"{base}/model/configuration",
        files={"modelConfig": ("modelConfig.properties", io.BytesIO(shout.encode()))},
        headers=serve.auth,
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and len(r.json()["served_by"]) >= 2
    for _ in range(4):
        r = requests.post(
            f"{base}/model/methods/predict",
            data=frame(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "2"
        assert list(species.FromString(r.content).species) == ["SETOSA", "VIRGINICA"]  # type: ignore[attr-defined]
    assert versions() == [1, 2]

    # the CSV utility route of the Acumos runner, under the context root too
    csv = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    r = requests.post(
        f"{base}/getBinaryDefault",
        files={"csvFile": ("x.csv", io.BytesIO(csv.encode()))},
        data={"operation": "classify"},
        timeout=30,
    )
    assert r.status_code == 200 and r.content == frame()
