"""The whole archive's compression ratio: many entries, each too small for the per-entry check, that
together unpack to far more than the archive (the per-entry ratio is checked only past 1 MiB)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from runner.bundle import BundleLimits, extract_bundle
from runner.errors import TooLarge

META = json.dumps({"name": "m", "runtime": "python", "entry_point": "m:M"}).encode()
BASE = {"metadata.json": META, "model.proto": b'syntax = "proto3";', "m.py": b"class M: ...\n"}


def zipped(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zeros(count: int, size: int) -> dict[str, bytes]:
    return BASE | {f"data/{i:04d}.bin": bytes(size) for i in range(count)}


def test_entries_at_the_per_entry_floor_are_refused_together(tmp_path: Path) -> None:
    # each entry is exactly ratio_min_bytes (not checked alone); together 300:1 past the floor
    limits = BundleLimits(ratio_min_bytes=64 * 1024, total_ratio_min_bytes=1024 * 1024)
    data = zipped(zeros(40, 64 * 1024))
    with pytest.raises(TooLarge) as info:
        extract_bundle(data, tmp_path / "out", limits)
    detail = info.value.detail
    assert detail["unpacked"] >= 40 * 64 * 1024 and detail["archive"] == len(data)
    assert detail["ratio"] > limits.max_ratio and "zip bomb" in info.value.message
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_below_the_floor_any_ratio_is_fine(tmp_path: Path) -> None:
    limits = BundleLimits(ratio_min_bytes=64 * 1024, total_ratio_min_bytes=4 * 1024 * 1024)
    bundle = extract_bundle(zipped(zeros(40, 64 * 1024)), tmp_path / "out", limits)
    assert len(list((Path(bundle.root) / "data").iterdir())) == 40


def test_well_compressed_but_not_a_bomb_is_fine(tmp_path: Path) -> None:
    # text compresses well, far below 200:1
    text = b"".join(f"{i},{i * 0.5},label-{i % 7}\n".encode() for i in range(60_000))
    limits = BundleLimits(total_ratio_min_bytes=1024 * 1024)
    data = zipped(BASE | {"data/table.csv": text})
    assert len(text) > 1024 * 1024 and len(text) / len(data) < 200
    extract_bundle(data, tmp_path / "out", limits)


def test_the_default_floor_and_ratio() -> None:
    limits = BundleLimits()
    assert limits.total_ratio_min_bytes == 64 * 1024 * 1024 and limits.max_ratio == 200
