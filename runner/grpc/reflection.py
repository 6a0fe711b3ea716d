"""gRPC server reflection (v1 and v1alpha) answered from the live contracts.

The stock grpcio-reflection servicer reads one fixed descriptor pool; ours rebuilds a small index from
the registry's snapshot whenever the set of loaded versions changes, so a proto swap is visible to the
next reflection request. Only the v1alpha protos ship with grpcio-reflection; v1 has the same messages
under another package (identical wire format), so both services are served with the v1alpha classes,
and the v1 file descriptor is derived from the v1alpha one for clients that reflect on reflection.

File names: every model's contract is called ``model.proto`` in its bundle, so two models with different
contracts would present two different files under one name, which a client's descriptor pool rejects.
Files of a model's contract are therefore served as ``<model>/<name>`` (imports rewritten to match);
well-known types (``google/protobuf/*``) keep their names.

Several models may share one service name (a model and its challenger). Such a service is described
by the contract with the most methods (so every method some model serves shows), then by the most
recently (re)loaded one, so a proto swap shows at once; other symbols answer from the most recent.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha import reflection_pb2_grpc

from runner.serving.registry import LoadedVersion

if TYPE_CHECKING:
    # grpc_reflection ships no types (its classes are Any to mypy); the base adds nothing typed
    _ServicerBase = object
else:
    _ServicerBase = reflection_pb2_grpc.ServerReflectionServicer

log = logging.getLogger(__name__)

V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
HEALTH_SERVICE = "grpc.health.v1.Health"
_WELL_KNOWN_PREFIX = "google/protobuf/"


def _v1_reflection_file() -> descriptor_pb2.FileDescriptorProto:
    """The v1 reflection.proto, derived from the shipped v1alpha one (same messages, new package)."""
    fdp = descriptor_pb2.FileDescriptorProto()
    rpb.DESCRIPTOR.CopyToProto(fdp)
    raw = fdp.SerializeToString()
    fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
    fdp.name = "grpc/reflection/v1/reflection.proto"
    fdp.package = "grpc.reflection.v1"
    fdp.ClearField("options")
    for msg in fdp.message_type:
        for f in msg.field:
            if f.HasField("type_name"):
                f.type_name = f.type_name.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    for svc in fdp.service:
        for m in svc.method:
            m.input_type = m.input_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
            m.output_type = m.output_type.replace(".grpc.reflection.v1alpha.", ".grpc.reflection.v1.")
    return fdp


def _file_proto(file_descriptor: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(fdp)
    return fdp


def _find_file(pool: descriptor_pool.DescriptorPool, symbol: str) -> FileDescriptor | None:
    """The file defining ``symbol`` (message, enum, field, service, or method) or None."""
    try:
        return pool.FindFileContainingSymbol(symbol)
    except KeyError:
        pass
    # The upb pool does not index methods: look them up through their service.
    service, _, method = symbol.rpartition(".")
    try:
        svc = pool.FindServiceByName(service)
    except KeyError:
        return None
    return svc.file if method in svc.methods_by_name else None


def _extension_file(extension: FieldDescriptor) -> FileDescriptor:
    """The file declaring ``extension`` (both protobuf implementations have ``FieldDescriptor.file``;
    types-protobuf does not declare it)."""
    file: FileDescriptor = getattr(extension, "file")
    return file


@dataclass
class _Source:
    """The files of one contract (or of the server's own services), in one pool."""

    pool: descriptor_pool.DescriptorPool
    files: dict[str, bytes] = field(default_factory=dict)  # served name -> serialized FileDescriptorProto
    deps: dict[str, list[str]] = field(default_factory=dict)  # served name -> served names it imports
    renamed: dict[str, str] = field(default_factory=dict)  # name in the pool -> served name
    services: dict[str, int] = field(default_factory=dict)  # full service name -> number of methods


@dataclass
class _Index:
    services: list[str]
    by_service: dict[str, _Source]  # full service name -> the source answering for it
    sources: list[_Source]  # answer order for symbol lookups
    by_file: dict[str, _Source]


def _static_source(extra: Sequence[bytes] = ()) -> _Source:
    """The server's own services: health, reflection v1alpha and v1, and those of ``extra`` (serialized
    FileDescriptorSets, e.g. the Open Inference Protocol's)."""
    pool = descriptor_pool.DescriptorPool()
    src = _Source(pool=pool)
    protos = [_file_proto(health_pb2.DESCRIPTOR), _file_proto(rpb.DESCRIPTOR), _v1_reflection_file()]
    for fds in extra:
        protos.extend(descriptor_pb2.FileDescriptorSet.FromString(fds).file)
    src.services = {HEALTH_SERVICE: 0, V1ALPHA_SERVICE: 0, V1_SERVICE: 0}
    for fdp in protos:
        if fdp.name in src.files:  # a well-known type both sets import
            continue
        pool.Add(fdp)
        src.files[fdp.name] = fdp.SerializeToString()
        src.deps[fdp.name] = list(fdp.dependency)
        src.renamed[fdp.name] = fdp.name
        for s in fdp.service:
            src.services.setdefault(f"{fdp.package}.{s.name}" if fdp.package else s.name, len(s.method))
    return src


def _contract_source(model: str, fds_bytes: bytes) -> _Source:
    fds = descriptor_pb2.FileDescriptorSet.FromString(fds_bytes)
    pool = descriptor_pool.DescriptorPool()
    src = _Source(pool=pool)

    def served(name: str) -> str:
        return name if name.startswith(_WELL_KNOWN_PREFIX) else f"{model}/{name}"

    # The set is in dependency order (protoc --include_imports); add as given, retry leftovers.
    pending = list(fds.file)
    while pending:
        progressed = False
        for fdp in list(pending):
            try:
                pool.Add(fdp)
            except TypeError:
                continue
            pending.remove(fdp)
            progressed = True
            out = descriptor_pb2.FileDescriptorProto()
            out.CopyFrom(fdp)
            out.name = served(fdp.name)
            del out.dependency[:]
            out.dependency.extend(served(d) for d in fdp.dependency)
            src.files[out.name] = out.SerializeToString()
            src.deps[out.name] = list(out.dependency)
            src.renamed[fdp.name] = out.name
            for s in fdp.service:
                src.services[f"{fdp.package}.{s.name}" if fdp.package else s.name] = len(s.method)
        if not progressed:
            raise ValueError(f"contract of {model!r}: file descriptor set has unresolved imports")
    return src


class LiveReflection(_ServicerBase):
    """A reflection servicer whose answers follow the registry's current contracts.

    ``snapshot`` returns the registry's current ``{name: LoadedVersion}``; ``services``: serialized
    FileDescriptorSets of services the server answers beside the models' (always listed).
    """

    def __init__(self, snapshot: Callable[[], Mapping[str, LoadedVersion]], services: Sequence[bytes] = ()):
        self._snapshot = snapshot
        self._static = _static_source(services)
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, int], ...] = ()
        self._index: _Index | None = None
        self._seq = itertools.count()
        self._order: dict[str, tuple[int, int]] = {}  # model -> (version, seq of its (re)load)
        self._cache: dict[
            tuple[str, int], _Source
        ] = {}  # (model, version) -> source (versions are immutable)

    # --- index ---

    def index(self) -> _Index:
        snap = self._snapshot()
        key = tuple(sorted((name, lv.version) for name, lv in snap.items()))
        with self._lock:
            if self._index is not None and key == self._key:
                return self._index
            for name, version in key:
                old = self._order.get(name)
                if old is None or old[0] != version:
                    self._order[name] = (version, next(self._seq))
            for name in list(self._order):
                if name not in snap:
                    del self._order[name]
            cache: dict[tuple[str, int], _Source] = {}
            entries: list[tuple[int, _Source]] = []
            for name, lv in snap.items():
                ck = (name, lv.version)
                src = self._cache.get(ck)
                if src is None:
                    try:
                        src = _contract_source(name, lv.contract.file_descriptor_set)
                    except Exception:
                        log.exception("reflection: cannot index the contract of %s", name)
                        continue
                cache[ck] = src
                entries.append((self._order[name][1], src))
            self._cache = cache
            entries.sort(key=lambda e: -e[0])
            sources = [src for _, src in entries] + [self._static]
            # A service several models serve is described by the contract with the most methods
            # (every callable method shows), then by the most recently loaded one.
            by_service: dict[str, _Source] = {}
            for src in sources:
                for svc, n_methods in src.services.items():
                    best = by_service.get(svc)
                    if best is None or n_methods > best.services[svc]:
                        by_service[svc] = src
            by_file: dict[str, _Source] = {}
            for src in sources:
                for fname in src.files:
                    by_file.setdefault(fname, src)
            # An original name (e.g. "model.proto") also finds the most recent file of that name.
            for src in sources:
                for orig in src.renamed:
                    by_file.setdefault(orig, src)
            # Symbol lookups try the sources describing some service first, so that a client asking for
            # a service and then for one of its messages gets the same file (not a twin it would reject).
            chosen = {id(s) for s in by_service.values()}
            ordered = [s for s in sources if id(s) in chosen] + [s for s in sources if id(s) not in chosen]
            self._index = _Index(sorted(by_service), by_service, ordered, by_file)
            self._key = key
            return self._index

    # --- answers ---

    def _files_response(self, src: _Source, name: str, request: Any) -> Any:
        out: list[bytes] = []
        seen: set[str] = set()
        stack = [src.renamed.get(name, name)]
        while stack:
            n = stack.pop()
            if n in seen or n not in src.files:
                continue
            seen.add(n)
            out.append(src.files[n])
            stack.extend(src.deps.get(n, ()))
        return rpb.ServerReflectionResponse(
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=out),
            original_request=request,
        )

    @staticmethod
    def _error(request: Any, code: grpc.StatusCode, message: str) -> Any:
        return rpb.ServerReflectionResponse(
            error_response=rpb.ErrorResponse(error_code=code.value[0], error_message=message),
            original_request=request,
        )

    def _symbol_source(self, idx: _Index, symbol: str) -> tuple[_Source, str] | None:
        # A service name prefers the source that answers for that service (the most recent).
        service = symbol if symbol in idx.by_service else symbol.rpartition(".")[0]
        preferred = idx.by_service.get(service)
        candidates = ([preferred] if preferred else []) + idx.sources
        for src in candidates:
            fd = _find_file(src.pool, symbol)
            if fd is not None:
                return src, fd.name
        return None

    def answer(self, request: Any) -> Any:
        """One reflection response for one request."""
        which = request.WhichOneof("message_request")
        idx = self.index()
        if which == "list_services":
            return rpb.ServerReflectionResponse(
                list_services_response=rpb.ListServiceResponse(
                    service=[rpb.ServiceResponse(name=s) for s in idx.services]
                ),
                original_request=request,
            )
        if which == "file_by_filename":
            src = idx.by_file.get(request.file_by_filename)
            if src is None:
                return self._error(
                    request, grpc.StatusCode.NOT_FOUND, f"no file {request.file_by_filename!r}"
                )
            return self._files_response(src, request.file_by_filename, request)
        if which == "file_containing_symbol":
            found = self._symbol_source(idx, request.file_containing_symbol)
            if found is None:
                return self._error(
                    request, grpc.StatusCode.NOT_FOUND, f"no symbol {request.file_containing_symbol!r}"
                )
            return self._files_response(found[0], found[1], request)
        if which == "file_containing_extension":
            ext = request.file_containing_extension
            for src in idx.sources:
                try:
                    msg = src.pool.FindMessageTypeByName(ext.containing_type)
                    fd = _extension_file(src.pool.FindExtensionByNumber(msg, ext.extension_number))
                except KeyError:
                    continue
                return self._files_response(src, fd.name, request)
            return self._error(
                request,
                grpc.StatusCode.NOT_FOUND,
                f"no extension {ext.extension_number} of {ext.containing_type!r}",
            )
        if which == "all_extension_numbers_of_type":
            type_name = request.all_extension_numbers_of_type
            for src in idx.sources:
                try:
                    msg = src.pool.FindMessageTypeByName(type_name)
                except KeyError:
                    continue
                numbers = sorted(e.number for e in src.pool.FindAllExtensions(msg))
                return rpb.ServerReflectionResponse(
                    all_extension_numbers_response=rpb.ExtensionNumberResponse(
                        base_type_name=msg.full_name, extension_number=numbers
                    ),
                    original_request=request,
                )
            return self._error(request, grpc.StatusCode.NOT_FOUND, f"no message type {type_name!r}")
        return self._error(request, grpc.StatusCode.INVALID_ARGUMENT, "empty reflection request")

    def ServerReflectionInfo(  # noqa: N802 (the gRPC method's name, as grpcio calls it)
        self, request_iterator: Iterable[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        for request in request_iterator:
            yield self.answer(request)


def add_reflection(server: grpc.Server, servicer: LiveReflection) -> None:
    """Register ``servicer`` as both grpc.reflection.v1alpha and grpc.reflection.v1."""
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": handler}),)
    )
