"""Compiling contract text: grpc_tools' bundled protoc, run as a subprocess so its diagnostics can be
captured, writes a FileDescriptorSet (the main file and everything it imports).

Imports are checked before protoc runs: only files inside the bundle folder and the well-known types
(``google/protobuf/*``) may be imported. Compiled sets are cached by (file name, text) and reused as
long as the bundle files they imported are unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from google.protobuf import descriptor_pb2

from runner.errors import InvalidContract

T = TypeVar("T")

_WKT_PREFIX = "google/protobuf/"
_IMPORT_RE = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]*)"\s*;', re.MULTILINE)
_PROTOC_DIAG_RE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<text>.*)$", re.MULTILINE)
_PROTOC_TIMEOUT = 60.0
_CACHE_SIZE = 64

# sha256(filename, text) -> (descriptor set bytes, [(bundle-relative import, sha256 of its bytes)])
_fds_cache: OrderedDict[str, tuple[bytes, list[tuple[str, str]]]] = OrderedDict()
_cache_lock = threading.Lock()


def compile_proto(proto_text: str, filename: str, include_dir: Path | None, load: Callable[[bytes], T]) -> T:
    """Compile proto3 text into a FileDescriptorSet and hand it to ``load`` (which checks it and
    builds the caller's object); imports may name only files under ``include_dir`` and the well-known
    types. Raises InvalidContract with detail ``{file, line, column, protoc}`` on any error.

    A descriptor set is cached only once ``load`` accepted it."""
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
        return load(hit[0])
    fds_bytes = _run_protoc(proto_text, filename, include_dir)
    deps = _bundle_deps(fds_bytes, filename, include_dir)
    loaded = load(fds_bytes)
    with _cache_lock:
        _fds_cache[key] = (fds_bytes, deps)
        while len(_fds_cache) > _CACHE_SIZE:
            _fds_cache.popitem(last=False)
    return loaded


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
