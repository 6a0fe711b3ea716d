"""Models dumped by the Acumos Python client, served unchanged in their own Python 3.9 environment.

The dump is real: the iris classifier of Acumos' tutorial (scikit-learn) dumped with acumos 1.0.1 under
Python 3.9 (tests/e2e/acumos_dumps.py). Every answer is compared with what the Acumos client itself
computes on the dump in that Python (acumos.wrapped: protobuf bytes in, protobuf bytes out), and, side by
side, with what Acumos' own runner (acumos-model-runner 0.2.6) answers serving the same dump.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from google.protobuf import json_format

from runner.contract import Contract
from runner.runtimes.environments import ENVS_DIR, RUNNER_SOURCE_ROOT, SPEC_FILE
from runner.serving.acumos import convert_dump
from tests.e2e.acumos_dumps import acumos_python, call_directly, dump, start_acumos_model_runner
from tests.e2e.serve_process import start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]  # a cold pip cache: minutes

PROTOBUF = "application/x-protobuf"
ROWS = {  # a setosa, a versicolor, a virginica of the iris data set
    "sepal_length": [5.1, 6.4, 6.3],
    "sepal_width": [3.5, 3.2, 3.3],
    "petal_length": [1.4, 4.5, 6.0],
    "petal_width": [0.2, 1.5, 2.5],
}


@pytest.fixture(scope="module")
def iris_dump() -> Path:
    return dump("dump_iris.py", "iris-acumos")


def contract_of(folder: Path) -> Contract:
    return Contract.compile((folder / "model.proto").read_text("utf-8"))


def requests_for(contract: Contract) -> dict[str, bytes]:
    return {
        "classify": contract.input_class("classify")(**ROWS).SerializeToString(),
        "scale": contract.input_class("scale")(value=2.0, factor=3.0).SerializeToString(),
        "scale_refused": contract.input_class("scale")(value=2.0, factor=-1.0).SerializeToString(),
    }


MODEL_CLASS_RUN = """
import json, sys
from pathlib import Path
from runner.bundle import read_metadata
from runner.contract import Contract
from runner.errors import ModelRunnerError
from runner.runtimes.python.acumos import AcumosModel

folder, fds = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
contract = Contract((folder / "model.proto").read_text(), "model.proto", fds)
model = AcumosModel(folder, read_metadata(folder), contract)
answers = []
for call in json.load(sys.stdin):
    try:
        answers.append({"response": model.invoke(call["method"], bytes.fromhex(call["request"])).hex()})
    except ModelRunnerError as err:
        answers.append({"kind": err.kind.value, "message": err.message, "detail": err.detail})
scratch = model._scratch
model.close()
print(json.dumps({"answers": answers, "bindings": model.bindings, "scratch_left": scratch.exists(),
                  "python": "%d.%d" % sys.version_info[:2]}))
"""


def test_the_model_class_serves_the_dump_under_the_python_that_dumped_it(
    iris_dump: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    convert_dump(iris_dump, bundle)
    contract = contract_of(bundle)
    (tmp_path / "contract.fds").write_bytes(contract.file_descriptor_set)
    made = requests_for(contract)
    calls = [
        {"method": "classify", "request": made["classify"]},
        {"method": "scale", "request": made["scale"]},
        {"method": "scale", "request": made["scale_refused"]},
        {"method": "classify", "request": b"\xff\xff\xff"},
    ]
    done = subprocess.run(
        [str(acumos_python()), "-c", MODEL_CLASS_RUN, str(bundle), str(tmp_path / "contract.fds")],
        input=json.dumps([{"method": c["method"], "request": c["request"].hex()} for c in calls]),
        env={**os.environ, "PYTHONPATH": str(RUNNER_SOURCE_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ran = json.loads(done.stdout)
    direct = call_directly(iris_dump, calls)
    ours = ran["answers"]

    assert ran["python"] == "3.9"
    assert ran["bindings"] == {
        "classify": {"python_method": "classify", "convention": "acumos"},
        "scale": {"python_method": "scale", "convention": "acumos"},
    }
    assert not ran["scratch_left"]  # the unpacked model is removed at close
    # the very bytes the Acumos client answers
    assert bytes.fromhex(ours[0]["response"]) == direct[0]["response"]
    assert list(contract.output_class("classify").FromString(direct[0]["response"]).value) == [0, 1, 2]
    assert bytes.fromhex(ours[1]["response"]) == direct[1]["response"]
    assert contract.output_class("scale").FromString(direct[1]["response"]).value == 6.0
    # a method that raises: a model error with the exception's class and message
    assert direct[2] == {"error": "ValueError", "message": "factor must not be negative, got -1.0"}
    assert ours[2]["kind"] == "model_error"
    assert ours[2]["message"] == "iris-acumos.scale raised ValueError: factor must not be negative, got -1.0"
    assert ours[2]["detail"]["exception_class"] == "ValueError"
    assert "factor must not be negative" in ours[2]["detail"]["traceback"]
    # bytes that are not the input message: the caller's fault
    assert direct[3]["error"] == "DecodeError"
    assert ours[3]["kind"] == "bad_input"
    assert ours[3]["message"].startswith(
        f"not a valid binary {contract.method('classify').input_type.full_name}"
    )


LOAD_ONLY = """
import json, sys
from pathlib import Path
from runner.bundle import read_metadata
from runner.contract import Contract
from runner.errors import ModelRunnerError
from runner.runtimes.python.acumos import AcumosModel

folder, fds = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
try:
    AcumosModel(folder, read_metadata(folder), Contract((folder / "model.proto").read_text(), "model.proto", fds))
except ModelRunnerError as err:
    print(json.dumps({"kind": err.kind.value, "message": err.message}))
"""


def test_a_pickle_that_does_not_load_refuses_the_bundle_naming_why(iris_dump: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(iris_dump, broken)
    with zipfile.ZipFile(iris_dump / "model.zip") as src, zipfile.ZipFile(broken / "model.zip", "w") as out:
        for info in src.infolist():
            out.writestr(info, b"not a pickle" if info.filename == "model.pkl" else src.read(info))
    bundle = tmp_path / "bundle"
    convert_dump(broken, bundle)
    (tmp_path / "contract.fds").write_bytes(contract_of(bundle).file_descriptor_set)
    done = subprocess.run(
        [str(acumos_python()), "-c", LOAD_ONLY, str(bundle), str(tmp_path / "contract.fds")],
        env={**os.environ, "PYTHONPATH": str(RUNNER_SOURCE_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    refused = json.loads(done.stdout)
    assert refused["kind"] == "invalid_bundle"
    assert refused["message"].startswith("iris-acumos: acumos.wrapped.load_model failed: UnpicklingError")


def zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{folder.name}/{p.name}")
    return buf.getvalue()


@pytest.mark.timeout(1500)
def test_serve_serves_a_dump_as_the_acumos_client_computes_it(iris_dump: Path, tmp_path: Path) -> None:
    contract = contract_of(iris_dump)
    made = requests_for(contract)
    direct = call_directly(
        iris_dump,
        [{"method": "classify", "request": made["classify"]}, {"method": "scale", "request": made["scale"]}],
    )
    # publishing the dump builds its Python 3.9 environment (pip): minutes on a cold cache
    served = start_serve([str(iris_dump)], tmp_path, timeout=1200)
    try:
        base = served.base
        # JSON, on the one-model route Acumos clients call
        r = requests.post(f"{base}/model/methods/classify", json=ROWS, timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Name"] == "iris-acumos"
        assert r.json() == contract.to_dict(
            contract.output_class("classify").FromString(direct[0]["response"])
        )
        assert r.json() == {"value": ["0", "1", "2"]}  # int64 are strings in proto3 JSON
        r = requests.post(f"{base}/model/methods/scale", json={"value": 2, "factor": 3}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json() == contract.to_dict(contract.output_class("scale").FromString(direct[1]["response"]))

        # protobuf bytes: the Acumos client's own bytes
        r = requests.post(
            f"{base}/model/methods/classify",
            data=made["classify"],
            headers={"Content-Type": PROTOBUF, "Accept": PROTOBUF},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.content == direct[0]["response"]

        r = requests.post(f"{base}/model/methods/scale", json={"value": 2, "factor": -1}, timeout=60)
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert error["kind"] == "model_error"
        assert "ValueError: factor must not be negative, got -1.0" in error["message"]
        r = requests.post(
            f"{base}/model/methods/classify",
            data=b"\xff\xff\xff",
            headers={"Content-Type": PROTOBUF},
            timeout=60,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["kind"] == "bad_input"

        meta = requests.get(f"{base}/models/iris-acumos/metadata", timeout=30).json()
        assert (meta["entry_point"], meta["python"], meta["isolation"]) == (
            "acumos.wrapped:load_model",
            "3.9",
            "process",
        )
        assert meta["methods"]["classify"] == {"description": "Returns an array of iris classifications"}
        version = served.repo / "models" / "iris-acumos" / "versions" / "1"
        for name in ("metadata.json", "model.zip"):
            assert (version / "acumos" / name).read_bytes() == (iris_dump / name).read_bytes()
        assert (version / "model.proto").read_bytes() == (iris_dump / "model.proto").read_bytes()

        # an upload of a zip of the dump (a folder inside, as zipped by hand) is served the same,
        # from the same environment
        r = requests.put(
            f"{base}/models/iris-zip",
            data=zip_of(iris_dump),
            headers={**served.auth, "Content-Type": "application/zip"},
            timeout=600,
        )
        assert r.status_code == 200, r.text
        r = requests.post(
            f"{base}/models/iris-zip/methods/classify",
            data=made["classify"],
            headers={"Content-Type": PROTOBUF, "Accept": PROTOBUF},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.content == direct[0]["response"]

        # `push` of the dump folder: converted by the client, validated by the service
        pushed = subprocess.run(
            [sys.executable, "-m", "runner", "push", "iris-pushed", str(iris_dump), "--url", base, "--json"],
            env={**os.environ, "MODEL_RUNNER_TOKEN": served.auth["Authorization"].split()[1]},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert json.loads(pushed.stdout)["version"] == 1
        r = requests.post(f"{base}/models/iris-pushed/methods/classify", json=ROWS, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json() == {"value": ["0", "1", "2"]}

        envs = [p for p in (served.repo / ENVS_DIR).iterdir() if (p / SPEC_FILE).is_file()]
        assert len(envs) == 1  # one environment for the three: same Python, same requirements
        spec: dict[str, Any] = json.loads((envs[0] / SPEC_FILE).read_text())
        assert spec["python"].startswith("3.9.")
        assert "acumos==1.0.1" in spec["requirements"]
    finally:
        served.stop()


ACUMOS_PROTOBUF = "application/vnd.google.protobuf"
"""The media type of Acumos' runners for protobuf bodies (Content-Type and Accept both required there)."""
JSON = "application/json"


@pytest.mark.timeout(1500)
def test_serve_answers_as_acumos_model_runner_side_by_side(iris_dump: Path, tmp_path: Path) -> None:
    """The same dump behind acumos-model-runner and behind `serve`, the same requests the Acumos way
    (POST /model/methods/{method}, Content-Type and Accept naming protobuf or JSON): the same messages.
    Refusals differ in status and body but both refuse (asserted below, one by one)."""
    contract = contract_of(iris_dump)
    made = requests_for(contract)
    acumos = start_acumos_model_runner(iris_dump, tmp_path / "acumos")
    try:
        # publishing the dump builds its Python 3.9 environment (pip): minutes on a cold cache
        (tmp_path / "serve").mkdir()
        served = start_serve([str(iris_dump)], tmp_path / "serve", timeout=1200)
        try:
            targets = {"acumos-model-runner": acumos.base, "model-runner": served.base}
            compare_side_by_side(contract, made, targets)
        finally:
            served.stop()
    finally:
        acumos.stop()


def compare_side_by_side(contract: Contract, made: dict[str, bytes], targets: dict[str, str]) -> None:
    def post(base: str, method: str, body: bytes, content_type: str, accept: str | None) -> requests.Response:
        headers = {"Content-Type": content_type, "Accept": accept}  # None: no Accept header at all
        return requests.post(f"{base}/model/methods/{method}", data=body, headers=headers, timeout=60)

    def decoded(method: str, r: requests.Response, accept: str) -> Any:
        cls = contract.output_class(method)
        assert r.headers["Content-Type"].split(";")[0] == accept, r.headers
        if accept == JSON:
            return json_format.Parse(r.text, cls())
        return cls.FromString(r.content)

    json_bodies = {
        "classify": json.dumps(ROWS).encode(),
        "scale": json.dumps({"value": 2.0, "factor": 3.0}).encode(),
    }
    cases = []  # (method, body, Content-Type, Accept)
    for method in ("classify", "scale"):
        cases += [
            (method, made[method], ACUMOS_PROTOBUF, ACUMOS_PROTOBUF),
            (method, json_bodies[method], JSON, JSON),
            (method, json_bodies[method], JSON, ACUMOS_PROTOBUF),
            (method, made[method], ACUMOS_PROTOBUF, JSON),
        ]
    for method, body, content_type, accept in cases:
        answers, raw = {}, {}
        for name, base in targets.items():
            r = post(base, method, body, content_type, accept)
            assert r.status_code == 200, (name, method, content_type, accept, r.text)
            answers[name], raw[name] = decoded(method, r, accept), r.content
        assert answers["model-runner"] == answers["acumos-model-runner"], (method, content_type, accept)
        if content_type == accept == ACUMOS_PROTOBUF:
            # not only the same message: the same bytes (both serialise the message the client computed)
            assert raw["model-runner"] == raw["acumos-model-runner"]
            if method == "classify":
                assert list(answers["model-runner"].value) == [0, 1, 2]  # a setosa, a versicolor, a virginica

    acumos, ours = targets["acumos-model-runner"], targets["model-runner"]
    # A body that is not the input message: both refuse with 400; Acumos says so in text/html,
    # model-runner in its JSON error (kind bad_input).
    for body, content_type in ((b"\xff\xff\xff", ACUMOS_PROTOBUF), (b'{"sepal_length": "x"}', JSON)):
        r = post(acumos, "classify", body, content_type, ACUMOS_PROTOBUF)
        assert r.status_code == 400, r.text
        assert r.text.startswith(("Could not decode input protobuf", "Could not parse input JSON")), r.text
        r = post(ours, "classify", body, content_type, ACUMOS_PROTOBUF)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["kind"] == "bad_input"
    # The model raising: Acumos answers 400 (its one status for any failure of the call), model-runner
    # 500 with kind model_error; both carry the model's message.
    refused = contract.input_class("scale")(value=2.0, factor=-1.0).SerializeToString()
    r = post(acumos, "scale", refused, ACUMOS_PROTOBUF, ACUMOS_PROTOBUF)
    assert r.status_code == 400
    assert "factor must not be negative, got -1.0" in r.text
    r = post(ours, "scale", refused, ACUMOS_PROTOBUF, ACUMOS_PROTOBUF)
    assert r.status_code == 500
    assert r.json()["error"]["kind"] == "model_error"
    assert "factor must not be negative, got -1.0" in r.json()["error"]["message"]
    # A media type neither takes: both 415.
    for base in (acumos, ours):
        r = post(base, "classify", made["classify"], "text/csv", ACUMOS_PROTOBUF)
        assert r.status_code == 415, (base, r.text)
    # No such method: both 404.
    for base in (acumos, ours):
        r = post(base, "no_such_method", made["classify"], ACUMOS_PROTOBUF, ACUMOS_PROTOBUF)
        assert r.status_code == 404, (base, r.text)
    # No Accept, or */*: Acumos wants one it names (400, 415); model-runner answers in the request's type.
    expected = contract.output_class("classify").FromString(
        post(acumos, "classify", made["classify"], ACUMOS_PROTOBUF, ACUMOS_PROTOBUF).content
    )
    r = post(acumos, "classify", made["classify"], ACUMOS_PROTOBUF, None)
    assert r.status_code == 400
    assert "Header 'Accept' is required" in r.text
    r = post(acumos, "classify", made["classify"], ACUMOS_PROTOBUF, "*/*")
    assert r.status_code == 415
    for asked in (None, "*/*"):
        r = post(ours, "classify", made["classify"], ACUMOS_PROTOBUF, asked)
        assert r.status_code == 200, (asked, r.text)
        assert decoded("classify", r, ACUMOS_PROTOBUF) == expected
    # The artifact routes serve the dump's own files on both.
    for artifact in ("protobuf", "metadata"):
        got = {
            name: requests.get(f"{base}/model/artifacts/{artifact}", timeout=30)
            for name, base in targets.items()
        }
        assert all(r.status_code == 200 for r in got.values()), {n: r.status_code for n, r in got.items()}
        if artifact == "protobuf":
            assert got["model-runner"].content == got["acumos-model-runner"].content
        else:
            assert got["model-runner"].json() == got["acumos-model-runner"].json()
