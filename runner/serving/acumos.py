"""Dumps of the Acumos Python client (``AcumosSession().dump(model, name, path)``) as bundles.

A dump is a folder holding ``metadata.json`` (Acumos' schema ``acumos.schema.model:<version>``: the
Python version that dumped it, its pip requirements, its methods), ``model.proto`` (the contract Acumos
generated: a random package, ``service Model``, one rpc per method) and ``model.zip`` (the dill pickle of
the functions and the protobuf module generated for them). It is recognised by that schema wherever a
bundle is accepted (``onboard``, ``serve``, ``push``, an upload of a zip of it) and turned into a bundle
that serves it unchanged:

- ``model.proto`` is the dump's, byte for byte (rpc names as Acumos wrote them: ``classify``);
- the dump's own files go under ``acumos/`` (metadata.json, model.zip, metadata_clio.json...);
- ``metadata.json``: the dump's name, runtime ``python``, entry point ``acumos.wrapped:load_model`` (loaded
  by runner.runtimes.python.acumos), isolation ``process``, ``python`` the dump's major.minor version
  (the pickle loads only there), each method's description, and an example per rpc (a dump has none and
  validation runs every rpc: each field set to its zero value, repeated fields to one zero element, so
  a data frame of one row);
- ``requirements.txt``: the dump's pip requirements, pinned as it lists them, plus acumos==1.0.1 unless
  it names acumos itself; its package indexes as ``--extra-index-url``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from runner.bundle import (
    ACUMOS_DIR,
    ACUMOS_ENTRY_POINT,
    METADATA_FILE,
    NAME_RE,
    PROTO_FILE,
    REQUIREMENTS_FILE,
    BundleLimits,
    extract_bundle,
)
from runner.bundle.metadata import ACUMOS_MODEL_ZIP
from runner.contract import Contract
from runner.errors import InvalidBundle, ModelRunnerError
from runner.runtimes.environments import project_name

SCHEMA_PREFIX = "acumos.schema.model:"
"""What the ``schema`` of an Acumos model's metadata.json starts with."""
ACUMOS_CLIENT = "acumos==1.0.1"
"""The Acumos Python client the model's environment gets unless the dump names its own."""
PKG_RESOURCES = "setuptools<81"
"""setuptools 81 drops pkg_resources."""
PROTOBUF_MEDIA = "application/vnd.google.protobuf"
_METADATA_MAX_BYTES = 1024 * 1024
_EXAMPLE_DEPTH = 8
_REQUIREMENT_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_REQUIREMENT_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!*_-]*")
_INDEX_RE = re.compile(r"https?://[^\s'\"]+")
_PYTHON_RE = re.compile(r"(\d+)\.(\d+)(\.\S*)?")


# ------------------------------------------------------------------------------------------ recognising


def dump_metadata(folder: Path) -> dict[str, Any] | None:
    """The Acumos metadata.json of a dump folder, None when ``folder`` is not an Acumos dump (no
    metadata.json, or one without Acumos' schema)."""
    path = Path(folder) / METADATA_FILE
    try:
        if not path.is_file() or path.stat().st_size > _METADATA_MAX_BYTES:
            return None
        return _acumos_schema(path.read_bytes())
    except OSError:
        return None


def is_acumos_dump(path: Path) -> bool:
    """Whether ``path`` is an Acumos dump: a folder, or a zip of one (its files at the top or in one
    top-level folder, as bundle zips)."""
    path = Path(path)
    if path.is_dir():
        return dump_metadata(path) is not None
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            tops = {n.split("/", 1)[0] for n in names}
            entry = METADATA_FILE if METADATA_FILE in names else None
            if entry is None and len(tops) == 1 and f"{next(iter(tops))}/{METADATA_FILE}" in names:
                entry = f"{next(iter(tops))}/{METADATA_FILE}"
            if entry is None or zf.getinfo(entry).file_size > _METADATA_MAX_BYTES:
                return False
            return _acumos_schema(zf.read(entry)) is not None
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError):
        return False


def _acumos_schema(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, str) and schema.startswith(SCHEMA_PREFIX):
        return data  # type: ignore[no-any-return]
    return None


# ------------------------------------------------------------------------------------------ converting


def convert_dump(
    dump: Path, dest: Path, *, name: str | None = None, examples: Mapping[str, list[Any]] | None = None
) -> dict[str, Any]:
    """Write the bundle serving the Acumos dump in folder ``dump`` into the empty folder ``dest``; its
    metadata (as written). ``name`` (default: the dump's, made a valid model name) and ``examples``
    (rpc -> inputs, proto3 JSON; the rpcs without get a generated one) override. InvalidBundle names
    what in the dump cannot be served."""
    dump, dest = Path(dump), Path(dest)
    acumos = dump_metadata(dump)
    if acumos is None:
        raise InvalidBundle(
            f"{dump}: not an Acumos dump (no {METADATA_FILE} with schema {SCHEMA_PREFIX}...)",
            detail={"path": str(dump)},
        )
    where = f"the Acumos dump's {METADATA_FILE}"
    for required in (PROTO_FILE, ACUMOS_MODEL_ZIP):
        if not (dump / required).is_file():
            raise InvalidBundle(
                f"the Acumos dump has no {required} (a dump holds {METADATA_FILE}, {PROTO_FILE} and "
                f"{ACUMOS_MODEL_ZIP})",
                detail={"missing": required},
            )
    runtime: dict[str, Any] = acumos["runtime"] if isinstance(acumos.get("runtime"), dict) else {}
    if runtime.get("name") != "python":
        raise InvalidBundle(
            f"{where}: runtime {runtime.get('name')!r}: only models dumped by the Acumos Python client "
            "(runtime 'python') are served",
            detail={"file": f"{ACUMOS_DIR}/{METADATA_FILE}", "runtime": runtime.get("name")},
        )
    python = _python_version(runtime.get("version"), where)
    requirements = _requirements(runtime.get("dependencies"), where)
    proto_text = (dump / PROTO_FILE).read_text("utf-8")
    contract = Contract.compile(proto_text)
    methods = _methods(acumos.get("methods"), contract, where)

    given = dict(examples or {})
    meta: dict[str, Any] = {
        "name": name or model_name(str(acumos.get("name") or "")),
        "runtime": "python",
        "entry_point": ACUMOS_ENTRY_POINT,
        "description": f"Acumos model {acumos.get('name')!r} (dumped with Python {runtime.get('version')})",
        "isolation": "process",
        "python": python,
        "methods": methods,
        "examples": {
            rpc: given.get(rpc) or [one_row(contract.method(rpc).input_type)]
            for rpc in contract.method_names()
        },
    }
    if not meta["methods"]:
        del meta["methods"]
    (dest / ACUMOS_DIR).mkdir(parents=True)
    for item in sorted(dump.iterdir()):
        # the dump's own files: metadata.json, model.zip, metadata_clio.json, license.json; not what
        # acumos.wrapped.load_model unpacks beside them (model/) when a dump was loaded in place
        if item.is_file() and (item.name == ACUMOS_MODEL_ZIP or item.suffix == ".json"):
            shutil.copyfile(item, dest / ACUMOS_DIR / item.name)
    shutil.copyfile(dump / PROTO_FILE, dest / PROTO_FILE)
    (dest / REQUIREMENTS_FILE).write_text(requirements, "utf-8")
    (dest / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return meta


def model_name(acumos_name: str) -> str:
    """An Acumos model's name as a model name ([a-z0-9][a-z0-9_.-]{0,62}): ``IrisModel`` -> ``irismodel``."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", acumos_name.lower()).strip("-._")[:63]
    return name if NAME_RE.fullmatch(name) else "model"


def converted_in_place(folder: Path) -> bool:
    """If ``folder`` (a staged upload) holds an Acumos dump, replace it by the bundle serving it; whether
    it did."""
    folder = Path(folder)
    if dump_metadata(folder) is None:
        return False
    original = folder.with_name(folder.name + ".acumos-dump")
    folder.rename(original)
    try:
        folder.mkdir()
        convert_dump(original, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        original.rename(folder)
        raise
    shutil.rmtree(original, ignore_errors=True)
    return True


def unpack_dump(archive: Path, folder: Path, limits: BundleLimits) -> None:
    """Unpack a zip of an Acumos dump into ``folder``, checked as an uploaded bundle zip (sizes,
    ratios, paths); InvalidBundle when it is not a dump."""
    try:
        extract_bundle(archive, folder, limits)
    except ModelRunnerError:
        if dump_metadata(folder) is None:
            raise
        return
    raise InvalidBundle(f"{archive}: a bundle, not an Acumos dump", detail={"path": str(archive)})


@contextlib.contextmanager
def accepting_dump(folder: Path) -> Iterator[None]:
    """Around the unpacking of an uploaded zip into ``folder``: when it refuses the bundle because it
    is an Acumos dump (its metadata.json is Acumos'), convert it instead."""
    try:
        yield
    except ModelRunnerError:
        if not converted_in_place(folder):
            raise


# ------------------------------------------------------------------------------------------ the parts


def _python_version(version: Any, where: str) -> str:
    match = _PYTHON_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise InvalidBundle(
            f"{where}: runtime.version {version!r} is not a Python version (the pickle loads only under "
            "the version that dumped it)",
            detail={"file": f"{ACUMOS_DIR}/{METADATA_FILE}", "version": version},
        )
    return f"{match.group(1)}.{match.group(2)}"


def _requirements(dependencies: Any, where: str) -> str:
    """requirements.txt for the dump's runtime.dependencies (pip requirements and indexes)."""
    dependencies = dependencies if isinstance(dependencies, dict) else {}
    pip = dependencies.get("pip") if isinstance(dependencies.get("pip"), dict) else {}
    conda = dependencies.get("conda") if isinstance(dependencies.get("conda"), dict) else {}
    problems: list[str] = []
    if conda.get("requirements"):
        problems.append(
            f"conda requirements {conda['requirements']!r} cannot be installed (pip only): list them "
            "as pip requirements"
        )
    lines = ["# the Acumos dump's pip requirements (its metadata.json: runtime.dependencies.pip)"]
    for index in pip.get("indexes") or []:
        if isinstance(index, str) and _INDEX_RE.fullmatch(index):
            lines.append(f"--extra-index-url {index}")
        else:
            problems.append(f"pip index {index!r} is not an http(s) URL")
    names = []
    pinned = []
    for req in pip.get("requirements") or []:
        req_name = req.get("name") if isinstance(req, dict) else None
        version = req.get("version") if isinstance(req, dict) else None
        if not (isinstance(req_name, str) and _REQUIREMENT_NAME_RE.fullmatch(req_name)):
            problems.append(f"pip requirement {req!r} has no valid package name")
            continue
        if version in (None, ""):
            pinned.append(req_name)
        elif isinstance(version, str) and _REQUIREMENT_VERSION_RE.fullmatch(version):
            pinned.append(f"{req_name}=={version}")
        else:
            problems.append(f"pip requirement {req_name}: version {version!r} is not a version")
            continue
        names.append(project_name(req_name))
    if problems:
        raise InvalidBundle(
            f"{where}: " + "; ".join(problems),
            detail={"file": f"{ACUMOS_DIR}/{METADATA_FILE}", "problems": problems},
        )
    if "acumos" not in names:
        lines.append(f"{ACUMOS_CLIENT}  # loads the dump (acumos.wrapped.load_model)")
    if "setuptools" not in names:
        # acumos imports pkg_resources without declaring it; a venv made by uv has no setuptools
        lines.append(f"{PKG_RESOURCES}  # pkg_resources, which acumos imports")
    # sorted: Acumos lists them in no stable order, and one text is one environment (shared by dumps
    # of the same packages)
    lines.extend(sorted(pinned, key=str.lower))
    return "\n".join(lines) + "\n"


def _methods(methods: Any, contract: Contract, where: str) -> dict[str, dict[str, str]]:
    """Our metadata's ``methods``: each rpc's description; InvalidBundle for a method of raw data (not
    protobuf) or one the contract lacks."""
    methods = methods if isinstance(methods, dict) else {}
    rpcs = contract.method_names()
    problems: list[str] = []
    out: dict[str, dict[str, str]] = {}
    for method, about in methods.items():
        if method not in rpcs:
            problems.append(f"method {method!r} is not an rpc of {PROTO_FILE} (it has {', '.join(rpcs)})")
            continue
        about = about if isinstance(about, dict) else {}
        for role in ("input", "output"):
            spec = about.get(role)
            media = spec.get("media_type") if isinstance(spec, dict) else None
            if isinstance(media, list) and PROTOBUF_MEDIA not in media:
                problems.append(
                    f"method {method!r}: its {role} is raw data ({', '.join(map(str, media))}), not a "
                    "protobuf message: not supported"
                )
        description = about.get("description")
        if isinstance(description, str) and description.strip():
            out[method] = {"description": description.strip()}
    if problems:
        raise InvalidBundle(
            f"{where}: " + "; ".join(problems),
            detail={"file": f"{ACUMOS_DIR}/{METADATA_FILE}", "problems": problems},
        )
    return out


def one_row(desc: Descriptor, depth: int = 0) -> dict[str, Any]:
    """An input with every field set to its zero value and each repeated field to one zero element (a
    data frame of one row), as proto3 JSON; maps stay empty, a oneof gets its first member."""
    out: dict[str, Any] = {}
    oneofs: set[str] = set()
    for field in desc.fields:
        if field.containing_oneof is not None:
            if field.containing_oneof.name in oneofs:
                continue
            oneofs.add(field.containing_oneof.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        value = _zero(field, depth)
        if value is None:
            continue
        out[field.name] = [value] if field.is_repeated else value
    return out


def _zero(field: FieldDescriptor, depth: int) -> Any:
    if field.message_type is not None:
        if depth >= _EXAMPLE_DEPTH or field.message_type.full_name.startswith("google.protobuf."):
            return None
        return one_row(field.message_type, depth + 1)
    if field.enum_type is not None:
        return field.enum_type.values[0].name
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return ""
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 0.0
    return 0
