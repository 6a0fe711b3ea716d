"""Request ids and the access log of the HTTP edge (runner.http.access), on the real Flask app."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.serving.access import flush_all
from tests.http.conftest import Env, make_env

ID = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def toy_env(toy_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = make_env(tmp_path_factory.mktemp("http-access"), {"toy": toy_bundle})
    yield env
    env.registry.stop()


def access_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The access lines written so far (written within 0.1 s: flushed here at once)."""
    flush_all()
    return [line for line in capsys.readouterr().err.splitlines() if " access: " in line]


def test_a_request_id_given_is_echoed_and_in_the_access_line(
    toy_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    r = toy_env.client.post(
        "/models/toy/methods/Echo", json={"text": "hi"}, headers={"X-Request-Id": "client-42.a:b_c"}
    )
    assert r.status_code == 200
    assert r.headers.getlist("X-Request-Id") == ["client-42.a:b_c"]
    [line] = access_lines(capsys)
    assert re.fullmatch(
        r"\S+Z http\[\d+\] access: POST /models/toy/methods/Echo 200 [0-9.]+ms model=toy version=1 "
        r"request_id=client-42\.a:b_c protocol=http",
        line,
    ), line


@pytest.mark.parametrize(
    "given",
    [None, "", "has space", "x" * 65, "é", "a\\b", "semi;colon"],
    ids=["none", "empty", "space", "too-long", "non-ascii", "backslash", "semicolon"],
)
def test_a_request_id_is_generated_when_none_acceptable_is_given(
    toy_env: Env, capsys: pytest.CaptureFixture[str], given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-Id": given}
    r = toy_env.client.get("/healthz", headers=headers)
    [request_id] = r.headers.getlist("X-Request-Id")
    assert ID.fullmatch(request_id) and request_id != given
    [line] = access_lines(capsys)
    assert "access: GET /healthz 200 " in line and f"request_id={request_id} " in line
    assert "model=- version=-" in line


def test_a_model_error_is_logged_under_the_request_id_given(
    toy_env: Env, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        r = toy_env.client.post(
            "/models/toy/methods/Echo", json={"text": "boom"}, headers={"X-Request-Id": "trace-77"}
        )
    assert r.status_code == 500
    body = r.get_json()
    assert body["error"]["kind"] == "model_error" and body["error"]["detail"]["request_id"] == "trace-77"
    assert r.headers.getlist("X-Request-Id") == ["trace-77"]
    logged = [rec.getMessage() for rec in caplog.records if "trace-77" in rec.getMessage()]
    assert logged and "model_error" in logged[0] and "the toy model was asked to fail" in logged[0]
    [line] = access_lines(capsys)
    assert " 500 " in line and "model=toy version=1 request_id=trace-77 " in line


def test_a_request_that_reached_no_model_names_none(toy_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    r = toy_env.client.post("/models/no-such/methods/Echo", json={"text": "hi"})
    assert r.status_code == 404
    [line] = access_lines(capsys)
    assert "POST /models/no-such/methods/Echo 404 " in line and "model=- version=-" in line


def test_the_access_log_in_json_and_off(
    toy_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = make_env(tmp_path / "json", {"toy": toy_bundle}, access_log="json")
    try:
        capsys.readouterr()
        r = env.client.post(
            "/models/toy/methods/Echo?x=1", json={"text": "hi"}, headers={"X-Request-Id": "json-1"}
        )
        assert r.status_code == 200
        flush_all()
        err = capsys.readouterr().err
    finally:
        env.registry.stop()
    [doc] = [json.loads(text) for text in err.splitlines() if text.startswith("{")]
    assert doc["method"] == "POST" and doc["path"] == "/models/toy/methods/Echo"
    assert doc["model"] == "toy" and doc["version"] == 1 and doc["status"] == 200
    assert doc["request_id"] == "json-1" and doc["protocol"] == "http" and doc["process"] == "http"
    assert isinstance(doc["duration_ms"], float) and doc["duration_ms"] >= 0

    env = make_env(tmp_path / "off", {"toy": toy_bundle}, access_log="off")
    try:
        capsys.readouterr()
        r = env.client.post(
            "/models/toy/methods/Echo", json={"text": "hi"}, headers={"X-Request-Id": "off-1"}
        )
        assert r.status_code == 200 and r.headers["X-Request-Id"] == "off-1"  # ids stay
        flush_all()
        assert "access" not in capsys.readouterr().err
    finally:
        env.registry.stop()
