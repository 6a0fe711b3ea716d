"""Contracts: proto3 text compiled at run time into message classes (nothing generated on disk).

A contract is one ``.proto`` file with exactly one ``service``; every unary ``rpc`` is a model method.
It is compiled by grpc_tools' bundled protoc (run as a subprocess so its diagnostics can be captured)
into a FileDescriptorSet, loaded into a fresh ``DescriptorPool`` per contract, and message classes come
from ``message_factory.GetMessageClass``. Two versions of the same contract therefore never share
classes, and a contract swap never touches the default pool.

JSON follows the proto3 JSON mapping (``json_format``): input accepts the ``.proto`` field names and
their lowerCamelCase JSON names; output uses the ``.proto`` field names and prints fields that have
their default value (so a zero score is ``0``, not missing).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import DecodeError, Message

from runner.errors import BadInput, InvalidContract, MethodNotFound, UnsupportedMedia

MEDIA_JSON = "application/json"
MEDIA_PROTOBUF = ("application/vnd.google.protobuf", "application/x-protobuf")

DEFAULT_MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted by :meth:`Contract.decode` (Settings.max_json_depth overrides it)."""

_WKT_PREFIX = "google/protobuf/"
_IMPORT_RE = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]*)"\s*;', re.MULTILINE)
_PROTOC_DIAG_RE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<text>.*)$", re.MULTILINE)
_PROTOC_TIMEOUT = 60.0
_CACHE_SIZE = 64

# sha256(filename, text) -> (descriptor set bytes, [(bundle-relative import, sha256 of its bytes)])
_fds_cache: OrderedDict[str, tuple[bytes, list[tuple[str, str]]]] = OrderedDict()
_cache_lock = threading.Lock()


def normalize_media(media: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (media or "").split(";", 1)[0].strip().lower()


def is_json(media: str | None) -> bool:
    m = normalize_media(media)
    return m == MEDIA_JSON or m.endswith("+json")


def is_protobuf(media: str | None) -> bool:
    return normalize_media(media) in MEDIA_PROTOBUF


def _wkt_include_dir() -> Path:
    """The well-known types shipped with grpc_tools' protoc. Found, not imported: protoc runs in a
    subprocess, so the serving process never loads the compiler (nor anything of grpc)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise InvalidContract(
            "cannot compile contracts: the grpcio-tools package (protoc) is not installed",
            {"hint": "pip install grpcio-tools"},
        )
    return Path(spec.origin).parent / "_proto"


class Contract:
    """One compiled contract version: its own descriptor pool and message classes."""

    proto_text: str
    filename: str
    package: str
    service: ServiceDescriptor
    full_service_name: str
    file_descriptor_set: bytes
    pool: descriptor_pool.DescriptorPool
    sha256: str

    def __init__(self, proto_text: str, filename: str, fds_bytes: bytes):
        self.proto_text = proto_text
        self.filename = filename
        self.file_descriptor_set = fds_bytes
        self.sha256 = hashlib.sha256(proto_text.encode("utf-8")).hexdigest()
        fds = descriptor_pb2.FileDescriptorSet.FromString(fds_bytes)
        self.pool = descriptor_pool.DescriptorPool()
        for fdp in fds.file:  # protoc writes dependencies before their dependents
            self.pool.Add(fdp)
        main = self.pool.FindFileByName(filename)
        self.file = main
        self.package = main.package
        main_proto = next(f for f in fds.file if f.name == filename)
        if main_proto.syntax != "proto3":
            found = main_proto.syntax or "proto2 (no syntax line)"
            raise InvalidContract(
                f'{filename}: contracts are proto3: start the file with syntax = "proto3"; (found {found})',
                detail={"file": filename, "line": 1, "column": 1, "protoc": ""},
            )
        if len(main_proto.service) != 1:
            found = [s.name for s in main_proto.service]
            raise InvalidContract(
                f"{filename}: a contract must define exactly one service, found {len(found)}"
                + (f" ({', '.join(found)})" if found else ""),
                detail={"file": filename, "services": found},
            )
        streaming = [m.name for m in main_proto.service[0].method if m.client_streaming or m.server_streaming]
        if streaming:
            raise InvalidContract(
                f"{filename}: streaming rpcs are not supported (each rpc is one model call): "
                + ", ".join(streaming),
                detail={"file": filename, "rpcs": streaming},
            )
        self.service = main.services_by_name[main_proto.service[0].name]
        self.full_service_name = self.service.full_name
        if not self.service.methods:
            raise InvalidContract(
                f"{filename}: service {self.service.name} has no rpc", detail={"file": filename}
            )
        self._classes: dict[str, type[Message]] = {}
        self._class_lock = threading.Lock()
        # descriptor full name -> _FlatPlan, or None when json_format must handle the message
        self._flat_plans: dict[str, _FlatPlan | None] = {}

    # ---- compilation -------------------------------------------------------------------------------

    @classmethod
    def compile(
        cls, proto_text: str, *, filename: str = "model.proto", include_dir: Path | None = None
    ) -> Contract:
        """Compile proto3 text; imports may name only files under ``include_dir`` and the well-known
        types. Raises InvalidContract with detail ``{file, line, column, protoc}`` on any error."""
        if not isinstance(proto_text, str):
            raise InvalidContract("the contract must be text (UTF-8)")
        _check_filename(filename)
        _check_imports(proto_text, filename, include_dir)
        key = hashlib.sha256(filename.encode() + b"\0" + proto_text.encode("utf-8")).hexdigest()
        with _cache_lock:
            hit = _fds_cache.get(key)
            if hit is not None:
                _fds_cache.move_to_end(key)
        if hit is not None and _deps_unchanged(hit[1], include_dir):
            return cls(proto_text, filename, hit[0])
        fds_bytes = _run_protoc(proto_text, filename, include_dir)
        deps = _bundle_deps(fds_bytes, filename, include_dir)
        contract = cls(proto_text, filename, fds_bytes)
        with _cache_lock:
            _fds_cache[key] = (fds_bytes, deps)
            while len(_fds_cache) > _CACHE_SIZE:
                _fds_cache.popitem(last=False)
        return contract

    # ---- methods and classes -----------------------------------------------------------------------

    def method_names(self) -> list[str]:
        return [m.name for m in self.service.methods]

    def method(self, method: str) -> Any:
        m = self.service.methods_by_name.get(method)
        if m is None:
            raise MethodNotFound(
                f"method {method!r} is not in the contract (service {self.full_service_name} has: "
                f"{', '.join(self.method_names())})",
                detail={"method": method, "methods": self.method_names()},
            )
        return m

    def message_class(self, descriptor: Descriptor) -> type[Message]:
        with self._class_lock:
            c = self._classes.get(descriptor.full_name)
            if c is None:
                c = message_factory.GetMessageClass(descriptor)
                self._classes[descriptor.full_name] = c
            return c

    def input_class(self, method: str) -> type[Message]:
        return self.message_class(self.method(method).input_type)

    def output_class(self, method: str) -> type[Message]:
        return self.message_class(self.method(method).output_type)

    # ---- conversion --------------------------------------------------------------------------------

    def decode(
        self, cls: type[Message], payload: bytes, media: str, *, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    ) -> Message:
        """Parse a request body (JSON or binary protobuf) into ``cls``; BadInput says what is wrong."""
        name = cls.DESCRIPTOR.full_name
        if is_protobuf(media):
            msg = cls()
            try:
                msg.ParseFromString(bytes(payload))
            except (DecodeError, RuntimeError, ValueError) as err:
                raise BadInput(f"body is not a valid binary {name}: {err}", detail={"message": name}) from err
            return msg
        if is_json(media):
            return self.from_json(cls, payload, max_json_depth=max_json_depth)
        raise UnsupportedMedia(
            f"unsupported media type {normalize_media(media)!r}; use {MEDIA_JSON} or {MEDIA_PROTOBUF[0]}",
            detail={"media": normalize_media(media), "supported": [MEDIA_JSON, *MEDIA_PROTOBUF]},
        )

    def from_json(
        self, cls: type[Message], payload: bytes | str | dict, *, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    ) -> Message:
        name = cls.DESCRIPTOR.full_name
        if isinstance(payload, (bytes, bytearray, memoryview, str)):
            text = bytes(payload).decode("utf-8", "replace") if not isinstance(payload, str) else payload
            _check_json_depth(text, max_json_depth)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise BadInput(
                    f"body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
                    detail={"line": err.lineno, "column": err.colno},
                ) from err
            except RecursionError as err:
                raise BadInput(f"JSON nested deeper than {max_json_depth} levels") from err
        else:
            obj = payload
        if not isinstance(obj, dict):
            raise BadInput(
                f"expected a JSON object for {name}, got {type(obj).__name__}", detail={"message": name}
            )
        try:
            return self.parse_dict(cls, obj)
        except json_format.ParseError as err:
            raise _json_error(name, str(err)) from err
        except RecursionError as err:
            raise BadInput(f"JSON nested deeper than {max_json_depth} levels") from err

    def parse_dict(self, cls: type[Message], obj: dict[str, Any]) -> Message:
        """``json_format.ParseDict(obj, cls())`` (unknown fields refused; json_format's errors).

        Flat messages (scalar fields only) with plainly valid values take a shortcut giving the very
        same message; anything else (unknown names, nulls, strings for numbers, ...) goes to json_format."""
        plan = self._flat_plan(cls.DESCRIPTOR)
        if plan is not None:
            msg = plan.parse(cls, obj)
            if msg is not None:
                return msg
        msg = cls()
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False, descriptor_pool=self.pool)
        return msg

    def _flat_plan(self, desc: Descriptor) -> _FlatPlan | None:
        try:
            return self._flat_plans[desc.full_name]
        except KeyError:
            plan = self._flat_plans[desc.full_name] = _FlatPlan.build(desc)
            return plan

    def encode(self, message: Message, media: str) -> bytes:
        """Serialize a response message as JSON (proto3 mapping, .proto field names) or binary."""
        if is_protobuf(media):
            return message.SerializeToString()
        if is_json(media) or not normalize_media(media) or normalize_media(media) == "*/*":
            return self.to_json(message).encode("utf-8")
        raise UnsupportedMedia(
            f"cannot produce {normalize_media(media)!r}; use {MEDIA_JSON} or {MEDIA_PROTOBUF[0]}",
            detail={"media": normalize_media(media), "supported": [MEDIA_JSON, *MEDIA_PROTOBUF]},
        )

    def to_json(self, message: Message) -> str:
        return json.dumps(self.to_dict(message), ensure_ascii=False)

    def to_dict(self, message: Message) -> dict[str, Any]:
        """proto3 JSON mapping as a dict: .proto field names, in declaration order, defaults printed."""
        plan = self._flat_plan(message.DESCRIPTOR)
        if plan is not None:
            return plan.dump(message)
        d = json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            descriptor_pool=self.pool,
        )
        return _in_field_order(message.DESCRIPTOR, d)

    # ---- schema ------------------------------------------------------------------------------------

    def json_schema(self, cls: type[Message] | Descriptor) -> dict[str, Any]:
        """JSON Schema (OpenAPI 3 compatible subset) of a message under the proto3 JSON mapping.

        Nested messages are inlined; a recursive reference becomes a plain ``object``."""
        desc = cls if isinstance(cls, Descriptor) else cls.DESCRIPTOR
        return _message_schema(desc, ())

    def messages(self) -> dict[str, Descriptor]:
        """Every message defined by the contract's own file (nested included), by full name."""
        out: dict[str, Descriptor] = {}

        def walk(d: Descriptor) -> None:
            out[d.full_name] = d
            for n in d.nested_types:
                walk(n)

        for d in self.file.message_types_by_name.values():
            walk(d)
        return out

    def __repr__(self) -> str:
        return f"<Contract {self.full_service_name} sha256={self.sha256[:12]}>"


def _json_error(name: str, text: str) -> BadInput:
    detail: dict[str, Any] = {"message": name}
    m = re.search(r'Message type "([^"]+)" has no field named "([^"]+)" at "([^"]*)"', text)
    if m:
        msg_type, field, path = m.groups()
        detail.update(field=field, path=f"{path}.{field}", message=msg_type)
        return BadInput(f"unknown field {field!r} at {path} (a {msg_type} has no such field)", detail=detail)
    m = re.search(r" at ([\w.\[\]]+?)\.*$", text)
    if m:
        detail["path"] = m.group(1)
    text = re.sub(r"^(Failed to parse \w+ field: )+", "", text).rstrip(".")
    return BadInput(f"invalid {name}: {text}", detail=detail)


def _in_field_order(desc: Descriptor, d: Any) -> Any:
    # json_format lists set fields before defaulted ones; clients read better in .proto order.
    if not isinstance(d, dict) or desc.full_name.startswith("google.protobuf."):
        return d
    out: dict[str, Any] = {}
    for f in desc.fields:
        if f.name not in d:
            continue
        v = d[f.name]
        mt = f.message_type
        if mt is not None and not mt.GetOptions().map_entry:
            v = [_in_field_order(mt, x) for x in v] if f.is_repeated else _in_field_order(mt, v)
        out[f.name] = v
    return out


# ---- the flat-message shortcut of the JSON mapping -----------------------------------------------------

_NO = object()  # "not plainly valid: ask json_format"
_F = FieldDescriptor
_FLOAT32_MAX = float.fromhex("0x1.fffffep+127")
_EXACT_INT = 2**53


def _in_double(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v if v - v == 0.0 else _NO  # NaN and infinities only as json_format's quoted strings
    if t is int and -_EXACT_INT <= v <= _EXACT_INT:
        return float(v)
    return _NO


def _in_float(v: Any) -> Any:
    t = type(v)
    if t is float:
        return v if v - v == 0.0 and -_FLOAT32_MAX <= v <= _FLOAT32_MAX else _NO
    if t is int and -_EXACT_INT <= v <= _EXACT_INT:
        return float(v)
    return _NO


def _in_int(lo: int, hi: int) -> Any:
    def conv(v: Any) -> Any:
        return v if type(v) is int and lo <= v <= hi else _NO

    return conv


def _in_bool(v: Any) -> Any:
    return v if type(v) is bool else _NO


_SURROGATE_RE = re.compile("[\ud800-\udfff]")  # left in a str by json.loads only when unpaired


def _in_str(v: Any) -> Any:
    if type(v) is not str:
        return _NO
    return v if v.isascii() or _SURROGATE_RE.search(v) is None else _NO


def _out_double(v: float) -> Any:
    if v - v == 0.0:
        return v
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _out_float(v: float) -> Any:
    if v - v == 0.0:
        return type_checkers.ToShortestFloat(v)  # what json_format prints float fields with
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _identity(v: Any) -> Any:
    return v


_FLAT_CONVERTERS: dict[int, tuple[Any, Any]] = {
    _F.CPPTYPE_DOUBLE: (_in_double, _out_double),
    _F.CPPTYPE_FLOAT: (_in_float, _out_float),
    _F.CPPTYPE_INT32: (_in_int(-(2**31), 2**31 - 1), _identity),
    _F.CPPTYPE_UINT32: (_in_int(0, 2**32 - 1), _identity),
    _F.CPPTYPE_INT64: (_in_int(-(2**63), 2**63 - 1), str),
    _F.CPPTYPE_UINT64: (_in_int(0, 2**64 - 1), str),
    _F.CPPTYPE_BOOL: (_in_bool, _identity),
    _F.CPPTYPE_STRING: (_in_str, _identity),
}


class _FlatPlan:
    """The proto3 JSON mapping of a message whose fields are all plain scalars (or repeated ones):
    numbers, bools, strings; no bytes, enums, messages, maps, oneofs, optional fields or extensions.

    ``dump`` is exactly what ``Contract.to_dict`` gets from json_format (.proto names, declaration
    order, defaults printed); ``parse`` builds the message json_format would, or returns None when a
    value is not plainly valid (json_format then parses it, or says what is wrong)."""

    def __init__(self, by_key: dict[str, tuple[str, Any, bool]], out: list[tuple[str, Any, bool]]):
        self.by_key = by_key
        self.out = out

    @classmethod
    def build(cls, desc: Descriptor) -> _FlatPlan | None:
        if desc.full_name.startswith("google.protobuf.") or desc.oneofs or desc.extension_ranges:
            return None
        by_key: dict[str, tuple[str, Any, bool]] = {}
        out: list[tuple[str, Any, bool]] = []
        for f in desc.fields:
            convs = _FLAT_CONVERTERS.get(f.cpp_type)
            if convs is None or f.type == _F.TYPE_BYTES or f.has_presence or f.containing_oneof is not None:
                return None
            by_key[f.name] = (f.name, convs[0], f.is_repeated)
            out.append((f.name, convs[1], f.is_repeated))
        for f in desc.fields:  # json_format looks a key up as a JSON name first
            by_key[f.json_name] = by_key[f.name]
        return cls(by_key, out)

    def parse(self, msg_cls: type[Message], obj: dict[str, Any]) -> Message | None:
        kwargs: dict[str, Any] = {}
        by_key = self.by_key
        for key, value in obj.items():
            entry = by_key.get(key)
            if entry is None or entry[0] in kwargs:  # unknown, or given twice (.proto and JSON name)
                return None
            name, conv, repeated = entry
            if repeated:
                if type(value) is not list:
                    return None
                items = [conv(x) for x in value]
                if _NO in items:
                    return None
                kwargs[name] = items
            else:
                value = conv(value)
                if value is _NO:
                    return None
                kwargs[name] = value
        try:
            return msg_cls(**kwargs)
        except Exception:  # noqa: BLE001 (e.g. a lone surrogate in a string: json_format says what is wrong)
            return None

    def dump(self, message: Message) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for name, conv, repeated in self.out:
            value = getattr(message, name)
            d[name] = [conv(x) for x in value] if repeated else conv(value)
        return d


# ---- compile helpers ----------------------------------------------------------------------------------


def _check_filename(filename: str) -> None:
    p = PurePosixPath(filename)
    if p.is_absolute() or ".." in p.parts or "\\" in filename or not filename.endswith(".proto"):
        raise InvalidContract(f"invalid contract file name {filename!r}", detail={"file": filename})


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _check_imports(proto_text: str, filename: str, include_dir: Path | None) -> None:
    for m in _IMPORT_RE.finditer(proto_text):
        name = m.group(1)
        line = _line_of(proto_text, m.start(1))
        column = m.start(1) - proto_text.rfind("\n", 0, m.start(1))
        p = PurePosixPath(name)
        bad = None
        if not name or p.is_absolute() or ".." in p.parts or "\\" in name or ":" in name:
            bad = "imports must be relative paths inside the bundle (no absolute paths, no '..')"
        elif name.startswith(_WKT_PREFIX):
            if not (_wkt_include_dir() / name).is_file():
                bad = f"{name} is not a well-known type"
        elif include_dir is None:
            bad = "no bundle folder given: only the well-known types (google/protobuf/*) can be imported"
        else:
            root = Path(include_dir).resolve()
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                bad = "the import resolves outside the bundle folder"
            elif not target.is_file():
                bad = f"{name} is not in the bundle"
        if bad:
            raise InvalidContract(
                f'{filename}:{line}:{column}: import "{name}" is not allowed: {bad}',
                detail={"file": filename, "line": line, "column": column, "import": name, "protoc": ""},
            )


_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET_RE = re.compile(r"[\[\]{}]")


def _check_json_depth(text: str, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` before parsing it (json's decoder recurses)."""
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot be that deep: the common, cheap case
    # strings may hold brackets: drop them (in C), then follow the brackets that are left
    depth = 0
    for ch in _JSON_BRACKET_RE.findall(_JSON_STRING_RE.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                raise BadInput(
                    f"JSON nested deeper than {max_depth} levels", detail={"max_json_depth": max_depth}
                )
        else:
            depth -= 1


def _run_protoc(proto_text: str, filename: str, include_dir: Path | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mr-protoc-") as tmp:
        src_root = Path(tmp) / "src"
        target = src_root / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(proto_text, encoding="utf-8")
        out = Path(tmp) / "out.pb"
        # Our copy of the main file comes first, so a stale model.proto in include_dir cannot shadow it.
        args = [sys.executable, "-m", "grpc_tools.protoc", "--proto_path=."]  # cwd: names stay relative
        if include_dir is not None:
            args.append(f"--proto_path={Path(include_dir).resolve()}")
        args += [
            f"--proto_path={_wkt_include_dir()}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            filename,
        ]
        try:
            proc = subprocess.run(
                args,
                cwd=src_root,
                capture_output=True,
                timeout=_PROTOC_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        except subprocess.TimeoutExpired as err:
            raise InvalidContract(f"{filename}: protoc did not finish in {_PROTOC_TIMEOUT:.0f}s") from err
        text = proc.stderr.decode("utf-8", "replace").strip().replace(f"{src_root}/", "")
        if include_dir is not None:
            text = text.replace(f"{Path(include_dir).resolve()}/", "")
        if proc.returncode != 0 or not out.exists():
            raise _protoc_error(filename, text or proc.stdout.decode("utf-8", "replace").strip())
        return out.read_bytes()


def _protoc_error(filename: str, text: str) -> InvalidContract:
    m = _PROTOC_DIAG_RE.search(text)
    if m:
        line, column = int(m.group("line")), int(m.group("column"))
        where = f"{m.group('file')}:{line}:{column}"
        return InvalidContract(
            f"contract does not compile: {where}: {m.group('text')}",
            detail={"file": m.group("file"), "line": line, "column": column, "protoc": text},
        )
    first = text.splitlines()[0] if text else "protoc failed without a message"
    return InvalidContract(
        f"contract does not compile: {first}",
        detail={"file": filename, "line": None, "column": None, "protoc": text},
    )


def _bundle_deps(fds_bytes: bytes, filename: str, include_dir: Path | None) -> list[tuple[str, str]]:
    """The bundle files the contract imports, with their hashes (cache validity); also checks that
    nothing came from outside the bundle and the well-known types."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(fds_bytes)
    deps: list[tuple[str, str]] = []
    for f in fds.file:
        if f.name == filename:
            continue
        root = Path(include_dir).resolve() if include_dir is not None else None
        local = root / f.name if root is not None else None
        if (
            root is not None
            and local is not None
            and local.is_file()
            and local.resolve().is_relative_to(root)
        ):
            deps.append((f.name, hashlib.sha256(local.read_bytes()).hexdigest()))
        elif f.name.startswith(_WKT_PREFIX) and (_wkt_include_dir() / f.name).is_file():
            continue
        else:
            raise InvalidContract(
                f"{filename}: import {f.name!r} is neither in the bundle nor a well-known type",
                detail={"file": filename, "import": f.name},
            )
    return deps


def _deps_unchanged(deps: list[tuple[str, str]], include_dir: Path | None) -> bool:
    if not deps:
        return True
    if include_dir is None:
        return False
    for name, digest in deps:
        p = Path(include_dir) / name
        try:
            if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True


# ---- JSON schema ----------------------------------------------------------------------------------------

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_INT32_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SFIXED32,
}
_UINT32_TYPES = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}

_WKT_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "properties": {}},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}


def _scalar_schema(field: FieldDescriptor, stack: tuple[str, ...]) -> dict[str, Any]:
    t = field.type
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number", "format": "double" if t == FieldDescriptor.TYPE_DOUBLE else "float"}
    if t in _INT64_TYPES:
        # proto3 JSON prints 64-bit integers as strings (numbers are accepted on input)
        return {"type": "string", "format": "int64", "pattern": r"^-?\d+$"}
    if t in _INT32_TYPES:
        return {"type": "integer", "format": "int32"}
    if t in _UINT32_TYPES:
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}
    if t == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if t == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if t == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if t == FieldDescriptor.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    return _message_schema(field.message_type, stack)


def _message_schema(desc: Descriptor, stack: tuple[str, ...]) -> dict[str, Any]:
    if desc.full_name in _WKT_SCHEMAS:
        return dict(_WKT_SCHEMAS[desc.full_name])
    if desc.full_name in stack:
        return {"type": "object", "description": f"{desc.full_name} (recursive)"}
    stack = (*stack, desc.full_name)
    props: dict[str, Any] = {}
    for f in desc.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            props[f.name] = {"type": "object", "additionalProperties": _scalar_schema(value_field, stack)}
        elif f.is_repeated:
            props[f.name] = {"type": "array", "items": _scalar_schema(f, stack)}
        else:
            props[f.name] = _scalar_schema(f, stack)
    return {"type": "object", "title": desc.full_name, "properties": props, "additionalProperties": False}


# ---- breaking changes -----------------------------------------------------------------------------------


def _field_type(f: FieldDescriptor) -> str:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        k = f.message_type.fields_by_name["key"]
        v = f.message_type.fields_by_name["value"]
        return f"map<{_field_type(k)}, {_field_type(v)}>"
    if f.message_type is not None:
        base = f.message_type.full_name
    elif f.enum_type is not None:
        base = f.enum_type.full_name
    else:
        base = _TYPE_NAMES.get(f.type, str(f.type))
    return f"repeated {base}" if f.is_repeated else base


_TYPE_NAMES = {
    getattr(FieldDescriptor, n): n[len("TYPE_") :].lower()
    for n in dir(FieldDescriptor)
    if n.startswith("TYPE_") and isinstance(getattr(FieldDescriptor, n), int)
}


def breaking_changes(old: Contract, new: Contract) -> list[str]:
    """What in ``new`` breaks clients of ``old``: a field's number or type changed, a field, message,
    enum value or rpc removed, an rpc's input or output type changed, the service renamed.
    Additions are compatible. An empty list means the change is safe."""
    out: list[str] = []
    if old.full_service_name != new.full_service_name:
        out.append(f"service renamed: {old.full_service_name} -> {new.full_service_name}")
    new_methods = new.service.methods_by_name
    for m in old.service.methods:
        n = new_methods.get(m.name)
        if n is None:
            out.append(f"rpc {m.name} removed")
            continue
        if m.input_type.full_name != n.input_type.full_name:
            out.append(
                f"rpc {m.name}: input type changed {m.input_type.full_name} -> {n.input_type.full_name}"
            )
        if m.output_type.full_name != n.output_type.full_name:
            out.append(
                f"rpc {m.name}: output type changed {m.output_type.full_name} -> {n.output_type.full_name}"
            )
    old_msgs, new_msgs = old.messages(), new.messages()
    for name, od in old_msgs.items():
        if od.GetOptions().map_entry:
            continue
        nd = new_msgs.get(name)
        if nd is None:
            out.append(f"message {name} removed")
            continue
        new_by_number = {f.number: f for f in nd.fields}
        new_by_name = {f.name: f for f in nd.fields}
        for f in od.fields:
            nf = new_by_number.get(f.number)
            by_name = new_by_name.get(f.name)
            if by_name is not None and by_name.number != f.number:
                out.append(f"field {name}.{f.name}: number changed {f.number} -> {by_name.number}")
                continue
            if nf is None:
                out.append(f"field {name}.{f.name} (= {f.number}) removed")
                continue
            if nf.name != f.name:
                out.append(f"field {name}.{f.name} (= {f.number}) renamed to {nf.name} (breaks JSON clients)")
            if _field_type(nf) != _field_type(f):
                out.append(f"field {name}.{f.name}: type changed {_field_type(f)} -> {_field_type(nf)}")
        for oe in od.enum_types:
            ne = nd.enum_types_by_name.get(oe.name)
            _enum_changes(oe, ne, out)
    new_enums = new.file.enum_types_by_name
    for oe in old.file.enum_types_by_name.values():
        _enum_changes(oe, new_enums.get(oe.name), out)
    return out


def _enum_changes(oe: Any, ne: Any, out: list[str]) -> None:
    if ne is None:
        out.append(f"enum {oe.full_name} removed")
        return
    new_values = {v.name: v.number for v in ne.values}
    for v in oe.values:
        if v.name not in new_values:
            out.append(f"enum value {oe.full_name}.{v.name} removed")
        elif new_values[v.name] != v.number:
            out.append(
                f"enum value {oe.full_name}.{v.name}: number changed {v.number} -> {new_values[v.name]}"
            )
