"""One transport-free predict entry: model resolution, media negotiation, the call, its errors.

The HTTP predict routes (runner/http/predict.py) call it; the gRPC edge still resolves and calls
models itself (runner/grpc/server.py).

Media types: ``application/json`` and binary protobuf (``application/vnd.google.protobuf`` or
``application/x-protobuf``). The response type defaults to the request's. Binary in and binary out
passes the bytes straight to the model (no parsing in Python here: the model validates them), unless
the rpc has required fields: then the request is parsed to check them (``LoadedVersion.required``,
runner.contract.RequiredFields, the one check every request path calls).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.contract import MEDIA_JSON, MEDIA_PROTOBUF, normalize_media
from runner.errors import (
    BadInput,
    MethodNotFound,
    ModelError,
    ModelRunnerError,
    NotFound,
    UnsupportedMedia,
)
from runner.serving.registry import Registry

SUPPORTED_MEDIA = (MEDIA_JSON, *MEDIA_PROTOBUF)


@dataclass
class PredictResult:
    """The response body, its media type, and the model version that produced it."""

    body: bytes
    content_type: str
    model: str
    version: int


def request_media(content_type: str | None) -> str:
    """The request's media type, normalised; UnsupportedMedia when it is not one we read."""
    media = normalize_media(content_type)
    if media not in SUPPORTED_MEDIA:
        raise UnsupportedMedia(
            f"request Content-Type {content_type!r} is not supported; "
            f"send {MEDIA_JSON} or {MEDIA_PROTOBUF[0]}",
            {"content_type": content_type, "supported": list(SUPPORTED_MEDIA)},
        )
    return media


def response_media(accept: str | None, request: str) -> str:
    """Pick the response type from an Accept header (q-values honoured); default: the request's."""
    if accept is None or not accept.strip():
        return request
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media, q = pieces[0].lower(), 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            choices.append((-q, i, media))
    for _q, _i, media in sorted(choices):
        if media in ("*/*", "application/*"):
            return request
        if media in SUPPORTED_MEDIA:
            return media
    raise UnsupportedMedia(
        f"cannot answer in any of {accept!r}; accepted: {', '.join(SUPPORTED_MEDIA)}",
        {"accept": accept, "supported": list(SUPPORTED_MEDIA)},
    )


class DataPlane:
    """predict() over a registry's live models."""

    def __init__(self, registry: Registry, *, max_json_depth: int = 64):
        self.registry = registry
        self.max_json_depth = max_json_depth

    def model_for(self, model: str | None) -> str:
        """``model`` itself, or the only model when None (the Acumos single-model paths)."""
        if model is not None:
            return model
        names = sorted(self.registry.snapshot())
        if len(names) == 1:
            return names[0]
        if not names:
            raise NotFound("no model is being served", {"models": []})
        raise BadInput(
            f"this service serves several models ({', '.join(names)}): name one, "
            "e.g. POST /models/{name}/methods/{method}",
            {"models": names},
        )

    def predict(
        self,
        model: str | None,
        method: str,
        payload: bytes,
        content_type: str | None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> PredictResult:
        """Run ``method`` of the current version of ``model`` on ``payload``.

        Errors: NotFound (model), MethodNotFound, NotReady, UnsupportedMedia, BadInput (naming the
        field), and whatever the model raises (ModelError, DeadlineExceeded).
        """
        in_media = request_media(content_type)
        out_media = response_media(accept, in_media)
        name = self.model_for(model)
        with self.registry.acquire(name) as loaded:
            try:
                contract = loaded.contract
                # exactly this name: upb's lookup stops at a NUL ("Classify\x00" would find Classify)
                found = contract.service.methods_by_name.get(method)
                if found is None or found.name != method:
                    raise MethodNotFound(
                        f"model {name!r} has no method {method!r} "
                        f"(methods: {', '.join(contract.method_names())})",
                        {
                            "model": name,
                            "method": method,
                            "methods": contract.method_names(),
                            "version": loaded.version,
                        },
                    )
                if in_media == MEDIA_JSON:
                    message = contract.decode(
                        contract.input_class(method), payload, MEDIA_JSON, max_json_depth=self.max_json_depth
                    )
                    loaded.required.check(method, message)
                    request = message.SerializeToString()
                else:
                    request = bytes(payload)  # fast path: the model parses and validates
                    loaded.required.check_wire(method, request)  # parses only if the rpc has required fields
                bundle_timeout = getattr(loaded.metadata, "timeout_seconds", None)
                if bundle_timeout:
                    timeout = min(timeout, bundle_timeout) if timeout else float(bundle_timeout)
                response = loaded.model.invoke(method, request, timeout=timeout)
                if out_media != MEDIA_JSON:
                    body = bytes(response)
                else:
                    out_class = contract.output_class(method)
                    try:
                        message = out_class.FromString(response)
                    except Exception as err:  # DecodeError: what the model returned is not the output message
                        raise ModelError(
                            f"model {name!r} returned bytes that are not a {out_class.DESCRIPTOR.full_name}: {err}",
                            {"model": name, "method": method, "version": loaded.version},
                        ) from err
                    body = contract.encode(message, MEDIA_JSON)
                return PredictResult(body, out_media, name, loaded.version)
            except ModelRunnerError as err:
                # every answer names the version that handled it, errors included (X-Model-Version)
                err.detail.setdefault("model", name)
                err.detail.setdefault("version", loaded.version)
                raise
