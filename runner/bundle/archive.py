"""Bundle zips: safe extraction of untrusted archives, and reproducible writing.

Zips are untrusted input: :func:`extract_bundle` enforces size, entry-count and compression-ratio
limits (of each large entry, and of the whole archive: many small entries of zeros are a bomb too) and
rejects absolute paths, ``..``, links and devices before anything is written.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from runner.bundle.files import SKIP_DIRS, Bundle, iter_files, open_bundle, path_problem
from runner.bundle.metadata import METADATA_FILE
from runner.errors import InvalidBundle, TooLarge
from runner.settings import Settings


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
    total_ratio_min_bytes: int = 64 * 1024 * 1024
    """The whole archive may unpack to at most ``max_ratio`` times its size once it unpacks to more than
    this: 900 entries of 1 MiB of zeros (a 1 MB zip) would otherwise write 900 MiB per version."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BundleLimits:
        """The limits ``settings`` set (max_body_bytes, bundle_max_*); a setting of 0 keeps the default."""
        default = cls()
        return cls(
            max_archive_bytes=int(settings.max_body_bytes or default.max_archive_bytes),
            max_total_bytes=int(settings.bundle_max_total_bytes or default.max_total_bytes),
            max_file_bytes=int(settings.bundle_max_file_bytes or default.max_file_bytes),
            max_entries=int(settings.bundle_max_entries or default.max_entries),
        )


def extract_bundle(
    data: bytes | bytearray | memoryview | Path, dest: Path, limits: BundleLimits | None = None
) -> Bundle:
    """Unpack an untrusted zip into ``dest`` (created; must be empty) and open it as a bundle.

    Everything is checked before the first byte is written, and sizes are enforced again while
    decompressing (headers can lie). A zip whose entries all sit in one top-level folder holding
    metadata.json (a zipped folder) is accepted as if zipped from inside it."""
    limits = limits or BundleLimits()
    source: io.BytesIO | Path
    if isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
        source = io.BytesIO(bytes(data))
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
            why = path_problem(name)
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
        _check_total_ratio(total, size, limits)
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
        if rel.split("/")[0] in SKIP_DIRS or "/__pycache__/" in "/" + rel:
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


def _check_total_ratio(total: int, size: int, limits: BundleLimits) -> None:
    """Refuse an archive that unpacks to more than ``max_ratio`` times its size (past a floor)."""
    if total <= limits.total_ratio_min_bytes:
        return
    ratio = total / max(size, 1)
    if ratio > limits.max_ratio:
        raise TooLarge(
            f"the bundle unpacks to {total} bytes from a {size}-byte archive ({ratio:.0f}:1; past "
            f"{limits.total_ratio_min_bytes} bytes the limit is {limits.max_ratio:.0f}:1): refusing a likely zip bomb",
            detail={
                "unpacked": total,
                "archive": size,
                "ratio": round(ratio, 1),
                "limit": limits.max_ratio,
                "floor": limits.total_ratio_min_bytes,
            },
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
