"""Uploads from HTTP requests: a bundle zip body, or multipart parts turned into UploadParts; the model
name sniffed from a zip's metadata when the URL does not give one; the .proto of a proto-only swap."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

from flask import Request

from runner.bundle import ACUMOS_CONFIG_FILE, METADATA_FILE
from runner.errors import BadInput, UnsupportedMedia
from runner.serving.admin import UploadParts

#: The multipart part of Acumos' `PUT /model/configuration` (and of `PUT /model`): modelConfig.properties.
ACUMOS_CONFIG_PART = "modelConfig"

ZIP_MEDIA = ("application/zip", "application/x-zip-compressed", "application/octet-stream")

#: The bundle's own limit on its metadata: no zip bomb while sniffing the name.
_METADATA_MAX_BYTES = 1024 * 1024


def proto_text(request: Request) -> str:
    """The .proto of a proto-only swap: a multipart `proto` part, or the raw body."""
    data: bytes
    if request.mimetype == "multipart/form-data":
        part = request.files.get("proto")
        if part is None:
            raise BadInput("multipart upload without a 'proto' part", {"parts": sorted(request.files)})
        data = part.read()
    else:
        data = request.get_data()
    if not data.strip():
        raise BadInput("empty .proto", {})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"the .proto is not UTF-8 text (byte {err.start})", {"offset": err.start}) from None


def bundle_source(request: Request, name: str | None) -> tuple[bytes | UploadParts, str]:
    """What Admin.upload takes, from the request: zip bytes, or UploadParts from multipart parts; and
    the model's name (``name``, else the one the upload's metadata gives).

    Multipart `model` (JAR) with optional `proto`, `metadata`, `lib` parts: parts not sent are taken from
    the model's current version (so Acumos' `PUT /model` with only a JAR replaces just the JAR).
    """
    if request.mimetype == "multipart/form-data":
        files = request.files
        if "bundle" in files:
            data = files["bundle"].read()
            return data, name or name_from_zip(data)
        if "model" not in files and ACUMOS_CONFIG_PART not in files:
            raise BadInput(
                "multipart upload needs a 'bundle' part (zip) or a 'model' part (JAR)",
                {"parts": sorted(files), "hint": "curl -F bundle=@model.zip or -F model=@model.jar"},
            )
        return _upload_parts(request, name)
    if request.mimetype in ZIP_MEDIA or not request.mimetype:
        data = request.get_data()
        if not data:
            raise BadInput("empty upload: send a bundle zip as the body, or multipart parts", {})
        return data, name or name_from_zip(data)
    raise UnsupportedMedia(
        f"cannot upload a bundle as {request.content_type!r}",
        {"supported": [*ZIP_MEDIA, "multipart/form-data"]},
    )


def _upload_parts(request: Request, name: str | None) -> tuple[UploadParts, str]:
    files = request.files
    metadata: dict[str, Any] | None = None
    if "metadata" in files:
        try:
            parsed = json.loads(files["metadata"].read())
        except ValueError as err:
            raise BadInput(f"the 'metadata' part is not JSON: {err}", {"part": "metadata"}) from None
        except RecursionError:
            raise BadInput("the 'metadata' part is nested too deeply", {"part": "metadata"}) from None
        if not isinstance(parsed, dict):
            raise BadInput("the 'metadata' part must be a JSON object", {"part": "metadata"})
        metadata = parsed
    proto: str | None = None
    if "proto" in files:
        try:
            proto = files["proto"].read().decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadInput(
                f"the 'proto' part is not UTF-8 text (byte {err.start})", {"part": "proto"}
            ) from None
    libs_parts = files.getlist("lib")
    libs = None
    if libs_parts:
        libs = {
            Path(part.filename or f"lib{i}.jar").name or f"lib{i}.jar": part.read()
            for i, part in enumerate(libs_parts)
        }
    if name is None:
        name = str((metadata or {}).get("name") or "")
        if not name:
            raise BadInput(
                "no model name: use PUT /models/{name}, ?name=, or a 'metadata' part with a name", {}
            )
    jar = files["model"].read() if "model" in files else None
    config = {ACUMOS_CONFIG_FILE: _config_part(request)} if ACUMOS_CONFIG_PART in files else {}
    return UploadParts(jar=jar, proto=proto, metadata=metadata, libs=libs, files=config), name


def config_parts(request: Request) -> UploadParts:
    """Acumos' `PUT /model/configuration`: the multipart part `modelConfig` (or the raw body) replaces
    the model's modelConfig.properties; every other file is the current version's."""
    if request.mimetype == "multipart/form-data":
        if ACUMOS_CONFIG_PART not in request.files:
            raise BadInput(
                f"multipart upload without a {ACUMOS_CONFIG_PART!r} part",
                {"parts": sorted(request.files), "hint": "curl -F modelConfig=@modelConfig.properties"},
            )
        data = _config_part(request)
    else:
        data = request.get_data()
        if not data.strip():
            raise BadInput("empty modelConfig.properties", {"part": ACUMOS_CONFIG_PART})
    return UploadParts(files={ACUMOS_CONFIG_FILE: data})


def _config_part(request: Request) -> bytes:
    data: bytes = request.files[ACUMOS_CONFIG_PART].read()
    if not data.strip():
        raise BadInput(f"the {ACUMOS_CONFIG_PART!r} part is empty", {"part": ACUMOS_CONFIG_PART})
    return data


def name_from_zip(data: bytes) -> str:
    """The model name in a bundle zip's metadata (at its root or in its one top folder)."""
    name = _zip_metadata_name(data)
    if name is None:
        raise BadInput("no model name: use PUT /models/{name} or ?name=", {})
    return name


def declared_name(source: bytes | UploadParts) -> str | None:
    """The name an upload's own metadata gives its model, if it gives one (a bundle zip's metadata.json,
    or the 'metadata' part of a multipart upload)."""
    if isinstance(source, UploadParts):
        name = (source.metadata or {}).get("name")
        return name if isinstance(name, str) and name else None
    return _zip_metadata_name(source)


def name_warning(url_name: str, declared: str | None) -> str | None:
    """What an answer says when the bundle's metadata names another model than the URL (the URL decides)."""
    if declared is None or declared == url_name:
        return None
    return (
        f"the bundle's metadata.json names the model {declared!r}; it is published as {url_name!r}, "
        "the name in the URL (the metadata is kept as written)"
    )


def _zip_metadata_name(data: bytes) -> str | None:
    """The "name" of a bundle zip's metadata.json (at its root or in its one top folder); None when there
    is none to read (what is wrong with the zip is for the upload's validation to say)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for entry in zf.namelist():
                if entry.rstrip("/").split("/")[-1] == METADATA_FILE and entry.count("/") <= 1:
                    if zf.getinfo(entry).file_size > _METADATA_MAX_BYTES:
                        return None
                    meta = json.loads(zf.read(entry))
                    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]:
                        return str(meta["name"])
    # ValueError: not JSON or not UTF-8; RuntimeError: an encrypted entry, or JSON nested too deeply
    except (
        zipfile.BadZipFile,
        zlib.error,
        ValueError,
        KeyError,
        NotImplementedError,
        RuntimeError,
        EOFError,
    ):
        return None
    return None
