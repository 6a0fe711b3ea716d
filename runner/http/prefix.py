"""The `path_prefix` setting: every route also answers under a fixed path (Acumos' context root,
`/modelrunner`), so a client configured for another server's layout works unchanged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class PathPrefix:
    """WSGI middleware: a path under ``prefix`` is answered as the path without it (the prefix moves to
    SCRIPT_NAME, as a mounted application sees it); any other path passes unchanged. The environ is
    copied, so the access log (in front) still names the path the client asked for."""

    def __init__(self, app: WSGIApplication, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ = {
                **environ,
                "PATH_INFO": path[len(self.prefix) :] or "/",
                "SCRIPT_NAME": (environ.get("SCRIPT_NAME") or "") + self.prefix,
            }
        return self.app(environ, start_response)
