"""Random Python class shapes for the contract-generation property test (test_hints_shapes.py).

A shape is one module holding a model class and the dataclasses, NamedTuples and TypedDicts its methods
use (some nested in another class, some with the name of a class in a sibling module), with field names
from proto keywords, Python keywords (TypedDict keys), names that differ only in case or underscores and
names proto cannot spell, and hints from scalars to ``dict[int, list[float]]`` and ``Optional``. Each model
method checks that its arguments have the hinted types all the way down, then echoes them (or builds a
dataclass of its parameters, or sums them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

PLAIN = ["value", "name", "score", "count", "items", "label", "weight", "age", "city", "data", "rows", "key"]
TRICKY = [
    "values", "entries", "fooBar", "foo_bar", "URL", "url", "x_y", "xY", "a", "A", "Value", "_x", "x_", "z__",
    "DESCRIPTOR", "café", "arg0", "HTTPCode", "httpCode", "h_t_t_p", "x1", "x_1", "AEntry",
]  # fmt: skip
PROTO_KEYWORDS = [
    "message", "option", "syntax", "service", "rpc", "returns", "map", "oneof", "repeated", "optional",
    "reserved", "to", "max", "extensions", "group", "stream", "required", "inf", "string", "bytes", "int32",
    "package", "enum", "public",
]  # fmt: skip
PY_KEYWORDS = [
    "class",
    "from",
    "import",
    "def",
    "lambda",
    "None",
    "True",
    "return",
    "in",
    "is",
    "my-key",
    "1st",
]
CLASS_NAMES = [
    "Point", "Item", "Score", "Applicant", "Result", "Request", "Response", "Message", "Option", "Service",
    "ScoreRequest", "ScoreResponse", "PredictRequest", "string", "message", "map", "Model", "Rpc",
    "ApplicantGridItem", "Values",
]  # fmt: skip
MODEL_NAMES = ["Model", "Scorer", "Score", "Point", "Service", "message", "Predictor", "string"]
METHOD_NAMES = [
    "score", "Score", "predict", "predict_proba", "predictProba", "PredictProba", "echo", "message", "option",
    "x", "X", "run", "café", "values", "process", "point", "rpc", "stream",
]  # fmt: skip


@dataclass(eq=False)
class PType:
    kind: str  # scalar | struct | list | dict | opt
    py: str  # the hint as source
    scalar: str = ""  # int float str bool bytes
    elem: PType | None = None
    key: PType | None = None
    ref: Any = None  # Struct


@dataclass(eq=False)
class Struct:
    module: str  # "main" or "other"
    holder: str | None
    name: str
    kind: str  # dataclass | namedtuple | typeddict
    fields: list[tuple[str, PType]] = field(default_factory=list)

    def ref(self, here: str) -> str:
        prefix = "" if self.module == here else "other."
        return f"{prefix}{self.holder + '.' if self.holder else ''}{self.name}"


@dataclass(eq=False)
class PMethod:
    name: str
    kind: str  # echo | record | container | sum | none
    params: list[tuple[str, PType]]
    ret: PType | None
    record: Struct | None = None


@dataclass(eq=False)
class PShape:
    index: int
    model: str
    structs: list[Struct]
    methods: list[PMethod]


SCALARS = [("int", "int"), ("float", "float"), ("str", "str"), ("bool", "bool"), ("bytes", "bytes")]


class Maker:
    def __init__(self, rnd: random.Random, index: int):
        self.rnd = rnd
        self.index = index
        self.structs: list[Struct] = []
        self.names: set[tuple[str, str | None, str]] = set()
        self.method_names: set[str] = set()

    def scalar(self) -> PType:
        py, kind = self.rnd.choice(SCALARS)
        return PType("scalar", py, scalar=kind)

    def type(self, depth: int, here: str) -> PType:
        """Types of fields: only structs defined before (no recursion: every field is set on the way in)."""
        rnd = self.rnd
        r = rnd.random()
        if r < 0.5 or depth > 2:
            return self.scalar()
        usable = [s for s in self.structs if s.module == "other" or here == "main"]
        if r < 0.62 and usable:
            s = rnd.choice(usable)
            return PType("struct", s.ref(here), ref=s)
        if r < 0.77:
            e = self.type(depth + 1, here)
            if rnd.random() < 0.2 and e.kind != "opt":
                return PType("list", f"tuple[{e.py}, ...]", elem=e)
            return PType("list", f"list[{e.py}]", elem=e) if e.kind != "opt" else self.scalar()
        if r < 0.9:
            k = (
                PType("scalar", "str", scalar="str")
                if rnd.random() < 0.7
                else PType("scalar", "int", scalar="int")
            )
            v = self.type(depth + 1, here)
            if v.kind == "opt":
                v = self.scalar()
            return PType("dict", f"dict[{k.py}, {v.py}]", elem=v, key=k)
        inner = self.scalar() if rnd.random() < 0.7 else self.type(depth + 1, here)
        if inner.kind == "opt":
            return inner
        return PType("opt", f"{inner.py} | None", elem=inner)

    def struct(self, module: str | None = None, fields: list[tuple[str, PType]] | None = None) -> Struct:
        """A new class; one given ``fields`` (a method's parameters) is a dataclass named unlike them."""
        rnd = self.rnd
        module = module or ("main" if rnd.random() < 0.7 else "other")
        holder = None if rnd.random() < 0.7 else rnd.choice(["Outer", "Holder"])
        kind = (
            rnd.choice(["dataclass", "dataclass", "namedtuple", "typeddict"])
            if fields is None
            else "dataclass"
        )
        name = rnd.choice(CLASS_NAMES)
        avoid = {n for n, _t in fields or ()} | self.method_names  # either would hide the class
        while (module, holder, name) in self.names or name == holder or name in avoid:
            name += "X"
        self.names.add((module, holder, name))
        s = Struct(module, holder, name, kind)
        if fields is None:
            pools = [PLAIN, TRICKY, PROTO_KEYWORDS] + ([PY_KEYWORDS] if kind == "typeddict" else [])
            names: list[str] = []
            hidden = {"bytes", "str", "int", "float", "bool", "other", "typing", "Outer", "Holder"}
            hidden |= {s.name for s in self.structs}  # a field with a default would hide it in the class body
            for _ in range(rnd.randint(1, 5)):
                n = rnd.choice(rnd.choice(pools))
                if (
                    n in names
                    or n in hidden
                    or (n in PY_KEYWORDS and kind != "typeddict")
                    or (kind == "namedtuple" and n[0] == "_")
                ):
                    continue
                names.append(n)
            fields = [(n, self.type(0, module)) for n in names]
            if kind != "typeddict":  # fields with a default (None) come last
                fields.sort(key=lambda f: f[1].kind == "opt")
        s.fields = fields
        self.structs.append(s)
        return s

    def shape(self) -> PShape:
        rnd = self.rnd
        for _ in range(rnd.randint(1, 4)):
            self.struct()
        methods: list[PMethod] = []
        used: set[str] = set()
        for _ in range(rnd.randint(2, 5)):
            name = rnd.choice(METHOD_NAMES)
            if name in used or name in {s.name for s in self.structs}:  # it would hide the class
                continue
            used.add(name)
            self.method_names.add(name)
            methods.append(self.method(name))
        model = rnd.choice(MODEL_NAMES)
        while ("main", None, model) in self.names or model in ("Outer", "Holder"):
            model += "X"
        return PShape(self.index, model, self.structs, methods)

    def param_name(self, pool: list[str]) -> str:
        """A parameter name that hides nothing the method body uses (a class, a builtin, a module)."""
        hidden = {"bytes", "str", "int", "float", "bool", "other", "typing", "types", "dataclasses"}
        hidden |= {s.name for s in self.structs} | {"Outer", "Holder"}
        return self.rnd.choice([n for n in pool if n not in hidden])

    def method(self, name: str) -> PMethod:
        rnd = self.rnd
        r = rnd.random()
        if r < 0.4:
            s = rnd.choice(self.structs)
            t = PType("struct", s.ref("main"), ref=s)
            return PMethod(name, "echo", [("item", t)], t)
        if r < 0.65:
            names: list[str] = []
            for _ in range(rnd.choice([2, 2, 3, 4])):
                n = self.param_name(rnd.choice([PLAIN, TRICKY, PROTO_KEYWORDS]))
                if n not in names:
                    names.append(n)
            if len(names) == 1:
                names.append("second")
            params = sorted(((n, self.type(0, "main")) for n in names), key=lambda p: p[1].kind == "opt")
            rec = self.struct("main", list(params))
            return PMethod(name, "record", params, PType("struct", rec.ref("main"), ref=rec), record=rec)
        if r < 0.85:
            t = self.type(1, "main")
            while t.kind == "struct":
                t = self.type(1, "main")
            return PMethod(name, "container", [(self.param_name(PLAIN + TRICKY), t)], t)
        if r < 0.95:
            params = [(n, PType("scalar", k, scalar=k)) for n, k in zip(
                list(dict.fromkeys(self.param_name(PLAIN + PROTO_KEYWORDS) for _ in range(rnd.randint(1, 3)))),
                [rnd.choice(["int", "float"]) for _ in range(3)],
            )]  # fmt: skip
            return PMethod(name, "sum", params, PType("scalar", "float", scalar="float"))
        return PMethod(name, "none", [("text", PType("scalar", "str", scalar="str"))], None)


def make_shapes(seed: int, count: int) -> list[PShape]:
    rnd = random.Random(seed)
    return [Maker(rnd, i).shape() for i in range(count)]


# ------------------------------------------------------------------------------------------------ source
CHECK = '''
def _check(v, hint, path):
    """The argument has the hinted type all the way down (the echo alone would not see a wrong shape)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint in (int, float, str, bool, bytes):
        assert type(v) is hint, f"{path}: a {type(v).__name__} for {hint.__name__}"
    elif origin in (list, tuple):
        assert isinstance(v, (list, tuple)), f"{path}: a {type(v).__name__} for {hint}"
        for i, e in enumerate(v):
            _check(e, typing.get_args(hint)[0], f"{path}[{i}]")
    elif origin is dict:
        assert isinstance(v, dict), f"{path}: a {type(v).__name__} for {hint}"
        kt, vt = typing.get_args(hint)
        for k, e in v.items():
            _check(k, kt, f"{path} key")
            _check(e, vt, f"{path}[{k!r}]")
    elif typing.is_typeddict(hint):
        assert isinstance(v, dict), f"{path}: a {type(v).__name__} for {hint}"
        for k, h in typing.get_type_hints(hint).items():
            if k in v:
                _check(v[k], h, f"{path}[{k!r}]")
    else:
        assert isinstance(v, hint), f"{path}: a {type(v).__name__} for {hint}"
        for k, h in typing.get_type_hints(hint).items():
            _check(getattr(v, k), h, f"{path}.{k}")
'''


def _struct_source(s: Struct, indent: str, var: str) -> list[str]:
    """The class, bound to ``var`` (its own name, or a temporary one for a nested class)."""
    required = [(n, t) for n, t in s.fields if t.kind != "opt"]
    optional = [(n, t) for n, t in s.fields if t.kind == "opt"]
    if s.kind == "typeddict":
        items = ", ".join(f"{n!r}: {t.py}" for n, t in s.fields)
        return [f"{indent}{var} = typing.TypedDict({s.name!r}, {{{items}}})"]
    head = (
        "@dataclasses.dataclass\n" + indent + f"class {var}:"
        if s.kind == "dataclass"
        else f"class {var}(typing.NamedTuple):"
    )
    lines = [indent + head]
    for n, t in required:
        lines.append(f"{indent}    {n}: {t.py}")
    for n, t in optional:
        lines.append(f"{indent}    {n}: {t.py} = None")
    if not s.fields:
        lines.append(f"{indent}    pass")
    return lines


def sources(shape: PShape) -> dict[str, str]:
    """module file name -> source: the model module and its sibling ``other`` module."""
    out: dict[str, str] = {}
    for module in ("other", "main"):
        lines = ["import dataclasses", "import types", "import typing"]
        if module == "main":
            lines.append("import other")
        lines.append(CHECK)
        holders: dict[str, list[str]] = {}
        for s in shape.structs:
            if s.module != module:
                continue
            if s.holder:
                if s.holder not in holders:
                    holders[s.holder] = []
                    lines.append(f"class {s.holder}:")
                    lines.append("    pass")
                # defined at top level under a temporary name, then attached to its holder and named
                var = f"_{s.holder}_{s.name}"
                lines += _struct_source(s, "", var)
                lines.append(f"{var}.__name__, {var}.__qualname__ = {s.name!r}, {s.holder + '.' + s.name!r}")
                lines.append(f"{s.holder}.{s.name} = {var}")
                lines.append(f"del {var}")
            else:
                lines += _struct_source(s, "", s.name)
        if module == "main":
            lines.append(f"class {shape.model}:")
            for m in shape.methods:
                params = ", ".join(
                    f"{n}: {t.py}" + (" = None" if t.kind == "opt" else "") for n, t in m.params
                )
                ret = m.ret.py if m.ret else "None"
                lines.append(f"    def {m.name}(self, {params}) -> {ret}:")
                for n, t in m.params:
                    lines.append(f"        _check({n}, {t.py}, {n!r})")
                if m.kind in ("echo", "container"):
                    lines.append(f"        return {m.params[0][0]}")
                elif m.kind == "record":
                    assert m.record is not None
                    lines.append(
                        f"        return {m.record.ref('main')}({', '.join(n for n, _t in m.params)})"
                    )
                elif m.kind == "sum":
                    lines.append("        return float(" + " + ".join(n for n, _t in m.params) + ")")
                else:
                    lines.append("        return None")
        out[f"{module}.py"] = "\n".join(lines) + "\n"
    return out


# ------------------------------------------------------------------------------------------------ values
class Filler:
    def __init__(self, rnd: random.Random):
        self.rnd = rnd

    def scalar(self, kind: str) -> Any:
        rnd = self.rnd
        return {
            "int": lambda: rnd.randint(-(2**40), 2**40),
            "float": lambda: round(rnd.uniform(-1e3, 1e3), 3),
            "str": lambda: rnd.choice(["", "a", "héllo", "x y"]) + str(rnd.randint(0, 99)),
            "bool": lambda: rnd.random() < 0.5,
            "bytes": lambda: rnd.randbytes(rnd.randint(0, 4)),
        }[kind]()

    def fill(self, msg: Message, fields: list[tuple[str, PType]]) -> Message:
        msg.SetInParent()
        for i, (_n, t) in enumerate(fields):
            self.set(msg, msg.DESCRIPTOR.fields_by_number[i + 1], t)
        return msg

    def set(self, msg: Message, f: FieldDescriptor, t: PType) -> None:
        rnd = self.rnd
        if t.kind == "opt":
            assert t.elem is not None
            if rnd.random() < 0.3:
                return
            t = t.elem
        if t.kind == "scalar":
            setattr(msg, f.name, self.scalar(t.scalar))
        elif t.kind == "struct":
            self.fill(getattr(msg, f.name), t.ref.fields)
        elif t.kind == "list":
            assert t.elem is not None
            container = getattr(msg, f.name)
            for _ in range(rnd.randint(0, 3)):
                self.add(container, t.elem)
        elif t.kind == "dict":
            assert t.elem is not None and t.key is not None
            container = getattr(msg, f.name)
            for _ in range(rnd.randint(0, 3)):
                k = self.scalar(t.key.scalar)
                v = t.elem
                if v.kind == "scalar":
                    container[k] = self.scalar(v.scalar)
                elif v.kind == "struct":
                    self.fill(container[k], v.ref.fields)
                else:
                    w = container[k]
                    w.SetInParent()
                    self.set(w, w.DESCRIPTOR.fields_by_number[1], v)

    def add(self, container: Any, e: PType) -> None:
        if e.kind == "scalar":
            container.append(self.scalar(e.scalar))
        elif e.kind == "struct":
            self.fill(container.add(), e.ref.fields)
        else:
            w = container.add()
            self.set(w, w.DESCRIPTOR.fields_by_number[1], e)


def request(m: PMethod, cls: type[Message], rnd: random.Random) -> Message:
    filler = Filler(rnd)
    if m.kind == "echo":
        return filler.fill(cls(), m.params[0][1].ref.fields)
    return filler.fill(cls(), m.params)


def check(m: PMethod, req: Message, out: Message) -> None:
    if m.kind == "echo":
        assert out == req, f"{m.name}: sent {req}, got {out}"
    elif m.kind in ("record", "container"):
        sent, got = req.SerializeToString(deterministic=True), out.SerializeToString(deterministic=True)
        assert got == sent, f"{m.name}: sent {req}, got {out}"
    elif m.kind == "sum":
        total = sum(float(getattr(req, f.name)) for f in req.DESCRIPTOR.fields)
        assert abs(out.value - total) <= 1e-9 * max(1.0, abs(total)), f"{m.name}: {req} -> {out}"
    else:
        assert out.ByteSize() == 0
