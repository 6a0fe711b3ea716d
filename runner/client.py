"""Python client of a running model-runner service (HTTP).

    from runner.client import Client
    c = Client("http://127.0.0.1:8080", token="...")
    c.predict("iris", "Classify", {"sepal_length": 5.1, "sepal_width": 3.5,
                                   "petal_length": 1.4, "petal_width": 0.2})
    c.push("iris", Path("build/iris.zip"))      # new version + swap; returns {"version": N, ...}

Every error the service answers with (``{"error": {"kind", "message", "detail"}}``) is raised as the
matching :mod:`runner.errors` class (one table, ``ERRORS_BY_KIND``), so callers catch the same types
the core raises. The HTTP status is added to ``detail["http_status"]``.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import requests
from google.protobuf import json_format
from google.protobuf.message import Message

from runner import errors
from runner.errors import Kind, ModelRunnerError

DEFAULT_URL = "http://127.0.0.1:8080"
MEDIA_JSON = "application/json"
MEDIA_PROTOBUF = "application/x-protobuf"
MEDIA_ZIP = "application/zip"

JsonObject = dict[str, Any]
"""A JSON object as the service answers it (its values are whatever JSON holds)."""

# The one table: the service's error kind -> the core error class raised here.
ERRORS_BY_KIND: dict[str, type[ModelRunnerError]] = {
    Kind.BAD_INPUT.value: errors.BadInput,
    Kind.NOT_FOUND.value: errors.NotFound,
    Kind.METHOD_NOT_FOUND.value: errors.MethodNotFound,
    Kind.AMBIGUOUS.value: errors.AmbiguousModel,
    Kind.UNSUPPORTED_MEDIA.value: errors.UnsupportedMedia,
    Kind.INVALID_BUNDLE.value: errors.InvalidBundle,
    Kind.INVALID_CONTRACT.value: errors.InvalidContract,
    Kind.CONFLICT.value: errors.Conflict,
    Kind.PRECONDITION_FAILED.value: errors.PreconditionFailed,
    Kind.UNAUTHENTICATED.value: errors.Unauthenticated,
    Kind.FORBIDDEN.value: errors.Forbidden,
    Kind.TOO_LARGE.value: errors.TooLarge,
    Kind.MODEL_ERROR.value: errors.ModelError,
    Kind.DEADLINE.value: errors.DeadlineExceeded,
    Kind.NOT_READY.value: errors.NotReady,
    Kind.SWAP_TIMEOUT.value: errors.SwapTimeout,
    Kind.INTERNAL.value: ModelRunnerError,
}

# Used only when an answer has no JSON error body (a proxy, a crashed worker): status -> class.
_ERRORS_BY_STATUS: dict[int, type[ModelRunnerError]] = {
    400: errors.BadInput,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    412: errors.PreconditionFailed,
    413: errors.TooLarge,
    415: errors.UnsupportedMedia,
    422: errors.InvalidBundle,
    503: errors.NotReady,
    504: errors.DeadlineExceeded,
}

_HINTS: dict[type[ModelRunnerError], str] = {
    errors.Unauthenticated: "pass the admin token with --token or MODEL_RUNNER_TOKEN "
    "(`serve` prints where its token file is)",
    errors.Forbidden: "the token is not allowed to do this",
    errors.PreconditionFailed: "someone swapped first: check `model-runner history NAME` and retry",
    errors.Conflict: "a breaking contract change needs --allow-breaking (clients of the old contract may fail)",
    errors.TooLarge: "raise MODEL_RUNNER_MAX_BODY_BYTES on the service, or slim the bundle",
}


def error_from_response(status: int, body: bytes, content_type: str = "") -> ModelRunnerError:
    """The typed error for a non-2xx answer (the service's JSON error body, or the status alone)."""
    kind = message = None
    detail: dict[str, Any] = {}
    try:
        doc = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        kind = err.get("kind")
        message = err.get("message")
        detail = err.get("detail") if isinstance(err.get("detail"), dict) else {}
    cls = ERRORS_BY_KIND.get(kind or "") or _ERRORS_BY_STATUS.get(status, ModelRunnerError)
    if not message:
        text = body.decode("utf-8", "replace") if body else ""
        if "<" in text and ">" in text:  # an HTML error page (a proxy, gunicorn itself): keep its words
            text = re.sub(r"<[^>]*>", " ", text)
            text = html.unescape(text)
        text = re.sub(r"\s+", " ", text).strip()[:500]
        message = f"HTTP {status}" + (f": {text}" if text else "")
    detail = dict(detail)
    detail.setdefault("http_status", status)
    if cls in _HINTS:
        detail.setdefault("hint", _HINTS[cls])
    return cls(message, detail)


@dataclass
class PredictResponse:
    """A prediction with the model name and version that served it."""

    body: bytes
    content_type: str
    model: str | None
    version: int | None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class _ProgressReader(io.RawIOBase):
    """A file-like body that reports how much requests has read (for upload progress)."""

    def __init__(self, data: bytes, callback: Callable[[int, int], None]):
        self._buf = io.BytesIO(data)
        self._total = len(data)
        self._callback = callback
        self._sent = 0

    def __len__(self) -> int:
        return self._total

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._buf.read(size if size and size > 0 else -1)
        if chunk:
            self._sent += len(chunk)
            self._callback(self._sent, self._total)
        return chunk


class Client:
    """A model-runner service at ``url``; ``token`` is the admin bearer token (needed by push, proto,
    rollback, delete)."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 120.0):
        self.url = (url or os.environ.get("MODEL_RUNNER_URL") or DEFAULT_URL).rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()

    # ------------------------------------------------------------------ plumbing
    def _request(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if self.token and admin:
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.request(
                method, self.url + path, headers=hdrs, timeout=timeout or self.timeout, **kwargs
            )
        except requests.ConnectionError as exc:
            raise errors.NotReady(
                f"cannot reach the service at {self.url}",
                {
                    "reason": str(exc),
                    "hint": "is `model-runner serve` running? Point --url (or MODEL_RUNNER_URL) at it",
                },
            ) from None
        except requests.Timeout:
            raise errors.DeadlineExceeded(
                f"no answer from {self.url}{path} within {timeout or self.timeout:g} s", {}
            ) from None
        if resp.status_code >= 400:
            raise error_from_response(resp.status_code, resp.content, resp.headers.get("Content-Type", ""))
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._request(method, path, **kwargs)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            return {"text": resp.text}

    def _object(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        """``_json`` for the endpoints that answer a JSON object."""
        return cast(JsonObject, self._json(method, path, **kwargs))

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    @staticmethod
    def _if_match(expected_version: int | None) -> dict[str, str]:
        return {} if expected_version is None else {"If-Match": str(expected_version)}

    # ------------------------------------------------------------------ data plane
    def predict_response(
        self,
        name: str,
        method: str,
        payload: JsonObject | Message | bytes | str,
        *,
        protobuf: bool = False,
        timeout: float | None = None,
    ) -> PredictResponse:
        """POST one prediction; ``protobuf`` sends and accepts binary protobuf (payload: a Message or
        its bytes), otherwise JSON (payload: a dict, a Message, or JSON text)."""
        if protobuf:
            if isinstance(payload, Message):
                body = payload.SerializeToString()
            elif isinstance(payload, (bytes, bytearray)):
                body = bytes(payload)
            else:
                raise errors.BadInput("protobuf=True needs a protobuf Message (or its serialized bytes)")
            media = MEDIA_PROTOBUF
        else:
            if isinstance(payload, Message):
                body = json_format.MessageToJson(payload, preserving_proto_field_name=True).encode()
            elif isinstance(payload, (bytes, bytearray)):
                body = bytes(payload)
            elif isinstance(payload, str):
                body = payload.encode("utf-8")
            else:
                body = json.dumps(payload).encode("utf-8")
            media = MEDIA_JSON
        resp = self._request(
            "POST",
            f"/models/{self._name(name)}/methods/{quote(method, safe='')}",
            data=body,
            headers={"Content-Type": media, "Accept": media},
            timeout=timeout,
        )
        version = resp.headers.get("X-Model-Version")
        return PredictResponse(
            body=resp.content,
            content_type=resp.headers.get("Content-Type", media),
            model=resp.headers.get("X-Model-Name"),
            version=int(version) if version and version.isdigit() else None,
        )

    def predict(
        self,
        name: str,
        method: str,
        payload: JsonObject | Message | bytes | str,
        *,
        protobuf: bool = False,
        output_class: type[Message] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` of model ``name``. Returns the answer as a dict (JSON), or, with
        ``output_class``, as that message; with ``protobuf`` and no ``output_class``, the raw bytes."""
        resp = self.predict_response(name, method, payload, protobuf=protobuf, timeout=timeout)
        if protobuf:
            return output_class.FromString(resp.body) if output_class else resp.body
        doc = resp.json()
        if output_class is not None:
            return json_format.ParseDict(doc, output_class())
        return doc

    # ------------------------------------------------------------------ reading
    def models(self) -> list[JsonObject]:
        """Every model with its current version (``GET /models``)."""
        doc = self._json("GET", "/models")
        if isinstance(doc, dict) and "models" in doc:
            doc = doc["models"]
        if isinstance(doc, dict):  # tolerate {name: info}
            doc = [{"name": k, **(v if isinstance(v, dict) else {"version": v})} for k, v in doc.items()]
        return list(doc)

    def model(self, name: str) -> JsonObject:
        return self._object("GET", f"/models/{self._name(name)}")

    def versions(self, name: str) -> list[int]:
        doc = self._json("GET", f"/models/{self._name(name)}/versions")
        return cast(list[int], doc.get("versions", doc) if isinstance(doc, dict) else doc)

    def history(self, name: str) -> list[JsonObject]:
        """The model's swap history, oldest first (``GET /models/{name}/history``)."""
        doc = self._json("GET", f"/models/{self._name(name)}/history")
        return cast(list[JsonObject], doc.get("history", doc) if isinstance(doc, dict) else doc)

    def proto(self, name: str) -> str:
        return self._request("GET", f"/models/{self._name(name)}/proto").text

    def metadata(self, name: str) -> JsonObject:
        return self._object("GET", f"/models/{self._name(name)}/metadata")

    def healthy(self) -> bool:
        try:
            return self.session.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def ready(self) -> bool:
        try:
            return self.session.get(self.url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """Block until ``/readyz`` answers 200 (every model loaded), or raise NotReady after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline:
                raise errors.NotReady(
                    f"{self.url} is not ready after {timeout:g} s",
                    {"hint": "check `model-runner serve`'s output for load errors"},
                )
            time.sleep(interval)

    # ------------------------------------------------------------------ admin
    def push(
        self,
        name: str,
        bundle: Path | str | bytes,
        *,
        expected_version: int | None = None,
        allow_breaking: bool = False,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> JsonObject:
        """Upload a bundle (zip file, bundle folder, or zip bytes) as a new version of ``name`` and swap
        to it; answers once every serving process serves it. A contract that breaks the current one's
        clients is refused (Conflict) unless ``allow_breaking``. Returns the service's answer
        (``version`` among others)."""
        data = bundle_bytes(bundle)
        body: _ProgressReader | bytes = _ProgressReader(data, progress) if progress else data
        params = {"allow_breaking": "true"} if allow_breaking else {}
        return self._object(
            "PUT",
            f"/models/{self._name(name)}",
            admin=True,
            data=body,
            timeout=timeout,
            params=params,
            headers={"Content-Type": MEDIA_ZIP, **self._if_match(expected_version)},
        )

    def swap_proto(
        self,
        name: str,
        proto: Path | str,
        *,
        allow_breaking: bool = False,
        expected_version: int | None = None,
    ) -> JsonObject:
        """Replace only the contract of ``name`` (a new version with the same artifacts)."""
        text = proto.read_text("utf-8") if isinstance(proto, Path) else proto
        params = {"allow_breaking": "true"} if allow_breaking else {}
        return self._object(
            "PUT",
            f"/models/{self._name(name)}/proto",
            admin=True,
            params=params,
            data=text.encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8", **self._if_match(expected_version)},
        )

    def rollback(
        self, name: str, *, version: int | None = None, expected_version: int | None = None
    ) -> JsonObject:
        """Make the previous version (or ``version``) current again."""
        params = {"version": str(version)} if version is not None else {}
        return self._object(
            "POST",
            f"/models/{self._name(name)}/rollback",
            admin=True,
            params=params,
            headers=self._if_match(expected_version),
        )

    def delete(self, name: str, *, expected_version: int | None = None) -> JsonObject:
        """Stop serving ``name`` (its versions stay in the repository until cleanup); with
        ``expected_version``, only if that version is still current (PreconditionFailed otherwise)."""
        return self._object(
            "DELETE", f"/models/{self._name(name)}", admin=True, headers=self._if_match(expected_version)
        )


def bundle_bytes(bundle: Path | str | bytes) -> bytes:
    """Zip bytes of a bundle given as bytes, a .zip file or a bundle folder."""
    if isinstance(bundle, (bytes, bytearray)):
        return bytes(bundle)
    path = Path(bundle)
    if path.is_dir():
        return _zip_folder(path)
    if not path.exists():
        raise errors.BadInput(f"{path}: no such file", {"path": str(path)})
    return path.read_bytes()


def _zip_folder(folder: Path) -> bytes:
    from runner.bundle import write_bundle_zip  # noqa: PLC0415 (the one zip writer)

    return write_bundle_zip(folder)
