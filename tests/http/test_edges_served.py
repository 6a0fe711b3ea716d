"""The edges of tests/http/test_edges.py that only a real server shows: names with NUL characters and
bytes that are not UTF-8 in the URL, through real `model-runner serve` (gunicorn). gunicorn refuses a
header value holding a NUL: echoing the URL's model name into X-Model-Name made it answer its own 500 HTML
page; the WSGI path is the URL's bytes as latin-1 characters, which garbled non-ASCII names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.http.conftest import write_toy_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `serve` of the Python toy model (no JVM, no gRPC, one worker): its base URL."""
    tmp = tmp_path_factory.mktemp("edges-served")
    toy = write_toy_bundle(tmp / "toy")
    ready, log = tmp / "ready.json", tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    cmd = [sys.executable, "-m", "runner", "serve", str(toy), "--repo", str(tmp / "repo")]
    cmd += ["--http-port", "0", "--grpc-port", "-1", "--workers", "1", "--threads", "2"]
    cmd += ["--ready-file", str(ready)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None,
            240,
            "serve to write its ready file",
            interval=0.1,
            describe=lambda: log.read_text(errors="replace")[-4000:],
        )
        if not ready.exists():
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        yield f"http://127.0.0.1:{json.loads(ready.read_text())['http_port']}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def post(base: str, path: str, body: Any) -> requests.Response:
    return requests.post(base + path, json=body, timeout=30)


def json_error(r: requests.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text[:2000]
    assert r.headers["Content-Type"].startswith("application/json"), r.text[:500]
    err = r.json()["error"]
    assert err["kind"] == kind, err
    return dict(err)


def test_a_model_name_with_nul_answers_a_json_404_through_gunicorn(served: str) -> None:
    r = post(served, "/models/toy%00/methods/Echo", {"text": "hi"})
    err = json_error(r, 404, "not_found")
    assert err["detail"]["model"] == "toy\x00"
    assert "X-Model-Name" not in r.headers


def test_a_method_name_with_nul_answers_a_json_404_through_gunicorn(served: str) -> None:
    r = post(served, "/models/toy/methods/Echo%00", {"text": "hi"})
    err = json_error(r, 404, "method_not_found")
    assert err["detail"]["method"] == "Echo\x00"
    assert r.headers["X-Model-Name"] == "toy"


def test_unicode_and_non_utf8_names_through_gunicorn(served: str) -> None:
    err = json_error(post(served, "/models/%C3%A9t%C3%A9/methods/Echo", {"text": "hi"}), 404, "not_found")
    assert err["detail"]["model"] == "été"
    err = json_error(post(served, "/models/%FF%FE/methods/Echo", {"text": "hi"}), 400, "bad_input")
    assert "UTF-8" in err["message"]
    # and the model still answers
    r = post(served, "/models/toy/methods/Echo", {"text": "hi"})
    assert r.status_code == 200 and r.json() == {"value": "hi"}


def test_a_model_error_through_gunicorn_carries_a_request_id_and_no_traceback(served: str) -> None:
    r = post(served, "/models/toy/methods/Echo", {"text": "boom"})
    err = json_error(r, 500, "model_error")
    assert "traceback" not in err["detail"] and "asked to fail" in err["message"]
    assert r.headers["X-Request-Id"] == err["detail"]["request_id"]
