"""runner.bundle: metadata validation, folders, safe zip extraction, stable digests."""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from runner.bundle import (
    BundleLimits,
    Metadata,
    content_sha256,
    extract_bundle,
    open_bundle,
    read_metadata,
    read_metadata_dict,
    read_proto,
    write_bundle_zip,
)
from runner.errors import InvalidBundle, TooLarge
from runner.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def py_bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "iris-python"
    shutil.copytree(ROOT / "runner" / "samples" / "iris-python", folder)
    shutil.copy(ROOT / "protos" / "iris.proto", folder / "model.proto")
    return folder


def _zip(
    entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _bundle_entries(folder: Path) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]


# ---- metadata ------------------------------------------------------------------------------------------


def test_metadata_parses_and_keeps_unknown_keys() -> None:
    m = Metadata.from_dict(
        {
            "name": "iris",
            "runtime": "java",
            "entry_point": "org.acme.Iris",
            "methods": {"Classify": {"java_method": "classify", "convention": "pojo"}},
            "jvm_options": ["-Dx=1"],
            "examples": {"Classify": {"sepal_length": 1}},
            "timeout_seconds": 5,
            "x-owner": "team-a",
        }
    )
    assert m.examples == {"Classify": [{"sepal_length": 1}]}
    assert m.extra == {"x-owner": "team-a"}
    assert Metadata.from_json(m.to_json()) == m


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": "Iris"}, "name 'Iris' is not allowed"),
        ({"name": "../x"}, "is not allowed"),
        ({"name": "a" * 64}, "is not allowed"),
        ({"runtime": "ruby"}, "runtime 'ruby'"),
        ({"entry_point": None}, "'entry_point' is required"),
        ({"entry_point": "iris_model.IrisClassifier"}, "must be 'module:Class'"),
        ({"methods": {"Classify": {"convention": "magic"}}}, "convention 'magic'"),
        ({"examples": {"Classify": [1, 2]}}, "examples.Classify must be a list of JSON objects"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"jvm_options": ["-Xmx1g"]}, "only to runtime 'java'"),
    ],
)
def test_metadata_problems_are_named(change: dict, fragment: str) -> None:
    data = {"name": "iris-python", "runtime": "python", "entry_point": "iris_model:IrisClassifier", **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(InvalidBundle) as e:
        Metadata.from_dict(data)
    assert fragment in e.value.message


def test_metadata_json_syntax_error_has_position(py_bundle: Path) -> None:
    (py_bundle / "metadata.json").write_text('{"name": "x",\n  "runtime": }')
    with pytest.raises(InvalidBundle) as e:
        open_bundle(py_bundle)
    assert e.value.detail["line"] == 2


# ---- folders -------------------------------------------------------------------------------------------


def test_open_bundle(py_bundle: Path) -> None:
    b = open_bundle(py_bundle)
    assert b.metadata.name == "iris-python"
    assert "service IrisClassifier" in b.proto_text
    assert len(b.sha256) == 64


@pytest.mark.parametrize(
    ("remove", "fragment"),
    [
        ("metadata.json", "metadata.json"),
        ("model.proto", "model.proto"),
        ("iris_model.py", "iris_model.py is not in the bundle"),
    ],
)
def test_required_files(py_bundle: Path, remove: str, fragment: str) -> None:
    (py_bundle / remove).unlink()
    with pytest.raises(InvalidBundle, match=fragment):
        open_bundle(py_bundle)


def test_read_the_fixed_files(py_bundle: Path) -> None:
    meta = json.loads((py_bundle / "metadata.json").read_text())
    (py_bundle / "metadata.json").write_text(json.dumps({**meta, "x-owner": "team-a"}))
    assert read_metadata(py_bundle).extra == {"x-owner": "team-a"}
    assert read_metadata_dict(py_bundle) == {**meta, "x-owner": "team-a"}  # as stored: no defaults added
    assert read_proto(py_bundle) == (py_bundle / "model.proto").read_text()
    (py_bundle / "metadata.json").write_text("[1]")
    with pytest.raises(InvalidBundle, match="must hold a JSON object"):
        read_metadata_dict(py_bundle)
    (py_bundle / "model.proto").write_bytes(b"\xff")
    with pytest.raises(InvalidBundle, match="not UTF-8"):
        read_proto(py_bundle)
    (py_bundle / "model.proto").unlink()
    with pytest.raises(InvalidBundle, match="has no model.proto"):
        read_proto(py_bundle)


def test_java_bundle_needs_model_jar(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(
        json.dumps({"name": "j", "runtime": "java", "entry_point": "a.B"})
    )
    (tmp_path / "model.proto").write_text("")
    with pytest.raises(InvalidBundle, match="model.jar"):
        open_bundle(tmp_path)


def test_symlink_out_of_folder_rejected(py_bundle: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    (py_bundle / "data.txt").symlink_to(secret)
    with pytest.raises(InvalidBundle, match="outside the bundle"):
        open_bundle(py_bundle)


def test_sha256_is_content_based_and_stable(py_bundle: Path, tmp_path: Path) -> None:
    digest = content_sha256(py_bundle)
    (py_bundle / "__pycache__").mkdir()
    (py_bundle / "__pycache__" / "x.pyc").write_bytes(b"junk")  # not content
    assert content_sha256(py_bundle) == digest
    # zip -> extract keeps the digest; a changed byte changes it
    b = extract_bundle(write_bundle_zip(py_bundle), tmp_path / "out")
    assert b.sha256 == digest
    assert write_bundle_zip(py_bundle) == write_bundle_zip(py_bundle)  # reproducible
    (py_bundle / "model.proto").write_text((py_bundle / "model.proto").read_text() + "\n")
    assert content_sha256(py_bundle) != digest


# ---- zips ----------------------------------------------------------------------------------------------


def test_zip_of_a_folder_is_accepted(py_bundle: Path, tmp_path: Path) -> None:
    entries = [(f"iris/{name}", data) for name, data in _bundle_entries(py_bundle)]
    b = extract_bundle(_zip(entries), tmp_path / "out")
    assert (b.root / "iris_model.py").is_file() and b.sha256 == content_sha256(py_bundle)


@pytest.mark.parametrize(
    "evil", ["../evil.py", "a/../../evil.py", "/etc/evil.py", "C:/evil.py", "a\\..\\evil"]
)
def test_zip_slip_rejected(py_bundle: Path, tmp_path: Path, evil: str) -> None:
    data = _zip(_bundle_entries(py_bundle) + [(evil, b"x = 1")])
    dest = tmp_path / "deep" / "out"
    with pytest.raises(InvalidBundle) as e:
        extract_bundle(data, dest)
    assert e.value.detail["entry"] == evil
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "deep" / "evil.py").exists()
    assert list(dest.iterdir()) == [] if dest.exists() else True


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o600, stat.S_IFIFO | 0o600])
def test_links_and_devices_rejected(py_bundle: Path, tmp_path: Path, mode: int) -> None:
    info = zipfile.ZipInfo("data/link")
    info.create_system = 3
    info.external_attr = mode << 16
    data = _zip(_bundle_entries(py_bundle) + [(info, b"/etc/passwd")])
    with pytest.raises(InvalidBundle) as e:
        extract_bundle(data, tmp_path / "out")
    assert e.value.detail["entry"] == "data/link"
    assert not (tmp_path / "out" / "data").exists()


def test_zip_bomb_rejected(py_bundle: Path, tmp_path: Path) -> None:
    bomb = b"\0" * (50 * 1024 * 1024)  # 50 MiB of zeros compresses about 1000:1
    data = _zip(_bundle_entries(py_bundle) + [("weights.bin", bomb)])
    assert len(data) < 1024 * 1024
    with pytest.raises(TooLarge) as e:
        extract_bundle(data, tmp_path / "out")
    assert e.value.detail["entry"] == "weights.bin"
    assert "zip bomb" in e.value.message


def test_size_and_count_limits(py_bundle: Path, tmp_path: Path) -> None:
    data = _zip(_bundle_entries(py_bundle) + [("blob.bin", bytes(range(256)) * 4096)], zipfile.ZIP_STORED)
    with pytest.raises(TooLarge) as e:
        extract_bundle(data, tmp_path / "a", BundleLimits(max_file_bytes=100_000))
    assert e.value.detail["entry"] == "blob.bin"
    with pytest.raises(TooLarge, match="unpacks to more than"):
        extract_bundle(data, tmp_path / "b", BundleLimits(max_total_bytes=500_000))
    with pytest.raises(TooLarge, match="entries"):
        extract_bundle(data, tmp_path / "c", BundleLimits(max_entries=3))
    with pytest.raises(TooLarge, match="archive"):
        extract_bundle(data, tmp_path / "d", BundleLimits(max_archive_bytes=1000))


def test_limits_from_settings() -> None:
    limits = BundleLimits.from_settings(Settings(max_body_bytes=1000, bundle_max_entries=0))
    assert limits.max_archive_bytes == 1000
    assert limits.max_entries == BundleLimits().max_entries  # 0 keeps the default
    assert limits.max_file_bytes == Settings().bundle_max_file_bytes


def test_lying_header_is_caught(py_bundle: Path, tmp_path: Path) -> None:
    """Sizes are enforced while decompressing, not only from the headers."""
    data = bytearray(_zip(_bundle_entries(py_bundle) + [("blob.bin", b"A" * 100_000)]))
    # understate the uncompressed size in blob.bin's central directory record
    header = data.rfind(b"PK\x01\x02", 0, data.rfind(b"blob.bin"))
    assert data[header + 24 : header + 28] == (100_000).to_bytes(4, "little")
    data[header + 24 : header + 28] = (10).to_bytes(4, "little")
    with pytest.raises(InvalidBundle) as e:
        extract_bundle(bytes(data), tmp_path / "out")
    assert e.value.detail["entry"] == "blob.bin"
    assert list((tmp_path / "out").iterdir()) == []  # nothing left behind


def test_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle, match="not a zip"):
        extract_bundle(b"hello", tmp_path / "out")
