"""The small HTTP conventions every route shares: If-Match versions, query flags, JSON answers with ETag."""

from __future__ import annotations

from typing import Any

from flask import Request, Response, jsonify

from runner.errors import BadInput


def if_match_version(request: Request) -> int | None:
    """The version an ``If-Match`` header expects to be current (None: no precondition)."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() in ("", "*"):
        return None
    value = raw.strip()
    value = value.removeprefix("W/")
    value = value.strip('"')
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"If-Match must be a version number, got {raw!r}", {"header": "If-Match"}) from None


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (absent: false; present without a value: true)."""
    raw = request.args.get(name, "false").lower()
    if raw in ("1", "true", "yes", "on", ""):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise BadInput(f"query parameter {name} must be true or false, got {raw!r}", {"parameter": name})


def query_int(request: Request, name: str) -> int | None:
    """An integer query parameter (absent or empty: None)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadInput(
            f"query parameter {name} must be an integer, got {raw!r}", {"parameter": name}
        ) from None


def json_answer(result: dict[str, Any], status: int = 200) -> Response:
    """``result`` as JSON; its integer ``version``, if any, is also the ETag (what If-Match takes back)."""
    response = jsonify(result)
    response.status_code = status
    version = result.get("version")
    if isinstance(version, int):
        response.headers["ETag"] = f'"{version}"'
    return response
