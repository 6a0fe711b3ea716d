"""Admin authentication: the configured bearer token, and the check every admin route starts with."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from flask import Request

from runner.errors import Forbidden, Unauthenticated
from runner.settings import Settings

log = logging.getLogger(__name__)


def load_admin_token(settings: Settings) -> str | None:
    """The configured admin token: Settings.admin_token, else the content of admin_token_file."""
    if settings.admin_token:
        return settings.admin_token.strip() or None
    if settings.admin_token_file:
        try:
            return Path(settings.admin_token_file).read_text().strip() or None
        except OSError as err:
            log.warning(
                "admin token file %s unreadable (%s): admin endpoints disabled",
                settings.admin_token_file,
                err,
            )
    return None


class AdminAuth:
    """The bearer-token check of the admin routes; with no token configured, admin is off."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def require(self, request: Request) -> str:
        """Check the bearer token; returns the caller string recorded in history."""
        header = request.headers.get("Authorization", "")
        if self._token is None:
            raise Forbidden(
                "admin endpoints are disabled: no admin token is configured",
                {"hint": "set MODEL_RUNNER_ADMIN_TOKEN or --admin-token-file"},
            )
        if not header:
            raise Unauthenticated("admin endpoint: send 'Authorization: Bearer <token>'", {})
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated(
                "admin endpoint: the Authorization header must be 'Bearer <token>'", {"scheme": scheme}
            )
        if not hmac.compare_digest(presented.strip().encode(), self._token.encode()):
            raise Forbidden("the admin token is wrong", {})
        return f"http:{request.remote_addr or '-'}"
