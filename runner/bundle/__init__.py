"""Bundles: the unit that is onboarded, uploaded and stored (a folder or a zip of one).

A bundle holds ``metadata.json``, ``model.proto`` and the artifacts (``model.jar`` + ``lib/*.jar`` for
Java; ``.py`` files for Python; plus any data files). docs/bundle.md is the user-facing schema.
Zips are untrusted input: :func:`extract_bundle` enforces size, entry-count and compression-ratio
limits and rejects absolute paths, ``..``, links and devices before anything is written.

Modules: ``metadata`` (metadata.json and the fixed file names), ``files`` (folders: reading, checking,
digests) and ``archive`` (zips). Callers import from this package.
"""

from runner.bundle.archive import BundleLimits, extract_bundle, write_bundle_zip
from runner.bundle.files import (
    Bundle,
    content_sha256,
    iter_files,
    open_bundle,
    python_entry_file,
    read_metadata,
    read_metadata_dict,
    read_proto,
    safe_relpath,
)
from runner.bundle.metadata import (
    ACUMOS_CONFIG_FILE,
    ACUMOS_DIR,
    ACUMOS_ENTRY_POINT,
    CONVENTIONS,
    JAR_FILE,
    METADATA_FILE,
    NAME_RE,
    PROTO_FILE,
    REQUIREMENTS_FILE,
    RUNTIMES,
    Metadata,
)

__all__ = [
    "ACUMOS_CONFIG_FILE",
    "ACUMOS_DIR",
    "ACUMOS_ENTRY_POINT",
    "CONVENTIONS",
    "JAR_FILE",
    "METADATA_FILE",
    "NAME_RE",
    "PROTO_FILE",
    "REQUIREMENTS_FILE",
    "RUNTIMES",
    "Bundle",
    "BundleLimits",
    "Metadata",
    "content_sha256",
    "extract_bundle",
    "iter_files",
    "open_bundle",
    "python_entry_file",
    "read_metadata",
    "read_metadata_dict",
    "read_proto",
    "safe_relpath",
    "write_bundle_zip",
]
