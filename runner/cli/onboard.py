"""`model-runner onboard`: a JAR + class (or a Python class) -> a validated bundle zip."""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import BadInput, ModelRunnerError

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor

    from runner.contract import Contract
    from runner.serving.onboarding import ModelOptions
    from runner.serving.validate import ValidationReport

EPILOG = """\
examples:
  # list the classes and methods a JAR offers
  model-runner onboard build/libs/iris.jar
  # generate the contract, run the model once, write the bundle
  model-runner onboard build/libs/iris.jar --class org.modelrunner.samples.iris.IrisClassifier -o iris.zip
  # bind an existing contract, with an example input for the self-test
  model-runner onboard iris.jar --class org.acme.Iris --proto iris.proto \\
      --example 'Classify={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
  # dependencies as a folder of JARs or a class path (quote a wildcard), data files the model reads
  model-runner onboard scorer.jar --class com.acme.Scorer --lib build/install/scorer/lib \\
      --lib 'extra/*:tools/util.jar' --artifacts model-files/
  # an Acumos generic-java model: class and methods from its modelConfig.properties
  model-runner onboard model.jar --proto model.proto --artifacts model-files/   # or --config FILE
  # a Python class (contract from its type hints)
  model-runner onboard iris_model.py:IrisClassifier --name iris-python -o iris-python.zip
then: model-runner serve iris.zip   or   model-runner push iris iris.zip
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "onboard",
        help="turn a JAR + class (or a Python class) into a validated bundle zip",
        description="Inspect a JAR (or a Python module), generate or bind the protobuf contract, run example "
        "(or generated) inputs through the model, and write a bundle zip ready for `serve` or `push`. "
        "Without --class, list the candidate classes and methods of the JAR.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        metavar="JAR|MODULE.py:CLASS",
        help="the model JAR, or a Python class as path/module.py:Class or package.module:Class",
    )
    add_model_options(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="BUNDLE.zip",
        help="where to write the bundle (default: ./NAME.zip)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    p.set_defaults(handler=with_explained_errors(run))


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options that describe a model to onboard: one definition for `onboard`, `serve` and `push`
    (read back with :func:`model_options`)."""
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="FQCN",
        help="the Java model class (fully qualified); omit to list the candidates",
    )
    p.add_argument(
        "--method",
        dest="methods",
        action="append",
        metavar="NAME",
        help="a Java method to serve (repeatable; default: every public method); with --proto, "
        "Rpc=javaMethod binds an rpc to a method",
    )
    p.add_argument(
        "--lib",
        dest="libs",
        action="append",
        default=[],
        metavar="JAR|DIR|CLASSPATH",
        help="dependency JARs the model needs, loaded in its own class loader: a JAR, a folder of JARs, "
        "or a class path such as 'a.jar:b.jar' or 'libs/*' (quoted, so the shell leaves the * to "
        "model-runner, which reads it as java -cp does) (repeatable)",
    )
    p.add_argument("--proto", type=Path, metavar="FILE", help="use this contract instead of generating one")
    p.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="a folder of data files the model reads at load (copied into the bundle)",
    )
    p.add_argument(
        "--name",
        help="model name (default: a bundle's own name; for a JAR its file name without version, "
        "else the class name in kebab case, e.g. iris-classifier)",
    )
    p.add_argument(
        "--example",
        dest="examples",
        action="append",
        metavar="JSON",
        help="an example input for the self-test: 'Rpc={...}', '{...}' or 'Rpc=@file.json' (repeatable)",
    )
    config_help = (
        "Java: an Acumos model's modelConfig.properties (also found in --artifacts or the JAR): "
        "it names the class (no --class needed) and, as a comma list, the methods of the rpcs of "
        "the same names; copied into the bundle"
    )
    try:
        p.add_argument(
            "--model-config", "--config", dest="model_config", type=Path, metavar="FILE", help=config_help
        )
    except argparse.ArgumentError:  # `serve` has a --config of its own (its settings file)
        p.add_argument("--model-config", dest="model_config", type=Path, metavar="FILE", help=config_help)
    p.add_argument(
        "--requirements",
        type=Path,
        metavar="FILE",
        help="Python: a requirements.txt of the packages the model needs; it then runs in a virtual "
        "environment of its own, in a child process (docs/bundle.md, Python environments)",
    )


def with_explained_errors(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap a verb so a core error's itemised problems (bind problems, validation details) are shown
    under its message: runner.cli.main prints only the message and the hint."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ModelRunnerError as err:
            err.message = explain(err)
            if isinstance(err.detail, dict) and not err.detail.get("hint"):
                verb = getattr(args, "command", None) or "COMMAND"
                err.detail["hint"] = _DEFAULT_HINTS.get(err.kind.value, f"see `model-runner {verb} --help`")
            raise

    return run


_DEFAULT_HINTS = {
    "invalid_bundle": "fix what the message names (the contract, the model or its examples) and run it again",
    "invalid_contract": "fix the .proto where the message says (file, line, column) and run it again",
    "not_found": "check the name or path (`model-runner models` lists the served models)",
    "model_error": "the model itself failed: its exception is in the message",
    "not_ready": "the service is starting or a model failed to load: see `serve`'s output",
}


def explain(err: ModelRunnerError, limit: int = 12) -> str:
    """The error's message plus one line per problem in ``detail["problems"]`` (bind errors,
    metadata problems) or the model's own exception for a failed self-test."""
    lines = [err.message]
    detail = err.detail if isinstance(err.detail, dict) else {}
    problems = detail.get("problems")
    if isinstance(problems, list) and problems:
        # problems the message already spells out are not repeated
        problems = [
            p
            for p in problems
            if not (isinstance(p, dict) and p.get("reason") and p["reason"] in err.message)
            and not (isinstance(p, str) and p in err.message)
        ]
        for item in problems[:limit]:
            if isinstance(item, dict):
                where = " ".join(
                    x
                    for x in (
                        f"rpc {item['rpc']}" if item.get("rpc") else "",
                        f"field {item['field']}" if item.get("field") else "",
                        f"({item['message']})" if item.get("message") else "",
                    )
                    if x
                )
                lines.append(f"  - {where}: {item.get('reason', '')}".rstrip(": "))
            else:
                lines.append(f"  - {item}")
        if len(problems) > limit:
            lines.append(f"  ... and {len(problems) - limit} more")
    inner = detail.get("error")
    if isinstance(inner, dict) and (inner.get("java_class") or inner.get("exception_class")):
        cls = inner.get("java_class") or inner.get("exception_class")
        msg = inner.get("java_message") or inner.get("exception_message") or ""
        if not (msg and msg in err.message):
            lines.append(f"  the model raised {cls}: {msg}".rstrip(": "))
    lines += _contract_excerpt(detail)
    return "\n".join(lines)


def _contract_excerpt(detail: dict[str, Any], around: int = 3) -> list[str]:
    """The lines of a generated contract (onboarding's detail["generated_proto_text"]) around the line
    an error names, numbered as protoc numbers them: the contract itself is in a file the hint names."""
    text, line = detail.get("generated_proto_text"), detail.get("line")
    if not isinstance(text, str) or not isinstance(line, int):
        return []
    src = text.splitlines()
    first, last = max(1, line - around), min(len(src), line + around)
    out = [f"  generated model.proto, lines {first}-{last}:"]
    out += [f"  {'>' if n == line else ' '}{n:5} | {src[n - 1]}" for n in range(first, last + 1)]
    return out


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The options of :func:`add_model_options` as parsed."""
    from runner.serving.onboarding import ModelOptions  # noqa: PLC0415 (onboarding: only when used)

    return ModelOptions(
        class_name=args.class_name,
        name=args.name,
        methods=tuple(args.methods or ()),
        libs=tuple(str(x) for x in args.libs or ()),
        proto=args.proto,
        artifacts=args.artifacts,
        examples=tuple(args.examples or ()),
        requirements=args.requirements,
        config=getattr(args, "model_config", None),
    )


def build_bundle(
    args: argparse.Namespace,
    target: str,
    dest: Path,
    *,
    validate: bool = True,
    on_report: Callable[[ValidationReport], None] | None = None,
) -> Path:
    """Run onboarding for the parsed options into ``dest`` (a new folder); returns it."""
    from runner.serving import onboarding  # noqa: PLC0415

    return onboarding.bundle_from_source(
        target, model_options(args), dest=dest, validate=validate, on_report=on_report
    )


def run(args: argparse.Namespace) -> int:
    from runner.serving import onboarding  # noqa: PLC0415

    target: str = args.target
    if target.endswith(".py") and not onboarding.is_python_spec(target):
        return list_python_classes(Path(target), as_json=args.json)
    from runner.serving.acumos import is_acumos_dump  # noqa: PLC0415

    if (
        not onboarding.is_python_spec(target)
        and not args.class_name
        and not is_acumos_dump(Path(target))
        and not acumos_class(Path(target), args)
    ):
        return list_classes(Path(target), [str(x) for x in args.libs], as_json=args.json)

    reports: list[ValidationReport] = []
    with tempfile.TemporaryDirectory(prefix="mr-onboard-") as tmp:
        folder = build_bundle(args, target, Path(tmp) / "bundle", on_report=reports.append)
        meta = json.loads((folder / "metadata.json").read_text("utf-8"))
        proto_text = (folder / "model.proto").read_text("utf-8")
        from runner.bundle import write_bundle_zip  # noqa: PLC0415

        data = write_bundle_zip(folder)
    out: Path = args.output or Path(f"{meta['name']}.zip")
    if out.suffix.lower() != ".zip":
        out = out.with_suffix(out.suffix + ".zip") if out.suffix else out.with_suffix(".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)

    contract = _compile(proto_text)
    rpcs = contract.method_names()
    rpc, example = _first_example(meta, contract)
    curl = curl_line(meta["name"], rpc, example)
    report = reports[0] if reports else None
    bindings = dict(getattr(report, "bindings", {}) or {})
    outputs = dict(getattr(report, "outputs", {}) or {})
    if args.json:
        print(
            json.dumps(
                {
                    "bundle": str(out),
                    "name": meta["name"],
                    "runtime": meta["runtime"],
                    "entry_point": meta["entry_point"],
                    "methods": rpcs,
                    "size": len(data),
                    "bindings": _jsonable(bindings),
                    "outputs": _jsonable(outputs),
                    "proto": proto_text,
                    "curl": curl,
                },
                indent=2,
            )
        )
        return 0
    print(f"# contract ({meta['name']}/model.proto)")
    print(proto_text.rstrip())
    print()
    given = meta.get("examples") or {}
    for name in rpcs:
        bound = bindings.get(name) or {}
        how = " ".join(
            f"{k}={v}" for k, v in bound.items() if k in ("java_method", "python_method", "convention")
        )
        source = f"{len(given[name])} example(s)" if given.get(name) else "empty input"
        result = outputs.get(name) or []
        shown = json.dumps(result[0], separators=(",", ":")) if result else ""
        if len(shown) > 100:
            shown = shown[:97] + "..."
        print(f"self-test {name:<16} {how}  {source} -> {shown}".rstrip())
    print(
        f"bundle  {out}  ({_size(len(data))}, {meta['runtime']} {meta['entry_point']}, "
        f"methods: {', '.join(rpcs)}) - validated"
    )
    print(f"serve   model-runner serve {out}")
    print(f"push    model-runner push {meta['name']} {out}")
    print(f"call    {curl}")
    return 0


def acumos_class(jar: Path, args: argparse.Namespace) -> str | None:
    """The class an Acumos model's modelConfig.properties names (--config, --artifacts or the JAR):
    what `onboard` and `push` take instead of --class."""
    from runner.serving import onboarding  # noqa: PLC0415

    if not jar.is_file():
        return None
    values, _ = onboarding.acumos_config(jar, args.artifacts, getattr(args, "model_config", None))
    return values.get("modelClassName") or None


LISTED = 15  # candidates shown as text (--json gives every one)


def list_classes(jar: Path, libs: list[str], *, as_json: bool) -> int:
    """Print the candidate classes and methods of ``jar`` (onboard without --class), the model's own
    first, each method with the convention it would bind with; classes that cannot load say why."""
    from runner.serving import onboarding  # noqa: PLC0415

    cands = onboarding.list_candidates(jar, libs)
    if as_json:
        print(json.dumps({"jar": str(jar), "candidates": cands}, indent=2))
        return 0
    if not cands:
        print(f"{jar}: no public class with public methods found", file=sys.stderr)
        print("hint: is this the JAR of your model (not its sources or a dependency)?", file=sys.stderr)
        return 1
    own = [c for c in cands if not c.get("library")]
    shown = (own or cands)[:LISTED]
    library = len(cands) - len(own)
    print(
        f"{jar}: {len(cands)} candidate class(es)"
        + (f", {library} of them in library packages (listed last)" if library and own else "")
    )
    warned = False
    for cand in shown:
        if not cand.get("methods"):
            why = f"class {cand['missing']} is missing" if cand.get("missing") else cand.get("error")
            print(f"  {cand['class']}   cannot load: {why}")
            continue
        print(f"  {cand['class']}")
        for m in cand["methods"]:
            print(f"      {_method_text(m)}")
            if isinstance(m, dict) and m.get("warning"):
                names = ", ".join(m.get("parameters") or [])
                print(f"        ! compiled without -parameters: its fields would be named {names}")
                warned = True
    if len(cands) > len(shown):
        rest = [c for c in cands if c not in shown]
        families = sorted({".".join(c["class"].split(".")[:2]) for c in rest})
        more = ", ".join(families[:4]) + (", ..." if len(families) > 4 else "")
        print(f"  ... and {len(rest)} more ({more}); --json lists every one")
    if warned:
        print(f"warning: {onboarding.PARAMETERS_FLAG_HINT}")
    missing = sorted({str(c["missing"]) for c in shown if c.get("missing")})
    if missing:
        print(
            f"missing: {', '.join(missing)}: add the JAR(s) that hold them with --lib "
            "(a JAR, a folder of JARs or a class path, e.g. your build's runtime classpath)"
        )
    lib_args = "".join(f" --lib {shlex.quote(str(x))}" for x in libs)
    first = shown[0]
    if not first.get("methods") and first.get("missing"):
        print()
        print(f"next: model-runner onboard {jar}{lib_args} --lib DEPENDENCIES  (to list {first['class']})")
    elif loadable := [c for c in cands if c.get("methods")]:
        print()
        print(f"next: model-runner onboard {jar} --class {loadable[0]['class']}{lib_args}")
    return 0


def list_python_classes(path: Path, *, as_json: bool) -> int:
    """`onboard module.py` without a class: the classes it defines (read, not imported)."""
    from runner.serving import onboarding  # noqa: PLC0415

    cands = onboarding.python_candidates(path)
    if as_json:
        print(json.dumps({"module": str(path), "candidates": cands}, indent=2))
        return 0
    if not cands:
        raise BadInput(
            f"{path} defines no public class with public methods",
            {"hint": "a Python model is a class whose public methods are the rpcs"},
        )
    print(f"{path}: {len(cands)} candidate class(es)")
    for cand in cands:
        print(f"  {cand['class']}")
        for m in cand["methods"]:
            print(f"      {m}")
    print()
    print(f"next: model-runner onboard {cands[0]['class']}")
    return 0


def _method_text(m: Any) -> str:
    if isinstance(m, str):
        return m
    if isinstance(m, dict):
        conv = f"   [{m['convention']}]" if m.get("convention") else ""
        sig = m.get("signature")
        if sig:
            return _with_names(short_signature(str(sig)), m.get("parameters") or []) + conv
        params = m.get("parameters") or m.get("params") or []
        ptxt = ", ".join(
            p if isinstance(p, str) else " ".join(str(x) for x in (p.get("type"), p.get("name")) if x)
            for p in params
        )
        ret = m.get("returns") or m.get("return_type") or m.get("return") or ""
        return f"{ret} {m.get('name', '?')}({ptxt}){conv}".strip()
    return str(m)


def _with_names(sig: str, names: list[str]) -> str:
    """``double risk(double,String)`` + [age, city] -> ``double risk(double age, String city)``."""
    head, paren, rest = sig.partition("(")
    inner, close, tail = rest.rpartition(")")
    if not paren or not close or not names:
        return sig
    types, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            types.append(inner[start:i].strip())
            start = i + 1
    types.append(inner[start:].strip())
    if len(types) != len(names):
        return sig
    return f"{head}({', '.join(f'{t} {n}' for t, n in zip(types, names))}){tail}"


def short_signature(sig: str) -> str:
    """``public java.util.List<a.b.Out> a.b.Model.predict(java.util.List<a.b.In>)`` ->
    ``List<Out> predict(List<In>)``: what a person reads first."""
    sig = re.sub(r"^(public|protected|private|final|synchronized|native|\s)+", "", sig).strip()
    sig = re.sub(r"(?<![\w$])(?:[a-z_][\w]*\.)+(?=[A-Za-z_$])", "", sig)  # package qualifiers
    return re.sub(r"(?<![\w$])[A-Z][\w$]*\.(?=[a-z_$][\w$]*\()", "", sig)  # the declaring class


def _compile(proto_text: str) -> Contract:
    from runner.contract import Contract  # noqa: PLC0415

    return Contract.compile(proto_text)


def _first_example(meta: dict[str, Any], contract: Contract) -> tuple[str, Any]:
    """The rpc and input of the curl line: the first example, else a sample built from the contract."""
    rpcs = contract.method_names()
    examples = meta.get("examples") or {}
    for rpc in rpcs:
        if examples.get(rpc):
            return rpc, examples[rpc][0]
    if not rpcs:
        return "Method", {}
    from runner.contract import descriptor_of  # noqa: PLC0415

    return rpcs[0], sample_json(descriptor_of(contract.input_class(rpcs[0])))


def sample_json(desc: Descriptor, depth: int = 0) -> dict[str, Any]:
    """A plausible proto3-JSON value of a message (for a curl line to edit): 1.0 for numbers, "text",
    true, one element per repeated field, nested messages up to three levels."""
    from google.protobuf.descriptor import FieldDescriptor as F  # noqa: PLC0415

    out: dict[str, Any] = {}
    for f in desc.fields:
        if f.message_type is not None:
            if f.message_type.GetOptions().map_entry:
                value: Any = {}
            elif depth >= 3 or f.message_type.full_name.startswith("google.protobuf."):
                continue
            else:
                value = sample_json(f.message_type, depth + 1)
        elif f.type == F.TYPE_ENUM:
            value = f.enum_type.values[-1].name if f.enum_type is not None and f.enum_type.values else 0
        elif f.type == F.TYPE_STRING:
            value = "text"
        elif f.type == F.TYPE_BOOL:
            value = True
        elif f.type == F.TYPE_BYTES:
            value = ""
        elif f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            value = 1.0
        else:
            value = 1
        is_repeated = getattr(f, "is_repeated", None)
        # an older protobuf has only ``label`` (which the stubs of newer releases no longer declare)
        repeated = is_repeated if isinstance(is_repeated, bool) else getattr(f, "label") == F.LABEL_REPEATED
        if repeated and not (f.message_type is not None and f.message_type.GetOptions().map_entry):
            value = [value]
        out[f.name] = value
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def curl_line(name: str, rpc: str, example: Any, url: str = "http://127.0.0.1:8080") -> str:
    body = json.dumps(example, separators=(",", ":")).replace("'", "'\\''")
    return (
        f"curl -s -X POST {url}/models/{name}/methods/{rpc} -H 'Content-Type: application/json' -d '{body}'"
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
