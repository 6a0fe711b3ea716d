"""``metadata.json`` of a bundle (docs/bundle.md) and the names of a bundle's fixed files."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.errors import InvalidBundle

METADATA_FILE = "metadata.json"
PROTO_FILE = "model.proto"
JAR_FILE = "model.jar"
ACUMOS_CONFIG_FILE = "modelConfig.properties"
"""An Acumos generic-java model's configuration (class, method, input and output types), at the root."""
REQUIREMENTS_FILE = "requirements.txt"
"""A Python bundle's own packages (pip requirement lines): the model runs in its own environment."""
RUNTIMES = ("java", "python")
CONVENTIONS = ("pojo", "params", "proto", "acumos")
ISOLATIONS = ("in-process", "process")
"""Where a model version runs: in the serving process, or in a child process of its own."""
CALL_MODES = ("guarded", "inline")
"""How a timed call runs: on a thread of its own (the caller answered at the deadline), or on the caller's."""
ACUMOS_ENTRY_POINT = "acumos.wrapped:load_model"
"""The entry point of a bundle made from a dump of the Acumos Python client: the dump kept under
ACUMOS_DIR, loaded with ``acumos.wrapped.load_model`` (runner.runtimes.python.acumos)."""
ACUMOS_DIR = "acumos"
"""Folder of such a bundle holding the dump's own files (metadata.json, model.zip)."""
ACUMOS_MODEL_ZIP = "model.zip"
"""In ACUMOS_DIR: the dump's archive (the pickled functions and the protobuf module Acumos generated)."""

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_JAVA_CLASS_RE = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
_PY_ENTRY_RE = re.compile(r"(?P<module>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)")
_RPC_RE = re.compile(r"[A-Za-z_]\w*")
_PYTHON_VERSION_RE = re.compile(r"3\.[0-9]{1,2}")


@dataclass
class Metadata:
    """``metadata.json`` of a bundle (docs/bundle.md)."""

    name: str
    runtime: str
    entry_point: str
    description: str = ""
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-rpc overrides: {"Classify": {"java_method": "classify", "convention": "pojo"}} or
    {"Classify": {"python_method": "classify"}}; an rpc not listed is bound by name. ``description``:
    what the rpc does (kept from an Acumos dump's methods)."""
    jvm_options: list[str] = field(default_factory=list)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """rpc -> list of inputs (proto3 JSON of the rpc's input message) run before a swap commits."""
    timeout_seconds: float | None = None
    required: dict[str, list[str]] = field(default_factory=dict)
    """message name -> fields a request must set (proto3 ``optional`` scalars, message fields or
    oneofs); checked against the contract by runner.contract.RequiredFields."""
    isolation: str | None = None
    """"in-process" or "process" (a child process of the serving process); None: the deployment's
    ``isolation`` setting decides."""
    calls: str | None = None
    """"guarded" (a timed call runs on a thread of its own, its caller answered at the deadline whatever the
    model does) or "inline" (on the request's own thread, no hand-off; the deadline is then cooperative:
    docs/bundle.md); None: the deployment's ``calls`` setting decides."""
    python: str | None = None
    """Python version ("3.9") a Python model runs under, in its own environment (docs/bundle.md)."""
    batching: dict[str, Any] | None = None
    """Adaptive batching of the rpcs with rows in and out: ``max_batch_size``, ``max_delay_ms``, ``methods``
    (checked against the contract by runner.serving.batching); None: every request is its own call."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown top-level keys, kept as they were (forward compatibility)."""

    @classmethod
    def from_dict(cls, data: Any) -> Metadata:
        """Parse and validate a JSON value; InvalidBundle names every problem found."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise _not_an_object()

        def text(key: str, required: bool) -> str:
            v = data.get(key)
            if v is None:
                if required:
                    problems.append(f"{key!r} is required")
                return ""
            if not isinstance(v, str):
                problems.append(f"{key!r} must be a string")
                return ""
            return v

        name = text("name", True)
        if name and not NAME_RE.fullmatch(name):
            problems.append(
                f"name {name!r} is not allowed: use 1-63 characters a-z 0-9 _ . - "
                "starting with a letter or digit"
            )
        runtime = text("runtime", True)
        if runtime and runtime not in RUNTIMES:
            problems.append(f"runtime {runtime!r} is not supported (use 'java' or 'python')")
        entry = text("entry_point", True)
        if entry and runtime == "java" and not _JAVA_CLASS_RE.fullmatch(entry):
            problems.append(f"entry_point {entry!r} is not a Java class name (e.g. org.acme.IrisModel)")
        if entry and runtime == "python" and not _PY_ENTRY_RE.fullmatch(entry):
            problems.append(f"entry_point {entry!r} must be 'module:Class' (e.g. iris_model:IrisClassifier)")
        description = text("description", False)

        methods = data.get("methods") or {}
        if not isinstance(methods, dict):
            problems.append("'methods' must be an object: rpc name -> overrides")
            methods = {}
        for rpc, ov in methods.items():
            if not _RPC_RE.fullmatch(rpc):
                problems.append(f"methods: {rpc!r} is not an rpc name")
            if not isinstance(ov, dict):
                problems.append(f"methods.{rpc} must be an object")
                continue
            for key in ("java_method", "python_method"):
                if key in ov and not (isinstance(ov[key], str) and ov[key]):
                    problems.append(f"methods.{rpc}.{key} must be a method name")
            if "description" in ov and not isinstance(ov["description"], str):
                problems.append(f"methods.{rpc}.description must be a string")
            conv = ov.get("convention")
            if conv is not None and conv not in CONVENTIONS:
                problems.append(f"methods.{rpc}.convention {conv!r} must be one of {', '.join(CONVENTIONS)}")

        jvm_options = data.get("jvm_options") or []
        if not isinstance(jvm_options, list) or not all(isinstance(o, str) and o for o in jvm_options):
            problems.append("'jvm_options' must be a list of strings")
            jvm_options = []
        if jvm_options and runtime == "python":
            problems.append("'jvm_options' applies only to runtime 'java'")

        examples = data.get("examples") or {}
        if not isinstance(examples, dict):
            problems.append("'examples' must be an object: rpc name -> list of inputs")
            examples = {}
        norm_examples: dict[str, list[dict[str, Any]]] = {}
        for rpc, items in examples.items():
            if isinstance(items, dict):  # a single example is accepted without the list
                items = [items]
            if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
                problems.append(f"examples.{rpc} must be a list of JSON objects (inputs of {rpc})")
                continue
            norm_examples[rpc] = items

        required = data.get("required") or {}
        if not isinstance(required, dict):
            problems.append("'required' must be an object: message name -> list of field names")
            required = {}
        norm_required: dict[str, list[str]] = {}
        for message, names in required.items():
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                problems.append(f"required.{message} must be a list of field names")
                continue
            norm_required[message] = list(dict.fromkeys(names))

        timeout = data.get("timeout_seconds")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            problems.append("'timeout_seconds' must be a positive number")
            timeout = None

        isolation = data.get("isolation")
        if isolation is not None and isolation not in ISOLATIONS:
            problems.append(f"'isolation' {isolation!r} must be one of {', '.join(map(repr, ISOLATIONS))}")
            isolation = None

        calls = data.get("calls")
        if calls is not None and calls not in CALL_MODES:
            problems.append(f"'calls' {calls!r} must be one of {', '.join(map(repr, CALL_MODES))}")
            calls = None

        python = data.get("python")
        if python is not None and not (isinstance(python, str) and _PYTHON_VERSION_RE.fullmatch(python)):
            problems.append(f"'python' must be a Python version like \"3.9\" (major.minor), not {python!r}")
            python = None
        if python is not None and runtime == "java":
            problems.append("'python' applies only to runtime 'python'")
        if entry == ACUMOS_ENTRY_POINT and python is None:
            problems.append(
                f"entry_point {ACUMOS_ENTRY_POINT!r} (an Acumos dump) needs 'python': the version that "
                "dumped it (its pickle loads only there)"
            )

        batching = data.get("batching")
        if batching is not None and not isinstance(batching, dict):
            problems.append("'batching' must be an object: max_batch_size, max_delay_ms, methods")
            batching = None

        if problems:
            raise InvalidBundle(
                f"{METADATA_FILE}: " + "; ".join(problems),
                detail={"file": METADATA_FILE, "problems": problems},
            )
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            name=name,
            runtime=runtime,
            entry_point=entry,
            description=description,
            methods={k: dict(v) for k, v in methods.items()},
            jvm_options=list(jvm_options),
            examples=norm_examples,
            timeout_seconds=float(timeout) if timeout is not None else None,
            required=norm_required,
            isolation=isolation,
            calls=calls,
            python=python,
            batching=dict(batching) if batching is not None else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Metadata:
        return cls.from_dict(_parse_json(text))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        if d["timeout_seconds"] is None:
            del d["timeout_seconds"]
        if not d["required"]:
            del d["required"]
        if d["isolation"] is None:
            del d["isolation"]
        if d["calls"] is None:
            del d["calls"]
        if d["python"] is None:
            del d["python"]
        if d["batching"] is None:
            del d["batching"]
        return {**d, **extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @property
    def acumos_dump(self) -> bool:
        """Whether the bundle is a dump of the Acumos Python client (kept under ACUMOS_DIR)."""
        return self.runtime == "python" and self.entry_point == ACUMOS_ENTRY_POINT

    @property
    def python_module(self) -> str:
        return self.entry_point.split(":", 1)[0]

    @property
    def python_class(self) -> str:
        return self.entry_point.split(":", 1)[1]


def metadata_object(text: str | bytes) -> dict[str, Any]:
    """The JSON object of ``metadata.json`` text, not validated further (unknown keys and all);
    InvalidBundle when the text is not JSON or not an object."""
    data = _parse_json(text)
    if not isinstance(data, dict):
        raise _not_an_object()
    return data


def _parse_json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise InvalidBundle(
            f"{METADATA_FILE} is not valid JSON{where}: {getattr(err, 'msg', err)}",
            detail={
                "file": METADATA_FILE,
                "line": getattr(err, "lineno", None),
                "column": getattr(err, "colno", None),
            },
        ) from err


def _not_an_object() -> InvalidBundle:
    return InvalidBundle(f"{METADATA_FILE} must hold a JSON object", detail={"file": METADATA_FILE})
