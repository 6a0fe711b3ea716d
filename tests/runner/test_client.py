"""runner.client.Client against the real HTTP app (runner.http.create_app over a real repository,
registry and admin), served by werkzeug in a thread; Python models only, so no JVM is needed here.
The CLI verbs and Java models are covered end to end against `model-runner serve` in tests/e2e."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import errors
from runner.client import Client, error_from_response
from runner.contract import Contract
from runner.serving.loading import BundleLoader

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from werkzeug.serving import make_server

    from runner.http.app import create_app
    from runner.serving.registry import Registry
    from runner.settings import Settings
    from runner.store import Repository

    root = tmp_path_factory.mktemp("repo")
    settings = Settings(repo=root, admin_token=TOKEN, swap_timeout=30.0)
    repository = Repository(root)
    registry = Registry(repository, BundleLoader(Settings()), process_kind="http", poll_interval=0.05)
    registry.start()
    app = create_app(settings, registry, repository)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        registry.stop()


@pytest.fixture(scope="module")
def admin(service: str, sample_bundles: dict[str, Path]) -> Client:
    client = Client(service, TOKEN)
    result = client.push("iris-py", sample_bundles["iris-python"])
    assert result["version"] == 1
    return client


def test_predict_json_and_protobuf(admin: Client) -> None:
    out = admin.predict("iris-py", "Classify", ROW)
    assert out["species"] == "setosa" and len(out["probabilities"]) == 3
    resp = admin.predict_response("iris-py", "Classify", ROW)
    assert resp.model == "iris-py" and resp.version == admin.model("iris-py")["version"]

    contract = Contract.compile(admin.proto("iris-py"))
    request = contract.input_class("Classify")(**ROW)
    answer = admin.predict(
        "iris-py", "Classify", request, protobuf=True, output_class=contract.output_class("Classify")
    )
    assert answer.species == "setosa"
    # a Message over JSON, parsed back into the output class
    answer = admin.predict("iris-py", "Classify", request, output_class=contract.output_class("Classify"))
    assert answer.species == "setosa"


def test_reading(admin: Client) -> None:
    admin.wait_ready(timeout=30)
    assert admin.healthy()
    models = {m["name"]: m for m in admin.models()}
    assert models["iris-py"]["runtime"] == "python"
    assert "Classify" in models["iris-py"]["methods"]
    assert admin.metadata("iris-py")["name"]
    assert admin.history("iris-py")[0]["version"] == 1
    assert 1 in admin.versions("iris-py")


def test_typed_errors(service: str, admin: Client) -> None:
    with pytest.raises(errors.NotFound) as info:
        admin.predict("no-such-model", "Classify", ROW)
    assert info.value.detail["http_status"] == 404
    with pytest.raises(errors.MethodNotFound):
        admin.predict("iris-py", "NoSuchMethod", ROW)
    with pytest.raises(errors.BadInput):
        admin.predict("iris-py", "Classify", {"sepal_length": "not a number"})
    with pytest.raises(errors.Unauthenticated) as auth:
        Client(service).rollback("iris-py")
    assert "--token" in auth.value.detail["hint"]
    with pytest.raises(errors.Forbidden):
        Client(service, "wrong-token").delete("iris-py")
    with pytest.raises(errors.InvalidBundle):
        admin.push("iris-py", b"PK\x05\x06" + b"\0" * 18)  # an empty zip: no metadata.json
    with pytest.raises(errors.PreconditionFailed):
        admin.rollback("iris-py", expected_version=999)
    # the failures changed nothing
    assert admin.predict("iris-py", "Classify", ROW)["species"] == "setosa"


def test_push_proto_rollback_delete(admin: Client, sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    before = admin.model("iris-py")["version"]
    history = admin.history("iris-py")
    # the content served already: nothing to publish, nothing in the history
    same = admin.push("iris-py", sample_bundles["iris-python"], expected_version=before)
    assert same["unchanged"] is True and same["version"] == before
    assert admin.history("iris-py") == history
    changed = shutil.copytree(sample_bundles["iris-python"], tmp_path / "iris-python")
    metadata = json.loads((changed / "metadata.json").read_text())
    metadata["description"] += " (pushed again)"
    (changed / "metadata.json").write_text(json.dumps(metadata))
    pushed = admin.push("iris-py", changed, expected_version=before)
    assert pushed["version"] == before + 1 and not pushed.get("unchanged")
    assert admin.predict_response("iris-py", "Classify", ROW).version == before + 1

    proto = admin.proto("iris-py")
    # renumbering a field breaks clients: refused without the flag, accepted with it
    assert "string species = 1;" in proto
    renumbered = proto.replace("string species = 1;", "string species = 7;")
    with pytest.raises(errors.Conflict) as info:
        admin.swap_proto("iris-py", renumbered)
    assert "species" in str(info.value.detail)
    swapped = admin.swap_proto("iris-py", renumbered, allow_breaking=True)
    assert swapped["version"] == before + 2 and swapped["breaking_changes"]
    assert admin.proto("iris-py") == renumbered
    assert admin.predict("iris-py", "Classify", ROW)["species"] == "setosa"

    rolled = admin.rollback("iris-py")
    assert rolled["version"] == before + 1
    rolled = admin.rollback("iris-py", version=before)
    assert rolled["version"] == before
    actions = [h["action"] for h in admin.history("iris-py")]
    assert actions.count("rollback") == 2

    with pytest.raises(errors.PreconditionFailed):  # someone else's version is current: nothing deleted
        admin.delete("iris-py", expected_version=before + 100)
    assert admin.predict("iris-py", "Classify", ROW)
    admin.delete("iris-py", expected_version=before)
    with pytest.raises(errors.NotFound):
        admin.predict("iris-py", "Classify", ROW)
    assert "iris-py" not in [m["name"] for m in admin.models()]


def test_unreachable_service() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.NotReady) as info:
        Client(f"http://127.0.0.1:{port}").models()
    assert "model-runner serve" in info.value.detail["hint"]


def test_error_from_response_without_json_body() -> None:
    err = error_from_response(502, b"<html>Bad gateway</html>")
    assert type(err) is errors.ModelRunnerError
    assert "502" in err.message and err.detail["http_status"] == 502
    err = error_from_response(413, b"")
    assert isinstance(err, errors.TooLarge)
    err = error_from_response(
        500, b'{"error": {"kind": "model_error", "message": "boom", "detail": {"java_class": "X"}}}'
    )
    assert isinstance(err, errors.ModelError) and err.message == "boom" and err.detail["java_class"] == "X"
