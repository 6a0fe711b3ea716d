"""Random Java class shapes for the contract-generation property test (test_contract_shapes.py).

A *shape* is one model class in a package of its own plus the data classes and enums its methods use:
records, public-field classes and beans, nested in holder classes or not, some with the simple name of a
class in a sub-package, with field names drawn from proto keywords, Java-keyword bean properties, names that
differ only in case or underscores and names proto cannot spell, and field types from scalars to
``Map<String, List<Double>>``, ``Optional<List<...>>``, ``double[][]`` and enums. Its methods are echoes
(the input comes back), record builders (parameters come back as a record with the same names), a sum, a
void method, with names that clash with messages, each other (``score``/``Score``) or proto.

:func:`fill` sets every field of a request from the Java types (so values survive the trip: a ``char`` is
one character, a ``float`` exact, a ``Set`` without duplicates); :func:`expected` says what the call must
answer. Everything derives from one seeded ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# ------------------------------------------------------------------------------------------------ names
PLAIN = ["value", "name", "score", "count", "items", "id", "label", "weight", "age", "city", "data", "rows"]
TRICKY = [
    "values", "entries", "key", "fooBar", "foo_bar", "sepalLength", "sepal_length", "URL", "url", "x_y", "xY",
    "a", "A", "Value", "VALUE", "_x", "x_", "__y", "z__", "a$b", "$c", "DESCRIPTOR", "caf\\u00e9", "arg0",
    "HTTPCode", "httpCode", "h_t_t_p", "snake_case_", "x1", "x_1",
]  # fmt: skip
PROTO_KEYWORDS = [
    "message", "option", "syntax", "service", "rpc", "returns", "map", "oneof", "repeated", "optional",
    "reserved", "to", "max", "extensions", "group", "weak", "stream", "required", "extend", "edition", "inf",
    "nan", "string", "bytes", "int32", "bool",
]  # fmt: skip
JAVA_KEYWORDS = ["package", "import", "enum", "public", "default", "new", "int", "double", "return", "static"]
CLASS_NAMES = [
    "Point", "Item", "Score", "Applicant", "Result", "Request", "Response", "Message", "Option", "Service",
    "Rpc", "Data", "Row", "Input", "Output", "Value", "Values", "DoubleArray", "PointArray", "ScoreRequest",
    "ScoreResponse", "EchoRequest", "Map", "List", "String", "Optional", "Integer", "string", "message",
    "map", "bytes", "int32", "option", "stream", "_Under", "Dollar$Sign", "Color", "RED", "Model",
]  # fmt: skip
MODEL_NAMES = [
    "Model",
    "Scorer",
    "Score",
    "Point",
    "Service",
    "Message",
    "message",
    "Predictor",
    "Rpc",
    "Echo",
]
METHOD_NAMES = [
    "score", "Score", "predict", "echo", "apply", "message", "option", "run", "do$it", "_under", "under_score",
    "camelCase", "CamelCase", "x", "X", "values", "process", "transform", "point", "item", "result", "rpc",
    "returns", "stream", "service",
]  # fmt: skip
ENUM_CONSTANTS = [
    "RED", "GREEN", "BLUE", "OFF", "on", "ON", "option", "reserved", "max", "message", "VALUE", "value", "A",
    "a_b", "A_B", "AB", "Ab", "_X", "Point", "Score", "SCORE",
]  # fmt: skip


def decap(s: str) -> str:
    """java.beans' decapitalize, as bridge Props derives a property from a getter."""
    if len(s) > 1 and s[0].isupper() and s[1].isupper():
        return s
    return s[:1].lower() + s[1:]


# ------------------------------------------------------------------------------------------------ types
@dataclass(eq=False)
class JType:
    kind: str  # scalar | enum | msg | list | set | array | map | opt
    java: str
    scalar: str = ""  # int32 short byte int64 double float bool string char bytes
    elem: JType | None = None  # element, map value, optional's content
    key: JType | None = None  # map key
    ref: Any = None  # DataClass or EnumSpec


@dataclass(eq=False)
class EnumSpec:
    pkg: str
    holder: str | None
    name: str
    constants: list[str]

    @property
    def java(self) -> str:
        return f"{self.pkg}.{self.holder + '.' if self.holder else ''}{self.name}"


@dataclass(eq=False)
class Prop:
    name: str
    type: JType


@dataclass(eq=False)
class DataClass:
    pkg: str
    holder: str | None
    name: str
    kind: str  # record | fields | bean
    props: list[Prop] = field(default_factory=list)  # in the bridge's property order
    keyword_props: list[Prop] = field(default_factory=list)  # beans: Java-keyword properties, no field

    @property
    def java(self) -> str:
        return f"{self.pkg}.{self.holder + '.' if self.holder else ''}{self.name}"


@dataclass(eq=False)
class JMethod:
    name: str
    kind: str  # echo | record | container | sum | void
    static: bool
    params: list[Prop]
    ret: JType | None
    record: DataClass | None = None
    overload: bool = False


@dataclass(eq=False)
class Shape:
    index: int
    pkg: str
    model: str
    classes: list[DataClass]
    enums: list[EnumSpec]
    methods: list[JMethod]

    @property
    def fqcn(self) -> str:
        return f"{self.pkg}.{self.model}"


SCALARS = [
    ("int", "int32"), ("long", "int64"), ("double", "double"), ("float", "float"), ("boolean", "bool"),
    ("java.lang.String", "string"), ("short", "short"), ("byte", "byte"), ("char", "char"), ("byte[]", "bytes"),
    ("java.lang.Integer", "int32"), ("java.lang.Long", "int64"), ("java.lang.Double", "double"),
    ("java.lang.Boolean", "bool"), ("java.lang.Character", "char"),
]  # fmt: skip
BOXED = [s for s in SCALARS if s[0].startswith("java.lang.") or s[0] == "byte[]"]


def scalar(rnd: random.Random, boxed: bool = False) -> JType:
    java, kind = rnd.choice(BOXED if boxed else SCALARS)
    return JType("scalar", java, scalar=kind)


class ShapeMaker:
    def __init__(self, rnd: random.Random, index: int):
        self.rnd = rnd
        self.index = index
        base = f"shapes.s{index:03d}"
        if rnd.random() < 0.3:  # proto keywords and class names as package components
            base += "." + rnd.choice(["message", "option", "Score", "service", "map", "Point"])
        self.pkg = base
        self.classes: list[DataClass] = []
        self.enums: list[EnumSpec] = []
        self.top: set[tuple[str, str]] = set()  # top-level classes (package, simple name)
        self.holders: set[tuple[str, str]] = set()  # classes that hold nested ones
        self.nested: set[tuple[str, str, str]] = set()  # (package, holder, simple name)

    def place(self, name: str) -> tuple[str, str | None, str]:
        """A package, holder class (or None) and simple name for a new class named like ``name``."""
        rnd = self.rnd
        for attempt in range(40):
            n = name if attempt < 10 else f"{name}{attempt}"
            pkg = self.pkg if rnd.random() < 0.6 else self.pkg + rnd.choice([".other", ".more"])
            holder = None if rnd.random() < 0.6 else rnd.choice(["Outer", "Holder", "Types"])
            if holder is None:
                if (pkg, n) not in self.top:
                    self.top.add((pkg, n))
                    return pkg, None, n
                continue
            if holder == n or (pkg, holder, n) in self.nested:
                continue
            if (pkg, holder) not in self.holders:
                if (pkg, holder) in self.top:
                    continue
                self.holders.add((pkg, holder))
                self.top.add((pkg, holder))
            self.nested.add((pkg, holder, n))
            return pkg, holder, n
        raise AssertionError("no free class name")

    def enum(self) -> EnumSpec:
        pkg, holder, name = self.place(self.rnd.choice(CLASS_NAMES))
        constants = self.rnd.sample(ENUM_CONSTANTS, self.rnd.randint(1, 4))
        e = EnumSpec(pkg, holder, name, constants)
        self.enums.append(e)
        return e

    def data_class(self, kind: str | None = None, props: list[Prop] | None = None) -> DataClass:
        rnd = self.rnd
        kind = kind or rnd.choice(["record", "fields", "bean"])
        pkg, holder, name = self.place(rnd.choice(CLASS_NAMES))
        dc = DataClass(pkg, holder, name, kind)
        self.classes.append(dc)
        if props is not None:
            dc.props = props
            return dc
        names: list[str] = []
        for _ in range(rnd.randint(0 if kind == "record" else 1, 6)):
            pool = rnd.choice([PLAIN, TRICKY, TRICKY, PROTO_KEYWORDS])
            n = rnd.choice(pool)
            if n not in names:
                names.append(n)
        dc.props = [Prop(n, self.type(0)) for n in names]
        if kind == "bean" and rnd.random() < 0.5:
            kws = sorted(set(rnd.sample(JAVA_KEYWORDS, rnd.randint(1, 3))))
            dc.keyword_props = [Prop(n, scalar(rnd)) for n in kws]
        return dc

    def type(self, depth: int) -> JType:
        rnd = self.rnd
        r = rnd.random()
        if r < 0.45 or depth > 2:
            return scalar(rnd)
        if r < 0.53:
            e = rnd.choice(self.enums) if self.enums and rnd.random() < 0.6 else self.enum()
            return JType("enum", e.java, ref=e)
        if r < 0.63:
            if self.classes and rnd.random() < 0.7:
                dc = rnd.choice(self.classes)  # possibly the class being built: recursion
            else:
                dc = self.data_class()
            return JType("msg", dc.java, ref=dc)
        if r < 0.73:
            e = self.element(depth)
            return JType("list", f"java.util.List<{e.java}>", elem=e)
        if r < 0.76:
            e = JType("scalar", rnd.choice(["java.lang.String", "java.lang.Integer"]))
            e.scalar = "string" if e.java.endswith("String") else "int32"
            return JType("set", f"java.util.Set<{e.java}>", elem=e)
        if r < 0.84:
            choice = rnd.random()
            if choice < 0.4:
                java, kind = rnd.choice(
                    [
                        ("int", "int32"),
                        ("long", "int64"),
                        ("double", "double"),
                        ("float", "float"),
                        ("boolean", "bool"),
                    ]
                )
                e = JType("scalar", java, scalar=kind)
            elif choice < 0.6:
                e = JType("scalar", "java.lang.String", scalar="string")
            elif choice < 0.8 and self.classes:
                dc = rnd.choice(self.classes)
                e = JType("msg", dc.java, ref=dc)
            else:
                inner = JType("scalar", "double", scalar="double")
                e = JType("array", "double[]", elem=inner)
            return JType("array", e.java + "[]", elem=e)
        if r < 0.93:
            kr = rnd.random()
            if kr < 0.5:
                k = JType("scalar", "java.lang.String", scalar="string")
            elif kr < 0.7:
                k = JType("scalar", "java.lang.Integer", scalar="int32")
            elif kr < 0.8:
                k = JType("scalar", "java.lang.Long", scalar="int64")
            else:
                en = rnd.choice(self.enums) if self.enums else self.enum()
                k = JType("enum", en.java, ref=en)
            v = self.element(depth)
            return JType("map", f"java.util.Map<{k.java}, {v.java}>", elem=v, key=k)
        inner_r = rnd.random()
        if inner_r < 0.5:
            inner = scalar(rnd, boxed=True)
        elif inner_r < 0.7:
            e = rnd.choice(self.enums) if self.enums else self.enum()
            inner = JType("enum", e.java, ref=e)
        elif inner_r < 0.85:
            el = JType("scalar", "java.lang.Double", scalar="double")
            inner = JType("list", "java.util.List<java.lang.Double>", elem=el)
        else:
            dc = rnd.choice(self.classes) if self.classes else self.data_class()
            inner = JType("msg", dc.java, ref=dc)
        return JType("opt", f"java.util.Optional<{inner.java}>", elem=inner)

    def element(self, depth: int) -> JType:
        """A list element / map value: boxed scalars, classes, enums, or nested containers (wrappers)."""
        rnd = self.rnd
        r = rnd.random()
        if r < 0.45:
            return scalar(rnd, boxed=True)
        if r < 0.6 and self.classes:
            dc = rnd.choice(self.classes)
            return JType("msg", dc.java, ref=dc)
        if r < 0.7:
            e = rnd.choice(self.enums) if self.enums else self.enum()
            return JType("enum", e.java, ref=e)
        if depth < 2 and r < 0.85:
            e = self.element(depth + 1)
            return JType("list", f"java.util.List<{e.java}>", elem=e)
        if depth < 2:
            v = self.element(depth + 1)
            k = JType("scalar", "java.lang.String", scalar="string")
            return JType("map", f"java.util.Map<java.lang.String, {v.java}>", elem=v, key=k)
        return scalar(rnd, boxed=True)

    def shape(self) -> Shape:
        rnd = self.rnd
        for _ in range(rnd.randint(1, 3)):
            self.data_class()
        if rnd.random() < 0.5:
            self.enum()
        model = rnd.choice(MODEL_NAMES)
        while (self.pkg, model) in self.top:
            model += "X"
        self.top.add((self.pkg, model))
        methods: list[JMethod] = []
        used: set[str] = set()
        for _ in range(rnd.randint(2, 5)):
            name = rnd.choice(METHOD_NAMES)
            if name in used:
                continue
            used.add(name)
            methods.append(self.method(name))
        return Shape(self.index, self.pkg, model, self.classes, self.enums, methods)

    def method(self, name: str) -> JMethod:
        rnd = self.rnd
        static = rnd.random() < 0.2
        r = rnd.random()
        if r < 0.4:
            dc = rnd.choice(self.classes)
            m = JMethod(
                name,
                "echo",
                static,
                [Prop("in", JType("msg", dc.java, ref=dc))],
                JType("msg", dc.java, ref=dc),
            )
            m.overload = rnd.random() < 0.2
            return m
        if r < 0.65:
            names: list[str] = []
            for _ in range(rnd.choice([0, 2, 2, 3, 4])):
                n = rnd.choice(rnd.choice([PLAIN, TRICKY, PROTO_KEYWORDS]))
                if n not in names:
                    names.append(n)
            if len(names) == 1:
                names.append("other")
            params = [Prop(n, self.type(0)) for n in names]
            rec = self.data_class("record", [Prop(p.name, p.type) for p in params])
            return JMethod(name, "record", static, params, JType("msg", rec.java, ref=rec), record=rec)
        if r < 0.85:
            t = self.type(1)
            while t.kind == "msg":
                t = self.type(1)
            return JMethod(name, "container", static, [Prop(rnd.choice(PLAIN + TRICKY), t)], t)
        if r < 0.95:
            params = [Prop(n, JType("scalar", j, scalar=k)) for n, (j, k) in zip(
                rnd.sample(PLAIN + PROTO_KEYWORDS, rnd.randint(1, 3)),
                [rnd.choice([("int", "int32"), ("double", "double"), ("long", "int64")]) for _ in range(3)],
            )]  # fmt: skip
            return JMethod(name, "sum", static, params, JType("scalar", "double", scalar="double"))
        return JMethod(
            name, "void", static, [Prop("text", JType("scalar", "java.lang.String", scalar="string"))], None
        )


def make_shapes(seed: int, count: int) -> list[Shape]:
    rnd = random.Random(seed)
    return [ShapeMaker(rnd, i).shape() for i in range(count)]


# ------------------------------------------------------------------------------------------------ source
def _class_body(dc: DataClass, indent: str) -> str:
    mod = "public static " if dc.holder else "public "
    if dc.kind == "record":
        comps = ", ".join(f"{p.type.java} {p.name}" for p in dc.props)
        return f"{indent}{mod.replace('static ', '')}record {dc.name}({comps}) {{}}\n"
    lines = [f"{indent}{mod}class {dc.name} {{"]
    if dc.kind == "fields":
        lines += [f"{indent}    public {p.type.java} {p.name};" for p in dc.props]
    else:
        suffixes = ["".join((p.name[:1].upper(), p.name[1:])) for p in dc.props]
        counts: dict[str, int] = {}
        for s in suffixes + [k.name[:1].upper() + k.name[1:] for k in dc.keyword_props]:
            counts[s.lower()] = counts.get(s.lower(), 0) + 1
        for p, s in zip(dc.props, suffixes, strict=True):
            lines.append(f"{indent}    private {p.type.java} {p.name};")
            if decap(s) == p.name and counts[s.lower()] == 1:  # else read and written directly
                lines.append(f"{indent}    public {p.type.java} get{s}() {{ return {p.name}; }}")
                lines.append(f"{indent}    public void set{s}({p.type.java} v) {{ {p.name} = v; }}")
        for i, k in enumerate(dc.keyword_props):
            s = k.name[:1].upper() + k.name[1:]
            lines.append(f"{indent}    private transient {k.type.java} kw{i};")
            lines.append(f"{indent}    public {k.type.java} get{s}() {{ return kw{i}; }}")
            lines.append(f"{indent}    public void set{s}({k.type.java} v) {{ kw{i} = v; }}")
    lines.append(f"{indent}}}")
    return "\n".join(lines) + "\n"


def _enum_body(e: EnumSpec, indent: str) -> str:
    mod = "public static " if e.holder else "public "
    return f"{indent}{mod}enum {e.name} {{ {', '.join(e.constants)} }}\n"


# Every model method first checks that each argument is what its declared (generic) type says, all the way
# down: a List<List<Double>> holds lists of Doubles, not the wrapper messages' maps. An echo alone would not
# see a value of the wrong shape that travels back unchanged.
CHECK_SOURCE = """package shapes;

import java.lang.reflect.*;
import java.util.*;

public final class Check {
    private Check() {}

    public static void args(Class<?> owner, String method, Object... args) {
        Method found = null;
        for (Method m : owner.getMethods())
            if (m.getName().equals(method) && (found == null || m.getParameterCount() < found.getParameterCount())) found = m;
        Type[] types = found.getGenericParameterTypes();
        for (int i = 0; i < args.length; i++) verify(args[i], types[i], method + " argument " + i, new IdentityHashMap<>());
    }

    static Class<?> raw(Type t) {
        if (t instanceof Class) return (Class<?>) t;
        if (t instanceof ParameterizedType) return (Class<?>) ((ParameterizedType) t).getRawType();
        if (t instanceof GenericArrayType) return Array.newInstance(raw(((GenericArrayType) t).getGenericComponentType()), 0).getClass();
        throw new IllegalStateException("type " + t);
    }

    static Type arg(Type t, int i) { return ((ParameterizedType) t).getActualTypeArguments()[i]; }

    static Class<?> boxed(Class<?> c) {
        if (!c.isPrimitive()) return c;
        if (c == int.class) return Integer.class;
        if (c == long.class) return Long.class;
        if (c == double.class) return Double.class;
        if (c == float.class) return Float.class;
        if (c == boolean.class) return Boolean.class;
        if (c == short.class) return Short.class;
        if (c == byte.class) return Byte.class;
        return Character.class;
    }

    static void verify(Object v, Type t, String path, IdentityHashMap<Object, Boolean> seen) {
        if (v == null) return;
        Class<?> r = raw(t);
        if (!boxed(r).isInstance(v) || (r.isArray() && v.getClass() != r))
            throw new IllegalStateException(path + ": a " + v.getClass().getName() + " where the type is " + t.getTypeName());
        if (seen.put(v, true) != null) return;
        if (r == Optional.class) verify(((Optional<?>) v).orElse(null), arg(t, 0), path + ".get()", seen);
        else if (Collection.class.isAssignableFrom(r)) { int i = 0; for (Object e : (Collection<?>) v) verify(e, arg(t, 0), path + "[" + i++ + "]", seen); }
        else if (Map.class.isAssignableFrom(r)) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                verify(e.getKey(), arg(t, 0), path + " key", seen);
                verify(e.getValue(), arg(t, 1), path + "[" + e.getKey() + "]", seen);
            }
        } else if (r.isArray() && !r.getComponentType().isPrimitive()) {
            Type c = t instanceof GenericArrayType ? ((GenericArrayType) t).getGenericComponentType() : r.getComponentType();
            for (int i = 0; i < Array.getLength(v); i++) verify(Array.get(v, i), c, path + "[" + i + "]", seen);
        } else if (r.getName().startsWith("shapes.") && !r.isEnum()) {
            for (Class<?> k = r; k != Object.class; k = k.getSuperclass())
                for (Field f : k.getDeclaredFields()) {
                    if (Modifier.isStatic(f.getModifiers())) continue;
                    try {
                        f.setAccessible(true);
                        verify(f.get(v), f.getGenericType(), path + "." + f.getName(), seen);
                    } catch (IllegalAccessException e) {
                        throw new IllegalStateException(e);
                    }
                }
        }
    }
}
"""


def _model_source(shape: Shape) -> str:
    lines = [f"package {shape.pkg};", "", f"public class {shape.model} {{"]
    for m in shape.methods:
        static = "static " if m.static else ""
        params = ", ".join(f"{p.type.java} {p.name}" for p in m.params)
        ret = m.ret.java if m.ret else "void"
        args = ", ".join(p.name for p in m.params)  # an explicit array: a double[][] is an Object[] itself
        check = f'shapes.Check.args({shape.model}.class, "{m.name}", new Object[] {{{args}}}); '
        if m.kind in ("echo", "container"):
            body = check + f"return {m.params[0].name};"
        elif m.kind == "record":
            assert m.record is not None
            body = check + f"return new {m.record.java}({', '.join(p.name for p in m.params)});"
        elif m.kind == "sum":
            body = "return " + " + ".join(f"(double) {p.name}" for p in m.params) + ";"
        else:
            body = ""
        lines.append(f"    public {static}{ret} {m.name}({params}) {{ {body} }}")
        if m.overload:
            lines.append(f"    public {static}{ret} {m.name}({params}, int extra) {{ return null; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_sources(shapes: list[Shape], root: Path) -> list[Path]:
    """The .java files of every shape under ``root`` (package folders); returns them."""
    files: dict[Path, str] = {}
    holders: dict[tuple[str, str], list[str]] = {}
    for shape in shapes:
        files[root / shape.pkg.replace(".", "/") / f"{shape.model}.java"] = _model_source(shape)
        for dc in shape.classes:
            body = _class_body(dc, "    " if dc.holder else "")
            if dc.holder:
                holders.setdefault((dc.pkg, dc.holder), []).append(body)
            else:
                files[root / dc.pkg.replace(".", "/") / f"{dc.name}.java"] = f"package {dc.pkg};\n\n{body}"
        for e in shape.enums:
            body = _enum_body(e, "    " if e.holder else "")
            if e.holder:
                holders.setdefault((e.pkg, e.holder), []).append(body)
            else:
                files[root / e.pkg.replace(".", "/") / f"{e.name}.java"] = f"package {e.pkg};\n\n{body}"
    for (pkg, holder), bodies in holders.items():
        files[root / pkg.replace(".", "/") / f"{holder}.java"] = (
            f"package {pkg};\n\npublic class {holder} {{\n" + "".join(bodies) + "}\n"
        )
    files[root / "shapes" / "Check.java"] = CHECK_SOURCE
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return sorted(files)


# ------------------------------------------------------------------------------------------------ values
class Filler:
    """Request values from the Java types, so that each survives the trip unchanged."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd

    def scalar(self, kind: str) -> Any:
        rnd = self.rnd
        return {
            "int32": lambda: rnd.randint(-1000, 1000),
            "short": lambda: rnd.randint(-300, 300),
            "byte": lambda: rnd.randint(-100, 100),
            "int64": lambda: rnd.randint(-(2**40), 2**40),
            "double": lambda: round(rnd.uniform(-1e3, 1e3), 3),
            "float": lambda: rnd.randint(-1000, 1000) / 4,
            "bool": lambda: rnd.random() < 0.5,
            "string": lambda: rnd.choice(["", "a", "héllo", "x y", "€"]) + str(rnd.randint(0, 99)),
            "char": lambda: rnd.choice("abcXYZé€"),
            "bytes": lambda: rnd.randbytes(rnd.randint(0, 4)),
        }[kind]()

    def enum_value(self, f: FieldDescriptor, e: EnumSpec) -> Any:
        i = self.rnd.randrange(len(e.constants))
        return i if f.enum_type is not None else e.constants[i]  # a proto enum, or the name as a string

    def fill(self, msg: Message, props: list[Prop], depth: int = 0) -> Message:
        for i, p in enumerate(props):
            self.set(msg, msg.DESCRIPTOR.fields_by_number[i + 1], p.type, depth)
        return msg

    def fill_class(self, msg: Message, dc: DataClass, depth: int) -> None:
        """Fills a message of class ``dc``: each level deeper is one more class (recursive classes end at 2)."""
        msg.SetInParent()
        self.fill(msg, dc.props + dc.keyword_props, depth + 1)

    def set(self, msg: Message, f: FieldDescriptor, t: JType, depth: int) -> None:
        rnd = self.rnd
        if t.kind == "opt":
            assert t.elem is not None
            if rnd.random() < 0.25:
                return  # Optional.empty()
            if t.elem.kind == "list":
                getattr(msg, f.name).extend(self.scalar("double") for _ in range(rnd.randint(1, 3)))
                return
            t = t.elem
        if t.kind == "scalar":
            setattr(msg, f.name, self.scalar(t.scalar))
        elif t.kind == "enum":
            setattr(msg, f.name, self.enum_value(f, t.ref))
        elif t.kind == "msg":
            if depth < 2:
                self.fill_class(getattr(msg, f.name), t.ref, depth)
        elif t.kind in ("list", "set", "array"):
            assert t.elem is not None
            container = getattr(msg, f.name)
            n = rnd.randint(0, 3) if depth < 2 or not _holds_class(t) else 0
            if t.kind == "set":
                container.extend(list(dict.fromkeys(self.scalar(t.elem.scalar) for _ in range(n))))
            else:
                for _ in range(n):
                    self.add(container, f, t.elem, depth)
        elif t.kind == "map":
            assert t.elem is not None and t.key is not None
            container = getattr(msg, f.name)
            for _ in range(rnd.randint(0, 3) if depth < 2 or not _holds_class(t) else 0):
                if t.key.kind == "enum":
                    k: Any = rnd.choice(t.key.ref.constants)
                else:
                    k = self.scalar(t.key.scalar)
                vf = f.message_type.fields_by_name["value"]
                v = t.elem
                if v.kind == "scalar":
                    container[k] = self.scalar(v.scalar)
                elif v.kind == "enum":
                    container[k] = self.enum_value(vf, v.ref)
                elif v.kind == "msg":
                    self.fill_class(container[k], v.ref, depth)
                else:  # a wrapper message
                    w = container[k]
                    w.SetInParent()
                    self.set(w, w.DESCRIPTOR.fields_by_number[1], v, depth)
        else:
            raise AssertionError(t.kind)

    def add(self, container: Any, f: FieldDescriptor, e: JType, depth: int) -> None:
        if e.kind == "scalar":
            container.append(self.scalar(e.scalar))
        elif e.kind == "enum":
            container.append(self.enum_value(f, e.ref))
        elif e.kind == "msg":
            self.fill_class(container.add(), e.ref, depth)
        else:  # a wrapper message around a nested list / map / array
            w = container.add()
            self.set(w, w.DESCRIPTOR.fields_by_number[1], e, depth)


def _holds_class(t: JType) -> bool:
    return t.kind == "msg" or (t.elem is not None and _holds_class(t.elem))


def request(shape: Shape, m: JMethod, cls: type[Message], rnd: random.Random) -> Message:
    filler = Filler(rnd)
    msg = cls()
    if m.kind == "echo":
        filler.fill_class(msg, m.params[0].type.ref, -1)
    else:
        filler.fill(msg, m.params)
    return msg


def check(m: JMethod, req: Message, out: Message) -> None:
    """What the call must answer: its input back (echoes), the same bytes (a record of the parameters, a
    container), the sum, nothing."""
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
