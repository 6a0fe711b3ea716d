"""Bundles: the unit that is onboarded, uploaded and stored (a folder or a zip of one).

A bundle holds ``metadata.json``, ``model.proto`` and the artifacts (``model.jar`` + ``lib/*.jar`` for
Java; ``.py`` files for Python; plus any data files). docs/bundle.md is the user-facing schema.
Zips are untrusted input: :func:`extract_bundle` enforces size, entry-count and compression-ratio
limits and rejects absolute paths, ``..``, links and devices before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner.errors import InvalidBundle, TooLarge

METADATA_FILE = "metadata.json"
PROTO_FILE = "model.proto"
JAR_FILE = "model.jar"
RUNTIMES = ("java", "python")
CONVENTIONS = ("pojo", "params", "proto", "acumos")

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_JAVA_CLASS_RE = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
_PY_ENTRY_RE = re.compile(r"(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)")
_RPC_RE = re.compile(r"[A-Za-z_]\w*")
_SKIP_DIRS = {"__pycache__"}
_METADATA_MAX_BYTES = 1024 * 1024


@dataclass
class Metadata:
    """``metadata.json`` of a bundle (docs/bundle.md)."""

    name: str
    runtime: str
    entry_point: str
    description: str = ""
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-rpc overrides: {"Classify": {"java_method": "classify", "convention": "pojo"}} or
    {"Classify": {"python_method": "classify"}}; an rpc not listed is bound by name."""
    jvm_options: list[str] = field(default_factory=list)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """rpc -> list of inputs (proto3 JSON of the rpc's input message) run before a swap commits."""
    timeout_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown top-level keys, kept as they were (forward compatibility)."""

    @classmethod
    def from_dict(cls, data: Any) -> Metadata:
        """Parse and validate; InvalidBundle names every problem found."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise InvalidBundle(f"{METADATA_FILE} must hold a JSON object", detail={"file": METADATA_FILE})

        def text(key: str, required: bool) -> str:
            v = data.get(key)
            if v is None:
                if required:
                    problems.append(f"{key!r} is required")
                return ""
            if not isinstance(v, str):
                problems.append(f"{key!r} must be a string")
                return ""
            return v

        name = text("name", True)
        if name and not NAME_RE.fullmatch(name):
            problems.append(
                f"name {name!r} is not allowed: use 1-63 characters a-z 0-9 _ . - "
                "starting with a letter or digit"
            )
        runtime = text("runtime", True)
        if runtime and runtime not in RUNTIMES:
            problems.append(f"runtime {runtime!r} is not supported (use 'java' or 'python')")
        entry = text("entry_point", True)
        if entry and runtime == "java" and not _JAVA_CLASS_RE.fullmatch(entry):
            problems.append(f"entry_point {entry!r} is not a Java class name (e.g. org.acme.IrisModel)")
        if entry and runtime == "python" and not _PY_ENTRY_RE.fullmatch(entry):
            problems.append(f"entry_point {entry!r} must be 'module:Class' (e.g. iris_model:IrisClassifier)")
        description = text("description", False)

        methods = data.get("methods") or {}
        if not isinstance(methods, dict):
            problems.append("'methods' must be an object: rpc name -> overrides")
            methods = {}
        for rpc, ov in methods.items():
            if not _RPC_RE.fullmatch(rpc):
                problems.append(f"methods: {rpc!r} is not an rpc name")
            if not isinstance(ov, dict):
                problems.append(f"methods.{rpc} must be an object")
                continue
            for key in ("java_method", "python_method"):
                if key in ov and not (isinstance(ov[key], str) and ov[key]):
                    problems.append(f"methods.{rpc}.{key} must be a method name")
            conv = ov.get("convention")
            if conv is not None and conv not in CONVENTIONS:
                problems.append(f"methods.{rpc}.convention {conv!r} must be one of {', '.join(CONVENTIONS)}")

        jvm_options = data.get("jvm_options") or []
        if not isinstance(jvm_options, list) or not all(isinstance(o, str) and o for o in jvm_options):
            problems.append("'jvm_options' must be a list of strings")
            jvm_options = []
        if jvm_options and runtime == "python":
            problems.append("'jvm_options' applies only to runtime 'java'")

        examples = data.get("examples") or {}
        if not isinstance(examples, dict):
            problems.append("'examples' must be an object: rpc name -> list of inputs")
            examples = {}
        norm_examples: dict[str, list[dict[str, Any]]] = {}
        for rpc, items in examples.items():
            if isinstance(items, dict):  # a single example is accepted without the list
                items = [items]
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                problems.append(f"examples.{rpc} must be a list of JSON objects (inputs of {rpc})")
                continue
            norm_examples[rpc] = items

        timeout = data.get("timeout_seconds")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            problems.append("'timeout_seconds' must be a positive number")
            timeout = None

        if problems:
            raise InvalidBundle(
                f"{METADATA_FILE}: " + "; ".join(problems),
                detail={"file": METADATA_FILE, "problems": problems},
            )
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            name=name,
            runtime=runtime,
            entry_point=entry,
            description=description,
            methods={k: dict(v) for k, v in methods.items()},
            jvm_options=list(jvm_options),
            examples=norm_examples,
            timeout_seconds=float(timeout) if timeout is not None else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Metadata:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            where = (
                f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
            )
            raise InvalidBundle(
                f"{METADATA_FILE} is not valid JSON{where}: {getattr(err, 'msg', err)}",
                detail={
                    "file": METADATA_FILE,
                    "line": getattr(err, "lineno", None),
                    "column": getattr(err, "colno", None),
                },
            ) from err
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        if d["timeout_seconds"] is None:
            del d["timeout_seconds"]
        return {**d, **extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @property
    def python_module(self) -> str:
        return self.entry_point.split(":", 1)[0]

    @property
    def python_class(self) -> str:
        return self.entry_point.split(":", 1)[1]


@dataclass
class Bundle:
    """A bundle folder that passed the structural checks."""

    root: Path
    metadata: Metadata
    proto_text: str
    sha256: str

    @property
    def name(self) -> str:
        return self.metadata.name


@dataclass
class BundleLimits:
    """Safety limits for untrusted zips."""

    max_archive_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_file_bytes: int = 512 * 1024 * 1024
    max_entries: int = 10_000
    max_ratio: float = 200.0
    """Largest uncompressed/compressed ratio of an entry (zip bombs reach thousands)..."""
    ratio_min_bytes: int = 1024 * 1024
    """...checked for entries larger than this (tiny text files compress well legitimately)."""

    @classmethod
    def from_settings(cls, settings: Any) -> BundleLimits:
        limits = cls()
        body = getattr(settings, "max_body_bytes", None)
        if body:
            limits.max_archive_bytes = int(body)
        for name in ("max_total_bytes", "max_file_bytes", "max_entries"):
            value = getattr(settings, "bundle_" + name, None)
            if value:
                setattr(limits, name, int(value))
        return limits


# ---- reading a folder ---------------------------------------------------------------------------------


def iter_files(root: Path) -> list[tuple[str, Path]]:
    """Sorted (relative posix path, path) of every regular file of a bundle folder.

    Symlinks are followed only when they stay inside the folder (InvalidBundle otherwise);
    ``__pycache__`` folders are skipped (they are not content)."""
    root = Path(root)
    real_root = root.resolve()
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():
                rel = (Path(dirpath) / d).relative_to(root).as_posix()
                raise InvalidBundle(
                    f"{rel}: a symbolic link to a folder is not allowed in a bundle", detail={"entry": rel}
                )
        for f in filenames:
            p = Path(dirpath) / f
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                _check_link(p, root, real_root)
            st = p.stat()
            if not stat.S_ISREG(st.st_mode):
                raise InvalidBundle(f"{rel}: not a regular file", detail={"entry": rel})
            out.append((rel, p))
    out.sort(key=lambda t: t[0])
    return out


def _check_link(p: Path, root: Path, real_root: Path) -> None:
    target = p.resolve()
    if not target.is_relative_to(real_root):
        rel = p.relative_to(root).as_posix()
        raise InvalidBundle(
            f"{rel}: a symbolic link pointing outside the bundle folder is not allowed (copy the file in)",
            detail={"entry": rel, "target": str(target)},
        )


def content_sha256(root: Path) -> str:
    """Stable digest of a bundle's content: over sorted relative paths and file bytes."""
    h = hashlib.sha256()
    for rel, p in iter_files(root):
        data = p.read_bytes()
        h.update(rel.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def python_entry_file(root: Path, module: str) -> Path | None:
    base = Path(root, *module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def open_bundle(folder: Path) -> Bundle:
    """Read and check a bundle folder: metadata.json valid, model.proto present, the runtime's files."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidBundle(f"{root}: not a bundle folder", detail={"path": str(root)})
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        raise InvalidBundle(f"the bundle has no {METADATA_FILE}", detail={"missing": METADATA_FILE})
    if meta_path.stat().st_size > _METADATA_MAX_BYTES:
        raise InvalidBundle(f"{METADATA_FILE} is larger than {_METADATA_MAX_BYTES} bytes")
    metadata = Metadata.from_json(meta_path.read_bytes())
    proto_path = root / PROTO_FILE
    if not proto_path.is_file():
        raise InvalidBundle(
            f"the bundle has no {PROTO_FILE} (generate one with `model-runner onboard`)",
            detail={"missing": PROTO_FILE},
        )
    try:
        proto_text = proto_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidBundle(f"{PROTO_FILE} is not UTF-8 text: {err}", detail={"file": PROTO_FILE}) from err
    if metadata.runtime == "java":
        if not (root / JAR_FILE).is_file():
            raise InvalidBundle(
                f"a java bundle needs {JAR_FILE} (dependencies go in lib/)", detail={"missing": JAR_FILE}
            )
    else:
        if python_entry_file(root, metadata.python_module) is None:
            rel = metadata.python_module.replace(".", "/") + ".py"
            raise InvalidBundle(
                f"entry_point {metadata.entry_point!r}: {rel} is not in the bundle",
                detail={"missing": rel, "entry_point": metadata.entry_point},
            )
    return Bundle(root=root, metadata=metadata, proto_text=proto_text, sha256=content_sha256(root))


# ---- zips -----------------------------------------------------------------------------------------------


def _check_entry_name(name: str) -> str | None:
    """Why a zip entry name is unsafe, or None."""
    if not name:
        return "empty name"
    if "\0" in name or "\\" in name:
        return "backslash or NUL in the name (zip paths use '/')"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if any(p == ".." for p in parts):
        return "'..' in the path"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


def _entry_kind_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if not mode:
        return None
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None


def extract_bundle(data: bytes | Path, dest: Path, limits: BundleLimits | None = None) -> Bundle:
    """Unpack an untrusted zip into ``dest`` (created; must be empty) and open it as a bundle.

    Everything is checked before the first byte is written, and sizes are enforced again while
    decompressing (headers can lie). A zip whose entries all sit in one top-level folder holding
    metadata.json (a zipped folder) is accepted as if zipped from inside it."""
    limits = limits or BundleLimits()
    if isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
        source: Any = io.BytesIO(bytes(data))
    else:
        path = Path(data)
        if path.is_dir():
            raise InvalidBundle(f"{path} is a folder: use open_bundle for folders")
        size = path.stat().st_size
        source = path
    if size > limits.max_archive_bytes:
        raise TooLarge(
            f"the bundle archive is {size} bytes; the limit is {limits.max_archive_bytes}",
            detail={"size": size, "limit": limits.max_archive_bytes},
        )
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise InvalidBundle(f"the bundle is not a zip archive: {err}") from err
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise TooLarge(
                f"the bundle has {len(infos)} entries; the limit is {limits.max_entries}",
                detail={"entries": len(infos), "limit": limits.max_entries},
            )
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.filename
            why = _check_entry_name(name)
            if why:
                raise InvalidBundle(
                    f"zip entry {name!r} rejected: {why}", detail={"entry": name, "reason": why}
                )
            kind = _entry_kind_problem(info)
            if kind:
                raise InvalidBundle(
                    f"zip entry {name!r} rejected: a {kind} is not allowed in a bundle",
                    detail={"entry": name, "reason": kind},
                )
            if info.flag_bits & 0x1:
                raise InvalidBundle(f"zip entry {name!r} is encrypted", detail={"entry": name})
            key = name.rstrip("/")
            if key in seen:
                raise InvalidBundle(f"zip entry {name!r} appears twice", detail={"entry": name})
            seen.add(key)
            if info.is_dir():
                continue
            _check_sizes(info.filename, info.file_size, info.compress_size, limits)
            total += info.file_size
            if total > limits.max_total_bytes:
                raise TooLarge(
                    f"the bundle unpacks to more than {limits.max_total_bytes} bytes (at entry {name!r})",
                    detail={"entry": name, "limit": limits.max_total_bytes},
                )
        prefix = _common_prefix(infos)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise InvalidBundle(f"{dest} is not empty")
        try:
            _extract_entries(zf, infos, prefix, dest, limits)
        except BaseException:
            for child in dest.iterdir():  # leave dest as empty as we found it
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            raise
    return open_bundle(dest)


def _extract_entries(
    zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], prefix: str, dest: Path, limits: BundleLimits
) -> None:
    real_dest = dest.resolve()
    written = 0
    for info in infos:
        rel = info.filename[len(prefix) :]
        if not rel or info.is_dir():
            if rel:
                (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        if rel.split("/")[0] in _SKIP_DIRS or "/__pycache__/" in "/" + rel:
            continue
        target = dest / rel
        if not target.resolve().is_relative_to(real_dest):  # belt and braces after the name checks
            raise InvalidBundle(
                f"zip entry {info.filename!r} escapes the bundle", detail={"entry": info.filename}
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            written += _copy_entry(zf, info, target, limits, written)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise InvalidBundle(
                f"zip entry {info.filename!r} is corrupt: {err}", detail={"entry": info.filename}
            ) from err
        os.chmod(target, 0o644)


def _copy_entry(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: BundleLimits, written: int
) -> int:
    """Decompress one entry, counting real bytes (headers can lie); returns the bytes written."""
    n = 0
    with zf.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(1024 * 1024):
            n += len(chunk)
            if n > info.file_size or n > limits.max_file_bytes or written + n > limits.max_total_bytes:
                raise TooLarge(
                    f"zip entry {info.filename!r} unpacks to more than its header says or the limit",
                    detail={"entry": info.filename},
                )
            out.write(chunk)
    return n


def _check_sizes(name: str, file_size: int, compress_size: int, limits: BundleLimits) -> None:
    if file_size > limits.max_file_bytes:
        raise TooLarge(
            f"zip entry {name!r} is {file_size} bytes; the per-file limit is {limits.max_file_bytes}",
            detail={"entry": name, "size": file_size, "limit": limits.max_file_bytes},
        )
    if file_size > limits.ratio_min_bytes:
        ratio = file_size / max(compress_size, 1)
        if ratio > limits.max_ratio:
            raise TooLarge(
                f"zip entry {name!r} compresses {ratio:.0f}:1 (limit {limits.max_ratio:.0f}:1): "
                "refusing a likely zip bomb",
                detail={"entry": name, "ratio": round(ratio, 1), "limit": limits.max_ratio},
            )


def _common_prefix(infos: list[zipfile.ZipInfo]) -> str:
    names = [i.filename for i in infos]
    if METADATA_FILE in names or not names:
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = next(iter(tops))
        if f"{top}/{METADATA_FILE}" in names:
            return top + "/"
    return ""


def write_bundle_zip(folder: Path) -> bytes:
    """Zip a bundle folder reproducibly (sorted entries, fixed timestamps, mode 0644)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, p in iter_files(Path(folder)):
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(p, "rb") as src, zf.open(info, "w", force_zip64=True) as out:
                while chunk := src.read(1024 * 1024):
                    out.write(chunk)
    return buf.getvalue()


def safe_relpath(name: str) -> PurePosixPath:
    """A bundle-relative path checked like a zip entry name (for callers adding files)."""
    why = _check_entry_name(name)
    if why:
        raise InvalidBundle(f"path {name!r} rejected: {why}", detail={"entry": name, "reason": why})
    return PurePosixPath(name)
