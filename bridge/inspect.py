"""Reading a JAR's classes and generating a proto3 contract from a Java class's method signatures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jpype

from bridge import jvm
from bridge.errors import JavaLoadError
from bridge.model import host_error


def _jars(jar: Path, libs: Sequence[Path]) -> list[str]:
    jar = Path(jar)
    if not jar.is_file():
        raise JavaLoadError(f"JAR not found: {jar}", {"path": str(jar)})
    return [str(jar), *[str(p) for p in libs]]


def list_candidates(jar: Path, libs: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """Public concrete classes of ``jar`` with their public model methods:
    [{"class": name, "methods": [{"name", "signature", "static"}]}]."""
    host = jvm.host()
    try:
        candidates: list[dict[str, Any]] = json.loads(str(host.listCandidates(_jars(jar, libs))))
        return candidates
    except jpype.JClass("org.modelrunner.host.HostException") as e:
        raise host_error(e) from None


def generate_proto(
    jar: Path,
    class_name: str,
    libs: Sequence[Path] = (),
    methods: Sequence[str] | None = None,
    package: str | None = None,
) -> str:
    """proto3 text: messages from the Java types, service named after the class, one rpc per method
    (all public model methods when ``methods`` is None). Stable when the same class is inspected again."""
    host = jvm.host()
    try:
        return str(
            host.generateProto(
                _jars(jar, libs), class_name, list(methods) if methods else None, package or None
            )
        )
    except jpype.JClass("org.modelrunner.host.HostException") as e:
        raise host_error(e) from None
