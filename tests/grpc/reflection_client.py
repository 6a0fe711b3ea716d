"""A gRPC client that knows nothing but what server reflection tells it.

It lists services, fetches the file descriptors of a service (and their imports) through reflection
(v1 or v1alpha), builds message classes from them in a fresh descriptor pool, and calls methods with
those classes. No local .proto, no generated code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as rpb

PATHS = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


class ReflectionError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"reflection error {code}: {message}")
        self.code = code
        self.message = message


@dataclass
class ReflectedService:
    name: str
    descriptor: Any
    pool: descriptor_pool.DescriptorPool
    files: list[str] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return [m.name for m in self.descriptor.methods]

    def input_class(self, method: str) -> Any:
        return message_factory.GetMessageClass(self.descriptor.methods_by_name[method].input_type)

    def output_class(self, method: str) -> Any:
        return message_factory.GetMessageClass(self.descriptor.methods_by_name[method].output_type)


class ReflectionClient:
    def __init__(self, channel: grpc.Channel, version: str = "v1"):
        self.channel = channel
        self._stream = channel.stream_stream(
            PATHS[version],
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )

    def ask(self, **request: Any) -> Any:
        """One request on its own stream; raises ReflectionError on an error response."""
        responses = list(self._stream(iter([rpb.ServerReflectionRequest(**request)]), timeout=10))
        assert len(responses) == 1
        response = responses[0]
        if response.WhichOneof("message_response") == "error_response":
            raise ReflectionError(response.error_response.error_code, response.error_response.error_message)
        return response

    def list_services(self) -> list[str]:
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def _files(self, **request: Any) -> list[descriptor_pb2.FileDescriptorProto]:
        raw = self.ask(**request).file_descriptor_response.file_descriptor_proto
        return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in raw]

    def file_containing_symbol(self, symbol: str) -> list[descriptor_pb2.FileDescriptorProto]:
        return self._files(file_containing_symbol=symbol)

    def file_by_filename(self, name: str) -> list[descriptor_pb2.FileDescriptorProto]:
        return self._files(file_by_filename=name)

    def service(self, name: str) -> ReflectedService:
        """Fetch ``name``'s files (asking for any import not returned) into a fresh pool."""
        files = {f.name: f for f in self.file_containing_symbol(name)}
        missing = [d for f in files.values() for d in f.dependency if d not in files]
        while missing:
            for f in self.file_by_filename(missing.pop()):
                files.setdefault(f.name, f)
            missing = [d for f in files.values() for d in f.dependency if d not in files]
        pool = descriptor_pool.DescriptorPool()
        added: set[str] = set()

        def add(fdp: descriptor_pb2.FileDescriptorProto) -> None:
            if fdp.name in added:
                return
            for dep in fdp.dependency:
                add(files[dep])
            pool.Add(fdp)
            added.add(fdp.name)

        for fdp in files.values():
            add(fdp)
        return ReflectedService(name, pool.FindServiceByName(name), pool, sorted(files))

    def call(
        self,
        service: ReflectedService,
        method: str,
        request: Any,
        *,
        model: str | None = None,
        timeout: float = 30,
    ) -> tuple[Any, dict[str, str]]:
        """Call ``method``; returns (response message, initial metadata as a dict)."""
        stub = self.channel.unary_unary(
            f"/{service.name}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=service.output_class(method).FromString,
        )
        metadata = (("x-model-name", model),) if model else ()
        response, call = stub.with_call(request, metadata=metadata, timeout=timeout)
        return response, dict(call.initial_metadata())
