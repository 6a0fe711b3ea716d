"""Reading a JAR's classes and generating a proto3 contract from a Java class's method signatures."""

from __future__ import annotations

import json
import logging
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
    """Public concrete classes of ``jar`` (``libs`` resolve its dependencies) with their public model
    methods, sorted by class name: [{"class": name, "methods": [{"name", "signature", "static",
    "convention", "parameters", "parameter_names_missing"?}]}]. ``convention`` is the one the method
    binds with to a contract generated from it (pojo, params, proto, acumos);
    ``parameter_names_missing`` is set when parameter names would name contract fields but were not
    compiled in (``-parameters``). A class that cannot load is listed with no methods, ``"error"`` and,
    when a class it needs is absent, ``"missing"`` (that class's name)."""
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


def primitive_fields(jar: Path, class_name: str, libs: Sequence[Path], service: Any) -> dict[str, list[str]]:
    """The input fields of a contract generated from ``class_name`` (:func:`generate_proto`; ``service``
    its ServiceDescriptor) that hold a primitive Java value: a parameter or a record component of type
    double, int, long, boolean, ... Java cannot leave such a value out, so the model needs the field,
    and the 0 proto3 reads for a field that was not sent is a guess. By message full name.

    Matched the way generation numbers fields: rpc ``Score`` is method ``score`` (its overload with the
    fewest parameters), parameter i is field i+1 of its request message, record component i is field
    i+1 of the record's message; records are followed into record components and parameters, lists and
    arrays of records. A field whose name or type does not fit its Java counterpart is left out (a
    contract edited since), and so are beans (their fields have defaults of their own)."""
    parameterized = jpype.JClass("java.lang.reflect.ParameterizedType").class_
    generic_array = jpype.JClass("java.lang.reflect.GenericArrayType").class_
    collection = jpype.JClass("java.util.Collection").class_
    jclass = jpype.JClass("java.lang.Class")
    urls = [jpype.JClass("java.io.File")(p).toURI().toURL() for p in _jars(jar, libs)]
    loader = jpype.JClass("java.net.URLClassLoader")(
        jpype.JArray(jpype.JClass("java.net.URL"))(urls), jvm.host().class_.getClassLoader()
    )
    out: dict[str, list[str]] = {}

    def add(desc: Any, field: Any, java_name: str) -> None:
        if field.message_type is None and not field.is_repeated and _same_name(field.name, java_name):
            names = out.setdefault(desc.full_name, [])
            if field.name not in names:
                names.append(field.name)

    def record(rec: Any, desc: Any, seen: set[str]) -> None:
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        for i, comp in enumerate(rec.getRecordComponents()):
            field = desc.fields_by_number.get(i + 1)
            if field is not None:
                slot(comp.getGenericType(), str(comp.getName()), desc, field, seen)

    def raw(jtype: Any) -> Any:
        if parameterized.isInstance(jtype):
            return jtype.getRawType()
        if generic_array.isInstance(jtype):
            return None
        return jtype

    def element(jtype: Any) -> Any:
        """The record a list, set or array holds, or None."""
        if parameterized.isInstance(jtype) and collection.isAssignableFrom(jtype.getRawType()):
            found = raw(jtype.getActualTypeArguments()[0])
        elif generic_array.isInstance(jtype):
            found = raw(jtype.getGenericComponentType())
        else:
            found = jtype.getComponentType() if jtype.isArray() else None
        return found if found is not None and found.isRecord() else None

    def slot(jtype: Any, java_name: str, desc: Any, field: Any, seen: set[str]) -> None:
        r = raw(jtype)
        mt = field.message_type
        if r is not None and r.isPrimitive():
            add(desc, field, java_name)
        elif mt is None or mt.GetOptions().map_entry:
            return
        elif not field.is_repeated and r is not None and r.isRecord():
            record(r, mt, seen)
        elif field.is_repeated and (rec := element(jtype)) is not None:
            record(rec, mt, seen)

    try:
        cls = jclass.forName(class_name, False, loader)
        for rpc in service.methods:
            name = rpc.name[:1].lower() + rpc.name[1:]
            candidates = [
                m
                for m in cls.getMethods()
                if str(m.getName()) == name and not m.isBridge() and not m.isSynthetic()
            ]
            if not candidates:
                continue
            method = min(candidates, key=lambda m: int(m.getParameterCount()))
            params = list(method.getParameters())
            desc = rpc.input_type
            if len(params) == 1 and params[0].getType().isRecord():
                record(params[0].getType(), desc, set())
            elif len(params) == len(desc.fields):
                for i, p in enumerate(params):
                    field = desc.fields_by_number.get(i + 1)
                    if field is not None:
                        slot(p.getParameterizedType(), str(p.getName()), desc, field, {desc.full_name})
    except jpype.JException as e:  # a class that cannot load: nothing to add (generation said why)
        logging.getLogger(__name__).debug("primitive_fields(%s): %s", class_name, e)
    finally:
        loader.close()
    return out


def _same_name(field: str, java: str) -> bool:
    """A generated field name (snake_case, possibly escaped) for a Java name (camelCase)."""
    return field.replace("_", "").lower() == java.replace("_", "").lower()
