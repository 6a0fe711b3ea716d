"""Bundle folders: their files, their content digest, and reading and checking them.

Callers read a bundle's fixed files through :func:`read_metadata`, :func:`read_metadata_dict` and
:func:`read_proto` (or :func:`open_bundle` for the whole check), never by file name.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runner.bundle.metadata import (
    ACUMOS_DIR,
    ACUMOS_MODEL_ZIP,
    JAR_FILE,
    METADATA_FILE,
    PROTO_FILE,
    Metadata,
    metadata_object,
)
from runner.errors import InvalidBundle

SKIP_DIRS = {"__pycache__"}
"""Folders that are not content: never digested, zipped or unpacked."""
_METADATA_MAX_BYTES = 1024 * 1024


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


def iter_files(root: Path) -> list[tuple[str, Path]]:
    """Sorted (relative posix path, path) of every regular file of a bundle folder.

    Symlinks are followed only when they stay inside the folder (InvalidBundle otherwise);
    ``__pycache__`` folders are skipped (they are not content)."""
    root = Path(root)
    real_root = root.resolve()
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
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


def read_metadata(folder: Path) -> Metadata:
    """The checked ``metadata.json`` of a bundle folder; InvalidBundle when it is missing, too large
    or invalid."""
    return Metadata.from_json(_metadata_bytes(Path(folder)))


def read_metadata_dict(folder: Path) -> dict[str, Any]:
    """``metadata.json`` of a bundle folder as stored (no defaults added, unknown keys kept), for
    showing it as it is; InvalidBundle when it is missing, too large, not JSON or not an object."""
    return metadata_object(_metadata_bytes(Path(folder)))


def _metadata_bytes(root: Path) -> bytes:
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        raise InvalidBundle(f"the bundle has no {METADATA_FILE}", detail={"missing": METADATA_FILE})
    if meta_path.stat().st_size > _METADATA_MAX_BYTES:
        raise InvalidBundle(f"{METADATA_FILE} is larger than {_METADATA_MAX_BYTES} bytes")
    return meta_path.read_bytes()


def read_proto(folder: Path) -> str:
    """The contract text (``model.proto``) of a bundle folder; InvalidBundle when it is missing or
    not UTF-8."""
    proto_path = Path(folder) / PROTO_FILE
    if not proto_path.is_file():
        raise InvalidBundle(
            f"the bundle has no {PROTO_FILE} (generate one with `model-runner onboard`)",
            detail={"missing": PROTO_FILE},
        )
    try:
        return proto_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidBundle(f"{PROTO_FILE} is not UTF-8 text: {err}", detail={"file": PROTO_FILE}) from err


def open_bundle(folder: Path) -> Bundle:
    """Read and check a bundle folder: metadata.json valid, model.proto present, the runtime's files."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidBundle(f"{root}: not a bundle folder", detail={"path": str(root)})
    metadata = read_metadata(root)
    proto_text = read_proto(root)
    if metadata.runtime == "java":
        if not (root / JAR_FILE).is_file():
            raise InvalidBundle(
                f"a java bundle needs {JAR_FILE} (dependencies go in lib/)", detail={"missing": JAR_FILE}
            )
    elif metadata.acumos_dump:
        if not (root / ACUMOS_DIR / ACUMOS_MODEL_ZIP).is_file():
            raise InvalidBundle(
                f"entry_point {metadata.entry_point!r} (an Acumos dump): {ACUMOS_DIR}/{ACUMOS_MODEL_ZIP} "
                "is not in the bundle",
                detail={"missing": f"{ACUMOS_DIR}/{ACUMOS_MODEL_ZIP}", "entry_point": metadata.entry_point},
            )
    else:
        if python_entry_file(root, metadata.python_module) is None:
            rel = metadata.python_module.replace(".", "/") + ".py"
            raise InvalidBundle(
                f"entry_point {metadata.entry_point!r}: {rel} is not in the bundle",
                detail={"missing": rel, "entry_point": metadata.entry_point},
            )
    return Bundle(root=root, metadata=metadata, proto_text=proto_text, sha256=content_sha256(root))


def path_problem(name: str) -> str | None:
    """Why a bundle-relative path (a zip entry name) is unsafe, or None."""
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


def safe_relpath(name: str) -> PurePosixPath:
    """A bundle-relative path checked like a zip entry name (for callers adding files)."""
    why = path_problem(name)
    if why:
        raise InvalidBundle(f"path {name!r} rejected: {why}", detail={"entry": name, "reason": why})
    return PurePosixPath(name)
