"""The Contract class: one compiled contract version, its own descriptor pool and message classes.

Compilation is :mod:`runner.contract.compiler`'s, conversion :mod:`runner.contract.codec`'s and
JSON Schema :mod:`runner.contract.schema`'s; this class checks the contract rules (proto3, exactly one
service, unary rpcs only) and ties them together.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from runner.contract.codec import DEFAULT_MAX_JSON_DEPTH, Codec, descriptor_of
from runner.contract.compiler import compile_proto
from runner.contract.schema import message_schema
from runner.errors import InvalidContract, MethodNotFound


class Contract:
    """One compiled contract version: its own descriptor pool and message classes."""

    proto_text: str
    filename: str
    file: FileDescriptor
    package: str
    service: ServiceDescriptor
    full_service_name: str
    file_descriptor_set: bytes
    pool: descriptor_pool.DescriptorPool
    codec: Codec
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
            services = [s.name for s in main_proto.service]
            raise InvalidContract(
                f"{filename}: a contract must define exactly one service, found {len(services)}"
                + (f" ({', '.join(services)})" if services else ""),
                detail={"file": filename, "services": services},
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
        self.codec = Codec(self.pool)

    # ---- compilation -------------------------------------------------------------------------------

    @classmethod
    def compile(
        cls, proto_text: str, *, filename: str = "model.proto", include_dir: Path | None = None
    ) -> Contract:
        """Compile proto3 text; imports may name only files under ``include_dir`` and the well-known
        types. Raises InvalidContract with detail ``{file, line, column, protoc}`` on any error."""
        return compile_proto(proto_text, filename, include_dir, lambda fds: cls(proto_text, filename, fds))

    # ---- methods and classes -----------------------------------------------------------------------

    def method_names(self) -> list[str]:
        return [m.name for m in self.service.methods]

    def method(self, method: str) -> MethodDescriptor:
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

    # ---- conversion (the codec's) ------------------------------------------------------------------

    def decode(
        self,
        cls: type[Message],
        payload: bytes | bytearray | memoryview,
        media: str,
        *,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> Message:
        """Parse a request body (JSON or binary protobuf) into ``cls``; BadInput says what is wrong."""
        return self.codec.decode(cls, payload, media, max_json_depth=max_json_depth)

    def from_json(
        self,
        cls: type[Message],
        payload: bytes | bytearray | memoryview | str | dict[str, Any],
        *,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> Message:
        """Parse JSON text, or an already parsed JSON object, into ``cls``."""
        return self.codec.from_json(cls, payload, max_json_depth=max_json_depth)

    def parse_dict(self, cls: type[Message], obj: dict[str, Any]) -> Message:
        """``json_format.ParseDict(obj, cls())`` (unknown fields refused; json_format's errors)."""
        return self.codec.parse_dict(cls, obj)

    def encode(self, message: Message, media: str) -> bytes:
        """Serialize a response message as JSON (proto3 mapping, .proto field names) or binary."""
        return self.codec.encode(message, media)

    def to_json(self, message: Message) -> str:
        return self.codec.to_json(message)

    def to_dict(self, message: Message) -> dict[str, Any]:
        """proto3 JSON mapping as a dict: .proto field names, in declaration order, defaults printed."""
        return self.codec.to_dict(message)

    # ---- schema ------------------------------------------------------------------------------------

    def json_schema(
        self, cls: type[Message] | Descriptor, required: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, Any]:
        """JSON Schema (OpenAPI 3 compatible subset) of a message under the proto3 JSON mapping.

        Nested messages are inlined; a recursive reference becomes a plain ``object``. ``required``:
        message full name -> the fields its schema lists as required (RequiredFields.spec)."""
        return message_schema(cls if isinstance(cls, Descriptor) else descriptor_of(cls), required)

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
