"""Compiling hundreds of generated contracts in one protoc run (the property tests of contract generation).

``Contract.compile`` runs protoc once per contract (a Python subprocess, ~0.2 s each): for a few hundred
contracts that alone would take a minute. Here one protoc run compiles every text (each its own file, each
with its own package, so nothing collides across files) with the same options as runner.contract.compiler,
and each file's descriptor is then given to ``Contract`` as a one-file set named ``model.proto``, exactly
what ``Contract.compile`` would hand it: the same protoc checks, the same descriptor-pool checks.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from runner.contract import Contract


def compile_many(texts: list[str]) -> list[Contract]:
    """A Contract per text, in order; AssertionError with protoc's diagnostics (and the offending text)
    if any file does not compile."""
    spec = importlib.util.find_spec("grpc_tools")
    assert spec is not None and spec.origin is not None, "grpcio-tools is not installed"
    wkt = Path(spec.origin).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="many-contracts-") as tmp:
        src = Path(tmp)
        names = [f"c{i:04d}.proto" for i in range(len(texts))]
        for name, text in zip(names, texts, strict=True):
            (src / name).write_text(text, encoding="utf-8")
        out = src / "out.pb"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "--proto_path=.",
                f"--proto_path={wkt}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *names,
            ],
            cwd=src,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            first = proc.stderr.split(":", 1)[0]
            shown = texts[names.index(first)] if first in names else ""
            raise AssertionError(f"protoc refused a generated contract:\n{proc.stderr}\n{first}:\n{shown}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    by_name = {f.name: f for f in fds.file}
    contracts = []
    for name, text in zip(names, texts, strict=True):
        one = descriptor_pb2.FileDescriptorProto()
        one.CopyFrom(by_name[name])
        one.name = "model.proto"
        contracts.append(
            Contract(text, "model.proto", descriptor_pb2.FileDescriptorSet(file=[one]).SerializeToString())
        )
    return contracts
