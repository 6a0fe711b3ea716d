"""Onboarding: from a JAR + class (or a Python class) to a validated bundle folder.

Transport-free: `model-runner onboard`, `model-runner push JAR` and `model-runner serve model.jar --class X`
all call :func:`bundle_from_jar` / :func:`bundle_from_python`. The bundle is laid out as docs/bundle.md
describes (metadata.json, model.proto, artifacts), then checked with :func:`runner.serving.validate.validate_bundle`
(contract compiles, model loads and binds, examples or generated inputs run through it).
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.bundle import ACUMOS_CONFIG_FILE, NAME_RE, REQUIREMENTS_FILE, open_bundle
from runner.errors import BadInput, InvalidBundle, ModelRunnerError, NotFound
from runner.serving.validate import ValidationReport, validate_bundle
from runner.settings import Settings

_GENERIC_STEMS = {"model", "main", "app", "classes", "lib", "libs"}


# ---------------------------------------------------------------------------------------------- names
def default_name(*, class_name: str | None = None, source: Path | str | None = None) -> str:
    """A model name: the JAR's file name without version (``scorer-1.2.jar`` -> ``scorer``) unless it is
    generic (``model.jar``), else the class's simple name in kebab case (``org.acme.IrisClassifier`` ->
    ``iris-classifier``, ``iris_model:IrisClassifier`` -> ``iris-classifier``)."""
    candidates: list[str] = []
    if source is not None:
        stem = re.sub(
            r"[-_.]v?\d+(\.\d+)*([-.](SNAPSHOT|RELEASE))?$", "", Path(source).stem, flags=re.IGNORECASE
        )
        if stem.lower() not in _GENERIC_STEMS:
            candidates.append(stem)
    if class_name:
        simple = class_name.split(":")[-1].split(".")[-1].split("$")[-1]
        candidates.append(re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", simple))
    for raw in candidates:
        name = re.sub(r"[^a-z0-9_.-]+", "-", raw.lower()).strip("-._")[:63]
        if name:
            return name
    return "model"


def check_name(name: str) -> str:
    """``name`` if it is a valid model name, else BadInput saying what is allowed."""
    if not NAME_RE.fullmatch(name):
        raise BadInput(
            f"invalid model name {name!r}",
            {
                "name": name,
                "hint": "use lowercase letters, digits, '-', '_' and '.', starting with a "
                "letter or digit, at most 63 characters (e.g. --name iris)",
            },
        )
    return name


# ---------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class ModelOptions:
    """What describes a model to onboard, as `onboard`, `serve` and `push` take it (one definition of the
    flags: runner.cli.onboard.add_model_options). ``libs`` are ``--lib`` values as given: JARs, folders of
    JARs or class paths (:func:`expand_libs`)."""

    class_name: str | None = None
    name: str | None = None
    methods: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()
    proto: Path | None = None
    artifacts: Path | None = None
    examples: tuple[str, ...] = ()
    requirements: Path | None = None
    """Python: a requirements.txt for the bundle (its own environment: runner.runtimes.environments)."""
    config: Path | None = None
    """Java: an Acumos modelConfig.properties (class, methods, input type), copied into the bundle."""

    def given(self) -> list[str]:
        """The flags given that only a JAR or a Python class can take (not a ready bundle)."""
        flags = (
            ("--class", self.class_name),
            ("--method", self.methods),
            ("--lib", self.libs),
            ("--proto", self.proto),
            ("--artifacts", self.artifacts),
            ("--example", self.examples),
            ("--requirements", self.requirements),
            ("--config", self.config),
        )
        return [flag for flag, value in flags if value]


def bundle_from_source(
    source: str,
    options: ModelOptions,
    *,
    dest: Path,
    validate: bool = True,
    on_report: Callable[[ValidationReport], None] | None = None,
    settings: Settings | None = None,
) -> Path:
    """A JAR (with ``options.class_name``) or a Python class (``module.py:Class``) -> a bundle folder at
    ``dest``: :func:`bundle_from_jar` or :func:`bundle_from_python` with every option; an Acumos dump
    (a folder or zip) -> :func:`bundle_from_acumos`."""
    from runner.serving import acumos  # noqa: PLC0415 (Acumos dumps: only when given one)

    if not is_python_spec(source) and acumos.is_acumos_dump(Path(source)):
        extra = [f for f in options.given() if f != "--example"]
        if extra:
            raise BadInput(
                f"{'/'.join(extra)} apply to a JAR or a Python class; {source} is an Acumos dump",
                {"hint": "an Acumos dump takes only --name and --example"},
            )
        return bundle_from_acumos(
            Path(source),
            name=options.name,
            examples=list(options.examples),
            dest=dest,
            validate=validate,
            on_report=on_report,
            settings=settings,
        )
    if is_python_spec(source):
        for flag, value in (
            ("--class", options.class_name),
            ("--method", options.methods),
            ("--lib", options.libs),
            ("--config", options.config),
        ):
            if value:
                raise BadInput(
                    f"{flag} is for Java models; {source} is a Python class", {"hint": "drop " + flag}
                )
        return bundle_from_python(
            source,
            name=options.name,
            examples=list(options.examples),
            artifacts=options.artifacts,
            proto=options.proto,
            requirements=options.requirements,
            dest=dest,
            validate=validate,
            on_report=on_report,
            settings=settings,
        )
    if options.requirements is not None:
        raise BadInput(
            f"--requirements is for Python models; {source} is a JAR", {"hint": "drop --requirements"}
        )
    return bundle_from_jar(
        Path(source),
        class_name=options.class_name,
        methods=list(options.methods) or None,
        libs=options.libs,
        proto=options.proto,
        artifacts=options.artifacts,
        name=options.name,
        examples=list(options.examples),
        config=options.config,
        dest=dest,
        validate=validate,
        on_report=on_report,
        settings=settings,
    )


def expand_libs(specs: Iterable[str | Path]) -> list[Path]:
    """``--lib`` values as the JAR files they name, in order, each once. A value is a JAR; a folder (its
    ``*.jar`` files, sorted, not its subfolders); or a class path of those joined by ``:`` (os.pathsep) in
    which ``dir/*`` means every JAR in ``dir``, as ``java -cp`` reads it. Paths that do not exist are
    returned as given (the caller's JAR check names them)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        text = str(spec)
        whole = Path(text).expanduser()
        parts = [text] if whole.exists() or os.pathsep not in text else text.split(os.pathsep)
        for part in (p.strip() for p in parts):
            if not part:
                continue
            for jar in _lib_jars(Path(part).expanduser(), text):
                key = jar.resolve()
                if key not in seen:
                    seen.add(key)
                    out.append(jar)
    return out


def _lib_jars(path: Path, spec: str) -> list[Path]:
    wildcard = path.name in ("*", "*.jar") and not path.exists()
    folder = path.parent if wildcard else path
    if not wildcard and not path.is_dir():
        return [path]
    if not folder.is_dir():
        raise NotFound(
            f"--lib {spec}: no such folder {folder}",
            {"path": str(folder), "hint": "check the path (a class path entry dir/* needs the folder dir)"},
        )
    jars = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".jar")
    if not jars:
        raise BadInput(
            f"--lib {spec}: {folder} holds no .jar file",
            {
                "path": str(folder),
                "hint": "pass the folder of your dependency JARs (e.g. `gradle installDist`'s lib/, "
                "`mvn dependency:copy-dependencies`' target/dependency/); a folder of .class files "
                "must be packaged first (jar cf deps.jar -C classes .)",
            },
        )
    return jars


# ---------------------------------------------------------------------------------------------- Java
def bundle_from_jar(
    jar: Path,
    *,
    class_name: str | None,
    methods: list[str] | None = None,
    libs: Sequence[Path | str] = (),
    proto: Path | None = None,
    artifacts: Path | None = None,
    name: str | None = None,
    examples: list[str] | None = None,
    config: Path | None = None,
    dest: Path,
    validate: bool = True,
    on_report: Callable[[ValidationReport], None] | None = None,
    settings: Settings | None = None,
) -> Path:
    """Build a Java bundle folder at ``dest`` from ``jar`` and ``class_name`` and validate it.

    An Acumos model needs neither: its modelConfig.properties (``config``, else in ``artifacts``, else
    at the root of the JAR: :func:`acumos_config`) names the class (``modelClassName``) and, in the
    comma list form of ``modelMethod``, the methods, each bound to the rpc of the same name. The file
    goes into the bundle, where the runtime reads the input type and the rest.

    The contract is ``proto`` when given (bound to the class), otherwise generated from the class's
    method signatures (``methods`` restricts which). ``examples`` are proto3 JSON inputs, each
    ``RPC=JSON`` or a bare JSON object (given to the rpc whose input it fits); ``@file`` reads one from
    a file. ``libs`` are JARs, folders of JARs or class paths (:func:`expand_libs`). Without ``class_name``
    it raises BadInput whose ``detail["candidates"]`` lists the classes and methods found (ranked, as
    :func:`list_candidates`). ``validate=False`` skips running the model (push: the service validates);
    ``on_report`` receives runner.serving.validate's ValidationReport (bindings, outputs). ``settings``
    (default: the built-in defaults) start the JVM if this call is the first to need it.
    """
    settings = settings or Settings()
    jar = Path(jar)
    _check_jar(jar, role="model JAR")
    jars = expand_libs(libs)
    for lib in jars:
        _check_jar(lib, role="library JAR")
    # a build's folder of runtime JARs (gradle installDist's lib/) holds the model JAR itself too
    jars = [lib for lib in jars if not filecmp.cmp(lib, jar, shallow=False)]
    acumos, acumos_source = acumos_config(jar, artifacts, config)
    class_name = class_name or acumos.get("modelClassName") or None
    acumos_methods = [m.strip() for m in acumos.get("modelMethod", "").split(",") if m.strip()]
    if len(acumos_methods) < 2:
        acumos_methods = []  # the single form: the runtime binds it to rpcs without a method of their own
    if acumos_methods and proto is None and not methods:
        methods = acumos_methods  # the contract generated from exactly these methods
    if not class_name:
        cands = list_candidates(jar, jars, settings=settings)
        loadable = [c for c in cands if c.get("methods")]
        raise BadInput(
            f"{jar.name}: choose the model class with --class",
            {
                "jar": str(jar),
                "candidates": cands,
                "hint": "rerun with --class FQCN, e.g. --class "
                + (loadable[0]["class"] if loadable else "com.acme.Model"),
            },
        )
    name = check_name(name or default_name(class_name=class_name, source=jar))

    required: dict[str, list[str]] = {}
    if proto is not None:
        proto_text = _read_text(Path(proto), "contract (.proto)")
    else:
        from runner.runtimes.java import (  # noqa: PLC0415 (starts the JVM: only when needed)
            generate_java_contract,
            require_java_primitives,
        )

        proto_text = generate_java_contract(jar, class_name, jars, methods=methods, settings=settings)
        # primitive parameters and record components cannot be absent: required, not silently 0
        with _showing_contract(lambda: proto_text, name):
            proto_text, required = require_java_primitives(
                jar, class_name, jars, proto_text, settings=settings
            )

    with _filling(dest), _showing_contract(lambda: None if proto is not None else proto_text, name):
        shutil.copyfile(jar, dest / "model.jar")
        if jars:
            (dest / "lib").mkdir()
            taken: set[str] = set()
            for lib in jars:
                # two JARs of one file name (from different folders) both go in: the second one renamed
                target = lib.name
                for i in range(2, len(jars) + 2):
                    if target.lower() not in taken:
                        break
                    target = f"{lib.stem}-{i}{lib.suffix}"
                taken.add(target.lower())
                shutil.copyfile(lib, dest / "lib" / target)
        if artifacts is not None:
            _copy_artifacts(Path(artifacts), dest)
        if config is not None:
            if (dest / ACUMOS_CONFIG_FILE).exists():
                raise BadInput(
                    f"--config {config}: the --artifacts folder has a {ACUMOS_CONFIG_FILE} already",
                    {"hint": f"give one of them: drop --config or that {ACUMOS_CONFIG_FILE}"},
                )
            shutil.copyfile(config, dest / ACUMOS_CONFIG_FILE)
        (dest / "model.proto").write_text(proto_text, "utf-8")
        meta: dict[str, Any] = {
            "name": name,
            "runtime": "java",
            "entry_point": class_name,
            "description": f"{class_name} from {jar.name}",
        }
        overrides: dict[str, dict[str, str]] = {}
        if acumos_methods and proto is not None:
            overrides = _acumos_overrides(proto_text, acumos_methods, acumos_source)
        if methods and proto is not None:
            overrides.update(_method_overrides(proto_text, methods))
        elif proto is None and generated_method_overrides(proto_text):
            overrides.update(generated_method_overrides(proto_text))
        if overrides:
            meta["methods"] = overrides
        meta["examples"] = _parse_examples(examples or [], proto_text)
        if required:
            meta["required"] = required
        _finish(dest, meta, validate, on_report, settings)
    return dest


def acumos_config(
    jar: Path, artifacts: Path | None = None, config: Path | None = None
) -> tuple[dict[str, str], str]:
    """The keys of an Acumos model's modelConfig.properties and where they were read: ``config``, else
    ``artifacts``/modelConfig.properties, else the one at the root of ``jar`` (the runtime's order:
    the bundle's file before the JAR's). ({}, "") when there is none."""
    if config is not None:
        return _property_values(_read_text(Path(config), "Acumos configuration")), str(config)
    if artifacts is not None and (Path(artifacts) / ACUMOS_CONFIG_FILE).is_file():
        path = Path(artifacts) / ACUMOS_CONFIG_FILE
        return _property_values(_read_text(path, "Acumos configuration")), str(path)
    try:
        with zipfile.ZipFile(jar) as zf:
            values = _properties(zf, ACUMOS_CONFIG_FILE)
    except (OSError, zipfile.BadZipFile):
        return {}, ""
    return values, (f"{jar}!/{ACUMOS_CONFIG_FILE}" if values else "")


def _acumos_overrides(proto_text: str, methods: list[str], source: str) -> dict[str, dict[str, str]]:
    """The comma list form of ``modelMethod``: each method serves the rpc of the same name (or the same
    name but for case, ``classify`` for ``Classify``); one that names no rpc is refused."""
    rpcs = _rpc_names(proto_text)
    out: dict[str, dict[str, str]] = {}
    for method in methods:
        rpc = method if method in rpcs else next((r for r in rpcs if r.lower() == method.lower()), None)
        if rpc is None:
            raise BadInput(
                f"modelMethod ({source}) names {method}, but the contract has no rpc {method}",
                {
                    "method": method,
                    "rpcs": rpcs,
                    "hint": "in the list form each method serves the rpc of its name: rename the rpc, "
                    "or bind it with --method RPC=" + method,
                },
            )
        out[rpc] = {"java_method": method}
    return out


def list_candidates(
    jar: Path, libs: Sequence[Path | str] = (), *, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Classes in ``jar`` that could be a model, the model's own first (:func:`rank_candidates`).

    Each is ``{"class", "methods", "library"}``; each method ``{"name", "signature", "static",
    "convention", "parameters"}`` (the convention it would bind with to a generated contract) plus
    ``"warning"`` when its parameter names were not compiled in. A class that cannot load has no methods
    but ``"error"``, ``"missing"`` (the absent class, when that is the cause) and ``"hint"``.
    """
    jar = Path(jar)
    _check_jar(jar, role="model JAR")
    jars = expand_libs(libs)
    for lib in jars:
        _check_jar(lib, role="library JAR")
    from runner.runtimes.java import java_candidates  # noqa: PLC0415 (starts the JVM: only when needed)

    cands = java_candidates(jar, jars, settings=settings or Settings())
    for cand in cands:
        if cand.get("missing"):
            cand["hint"] = (
                f"class {cand['missing']} is missing: add the JAR that holds it with --lib "
                "(e.g. from your build's runtime classpath)"
            )
        elif cand.get("error"):
            cand["hint"] = f"cannot load: {cand['error']}"
        for method in cand.get("methods") or []:
            if isinstance(method, dict) and method.pop("parameter_names_missing", False):
                names = ", ".join(method.get("parameters") or [])
                method["warning"] = (
                    f"parameter names were not compiled in ({names}): the contract would name its fields "
                    f"after them; {PARAMETERS_FLAG_HINT}"
                )
    return rank_candidates(cands, jar)


PARAMETERS_FLAG_HINT = (
    "compile with javac -parameters (Gradle: tasks.withType(JavaCompile) { options.compilerArgs << "
    "'-parameters' }; Maven: <maven.compiler.parameters>true</maven.compiler.parameters>)"
)

# Packages of common libraries (and of the JDK): their classes are listed after the model's own.
LIBRARY_PACKAGES = (
    "ai.djl",
    "ai.onnxruntime",
    "ch.qos.logback",
    "com.esotericsoftware",
    "com.fasterxml",
    "com.google",
    "com.microsoft.ml",
    "com.squareup",
    "com.sun",
    "io.micrometer",
    "io.netty",
    "it.unimi",
    "jakarta",
    "java",
    "javax",
    "jdk",
    "kotlin",
    "kotlinx",
    "lombok",
    "ml.dmlc",
    "net.bytebuddy",
    "okhttp3",
    "okio",
    "org.antlr",
    "org.apache",
    "org.bouncycastle",
    "org.checkerframework",
    "org.codehaus",
    "org.deeplearning4j",
    "org.dmg",
    "org.eclipse",
    "org.glassfish",
    "org.hibernate",
    "org.jboss",
    "org.jetbrains",
    "org.joda",
    "org.jpmml",
    "org.json",
    "org.nd4j",
    "org.objectweb",
    "org.slf4j",
    "org.springframework",
    "org.tensorflow",
    "org.w3c",
    "org.xml",
    "org.yaml",
    "scala",
    "smile",
    "sun",
    "weka",
)
# a package segment that marks relocated (shaded) library code inside an application's namespace
_SHADED_SEGMENTS = {
    "shaded",
    "shade",
    "repackaged",
    "relocated",
    "thirdparty",
    "third_party",
    "vendor",
    "vendored",
}
_MODEL_LIKE = re.compile(
    r"(Model|Scorer|Classifier|Predictor|Regressor|Estimator|Evaluator|Recommender|Detector|Ranker"
    r"|Forecaster)$"
)


def is_library_package(package: str) -> bool:
    """Whether ``package`` belongs to a well-known library (or the JDK), or is shaded library code."""
    if any(package == p or package.startswith(p + ".") for p in LIBRARY_PACKAGES):
        return True
    return bool(_SHADED_SEGMENTS.intersection(package.split(".")))


def rank_candidates(cands: list[dict[str, Any]], jar: Path) -> list[dict[str, Any]]:
    """``cands`` with the model's own classes first; sets each one's ``"library"``.

    In order: the class an Acumos ``modelConfig.properties`` names (``modelClassName``); classes outside
    library packages (:data:`LIBRARY_PACKAGES`, shaded code) before those in them; by package distance
    from the manifest's main class (``Start-Class``, else ``Main-Class``, unless a library's launcher)
    when the JAR has one; classes of small package families (``com.acme``: the model's own code) before
    those of large ones (a fat JAR's other libraries); classes whose methods take or return types of
    their own family (the model's input and output classes) first; classes with instance methods before
    static utilities; model-like names (``...Model``, ``...Scorer``, ``...Classifier``, ...); then the
    family's size and the name. A family's classes stay together (its shaded library code apart),
    where its best class ranks.
    """
    main, pinned, families = _jar_facts(jar)
    anchor = _package(main).split(".") if main else None

    def key(cand: dict[str, Any]) -> tuple[Any, ...]:
        cls = str(cand.get("class", ""))
        package = _package(cls)
        family = _family(package)
        distance = 0
        if anchor is not None:
            parts = package.split(".") if package else []
            common = 0
            for a, b in zip(parts, anchor):
                if a != b:
                    break
                common += 1
            distance = len(parts) + len(anchor) - 2 * common
        methods = [m for m in cand.get("methods") or [] if isinstance(m, dict)]
        own_types = bool(family) and any(
            family + "." in str(m.get("signature", "")).replace(f"{cls}.{m.get('name')}(", "(")
            for m in methods
        )
        static_only = bool(methods) and all(m.get("static") for m in methods)
        size = families.get(family, 0)
        return (
            cls not in pinned,
            bool(cand["library"]),
            distance,
            size > _LARGE_FAMILY,
            not own_types,
            static_only,
            not _MODEL_LIKE.search(cls.rsplit(".", 1)[-1]),
            size,
            package,
            cls,
        )

    for cand in cands:
        cand["library"] = is_library_package(_package(str(cand.get("class", ""))))
    # a family's classes (its library code apart) stay together, placed where its best class ranks
    keys = {id(cand): key(cand) for cand in cands}

    def group(cand: dict[str, Any]) -> tuple[str, bool]:
        return _family(_package(str(cand.get("class", "")))), bool(cand["library"])

    best: dict[tuple[str, bool], tuple[Any, ...]] = {}
    for cand in cands:
        best[group(cand)] = min(best.get(group(cand), keys[id(cand)]), keys[id(cand)])
    return sorted(cands, key=lambda c: (best[group(c)], keys[id(c)]))


_LARGE_FAMILY = 200  # classes: more than this in one package family is a library's (or a large app's)


def _package(class_name: str) -> str:
    return class_name.rpartition(".")[0]


def _family(package: str) -> str:
    """The first two segments of a package (``com.acme.scoring`` -> ``com.acme``): one vendor's code."""
    return ".".join(package.split(".")[:2])


def _jar_facts(jar: Path) -> tuple[str | None, set[str], Counter[str]]:
    """(the main class of the manifest unless it is a library's launcher, the class a
    modelConfig.properties names, the number of non-library classes per package family)."""
    families: Counter[str] = Counter()
    pinned: set[str] = set()
    main: str | None = None
    try:
        with zipfile.ZipFile(jar) as zf:
            for name in zf.namelist():
                if name.endswith(".class") and not name.startswith("META-INF/"):
                    package = _package(name[: -len(".class")].replace("/", "."))
                    if not is_library_package(package):
                        families[_family(package)] += 1
            manifest = _properties(zf, "META-INF/MANIFEST.MF", continuation=True)
            config = _properties(zf, "modelConfig.properties")
    except (OSError, zipfile.BadZipFile):
        return None, pinned, families
    for value in (manifest.get("Start-Class"), manifest.get("Main-Class")):
        if value and not is_library_package(_package(value)):
            main = main or value
    if config.get("modelClassName"):
        pinned.add(config["modelClassName"])
    return main, pinned, families


def _properties(zf: zipfile.ZipFile, name: str, *, continuation: bool = False) -> dict[str, str]:
    """``key: value`` / ``key=value`` lines of a text entry (a manifest's continuation lines joined)."""
    try:
        text = zf.read(name).decode("utf-8", "replace")
    except KeyError:
        return {}
    return _property_values(text, continuation=continuation)


def _property_values(text: str, *, continuation: bool = False) -> dict[str, str]:
    """``key: value`` / ``key=value`` lines (``#`` and ``!`` comments skipped)."""
    lines: list[str] = []
    for line in text.splitlines():
        if continuation and line.startswith(" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    out: dict[str, str] = {}
    for line in lines:
        m = re.match(r"^\s*([^#!:=\s][^:=\s]*)\s*[:=]\s*(.*?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _check_jar(path: Path, *, role: str) -> None:
    if not path.exists():
        raise NotFound(f"{role} {path}: no such file", {"path": str(path), "hint": "check the path"})
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise InvalidBundle(
            f"{path} is not a JAR (not a zip archive)",
            {
                "path": str(path),
                "hint": "pass the JAR your build produced, e.g. build/libs/<project>.jar "
                "(`gradle build` / `mvn package`)",
            },
        )


def _method_overrides(proto_text: str, methods: list[str]) -> dict[str, dict[str, str]]:
    """With a given contract, ``--method`` pairs rpcs to Java methods: ``Rpc=javaMethod`` or, in rpc
    order, bare Java method names."""
    rpcs = _rpc_names(proto_text)
    out: dict[str, dict[str, str]] = {}
    bare = [m for m in methods if "=" not in m]
    for m in methods:
        if "=" in m:
            rpc, java = m.split("=", 1)
            out[rpc.strip()] = {"java_method": java.strip()}
    for rpc, java in zip([r for r in rpcs if r not in out], bare):
        out[rpc] = {"java_method": java}
    return out


# ---------------------------------------------------------------------------------------------- Python
def bundle_from_python(
    spec: str,
    *,
    name: str | None = None,
    examples: list[str] | None = None,
    artifacts: Path | None = None,
    proto: Path | None = None,
    requirements: Path | None = None,
    dest: Path,
    validate: bool = True,
    on_report: Callable[[ValidationReport], None] | None = None,
    settings: Settings | None = None,
) -> Path:
    """Build a Python bundle folder at ``dest`` from ``spec`` (``path/module.py:Class`` or
    ``package.module:Class``) and validate it. The contract is generated from the class's type hints
    (runner.runtimes.python.hints) unless ``proto`` is given. ``requirements`` (a requirements.txt)
    gives the model an environment of its own (runner.runtimes.environments)."""
    settings = settings or Settings()
    source, module_name, class_name, files = _resolve_python(spec)
    name = check_name(name or default_name(class_name=class_name))
    entry_point = f"{module_name}:{class_name}"
    before = set(sys.modules)
    required: dict[str, list[str]] = {}
    try:
        cls = _import_class(source, module_name, class_name, spec)
        if proto is not None:
            proto_text = _read_text(Path(proto), "contract (.proto)")
        else:
            proto_text = _proto_from_class(cls, spec, required)
    finally:
        # Forget the user's modules imported for inspection: the bundle's copy is what gets loaded.
        top = module_name.split(".")[0]
        for mod in set(sys.modules) - before:
            if mod == top or mod.startswith(top + "."):
                sys.modules.pop(mod, None)

    with _filling(dest), _showing_contract(lambda: None if proto is not None else proto_text, name):
        for src, rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        if artifacts is not None:
            _copy_artifacts(Path(artifacts), dest)
        if requirements is not None:
            if (dest / REQUIREMENTS_FILE).exists():
                raise BadInput(
                    f"--requirements {requirements}: the bundle has a {REQUIREMENTS_FILE} already (from "
                    "--artifacts or beside the module)",
                    {"hint": f"give one of them: drop --requirements or that {REQUIREMENTS_FILE}"},
                )
            (dest / REQUIREMENTS_FILE).write_text(
                _read_text(Path(requirements), "requirements file"), "utf-8"
            )
        (dest / "model.proto").write_text(proto_text, "utf-8")
        meta = {
            "name": name,
            "runtime": "python",
            "entry_point": entry_point,
            "description": (cls.__doc__ or f"{entry_point}").strip().splitlines()[0],
            "examples": _parse_examples(examples or [], proto_text),
        }
        if required:
            meta["required"] = required
        if proto is None and generated_method_overrides(proto_text):
            meta["methods"] = generated_method_overrides(proto_text)
        _finish(dest, meta, validate, on_report, settings)
    return dest


# ---------------------------------------------------------------------------------------------- Acumos
def bundle_from_acumos(
    source: Path,
    *,
    name: str | None = None,
    examples: list[str] | None = None,
    dest: Path,
    validate: bool = True,
    on_report: Callable[[ValidationReport], None] | None = None,
    settings: Settings | None = None,
) -> Path:
    """Build the bundle serving an Acumos Python dump (a folder, or a zip of one) at ``dest`` and
    validate it (runner.serving.acumos has the layout). ``examples`` (``RPC=JSON`` / ``JSON`` /
    ``@file``) replace the generated input of their rpcs."""
    from runner.bundle import BundleLimits  # noqa: PLC0415
    from runner.serving import acumos  # noqa: PLC0415

    settings = settings or Settings()
    if name is not None:
        check_name(name)
    with contextlib.ExitStack() as stack:
        folder = Path(source)
        if folder.is_file():  # a zip of the dump, unpacked with an upload's checks
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mr-acumos-"))) / "dump"
            acumos.unpack_dump(Path(source), folder, BundleLimits.from_settings(settings))
        given = _parse_examples(examples or [], _read_text(folder / "model.proto", "the dump's contract"))
        with _filling(dest):
            meta = acumos.convert_dump(folder, dest, name=name, examples=given)
            _finish(dest, meta, validate, on_report, settings)
    return dest


def is_python_spec(target: str) -> bool:
    """``module.py:Class`` or ``package.module:Class`` (as opposed to a JAR or bundle path)."""
    if ":" not in target:
        return False
    left, _, right = target.rpartition(":")
    return bool(left) and right.isidentifier() and not left.endswith((".jar", ".zip"))


def python_candidates(path: Path) -> list[dict[str, Any]]:
    """Top-level classes of a .py file with their public methods, read without importing it:
    [{"class": "module.py:Class", "methods": ["name(params) -> ret", ...]}]."""
    import ast  # noqa: PLC0415

    try:
        tree = ast.parse(Path(path).read_text("utf-8"), filename=str(path))
    except OSError as exc:
        raise NotFound(f"{path}: {exc.strerror}", {"path": str(path)}) from None
    except SyntaxError as exc:
        raise InvalidBundle(
            f"{path}:{exc.lineno}: SyntaxError: {exc.msg}",
            {"file": str(path), "line": exc.lineno, "column": exc.offset},
        ) from None
    out = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        methods = []
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                args = [
                    a.arg + (f": {ast.unparse(a.annotation)}" if a.annotation else "")
                    for a in item.args.args
                    if a.arg not in ("self", "cls")
                ]
                ret = f" -> {ast.unparse(item.returns)}" if item.returns else ""
                methods.append(f"{item.name}({', '.join(args)}){ret}")
        if methods:
            out.append({"class": f"{path}:{node.name}", "methods": methods})
    return out


def _resolve_python(spec: str) -> tuple[Path, str, str, list[tuple[Path, str]]]:
    """(import root, module name, class name, files to copy as (source, relative path))."""
    if not is_python_spec(spec):
        raise BadInput(
            f"{spec!r} is not a Python class reference",
            {"hint": "use path/to/module.py:ClassName or package.module:ClassName"},
        )
    left, _, class_name = spec.rpartition(":")
    path = Path(left)
    if left.endswith(".py") or path.exists():
        if path.is_dir():
            raise BadInput(
                f"{left} is a folder; name the module file", {"hint": f"e.g. {left}/model.py:{class_name}"}
            )
        if not path.exists():
            raise NotFound(f"{left}: no such file", {"path": left, "hint": "check the path to the .py file"})
        if not path.stem.isidentifier():
            raise BadInput(
                f"{path.name}: a module file name must be a Python identifier",
                {"hint": "rename it, e.g. my_model.py"},
            )
        return path.parent.resolve(), path.stem, class_name, [(path, path.name)]
    module_name = left
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise BadInput(
            f"{module_name!r} is neither a .py file nor a module name",
            {"hint": "use path/to/module.py:ClassName or package.module:ClassName"},
        )
    top = module_name.split(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise NotFound(
            f"module {top!r} not found",
            {
                "sys_path": sys.path[:5],
                "hint": "run from the folder that holds it, or pass path/to/module.py:ClassName",
            },
        )
    files: list[tuple[Path, str]] = []
    if found.submodule_search_locations:  # a package: copy the whole package folder
        pkg_dir = Path(next(iter(found.submodule_search_locations)))
        root = pkg_dir.parent
        for p in sorted(pkg_dir.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                files.append((p, p.relative_to(root).as_posix()))
    else:
        origin = Path(found.origin or "")
        root = origin.parent
        files.append((origin, origin.name))
    return root.resolve(), module_name, class_name, files


def _import_class(root: Path, module_name: str, class_name: str, spec: str) -> type:
    """Import the user's module (from its own folder) to read the class's type hints; any failure is
    an InvalidBundle naming the file, line and exception."""
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # a user's module may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        where = _user_frame(exc, root)
        raise InvalidBundle(
            f"cannot import {module_name} ({spec}): {type(exc).__name__}: {exc}",
            {
                "module": module_name,
                "exception": type(exc).__name__,
                "message": str(exc),
                **where,
                "hint": "fix the error above; `python -c 'import "
                + module_name
                + "'` from "
                + str(root)
                + " shows the same",
            },
        ) from None
    finally:
        if added:
            try:
                sys.path.remove(str(root))
            except ValueError:
                pass
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        found = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and getattr(v, "__module__", None) == module.__name__
        )
        raise NotFound(
            f"{module_name} has no class {class_name}",
            {
                "module": module_name,
                "classes": found,
                "hint": ("classes defined there: " + ", ".join(found))
                if found
                else "define the class in that module",
            },
        )
    return cls


def _user_frame(exc: BaseException, root: Path) -> dict[str, Any]:
    if isinstance(exc, SyntaxError):
        return {"file": exc.filename, "line": exc.lineno, "column": exc.offset}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(root) in (f.filename or "")]
    if frames:
        return {"file": frames[-1].filename, "line": frames[-1].lineno}
    return {}


def _proto_from_class(cls: type, spec: str, required: dict[str, list[str]]) -> str:
    """The contract from the class's type hints; ``required`` receives the fields they make required."""
    from runner.runtimes.python import hints as pyinspect  # noqa: PLC0415

    try:
        return str(pyinspect.generate_proto(cls, required=required))
    except ModelRunnerError as exc:
        exc.detail.setdefault(
            "hint",
            "annotate each public method's parameters and return type "
            "(dataclasses become messages), or pass a contract with --proto",
        )
        raise
    except Exception as exc:  # noqa: BLE001
        raise InvalidBundle(
            f"cannot derive a contract from {spec}: {exc}",
            {
                "hint": "annotate each public method's parameter and return types, "
                "or pass a contract with --proto"
            },
        ) from None


# ---------------------------------------------------------------------------------------------- shared
@contextlib.contextmanager
def _filling(dest: Path) -> Iterator[None]:
    """An empty ``dest`` to write a bundle into; removed again if anything fails on the way."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BadInput(f"{dest} exists and is not empty", {"hint": "choose an empty or new folder"})
    dest.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _finish(
    dest: Path,
    meta: dict[str, Any],
    validate: bool,
    on_report: Callable[[ValidationReport], None] | None,
    settings: Settings,
) -> None:
    """Write metadata.json, then run the bundle's self-test (examples, or generated inputs)."""
    _write_metadata(dest, meta)
    if validate:
        report = validate_bundle(open_bundle(dest), settings=settings)
        if on_report is not None:
            on_report(report)


def _read_text(path: Path, role: str) -> str:
    if not path.is_file():
        raise NotFound(f"{role} {path}: no such file", {"path": str(path)})
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{role} {path} is not UTF-8 text", {"path": str(path)}) from None


def _copy_artifacts(src: Path, dest: Path) -> None:
    if not src.is_dir():
        raise NotFound(f"artifacts folder {src}: no such folder", {"path": str(src)})
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if rel.as_posix() in ("metadata.json", "model.proto", "model.jar"):
            raise BadInput(
                f"{p}: an artifact may not be named {rel}", {"hint": "these names are the bundle's own"}
            )
        target = dest / rel
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)


def _write_metadata(dest: Path, meta: dict[str, Any]) -> None:
    if not meta.get("examples"):
        meta.pop("examples", None)
    (dest / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")


_GENERATED_METHOD_RE = re.compile(
    r"^\s*rpc\s+(\w+)\s*\(.*//\s*(java_method|python_method):\s*(\S+)\s*$", re.MULTILINE
)


def generated_method_overrides(proto_text: str) -> dict[str, dict[str, str]]:
    """metadata.json ``methods`` for a generated contract: an rpc whose method the runtime would not
    find from the rpc's name (a Java method ``Score`` beside ``score``, a name proto cannot spell) ends
    its line with ``// java_method: NAME`` (or ``python_method``) - docs/java-conventions.md."""
    return {m.group(1): {m.group(2): m.group(3)} for m in _GENERATED_METHOD_RE.finditer(proto_text)}


@contextlib.contextmanager
def _showing_contract(text: Callable[[], str | None], name: str) -> Iterator[None]:
    """A core error raised inside names a copy of the generated contract, ``text()`` (None: the user's
    own contract, nothing to add): protoc's line numbers and the names in bind problems refer to it,
    and the bundle folder that held it is removed on failure."""
    try:
        yield
    except ModelRunnerError as exc:
        current = text()
        if current is not None and "generated_proto" not in exc.detail:
            fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".generated.proto")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(current)
            exc.detail["generated_proto"] = path
            exc.detail["generated_proto_text"] = current
            note = f"the generated contract is in {path} (the line numbers of model.proto refer to it)"
            hint = exc.detail.get("hint")
            exc.detail["hint"] = f"{hint}; {note}" if hint else note
        raise


def _rpc_names(proto_text: str) -> list[str]:
    from runner.contract import Contract  # noqa: PLC0415

    return Contract.compile(proto_text).method_names()


def _parse_examples(examples: Iterable[str], proto_text: str) -> dict[str, list[Any]]:
    """``RPC=JSON`` / ``JSON`` / ``@file`` strings -> {rpc: [json, ...]}, each checked against the rpc's
    input message (BadInput naming the example and the reason when it does not fit)."""
    examples = list(examples)
    if not examples:
        return {}
    from google.protobuf import json_format  # noqa: PLC0415

    from runner.contract import Contract  # noqa: PLC0415

    contract = Contract.compile(proto_text)
    rpcs = contract.method_names()
    out: dict[str, list[Any]] = {}
    for i, raw in enumerate(examples, 1):
        rpc: str | None = None
        text = raw.strip()
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", text, re.DOTALL)
        if m:
            rpc, text = m.group(1), m.group(2).strip()
            if rpc not in rpcs:
                raise BadInput(
                    f"example {i}: the contract has no method {rpc}",
                    {"methods": rpcs, "hint": "use one of: " + ", ".join(rpcs)},
                )
        if text.startswith("@"):
            text = _read_text(Path(text[1:]), f"example {i}")
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise BadInput(
                f"example {i} is not JSON: {exc}",
                {
                    "example": raw[:200],
                    "hint": "quote it for the shell, e.g. --example 'Classify={\"x\": 1}'",
                },
            ) from None
        targets = [rpc] if rpc else rpcs
        fits: list[str] = []
        reasons: dict[str, str] = {}
        for r in targets:
            try:
                json_format.ParseDict(doc, contract.input_class(r)())
                fits.append(r)
            except json_format.ParseError as exc:
                reasons[r] = str(exc)
        if not fits:
            raise BadInput(
                f"example {i} does not fit the input of " + (rpc or "any method"),
                {
                    "example": doc,
                    "reasons": reasons,
                    "hint": "use the input message's field names (see the contract)",
                },
            )
        out.setdefault(fits[0], []).append(doc)
    return out
