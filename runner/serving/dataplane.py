"""The one data plane: every predict of every edge goes through :meth:`DataPlane.run`.

The edges only translate their wire to a call of this module and its answer (or neutral error) back:

- HTTP's own routes (runner/http/predict.py): :meth:`DataPlane.predict`, a named model (or the only
  one, on the Acumos single-model paths), JSON or binary protobuf in and out;
- gRPC's own contracts (runner/grpc/server.py): :meth:`DataPlane.predict` with the called service's
  full name, binary protobuf in and out;
- the Open Inference Protocol, REST (runner/http/oip.py) and gRPC (runner/grpc/oip.py):
  :meth:`DataPlane.infer`, V2 tensors mapped onto the contract by runner.serving.oip.

:meth:`DataPlane.run` is the single entry under all three (``predict`` and ``infer`` enter its body,
``_run``, within the tracking they open already): it resolves the model (:meth:`DataPlane.route`:
the named model; else the only model of the service; else, for gRPC, the one model serving the called
service and method, AmbiguousModel when several do), holds that version for the whole call (a swap
never shows a call half of each contract), checks the target (the called service, the asked version),
decodes the request with the rpc's required fields checked (``LoadedVersion.required``, the check every
request path calls), applies the one deadline rule (runner.runtimes.deadline.call_timeout: the client's
deadline, ``predict_timeout``, the bundle's ``timeout_seconds``), calls the model and encodes its
answer. Errors are the core's (runner.errors); after the version is held, their detail names it
(``model``, ``version``).

Media types of the own routes: ``application/json`` and binary protobuf (``application/vnd.google.protobuf``
or ``application/x-protobuf``). The response type defaults to the request's. Binary in and binary out
passes the bytes straight to the model (no parsing in Python here: the model validates them), unless
the rpc has required fields: then the request is parsed to check them. A model that maps proto3 JSON
itself (a Java model: the host library parses and prints it from the contract's schema, as
runner.contract.codec does) gets JSON requests as bytes and gives JSON answers as bytes the same way
(:meth:`ContractExchange.goes_direct`); an rpc with required fields keeps the Python message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from runner.contract import MEDIA_JSON, MEDIA_PROTOBUF, Contract, normalize_media
from runner.errors import (
    AmbiguousModel,
    BadInput,
    MethodNotFound,
    ModelError,
    ModelRunnerError,
    NotFound,
    NotReady,
    UnsupportedMedia,
)
from runner.runtimes.deadline import call_timeout
from runner.serving import metrics, oip
from runner.serving.batching import Batching
from runner.serving.registry import LoadedVersion, Registry

SUPPORTED_MEDIA = (MEDIA_JSON, *MEDIA_PROTOBUF)
MODEL_METADATA_KEY = "x-model-name"
"""The gRPC request metadata naming the model (the edge reads it; named here for the error messages)."""
_RESOLVE_ATTEMPTS = 3  # a swap between routing and holding the version routes again

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Started = Callable[[LoadedVersion, str], None]
"""Called once the version that answers is held and the rpc known, before the request is decoded
(the gRPC edges send their initial metadata from it)."""


@dataclass
class PredictResult:
    """The response body, its media type, and the model version that produced it."""

    body: bytes
    content_type: str
    model: str
    version: int


class Exchange(Protocol[T_co]):
    """How one protocol's request meets the rpc of the version that serves it (one per call)."""

    def method(self, loaded: LoadedVersion) -> str:
        """The rpc to run (MethodNotFound when the contract has none such)."""
        ...

    def request(self, loaded: LoadedVersion, method: str) -> bytes:
        """The rpc's binary input message, its required fields checked (BadInput says what is wrong)."""
        ...

    def reply(self, loaded: LoadedVersion, method: str, response: bytes) -> T_co:
        """The protocol's answer from the model's binary output message (naming ``loaded``, the version
        that answered, as the protocol needs)."""
        ...


def request_media(content_type: str | None) -> str:
    """The request's media type, normalised; UnsupportedMedia when it is not one we read."""
    if content_type in SUPPORTED_MEDIA:
        return content_type  # as most clients (and the gRPC edge) send it: nothing to normalise
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
    if accept is None:
        return request
    # clients send the same few Accept headers on every request: negotiate each pair once
    key = (accept, request)
    media = _negotiated.get(key)
    if media is None:
        media = _negotiate(accept, request)  # raises UnsupportedMedia (not kept: it is the rare case)
        if len(_negotiated) >= _NEGOTIATED_LIMIT:  # Accept comes from clients: bound what is kept
            _negotiated.clear()
        _negotiated[key] = media
    return media


_negotiated: dict[tuple[str, str], str] = {}
_NEGOTIATED_LIMIT = 256


def _negotiate(accept: str, request: str) -> str:
    if not accept.strip():
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


def output_message(loaded: LoadedVersion, method: str, response: bytes) -> Any:
    """The rpc's output message parsed from what the model returned (ModelError when it is not one)."""
    out_class = loaded.contract.output_class(method)
    try:
        return out_class.FromString(response)
    except Exception as err:  # DecodeError: what the model returned is not the output message
        raise ModelError(
            f"model {loaded.name!r} returned bytes that are not a {out_class.DESCRIPTOR.full_name}: {err}",
            {"model": loaded.name, "method": method, "version": loaded.version},
        ) from err


class ContractExchange:
    """A model's own contract: the request in JSON or binary protobuf, the answer in ``out_media``."""

    __slots__ = ("in_media", "max_json_depth", "out_media", "payload", "rpc")

    def __init__(self, rpc: str, payload: bytes, in_media: str, out_media: str, max_json_depth: int):
        self.rpc = rpc
        self.payload = payload
        self.in_media = in_media
        self.out_media = out_media
        self.max_json_depth = max_json_depth

    def method(self, loaded: LoadedVersion) -> str:
        contract = loaded.contract
        # exactly this name: upb's lookup stops at a NUL ("Classify\x00" would find Classify)
        found = contract.service.methods_by_name.get(self.rpc)
        if found is None or found.name != self.rpc:
            raise MethodNotFound(
                f"model {loaded.name!r} has no method {self.rpc!r} "
                f"(methods: {', '.join(contract.method_names())})",
                {
                    "model": loaded.name,
                    "method": self.rpc,
                    "methods": contract.method_names(),
                    "version": loaded.version,
                },
            )
        return self.rpc

    def request(self, loaded: LoadedVersion, method: str) -> bytes:
        if self.in_media == MEDIA_JSON:
            contract = loaded.contract
            message = contract.decode(
                contract.input_class(method), self.payload, MEDIA_JSON, max_json_depth=self.max_json_depth
            )
            loaded.required.check(method, message)
            return message.SerializeToString()
        payload = self.payload if type(self.payload) is bytes else bytes(self.payload)
        loaded.required.check_wire(method, payload)  # parses only if the rpc has required fields
        return payload  # fast path: the model parses and validates

    def goes_direct(self, loaded: LoadedVersion, method: str) -> bool:
        """Whether :meth:`direct` answers: the model maps proto3 JSON itself (a Java model's
        ``invoke_json``, for its ``json_methods``), JSON is on either side, and the rpc has no required
        fields (those are checked on the Python message, through :meth:`request`)."""
        json_methods = getattr(loaded.model, "json_methods", None)
        if not json_methods or method not in json_methods:
            return False
        if self.in_media != MEDIA_JSON and self.out_media != MEDIA_JSON:
            return False  # binary both ways goes straight through already
        required = loaded.required
        return not required or method not in required.methods()

    def direct(self, loaded: LoadedVersion, method: str, limit: float | None) -> PredictResult:
        """The call with the request's bytes in and the answer's bytes out, no message in Python: the
        model parses and prints the JSON (see :meth:`goes_direct`)."""
        json_in, json_out = self.in_media == MEDIA_JSON, self.out_media == MEDIA_JSON
        body = loaded.model.invoke_json(  # type: ignore[attr-defined]  # goes_direct checked it has one
            method,
            self.payload,
            json_in=json_in,
            json_out=json_out,
            timeout=limit,
            max_json_depth=self.max_json_depth,
        )
        return PredictResult(body, self.out_media, loaded.name, loaded.version)

    def reply(self, loaded: LoadedVersion, method: str, response: bytes) -> PredictResult:
        if self.out_media != MEDIA_JSON:
            body = bytes(response)
        else:
            body = loaded.contract.encode(output_message(loaded, method, response), MEDIA_JSON)
        return PredictResult(body, self.out_media, loaded.name, loaded.version)


@dataclass
class Inference:
    """What an Open Inference Protocol inference answered: the rpc's output message as proto3 JSON, with
    the contract and rpc that map it onto output tensors (runner.serving.oip.infer_response for REST,
    oip.output_values for gRPC's typed contents), and the version that answered."""

    contract: Contract
    method: str
    output: dict[str, Any]
    model: str
    version: int


class InferExchange:
    """An Open Inference Protocol (KServe V2) inference: the request as V2 tensor dicts (the request
    object, and the binary data its inputs' ``binary_data_size`` count in); runner.serving.oip maps
    them onto the rpc's input message, checking every input the rpc needs."""

    __slots__ = ("binary", "body", "max_json_depth")

    def __init__(self, body: dict[str, Any], binary: bytes | memoryview, max_json_depth: int):
        self.body = body
        self.binary = binary
        self.max_json_depth = max_json_depth

    def method(self, loaded: LoadedVersion) -> str:
        return oip.method_of(loaded.contract, self.body.get("parameters"))

    def request(self, loaded: LoadedVersion, method: str) -> bytes:
        contract = loaded.contract
        fields = oip.request_to_json(
            contract,
            method,
            self.body,
            self.binary,
            required=loaded.required,
            max_json_depth=self.max_json_depth,
        )
        message = contract.from_json(contract.input_class(method), fields, max_json_depth=self.max_json_depth)
        loaded.required.check(method, message)
        return message.SerializeToString()

    def reply(self, loaded: LoadedVersion, method: str, response: bytes) -> Inference:
        contract = loaded.contract
        output = contract.to_dict(output_message(loaded, method, response))
        return Inference(contract, method, output, loaded.name, loaded.version)


class DataPlane:
    """Predictions over a registry's live models; ``predict_timeout``: the service's bound on a model
    call (``Settings.predict_timeout``; None: only the client's and the bundle's)."""

    def __init__(
        self,
        registry: Registry,
        *,
        max_json_depth: int = 64,
        predict_timeout: float | None = None,
        batching: bool = True,
    ):
        self.registry = registry
        # bundles' batching declarations honoured (runner.serving.batching); False: the setting's off
        self.batching = Batching() if batching else None
        self.max_json_depth = max_json_depth
        self.predict_timeout = predict_timeout

    # --- the entries of the edges ---

    def predict(
        self,
        model: str | None,
        method: str,
        payload: bytes,
        content_type: str | None,
        accept: str | None = None,
        timeout: float | None = None,
        *,
        service: str | None = None,
        protocol: str = "http",
        started: Started | None = None,
    ) -> PredictResult:
        """Run ``method`` of a model's own contract on ``payload``.

        ``model`` names the model (None: the only one, or, with ``service``, the one serving that
        service and method); ``service``: the full service name the caller addressed (gRPC), checked
        against the contract; ``timeout``: the client's deadline in seconds (None: none).
        Errors: NotFound (model), MethodNotFound, AmbiguousModel, NotReady, UnsupportedMedia, BadInput
        (naming the field), DeadlineExceeded, and whatever the model raises (ModelError).
        """
        with metrics.track(protocol):  # counted once, media refusals included (runner.serving.metrics)
            in_media = request_media(content_type)
            out_media = response_media(accept, in_media)
            exchange = ContractExchange(method, payload, in_media, out_media, self.max_json_depth)
            return self._run(  # tracked already: not through run(), which would track again
                exchange,
                model=model,
                method=method,
                service=service,
                timeout=timeout,
                started=started,
            )

    def infer(
        self,
        model: str,
        version: str | None,
        body: dict[str, Any],
        binary: bytes | memoryview = b"",
        timeout: float | None = None,
        *,
        protocol: str = "oip-http",
        started: Started | None = None,
    ) -> Inference:
        """An Open Inference Protocol inference on ``version`` (None or "": the current one) of ``model``:
        ``body`` is the V2 request object (tensor dicts), ``binary`` the binary data its inputs'
        ``binary_data_size`` parameters count in; ``timeout``: the client's deadline in seconds."""
        with metrics.track(protocol):  # counted once (runner.serving.metrics)
            if not model:
                raise BadInput("an inference request names its model", {"model": model})
            return self._run(
                InferExchange(body, binary, self.max_json_depth),
                model=model,
                version=version or None,
                timeout=timeout,
                started=started,
            )

    def current(self, model: str, version: str | None = None) -> LoadedVersion:
        """The live version of ``model`` (metadata and readiness of the Open Inference Protocol):
        NotFound for a model this service does not serve or a ``version`` (None or "": any) that is not
        the one it serves; NotReady while the model's current version is not loaded."""
        loaded = self.registry.snapshot().get(model)
        if loaded is None:
            with self.registry.acquire(model) as loaded:  # raises: NotFound, or NotReady saying why
                pass  # loaded since the snapshot: a fine answer too
        if version and version != str(loaded.version):
            raise NotFound(
                f"model {model!r} serves version {loaded.version}, not {version}",
                {"model": model, "version": loaded.version, "requested_version": version},
            )
        return loaded

    def model_ready(self, model: str, version: str | None = None) -> bool:
        """Whether ``model`` is loaded and ``version`` (None or "": any) is the one it serves; NotFound
        for a model this service does not serve."""
        try:
            loaded = self.current(model)
        except NotReady:
            return False
        return not version or version == str(loaded.version)

    # --- the one entry ---

    def run(
        self,
        exchange: Exchange[T],
        *,
        model: str | None,
        method: str | None = None,
        service: str | None = None,
        version: str | None = None,
        timeout: float | None = None,
        protocol: str = "http",
        started: Started | None = None,
    ) -> T:
        """Route, hold the version, decode, call within the deadline, encode (see the module docstring).

        ``protocol`` says which edge called (http, grpc, oip-http, oip-grpc): the metrics count every
        call once under it (runner.serving.metrics: labels only from the version held and its methods).
        """
        with metrics.track(protocol):
            return self._run(
                exchange,
                model=model,
                method=method,
                service=service,
                version=version,
                timeout=timeout,
                started=started,
            )

    def _run(
        self,
        exchange: Exchange[T],
        *,
        model: str | None,
        method: str | None = None,
        service: str | None = None,
        version: str | None = None,
        timeout: float | None = None,
        started: Started | None = None,
    ) -> T:
        """:meth:`run`, inside the caller's tracking (runner.serving.metrics.track)."""
        for attempt in range(_RESOLVE_ATTEMPTS):
            # a named model is its own route (route() says so too; one call less on the hot path)
            name = model if model is not None else self.route(model, service, method)
            with self.registry.acquire(name) as loaded:
                # The metrics' labels (and the access line's model) are the held version's from here:
                # set once, with the rpc, when it resolves; without it (unknown) when resolving fails.
                try:
                    if service is not None or version is not None:  # else nothing to check
                        # a call routed by its service checks its method here too: that one is retried
                        self._check_target(loaded, service, method if model is None else None, version)
                except MethodNotFound:
                    metrics.serving(loaded.name, loaded.version)
                    # routed by service: a swap may have landed between routing and holding; look again
                    if model is None and service is not None and attempt + 1 < _RESOLVE_ATTEMPTS:
                        continue
                    raise
                except BaseException:
                    metrics.serving(loaded.name, loaded.version)
                    raise
                try:
                    try:
                        rpc = exchange.method(loaded)
                    except BaseException:
                        metrics.serving(loaded.name, loaded.version)
                        raise
                    metrics.serving(loaded.name, loaded.version, rpc)
                    if started is not None:
                        started(loaded, rpc)
                    # a batched rpc (runner.serving.batching) merges binary messages: no JSON bytes path
                    batch = self.batching.queue(loaded, rpc) if self.batching is not None else None
                    if (
                        batch is None
                        and isinstance(exchange, ContractExchange)
                        and exchange.goes_direct(loaded, rpc)
                    ):
                        limit = call_timeout(
                            timeout, setting=self.predict_timeout, bundle=loaded.metadata.timeout_seconds
                        )
                        # (isinstance narrows T to PredictResult: no typing.cast, a call on the hot path)
                        return exchange.direct(loaded, rpc, limit)
                    request = exchange.request(loaded, rpc)
                    limit = call_timeout(
                        timeout, setting=self.predict_timeout, bundle=loaded.metadata.timeout_seconds
                    )
                    if batch is not None:
                        response = batch.call(request, limit)
                    else:
                        response = loaded.model.invoke(rpc, request, timeout=limit)
                    return exchange.reply(loaded, rpc, response)
                except ModelRunnerError as err:
                    # every answer names the version that handled it, errors included
                    err.detail.setdefault("model", loaded.name)
                    err.detail.setdefault("version", loaded.version)
                    raise
        raise AssertionError("unreachable")

    # --- routing ---

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

    def route(self, model: str | None, service: str | None, method: str | None) -> str:
        """The name of the model a call goes to: ``model`` when named (holding it says NotFound or
        NotReady), else the only model (no ``service``), else the one model whose contract serves
        ``service`` and ``method``: AmbiguousModel when several do, MethodNotFound when none does."""
        if model is not None or service is None:
            return self.model_for(model)
        snap = self.registry.snapshot()
        candidates = sorted(
            name
            for name, lv in snap.items()
            if lv.contract.full_service_name == service and method in lv.contract.service.methods_by_name
        )
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise AmbiguousModel(
                f"several models serve {service}/{method}: {', '.join(candidates)}; "
                f"choose one with the request metadata {MODEL_METADATA_KEY!r}",
                {"candidates": candidates, "service": service, "method": method},
            )
        owners = sorted(name for name, lv in snap.items() if lv.contract.full_service_name == service)
        if owners:
            methods = sorted(snap[owners[0]].contract.service.methods_by_name)
            raise MethodNotFound(
                f"service {service} has no method {method!r} (models {', '.join(owners)} serve: "
                f"{', '.join(methods)})",
                {"service": service, "method": method, "models": owners, "methods": methods},
            )
        served = sorted({lv.contract.full_service_name for lv in snap.values()})
        raise MethodNotFound(
            f"no loaded model serves the service {service!r} (served: {', '.join(served) or 'none'})",
            {"service": service, "method": method, "services": served},
        )

    @staticmethod
    def _check_target(
        loaded: LoadedVersion, service: str | None, method: str | None, version: str | None
    ) -> None:
        """The held version is what the caller addressed: the service it called (gRPC) and, when given,
        that service's ``method``; the version it asked for (OIP). Otherwise the method is the
        exchange's to check."""
        if service is not None:
            contract = loaded.contract
            if contract.full_service_name != service:
                raise MethodNotFound(
                    f"model {loaded.name!r} serves {contract.full_service_name}, not {service}",
                    {"model": loaded.name, "service": contract.full_service_name},
                )
            if method is not None:
                found = contract.service.methods_by_name.get(method)
                if found is None or found.name != method:
                    raise MethodNotFound(
                        f"model {loaded.name!r} (version {loaded.version}) has no method {method!r} in "
                        f"{service} (methods: {', '.join(sorted(contract.service.methods_by_name))})",
                        {"model": loaded.name, "version": loaded.version, "method": method},
                    )
        if version is not None and version != str(loaded.version):
            raise NotFound(
                f"model {loaded.name!r} serves version {loaded.version}, not {version}",
                {"model": loaded.name, "version": loaded.version, "requested_version": version},
            )
