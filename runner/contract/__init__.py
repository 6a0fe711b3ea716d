"""Contracts: proto3 text compiled at run time into message classes (nothing generated on disk).

A contract is one ``.proto`` file with exactly one ``service``; every unary ``rpc`` is a model method.
It is compiled by grpc_tools' bundled protoc (run as a subprocess so its diagnostics can be captured)
into a FileDescriptorSet, loaded into a fresh ``DescriptorPool`` per contract, and message classes come
from ``message_factory.GetMessageClass``. Two versions of the same contract therefore never share
classes, and a contract swap never touches the default pool.

JSON follows the proto3 JSON mapping (``json_format``): input accepts the ``.proto`` field names and
their lowerCamelCase JSON names; output uses the ``.proto`` field names and prints fields that have
their default value (so a zero score is ``0``, not missing).

Modules: ``media`` (media types), ``compiler`` (protoc, import checks, the compile cache), ``codec``
(JSON and binary conversion), ``schema`` (JSON Schema), ``compat`` (breaking changes), ``required`` (fields a request must
set) and ``contract`` (the Contract class tying them together). Callers import from this package.
"""

from runner.contract.codec import DEFAULT_MAX_JSON_DEPTH, descriptor_of
from runner.contract.compat import breaking_changes
from runner.contract.contract import Contract
from runner.contract.media import MEDIA_JSON, MEDIA_PROTOBUF, is_json, is_protobuf, normalize_media
from runner.contract.required import NO_REQUIRED_FIELDS, RequiredFields

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "MEDIA_JSON",
    "MEDIA_PROTOBUF",
    "NO_REQUIRED_FIELDS",
    "Contract",
    "RequiredFields",
    "breaking_changes",
    "descriptor_of",
    "is_json",
    "is_protobuf",
    "normalize_media",
]
