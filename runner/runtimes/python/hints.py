"""A proto3 contract from a Python class's type hints, so a data scientist need not write a .proto.

Types: ``int`` (int64), ``float`` (double), ``str``, ``bool``, ``bytes``, ``list[T]`` (repeated),
``dict[str, T]`` (map), ``Optional[T]`` (proto3 ``optional``), and structured types: dataclasses,
``TypedDict`` and ``NamedTuple`` (one message each, fields numbered in declaration order, so adding a
field at the end keeps the numbers stable).

Each public method becomes an rpc named in PascalCase (``predict_proba`` -> ``PredictProba``; names
that would clash are resolved as for Java models: docs/java-conventions.md, "Names never clash"):

- one parameter annotated with a structured type: that type is the request message;
- otherwise the parameters form a ``<Rpc>Request`` message (one field per parameter);
- a structured return type is the response message; anything else is wrapped in
  ``<Rpc>Response { T value = 1; }``.

Asked for them (``generate_proto(..., required={})``), the input fields a caller must give (no default,
not ``Optional``) are listed for metadata.json's ``required``, each scalar among them declared proto3
``optional`` so that "not sent" differs from 0 (runner.contract.required).

The same rules convert at call time (:func:`call_convention`, :func:`to_python`, :func:`to_plain`),
used by runner.runtimes.python.model. Type hints (run-time type forms) and proto3-JSON values are
typed ``Any`` here: no static type describes them all.
"""

from __future__ import annotations

import base64
import collections.abc
import dataclasses
import functools
import inspect
import itertools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from runner.errors import InvalidBundle
from runner.runtimes.python.isolation import load_entry_class

_LIST_ORIGINS = (list, tuple, Sequence, collections.abc.MutableSequence)
_MAP_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_SCALARS: dict[type, str] = {int: "int64", float: "double", str: "string", bool: "bool", bytes: "bytes"}


class UnsupportedType(InvalidBundle):
    """A type hint that has no proto3 mapping."""


def is_structured(tp: object) -> bool:
    """A dataclass, TypedDict or NamedTuple class."""
    return isinstance(tp, type) and (
        dataclasses.is_dataclass(tp) or typing.is_typeddict(tp) or _is_namedtuple(tp)
    )


def _is_namedtuple(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _is_message_class(tp: object) -> bool:
    return isinstance(tp, type) and hasattr(tp, "DESCRIPTOR") and hasattr(tp, "SerializeToString")


def struct_fields(tp: type) -> list[tuple[str, Any, bool]]:
    """(name, type hint, optional) of a structured type, in declaration order."""
    hints = typing.get_type_hints(tp)
    if dataclasses.is_dataclass(tp):
        return [(f.name, hints[f.name], False) for f in dataclasses.fields(tp)]
    if typing.is_typeddict(tp):
        # include_extras keeps NotRequired[...] visible even when annotations are strings
        # (__optional_keys__ misses those on 3.11 under `from __future__ import annotations`)
        optional: frozenset[str] = getattr(tp, "__optional_keys__", frozenset())
        out = []
        for n, h in typing.get_type_hints(tp, include_extras=True).items():
            opt = n in optional
            while typing.get_origin(h) in (typing.NotRequired, typing.Required, typing.Annotated):
                opt = opt or typing.get_origin(h) is typing.NotRequired
                h = typing.get_args(h)[0]
            out.append((n, h, opt))
        return out
    return [(n, hints.get(n, Any), False) for n in getattr(tp, "_fields", ())]  # NamedTuple


# types.UnionType (X | Y) is Python 3.10+; a model's child process may run 3.9
_UNION_ORIGINS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in _UNION_ORIGINS:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    # typing.NotRequired / Required in TypedDicts
    if origin is not None and getattr(origin, "_name", "") in ("NotRequired", "Required"):
        return typing.get_args(tp)[0], origin._name == "NotRequired"
    return tp, False


def pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


# ---- names in the contract ---------------------------------------------------------------------------
# The same rules as the Java generator (bridge/java ProtoGen, docs/java-conventions.md): whatever the
# Python names, the contract compiles and binds back.

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")
_FIELD_RESERVED = frozenset({"DESCRIPTOR"})  # the class attribute of every generated message class


def _ident(name: str) -> str:
    """``name`` with every character proto does not allow in an identifier replaced by ``_``."""
    s = _NOT_IDENT.sub("_", name)
    return "_" + s if not s or s[0].isdigit() else s


def _type_ident(name: str) -> str:
    """A message/service name: an identifier starting with an upper-case ASCII letter (never a proto
    keyword nor a scalar type name)."""
    s = _ident(name).lstrip("_")
    return s[:1].upper() + s[1:] if s[:1].isalpha() else "X" + s


def json_name(name: str) -> str:
    """protoc's default JSON name of a field: underscores dropped, the letter after one upper-cased."""
    return re.sub(r"_+(.?)", lambda m: m.group(1).upper(), name)


def map_entry_name(name: str) -> str:
    """protoc's name of a map field's entry message (a symbol in the message): PascalCase + Entry."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_")) + "Entry"


@functools.lru_cache(maxsize=1024)
def proto_field_names(
    names: tuple[str, ...], maps: tuple[bool, ...] = ()
) -> tuple[tuple[str, str | None], ...]:
    """(proto name, json_name or None) for Python field/parameter names, in order (``maps``: which are
    map fields). A name is kept as it is when proto can spell it and neither it, its JSON name nor (a
    map) its entry message's name is taken - protoc requires them distinct within a message: ``fooBar``
    and ``foo_bar`` cannot both stay, nor maps ``a`` and ``A``; otherwise it is made an identifier with
    ``_2``, ``_3``... appended until free, and its json_name is the Python name (:func:`to_python` and
    the model binder find it again; JSON clients use the Python name)."""
    maps = maps or (False,) * len(names)
    taken: set[str] = set()
    out: list[tuple[str, str | None] | None] = [None] * len(names)
    everyone = set(names)

    def symbols(i: int, c: str) -> set[str]:
        return {c, json_name(c), map_entry_name(c)} if maps[i] else {c, json_name(c)}

    def spells(i: int, c: str) -> bool:  # a map's entry message name must start with a letter
        return _ident(c) == c and c not in _FIELD_RESERVED and (not maps[i] or map_entry_name(c)[0].isalpha())

    for i, n in enumerate(names):
        j = json_name(n)
        if spells(i, n) and not symbols(i, n) & taken and (j == n or j not in everyone):
            out[i] = (n, None)
            taken |= symbols(i, n)
    for i, n in enumerate(names):
        if out[i] is not None:
            continue
        base = _ident(n)
        if not spells(i, base):
            base = "m" + base  # "1st" as a map: m_1st (its entry message M1stEntry)
        for k in itertools.count(1):
            c = base if k == 1 else f"{base}_{k}"
            if not spells(i, c) or symbols(i, c) & (taken | everyone):
                continue
            out[i] = (c, n)
            taken |= symbols(i, c) | {n}
            break
    return tuple(x for x in out if x is not None)


def is_map_hint(hint: Any) -> bool:
    """``dict[K, V]`` (or a Mapping, optionally Optional): a proto map field."""
    tp, _ = _unwrap_optional(hint)
    return tp is dict or typing.get_origin(tp) in _MAP_ORIGINS


def field_names_of(fields: Iterable[tuple[str, Any]]) -> tuple[tuple[str, str | None], ...]:
    """:func:`proto_field_names` of (Python name, type hint) pairs."""
    pairs = list(fields)
    return proto_field_names(tuple(n for n, _h in pairs), tuple(is_map_hint(h) for _n, h in pairs))


def _numbered(base: str, taken: Collection[str]) -> str:
    """``base`` with the smallest number from 2 that makes it free."""
    return next(f"{base}{i}" for i in itertools.count(2) if f"{base}{i}" not in taken)


def proto_keys(fields: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Python name -> the proto field name :func:`generate_proto` gave it (most are the same), for
    (name, type hint) pairs."""
    pairs = list(fields)
    return _proto_keys(tuple(n for n, _h in pairs), tuple(is_map_hint(h) for _n, h in pairs))


@functools.lru_cache(maxsize=1024)
def _proto_keys(names: tuple[str, ...], maps: tuple[bool, ...]) -> dict[str, str]:
    """Read-only: the dict is shared by every caller with the same names."""
    protos = proto_field_names(names, maps)
    if len(protos) != len(names):  # zip(strict=True) is Python 3.10+ (a child process may run 3.9)
        raise ValueError(f"proto_field_names gave {len(protos)} names for {len(names)} fields")
    return {n: p for n, (p, _j) in zip(names, protos)}


# ---- call conventions -------------------------------------------------------------------------------


@dataclass
class CallConvention:
    """How a Python method takes its input and gives its output."""

    kind: str
    """"message": gets the protobuf message; "struct": one structured parameter; "params": keyword
    arguments from the request's fields."""
    param_types: dict[str, Any]
    struct_type: Any = None
    return_type: Any = None


def call_convention(func: Callable[..., object], *, skip_self: bool = False) -> CallConvention:
    """Decide the convention from the signature (unannotated: the protobuf message itself).
    ``skip_self``: ``func`` is a plain function taken from a class (its first parameter is self)."""
    sig = inspect.signature(func)
    params = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if skip_self and params:
        params = params[1:]
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 (unresolvable forward references: treat as unannotated)
        hints = {}
    ret = hints.get("return")
    if len(params) == 1 and (params[0].name not in hints or _is_message_class(hints[params[0].name])):
        return CallConvention("message", {}, return_type=ret)
    if len(params) == 1 and is_structured(hints.get(params[0].name)):
        return CallConvention("struct", {}, struct_type=hints[params[0].name], return_type=ret)
    return CallConvention("params", {p.name: hints.get(p.name, Any) for p in params}, return_type=ret)


def to_python(value: Any, tp: Any) -> Any:
    """A proto3-JSON value (MessageToDict output, .proto names) converted to the hinted Python type."""
    tp, _ = _unwrap_optional(tp)
    if value is None or tp is Any:
        return value
    if tp is int:
        return int(value)
    if tp is float:
        return float(value)
    if tp is bool:
        return bool(value)
    if tp is str:
        return str(value)
    if tp is bytes:
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    origin = typing.get_origin(tp)
    if (
        (origin in _LIST_ORIGINS or origin in _MAP_ORIGINS)
        and isinstance(value, dict)
        and set(value) == {"values"}
    ):
        value = value["values"]  # a nested list or map travels in a wrapper message
    if origin in _LIST_ORIGINS or tp is list:
        args = typing.get_args(tp)
        return [to_python(v, args[0] if args else Any) for v in value]
    if origin in _MAP_ORIGINS or tp is dict:
        args = typing.get_args(tp)
        kt, vt = args if len(args) == 2 else (Any, Any)
        return {to_python(k, kt): to_python(v, vt) for k, v in value.items()}  # JSON keys are strings
    if is_structured(tp):
        kwargs = {}
        fields = struct_fields(tp)
        keys = proto_keys((n, h) for n, h, _o in fields)
        for name, hint, _opt in fields:
            key = name if name in value else keys[name]  # a renamed field: see proto_field_names
            if key in value:
                kwargs[name] = to_python(value[key], hint)
        if typing.is_typeddict(tp):
            return kwargs
        return tp(**kwargs)
    return value


def to_plain(obj: Any) -> Any:
    """A model's return value as JSON-ready data for json_format.ParseDict (bytes -> base64)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {k: to_plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return to_plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        # the proto3 JSON spelling: ParseDict refuses a bare nan or inf (a model's 0/0 is a valid double)
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


def fit_to_message(value: Any, desc: Descriptor) -> Any:
    """Wrap nested lists/maps of plain data into the wrapper messages generate_proto makes for them
    (``{"values": [...]}``), following the message descriptor ``desc``."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, v in value.items():
        f = desc.fields_by_name.get(key) or _fields_by_json_name(desc).get(key)
        mt = f.message_type if f is not None else None
        if f is None or mt is None:
            out[key] = v
        elif mt.GetOptions().map_entry:
            vt = mt.fields_by_name["value"].message_type
            out[key] = (
                {k: _fit_one(x, vt) for k, x in v.items()} if vt is not None and isinstance(v, dict) else v
            )
        elif f.is_repeated and isinstance(v, list):
            out[key] = [_fit_one(x, mt) for x in v]
        else:
            out[key] = _fit_one(v, mt)
    return out


@functools.lru_cache(maxsize=1024)
def _fields_by_json_name(desc: Descriptor) -> dict[str, FieldDescriptor]:
    return {f.json_name: f for f in desc.fields}


def _is_wrapper(mt: Descriptor) -> bool:
    fields = mt.fields
    return len(fields) == 1 and fields[0].name == "values" and fields[0].is_repeated


def _fit_one(v: Any, mt: Descriptor) -> Any:
    if _is_wrapper(mt) and (isinstance(v, list) or (isinstance(v, dict) and set(v) != {"values"})):
        v = {"values": v}
    return fit_to_message(v, mt)


# ---- proto generation -------------------------------------------------------------------------------


class _Gen:
    def __init__(self, required: dict[str, list[str]] | None = None) -> None:
        self.messages: dict[str, list[str]] = {}
        self.origin: dict[str, type | None] = {}
        self.order: list[str] = []
        self.required = required  # filled with message -> required fields when not None
        self.input_types: set[type] = set()  # structured types found in some rpc's input
        self.used: set[str] = set()  # package-level names: messages and the service
        self.of_type: dict[type, str] = {}

    def unique(self, *candidates: str) -> str:
        """The first free candidate, else the first with the smallest free number appended."""
        name = next((c for c in candidates if c not in self.used), None) or _numbered(
            candidates[0], self.used
        )
        self.used.add(name)
        return name

    def new_message(self, *candidates: str, origin: type | None = None) -> str:
        name = self.unique(*candidates)
        self.order.append(name)
        self.origin[name] = origin
        self.messages[name] = []
        return name

    def message_for(self, tp: type) -> str:
        """A structured type's message: named after the class, else after its qualified name
        (``Outer.Inner`` -> ``OuterInner``), else with a number (two classes of one name)."""
        if tp in self.of_type:
            return self.of_type[tp]
        qual = "".join(_type_ident(p) for p in getattr(tp, "__qualname__", "").split(".") if p != "<locals>")
        name = self.new_message(_type_ident(tp.__name__), qual or _type_ident(tp.__name__), origin=tp)
        self.of_type[tp] = name  # before the fields: recursive types refer to themselves
        must = required_members(tp) if tp in self.input_types else frozenset()
        self.messages[name] = self.fields_of(name, [(n, h, o) for n, h, o in struct_fields(tp)], must)
        return name

    def fields_of(
        self, owner: str, fields: list[tuple[str, Any, bool]], must: Collection[str] = ()
    ) -> list[str]:
        lines = []
        names = field_names_of((n, h) for n, h, _o in fields)
        for number, ((fname, hint, optional), (pname, as_json)) in enumerate(
            zip(fields, names, strict=True), 1
        ):
            lines.append(
                self.field_line(owner, pname, hint, number, optional, fname in must, json_as=as_json)
            )
        return lines

    def field_line(
        self,
        owner: str,
        fname: str,
        hint: Any,
        number: int,
        optional: bool = False,
        required: bool = False,
        *,
        json_as: str | None = None,
    ) -> str:
        """``fname`` is the proto name; ``json_as`` a json_name to declare (the Python name), or None."""
        option = f" [json_name = {json.dumps(json_as, ensure_ascii=False)}]" if json_as else ""
        tail = f" {fname} = {number}{option};"
        tp, opt = _unwrap_optional(hint)
        optional = optional or opt
        origin = typing.get_origin(tp)
        if tp in (list, dict, tuple):
            raise UnsupportedType(
                f"{owner}.{fname}: say what the {tp.__name__} holds, e.g. list[float] or dict[str, float]"
            )
        if origin in _LIST_ORIGINS:
            args = typing.get_args(tp)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise UnsupportedType(f"{owner}.{fname}: use tuple[T, ...] or list[T] (one element type)")
            return f"repeated {self.element_type(owner, fname, args[0])}{tail}"
        if origin in _MAP_ORIGINS:
            k, v = typing.get_args(tp)
            if k is not str and k is not int:
                raise UnsupportedType(f"{owner}.{fname}: map keys must be str or int")
            return f"map<{_SCALARS[k]}, {self.element_type(owner, fname, v)}>{tail}"
        t = self.single_type(owner, fname, tp)
        if required and not optional and self.required is not None:
            # presence, so that "not sent" differs from 0 (metadata.json "required" lists it)
            self.required.setdefault(owner, []).append(fname)
            optional = True
        if optional and t in _SCALARS.values():
            return f"optional {t}{tail}"
        return f"{t}{tail}"

    def single_type(self, owner: str, fname: str, tp: Any) -> str:
        if tp in _SCALARS:
            return _SCALARS[tp]
        if is_structured(tp):
            return self.message_for(tp)
        raise UnsupportedType(
            f"{owner}.{fname}: type {_qual(tp)} has no proto mapping (use int, float, str, bool, bytes, "
            "list[...], dict[str, ...], a dataclass, TypedDict or NamedTuple)"
        )

    def element_type(self, owner: str, fname: str, tp: Any) -> str:
        """Element of a repeated/map field; nested lists and maps need a wrapper message."""
        tp, _ = _unwrap_optional(tp)
        origin = typing.get_origin(tp)
        if origin in _LIST_ORIGINS or origin in _MAP_ORIGINS:
            wrapper = self.new_message(_type_ident(pascal(owner) + pascal(fname) + "Item"))
            self.messages[wrapper] = [self.field_line(wrapper, "values", tp, 1)]
            return wrapper
        return self.single_type(owner, fname, tp)


def required_members(tp: type) -> frozenset[str]:
    """Fields of a structured type that a value must have: a dataclass or NamedTuple field without a
    default, a key of a total TypedDict (``Optional`` and ``NotRequired`` are left to the caller)."""
    if dataclasses.is_dataclass(tp):
        return frozenset(
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
    if typing.is_typeddict(tp):
        return frozenset(getattr(tp, "__required_keys__", frozenset()))
    defaults = getattr(tp, "_field_defaults", {})
    return frozenset(n for n in getattr(tp, "_fields", ()) if n not in defaults)


def _required_params(func: Callable[..., object]) -> frozenset[str]:
    return frozenset(p.name for p in inspect.signature(func).parameters.values() if p.default is p.empty)


def _collect_structured(hint: Any, out: set[type]) -> None:
    """Every structured type ``hint`` holds (through Optional, lists, maps and fields) into ``out``."""
    tp, _ = _unwrap_optional(hint)
    if is_structured(tp):
        if tp in out:
            return
        out.add(tp)
        for _n, h, _o in struct_fields(tp):
            _collect_structured(h, out)
        return
    for arg in typing.get_args(tp):
        _collect_structured(arg, out)


def _qual(tp: object) -> str:
    return f"{getattr(tp, '__module__', '?')}.{getattr(tp, '__qualname__', repr(tp))}"


def public_methods(cls: type, methods: Sequence[str] | None = None) -> list[str]:
    """Public methods of a class in definition order (or the named ones)."""
    if methods:
        for m in methods:
            if not callable(getattr(cls, m, None)):
                raise InvalidBundle(f"{cls.__name__} has no method {m!r}")
        return list(methods)
    out = []
    for klass in reversed(cls.__mro__[:-1]):
        for name, value in vars(klass).items():
            if name.startswith("_") or name in out or name == "close":
                continue
            if inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod)):
                out.append(name)
    return out


def generate_proto(
    cls: type,
    *,
    package: str | None = None,
    methods: Sequence[str] | None = None,
    required: dict[str, list[str]] | None = None,
) -> str:
    """The proto3 contract of a Python model class (service named after the class).

    ``required``, when given, is filled with metadata.json's ``required`` (message -> fields): the
    input fields the hints make mandatory (a parameter or a dataclass / NamedTuple field without a
    default, a TypedDict key that is not ``NotRequired``; not ``Optional``; a scalar or a structured
    type, not a list or dict), each scalar among them declared ``optional`` for presence."""
    gen = _Gen(required)
    service = gen.unique(_type_ident(cls.__name__))
    rpcs: list[tuple[str, str, str, str | None]] = []
    names = public_methods(cls, methods)
    if not names:
        raise InvalidBundle(f"{cls.__name__} has no public method to serve")
    rpc_of = rpc_names(cls, names)
    if required is not None:
        for mname in names:
            func = getattr(cls, mname)
            conv = call_convention(func, skip_self=inspect.isfunction(inspect.getattr_static(cls, mname)))
            inputs = [conv.struct_type] if conv.kind == "struct" else list(conv.param_types.values())
            for hint in inputs:
                _collect_structured(hint, gen.input_types)
    for mname in names:
        func = getattr(cls, mname)
        rpc, python_method = rpc_of[mname]
        conv = call_convention(func, skip_self=inspect.isfunction(inspect.getattr_static(cls, mname)))
        if conv.kind == "message":
            raise UnsupportedType(
                f"{cls.__name__}.{mname}: add type hints to its parameter and return value "
                "(or write model.proto yourself)"
            )
        if conv.kind == "struct":
            req = gen.message_for(conv.struct_type)
        else:
            for pname, hint in conv.param_types.items():
                if hint is Any:
                    raise UnsupportedType(f"{cls.__name__}.{mname}: parameter {pname!r} has no type hint")
            req = gen.new_message(_type_ident(rpc) + "Request")
            gen.messages[req] = gen.fields_of(
                req, [(p, h, False) for p, h in conv.param_types.items()], _required_params(func)
            )
        ret = conv.return_type
        if ret is None or ret is type(None):
            if "return" not in typing.get_type_hints(func):
                raise UnsupportedType(f"{cls.__name__}.{mname}: add a return type hint")
            resp = gen.new_message(_type_ident(rpc) + "Response")
        elif is_structured(ret):
            resp = gen.message_for(ret)
        else:
            resp = gen.new_message(_type_ident(rpc) + "Response")
            gen.messages[resp] = [gen.field_line(resp, "value", ret, 1)]
        rpcs.append((rpc, req, resp, python_method))
    pkg = package or _package_name(cls)
    out = [
        f"// Generated by model-runner from the type hints of {_qual(cls)}.",
        "// Edit freely: this file is the model's contract from now on.",
        'syntax = "proto3";',
        "",
        f"package {pkg};",
        "",
    ]
    for name in gen.order:
        out.append(f"message {name} {{")
        out += [f"  {line}" for line in gen.messages[name]]
        out += ["}", ""]
    out.append(f"service {service} {{")
    taken = {r for r, _q, _p, _m in rpcs}

    def ref(msg: str) -> str:  # an rpc named like a message hides it inside the service scope
        return f".{pkg}.{msg}" if msg in taken else msg

    for rpc, req, resp, python_method in rpcs:
        note = f"  // python_method: {python_method}" if python_method else ""
        out.append(f"  rpc {rpc} ({ref(req)}) returns ({ref(resp)});{note}")
    out.append("}")
    return "\n".join(out) + "\n"


def rpc_names(cls: type, methods: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """method -> (rpc, None), or (rpc, method) when the model binder (runner.runtimes.python.model)
    would not find the method from the rpc's name: then the rpc line says ``// python_method: name``
    and onboarding writes that into metadata.json's ``methods``. An rpc is the PascalCase method name
    (``predict_proba`` -> ``PredictProba``) when that binds back to the method, else the method name
    itself (``predictProba`` beside ``predict_proba``), else a free identifier."""
    public = {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None))}
    loose = {n.replace("_", "").lower(): n for n in sorted(public)}

    def binds(rpc: str) -> str | None:  # as PythonModel._bind looks a method up
        return next((c for c in (rpc, snake(rpc), loose.get(rpc.lower())) if c and c in public), None)

    out: dict[str, tuple[str, str | None]] = {}
    taken: set[str] = set()
    for m in methods:
        for rpc in (pascal(m), m):
            if _ident(rpc) == rpc and rpc not in taken and binds(rpc) == m:
                out[m] = (rpc, None)
                taken.add(rpc)
                break
    for m in methods:
        if m not in out:
            base = _type_ident(m)
            rpc = base if base not in taken else _numbered(base, taken)
            out[m] = (rpc, m)
            taken.add(rpc)
    return out


def _package_name(cls: type) -> str:
    mod = cls.__module__.rsplit(".", 1)[-1]
    pkg = re.sub(r"[^A-Za-z0-9_]", "_", mod).lower().strip("_") or "model"
    if pkg[0].isdigit():
        pkg = "m" + pkg
    return pkg


def generate_proto_for_entry(
    folder: Path, entry_point: str, *, package: str | None = None, methods: Sequence[str] | None = None
) -> str:
    """The contract of ``module:Class`` found in a bundle folder (loaded isolated, then unloaded)."""
    with load_entry_class(Path(folder), entry_point) as cls:
        module = entry_point.split(":", 1)[0]
        return generate_proto(cls, package=package or _package_name_from(module), methods=methods)


def _package_name_from(module: str) -> str:
    pkg = re.sub(r"[^A-Za-z0-9_]", "_", module.rsplit(".", 1)[-1]).lower().strip("_") or "model"
    return "m" + pkg if pkg[0].isdigit() else pkg
