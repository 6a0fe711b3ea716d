"""Checks of our own that schemathesis runs on every answer of the fuzz stage (tests/e2e/test_fuzz_openapi.py
loads this file through SCHEMATHESIS_HOOKS), beside its built-in ones:

- ``admin_needs_a_token``: an operation the document secures (the admin routes), sent again as it was
  but without the Authorization header, answers 401 ``unauthenticated`` with a ``WWW-Authenticate``
  header, whatever the fuzzed request was;
- ``errors_are_bounded_json``: every 4xx and 5xx answer is the JSON error of docs/api.md
  (``{"error": {"kind", "message", "detail"}}``), at most 32 KiB, with no stack trace in it and none
  of the server's own paths (FUZZ_SERVER_PATHS: the repository, the source tree, the Python prefix).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import requests
import schemathesis
from schemathesis.core.parameters import ParameterLocation

MAX_ERROR_BYTES = 32 * 1024
_TRACES = re.compile(r"Traceback \(most recent call last\)|\bat [\w$.]+\(\w+\.java:\d+\)")
_SERVER_PATHS = [p for p in os.environ.get("FUZZ_SERVER_PATHS", "").split(os.pathsep) if len(p) > 1]
_session = requests.Session()


@schemathesis.check
def admin_needs_a_token(ctx: Any, response: Any, case: Any) -> bool | None:
    if not case.operation.definition.raw.get("security"):
        return None
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return None  # a path that no longer names the operation's route says nothing of its auth
    sent = response.request
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
