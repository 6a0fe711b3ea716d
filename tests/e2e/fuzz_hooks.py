"""Checks of our own that schemathesis runs on every answer of the fuzz stage (tests/e2e/test_fuzz_openapi.py
loads this file through SCHEMATHESIS_HOOKS), beside its built-in ones:

- ``no_server_failure``: no 5xx, but for the two the API documents as the caller's or the model's
  doing: 500 ``model_error`` (the model itself raised: ClassifyMatrix of the samples refuses a row
  without 4 values that way) and 504 ``deadline`` when the request asked for a deadline below
  ``SHORT_DEADLINE`` seconds (``X-Timeout-Seconds: 5e-324``). Everything else (``internal``,
  ``not_ready``, a gunicorn HTML page, a worker dying) fails;
- ``admin_needs_a_token``: an operation the document secures (the admin routes), sent again as it was
  but without the Authorization header, answers 401 ``unauthenticated`` with a ``WWW-Authenticate``
  header, whatever the fuzzed request was;
- ``errors_are_bounded_json``: every 4xx and 5xx answer is the JSON error of docs/api.md
  (``{"error": {"kind", "message", "detail"}}``; under /v2 the protocol's ``{"error": "<message>"}``), at
  most 32 KiB, with no stack trace in it and none
  of the server's own paths (FUZZ_SERVER_PATHS: the repository, the source tree, the Python prefix).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis
from schemathesis.core.parameters import ParameterLocation

MAX_ERROR_BYTES = 32 * 1024
SHORT_DEADLINE = 1.0  # a sample call takes milliseconds; a loaded CI machine may stall one for a while
_TRACES = re.compile(r"Traceback \(most recent call last\)|\bat [\w$.]+\(\w+\.java:\d+\)")
_SERVER_PATHS = [p for p in os.environ.get("FUZZ_SERVER_PATHS", "").split(os.pathsep) if len(p) > 1]
_session = requests.Session()


@schemathesis.check
def no_server_failure(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 500:
        return None
    kind = _error_kind(response)
    if response.status_code == 500 and kind == "model_error":
        return True
    if response.status_code == 504 and kind == "deadline" and _asked_deadline(response) < SHORT_DEADLINE:
        return True
    raise AssertionError(f"{response.status_code} ({kind or 'not a JSON error'}): {response.content[:500]!r}")


@schemathesis.check
def admin_needs_a_token(ctx: Any, response: Any, case: Any) -> bool | None:
    if not case.operation.definition.raw.get("security"):
        return None
    sent = response.request
    if sent.method.upper() != case.operation.method.upper():
        return None  # a probe with another verb (unsupported_method): 405 is its answer
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return None  # a path that no longer names the operation's route says nothing of its auth
    headers = {k: v for k, v in sent.headers.items() if k.lower() != "authorization"}
    again = _session.request(sent.method, sent.url, headers=headers, data=sent.body, timeout=30)
    if again.status_code == 404 and "no endpoint" in again.text:
        return None  # the generated path did not reach the route (e.g. an encoded '/' in the name)
    assert again.status_code == 401, (
        f"{sent.method} {sent.url} without a token answered {again.status_code}, not 401: {again.text[:300]}"
    )
    assert again.json()["error"]["kind"] == "unauthenticated", again.text[:300]
    assert again.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(again.headers)
    return True


@schemathesis.check
def errors_are_bounded_json(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 400:
        return None
    body = response.content or b""
    assert len(body) <= MAX_ERROR_BYTES, f"a {response.status_code} answer of {len(body)} bytes"
    media = _header(response, "content-type")
    assert media.split(";")[0].strip() == "application/json", f"a {response.status_code} answer as {media!r}"
    doc = json.loads(body)
    error = doc.get("error") if isinstance(doc, dict) else None
    if urlsplit(response.request.url).path.startswith("/v2"):
        assert isinstance(error, str), body[:300]  # the Open Inference Protocol's {"error": "<message>"}
    else:
        assert isinstance(error, dict) and {"kind", "message", "detail"} <= set(error), body[:300]
    text = body.decode("utf-8", "replace")
    trace = _TRACES.search(text)
    assert trace is None, f"a {response.status_code} answer shows a stack trace: {trace.group(0)!r}"
    for path in _SERVER_PATHS:
        assert path not in text, f"a {response.status_code} answer names the server's path {path}"
    return True


def _header(response: Any, name: str) -> str:
    """A header of a schemathesis response (header name -> list of values)."""
    for key, values in response.headers.items():
        if key.lower() == name:
            return str(values[0]) if values else ""
    return ""


def _error_kind(response: Any) -> str | None:
    try:
        kind = json.loads(response.content)["error"]["kind"]
    except (ValueError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


def _asked_deadline(response: Any) -> float:
    """The X-Timeout-Seconds the request sent (infinite when none, or not a number)."""
    raw = response.request.headers.get("X-Timeout-Seconds")
    try:
        return float(raw) if raw is not None else float("inf")
    except ValueError:
        return float("inf")
