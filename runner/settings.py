"""Settings from one place: defaults here, overridden by a TOML file (``--config FILE`` or
MODEL_RUNNER_CONFIG; keys are the field names below), then by MODEL_RUNNER_* environment variables,
then by command-line flags (runner.cli builds a Settings and passes it down).

Every field is declared with its default and its rule (the type and the accepted range or syntax),
next to its documentation; docs/configuration.md lists them for operators. Every value read from a
source is checked against its rule, and a refused value is reported (BadInput) with its source, the
setting's name, the value and what is accepted, e.g.::

    environment variable MODEL_RUNNER_WORKERS='abc': workers must be an integer from 1 to 64

A Settings built directly in Python (tests, tools) is trusted; :meth:`Settings.validate` checks one and
:meth:`Settings.to_env` (the way child processes receive settings) always does.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from runner.errors import BadInput

ENV_PREFIX = "MODEL_RUNNER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
HINT = "docs/configuration.md lists every setting and the values it accepts"

T = TypeVar("T")


def default_repo_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "model-runner" / "repo"


# ----------------------------------------------------------------------------------------------- rules


class Refused(ValueError):
    """A value its rule does not accept (``wrong_type`` names the TOML type given instead)."""

    def __init__(self, wrong_type: str | None = None) -> None:
        super().__init__(wrong_type or "refused")
        self.wrong_type = wrong_type


class Rule:
    """The type and accepted values of one setting, in the three forms a value arrives in: text (an
    environment variable or a flag), a TOML value, or a Python value (Settings built in code)."""

    accepted: str = ""
    """What is accepted, as it reads after "must be": 'an integer from 1 to 64'."""
    toml_type: str = ""
    """The TOML type a settings file must use: 'integer', 'string', ..."""

    def from_text(self, raw: str) -> Any:
        raise NotImplementedError

    def from_toml(self, value: object) -> Any:
        raise NotImplementedError

    def from_python(self, value: object) -> Any:
        return self.from_toml(value)

    def to_text(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True)
class Int(Rule):
    lo: int
    hi: int | None = None

    @property
    def accepted(self) -> str:  # type: ignore[override]
        if self.hi is None:
            return f"an integer of at least {self.lo}"
        return f"an integer from {self.lo} to {self.hi}"

    toml_type = "integer"

    def from_text(self, raw: str) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise Refused
        return self.check(int(text))

    def from_toml(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused(_toml_type_of(value))
        return self.check(value)

    def check(self, value: int) -> int:
        if value < self.lo or (self.hi is not None and value > self.hi):
            raise Refused
        return value


@dataclass(frozen=True)
class Seconds(Rule):
    """A finite number of seconds in [lo, hi] (lo excluded when ``above``)."""

    lo: float
    hi: float
    above: bool = False

    @property
    def accepted(self) -> str:  # type: ignore[override]
        low = f"above {_num(self.lo)}" if self.above else f"from {_num(self.lo)}"
        return f"a number of seconds {low} {'and at most' if self.above else 'to'} {_num(self.hi)}"

    toml_type = "number"

    def from_text(self, raw: str) -> float:
        text = raw.strip()
        if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
            raise Refused  # no inf, nan, 1_000 or hex
        return self.check(float(text))

    def from_toml(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(_toml_type_of(value))
        return self.check(float(value))

    def check(self, value: float) -> float:
        if not math.isfinite(value) or value > self.hi:
            raise Refused
        if value < self.lo or (self.above and value == self.lo):
            raise Refused
        return value

    def to_text(self, value: Any) -> str:
        return repr(float(value))  # the shortest text that reads back as the same float


@dataclass(frozen=True)
class Text(Rule):
    """A string matching ``pattern`` (surrounding white space is dropped)."""

    pattern: str
    what: str

    @property
    def accepted(self) -> str:  # type: ignore[override]
        return self.what

    toml_type = "string"

    def from_text(self, raw: str) -> str:
        text = raw.strip()
        if not re.fullmatch(self.pattern, text):
            raise Refused
        return self.check(text)

    def from_toml(self, value: object) -> str:
        if not isinstance(value, str):
            raise Refused(_toml_type_of(value))
        return self.from_text(value)

    def check(self, value: str) -> str:
        return value


_HEAP_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_HEAP_BYTES = 8 << 20


@dataclass(frozen=True)
class HeapSize(Text):
    """The JVM's -Xmx syntax: bytes, or a number with a k, m, g or t suffix (either case)."""

    pattern: str = r"[0-9]+[kKmMgGtT]?"
    what: str = "a JVM heap size like 512m or 2g (digits with an optional k, m, g or t suffix), at least 8m"

    def check(self, value: str) -> str:
        unit = value[-1].lower() if value[-1].isalpha() else ""
        if int(value.rstrip("kKmMgGtT")) * _HEAP_UNITS[unit] < MIN_HEAP_BYTES:
            raise Refused  # the JVM refuses to start ("Too small maximum heap")
        return value


@dataclass(frozen=True)
class PathRule(Rule):
    accepted = "a non-empty path"
    toml_type = "string"

    def from_text(self, raw: str) -> Path:
        if not raw or "\0" in raw:
            raise Refused
        return Path(raw).expanduser()

    def from_toml(self, value: object) -> Path:
        if not isinstance(value, str):
            raise Refused(_toml_type_of(value))
        return self.from_text(value)

    def from_python(self, value: object) -> Path:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        return self.from_toml(value)


@dataclass(frozen=True)
class PathList(Rule):
    """Paths: an array of strings in TOML, separated by ':' (os.pathsep) in the environment (so a path
    cannot contain one: it could not reach a child process intact)."""

    accepted = "paths without ':', separated by ':' in the environment"
    toml_type = "array of strings"

    def from_text(self, raw: str) -> tuple[Path, ...]:
        return tuple(PathRule().from_text(p) for p in raw.split(os.pathsep) if p)

    def from_toml(self, value: object) -> tuple[Path, ...]:
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise Refused(_toml_type_of(value))
        if any(os.pathsep in p for p in value):
            raise Refused
        return tuple(PathRule().from_text(p) for p in value)

    def from_python(self, value: object) -> tuple[Path, ...]:
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list):
            value = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in value]
        return self.from_toml(value)

    def to_text(self, value: Any) -> str:
        return os.pathsep.join(str(p) for p in value)


@dataclass(frozen=True)
class JvmOptions(Rule):
    """JVM options, each starting with '-' and without white space (the environment form is
    space-separated, so an option with a space could not reach a child process intact)."""

    accepted = "JVM options, each starting with '-' and without spaces"
    toml_type = "array of strings"

    def from_text(self, raw: str) -> tuple[str, ...]:
        return tuple(self.option(o) for o in raw.split())

    def option(self, text: str) -> str:
        if len(text) < 2 or not text.startswith("-") or any(c.isspace() for c in text):
            raise Refused
        return text

    def from_toml(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
            raise Refused(_toml_type_of(value))
        return tuple(self.option(o) for o in value)

    def from_python(self, value: object) -> tuple[str, ...]:
        if isinstance(value, tuple):
            value = list(value)
        return self.from_toml(value)

    def to_text(self, value: Any) -> str:
        return " ".join(value)


@dataclass(frozen=True)
class Switch(Rule):
    """On or off: true/false (also 1/0, yes/no, on/off in text), a TOML boolean, a Python bool."""

    accepted = "true or false"
    toml_type = "boolean"

    def from_text(self, raw: str) -> bool:
        text = raw.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise Refused

    def from_toml(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise Refused(_toml_type_of(value))
        return value

    def to_text(self, value: Any) -> str:
        return "true" if value else "false"


def setting(default: T, rule: Rule) -> T:
    """A Settings field: its default and the rule every value from a source must pass."""
    return field(default=default, metadata={"rule": rule})


def setting_from(factory: Callable[[], T], rule: Rule) -> T:
    return field(default_factory=factory, metadata={"rule": rule})


PORT = Int(0, 65535)
COUNT = 64
BYTES = Int(1)
HOST = Text(r"[A-Za-z0-9._:%-]+", "a host name or IP address")
TOKEN = Text(r"[!-~]+", "a non-empty token of printable ASCII without spaces")
MAX_SECONDS = 86400.0
PATH_PREFIX = Text(
    r"(/[A-Za-z0-9._~-]+)+",
    "a URL path like /modelrunner ('/' then segments of letters, digits and . _ ~ -, no trailing '/')",
)


# -------------------------------------------------------------------------------------------- settings


@dataclass
class Settings:
    repo: Path = setting_from(default_repo_dir, PathRule())
    """Folder of the model repository (the embedded default store)."""
    http_host: str = setting("127.0.0.1", HOST)
    """Address HTTP and gRPC bind to."""
    http_port: int = setting(8080, PORT)
    """HTTP port (0 picks a free one)."""
    grpc_port: int = setting(50051, Int(-1, 65535))
    """gRPC port (0 picks a free one; -1 disables gRPC)."""
    grpc_processes: int = setting(2, Int(1, COUNT))
    """gRPC serving processes sharing the port (SO_REUSEPORT); two use both cores of a small machine
    (gRPC's Python machinery holds the GIL, Java model calls do not)."""
    workers: int = setting(2, Int(1, COUNT))
    """gunicorn worker processes, each with its own JVM and registry."""
    threads: int = setting(8, Int(1, 256))
    """Threads per HTTP worker."""
    http_server: str = setting("gunicorn", Text(r"gunicorn|granian", "gunicorn or granian"))
    """The HTTP server running the workers: gunicorn (the default) or granian (its WSGI interface;
    the optional dependency ``model-runner[granian]``); docs/operations.md says what each keeps."""
    admin_token: str | None = setting(None, TOKEN)
    """Bearer token for admin endpoints; when unset, read from admin_token_file."""
    admin_token_file: Path | None = setting(None, PathRule())
    """File holding the admin token; `serve` generates one (0600) in the repository when neither is set."""
    max_body_bytes: int = setting(256 * 1024 * 1024, BYTES)
    """Largest accepted request body (uploads included); larger answers 413."""
    client_header_timeout: float = setting(10.0, Seconds(0.0, 3600.0, above=True))
    """Longest a client may take to send a request line and headers (seconds); past it the HTTP worker
    answers 408 and closes the connection."""
    client_body_timeout: float = setting(30.0, Seconds(0.0, MAX_SECONDS, above=True))
    """Longest a client may take to send a request body (seconds), plus one second per
    client_body_min_rate bytes of it; past it the HTTP worker answers 408 and closes the connection."""
    client_body_min_rate: int = setting(64 * 1024, Int(1))
    """Slowest a long request body may arrive (bytes per second): its deadline grows by one second
    per client_body_min_rate bytes (see client_body_timeout)."""
    request_buffer_bytes: int = setting(1024 * 1024, Int(1024))
    """Request bodies up to this size are received in memory before a thread takes the request; larger
    ones (up to max_body_bytes) are received into a temporary file first."""
    max_message_bytes: int = setting(64 * 1024 * 1024, Int(1, 2**31 - 1))
    """Largest predict request / gRPC message (gRPC takes a 32-bit signed limit)."""
    bundle_max_total_bytes: int = setting(1024 * 1024 * 1024, BYTES)
    """Largest total uncompressed size of a bundle."""
    bundle_max_file_bytes: int = setting(512 * 1024 * 1024, BYTES)
    """Largest single file in a bundle."""
    bundle_max_entries: int = setting(10_000, Int(1))
    """Most entries (files and folders) in a bundle zip."""
    max_json_depth: int = setting(64, Int(1, 1000))
    """Deepest nesting accepted in a JSON body (Python's JSON decoder recurses: not beyond 1000)."""
    error_traces: bool = setting(False, Switch())
    """Send stack traces of failed calls (a model's Python traceback or Java stack) to callers in the
    error detail; off, they are only logged, under the request id the answer gives."""
    poll_interval: float = setting(0.1, Seconds(0.01, 60.0))
    """How often a serving process checks the repository for new current versions (seconds); the
    floor keeps it from busy-looping."""
    swap_timeout: float = setting(30.0, Seconds(0.0, MAX_SECONDS, above=True))
    """How long an admin call waits for every live serving process to serve a new version (seconds)."""
    host_id: str | None = setting(
        None, Text(r"[A-Za-z0-9._-]{1,100}", "1-100 characters from A-Z, a-z, 0-9, '.', '_', '-'")
    )
    """This host's name in the serving records of a repository shared by several hosts (a fleet on one
    volume); unset: the HOSTNAME environment variable (a Kubernetes pod's name), else the machine's
    name. Hosts sharing a machine's name (network namespaces) need one each."""
    heartbeat_expiry: float = setting(5.0, Seconds(0.5, 3600.0))
    """How long another host's serving record may go unchanged (seconds, by the reader's own clock) and
    still count as live: a swap waits at most this long for a host that died."""
    load_timeout: float = setting(60.0, Seconds(0.0, MAX_SECONDS, above=True))
    """Longest a model version may take to load (seconds): validation before a publish (load and
    examples) beyond it refuses the upload; a serving process abandons a load beyond it, keeps serving
    the previous version and reports why in its serving record."""
    predict_timeout: float = setting(30.0, Seconds(0.0, MAX_SECONDS, above=True))
    """Default deadline of one model call (seconds); a bundle's timeout_seconds or the client's deadline may lower it."""
    stop_timeout: float = setting(30.0, Seconds(0.0, MAX_SECONDS, above=True))
    """How long a serving process stopping (SIGTERM) lets calls in flight finish (seconds). Then it closes
    its models and exits: threads a model left running get a few seconds more, are logged, and do not
    keep the process alive."""
    max_stuck_calls: int = setting(4, Int(0, 10_000))
    """Stuck calls (past their deadline by stuck_grace and still running: a thread that cannot be
    stopped) a serving process may hold; one more and it retires gracefully and is replaced (0: never)."""
    stuck_grace: float = setting(2.0, Seconds(0.0, 3600.0))
    """Seconds past its deadline after which a call still running counts as stuck (logged with its stack,
    counted in model_runner_stuck_calls)."""
    jvm_max_heap: str | None = setting(None, HeapSize())
    """Maximum JVM heap per process in the JVM's -Xmx syntax, e.g. '2g'."""
    jvm_options: tuple[str, ...] = setting((), JvmOptions())
    """Extra JVM options for every serving process (space-separated in the environment)."""
    keep_versions: int = setting(20, Int(1))
    """Versions kept per model by cleanup (the current one and any still served are never removed)."""
    access_log: str = setting("text", Text(r"text|json|off", "text, json or off"))
    """One line per request (HTTP and gRPC: method, path, model, version, status, duration, request id)
    on each serving process's standard error: ``text``, ``json`` (one JSON object a line) or ``off``."""
    isolation: str = setting("in-process", Text(r"in-process|process", "in-process or process"))
    """Where a model version runs when its bundle's metadata.json does not say (``isolation``): in the
    serving process, or in a child process of its own (a crash or a stuck call of the model then ends
    or replaces only that child)."""
    calls: str = setting("guarded", Text(r"guarded|inline", "guarded or inline"))
    """How a model's timed calls run when its bundle's metadata.json does not say (``calls``): ``guarded``,
    on a thread of their own (the caller is answered at the deadline whatever the model does), or
    ``inline``, on the request's own thread with no hand-off (faster; the deadline is then cooperative: a
    Java call is interrupted at it, a Python call is not, and a call that ignores it holds its request
    until it returns)."""
    metrics_port: int = setting(-1, Int(-1, 65535))
    """A separate port for the Prometheus scrape (``/metrics``, as on the HTTP port); -1: none."""
    python_interpreters: tuple[Path, ...] = setting((), PathList())
    """Python interpreters a bundle's ``python`` version may be served with, tried before ``pythonX.Y``
    on PATH and pyenv's versions (runner.runtimes.environments)."""
    environment_build_timeout: float = setting(900.0, Seconds(0.0, MAX_SECONDS, above=True))
    """Longest the build of a Python bundle's own environment (venv + pip) may take (seconds); it comes
    before validation, whose load_timeout it does not count against."""
    batching: bool = setting(True, Switch())
    """Adaptive batching for the bundles that declare it (metadata.json ``batching``: concurrent requests
    of one version and rpc merged into one model call); false: every request is its own call."""
    acumos_compat: bool = setting(False, Switch())
    """Acumos clients unchanged: `POST /model/methods/*` reads a body as protobuf whatever its
    Content-Type (JSON only when it starts with '{', which no protobuf message does) and answers protobuf
    to a protobuf request (`application/octet-stream` unless a protobuf type was named)."""
    path_prefix: str | None = setting(None, PATH_PREFIX)
    """A path every HTTP route also answers under, e.g. '/modelrunner' (Acumos' context root)."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: Path | None = None,
        flags: Sequence[Flag] = (),
        only: Collection[str] | None = None,
        **overrides: object,
    ) -> Settings:
        """Settings from the defaults, the settings file (``config_file``, else MODEL_RUNNER_CONFIG), the
        environment (``environ``, default os.environ), then ``flags`` (raw command-line text), then
        ``overrides`` (Python values; None means not given). Every value read is checked, and all the
        refused ones are reported in one BadInput. ``only`` limits reading to those settings (the others
        keep their defaults), for a command that needs just a few of them.

        A ``jvm_options`` flag adds one option to the ones configured; any other flag replaces the value.
        """
        env = os.environ if environ is None else environ
        every = _rules()
        rules = {name: rule for name, rule in every.items() if only is None or name in only}
        problems: list[dict[str, Any]] = []
        values: dict[str, Any] = {}

        if config_file is not None:
            values.update(_read_file(Path(config_file), rules, problems, origin=None))
        elif env.get(CONFIG_ENV):
            values.update(_read_file(Path(env[CONFIG_ENV]), rules, problems, origin=CONFIG_ENV))

        for name, rule in rules.items():
            var = ENV_PREFIX + name.upper()
            raw = env.get(var)
            if raw is None or raw == "":
                continue  # an empty variable means "not set"
            _take(values, problems, name, rule, f"environment variable {var}={raw!r}", rule.from_text, raw)

        added: list[str] = []
        for flag in flags:
            if flag.setting not in every:
                raise TypeError(f"Settings has no field {flag.setting!r}")
            if flag.setting not in rules:
                continue
            rule = rules[flag.setting]
            source = f"flag {flag.flag}={flag.value!r}"
            if isinstance(rule, JvmOptions):
                option = _take({}, problems, flag.setting, rule, source, rule.option, flag.value)
                if option is not None:
                    added.append(option)
            else:
                _take(values, problems, flag.setting, rule, source, rule.from_text, flag.value)
        if added:
            configured = values.get("jvm_options", ())
            values["jvm_options"] = tuple(dict.fromkeys([*configured, *added]))

        for name, value in overrides.items():
            if value is None:
                continue
            if name not in every:
                raise TypeError(f"Settings has no field {name!r}")
            if name in rules:
                rule, source = rules[name], f"Settings.from_env({name}={value!r})"
                _take(values, problems, name, rule, source, rule.from_python, value)

        if problems:
            raise refusal(problems)
        return cls(**values)

    def validate(self) -> Settings:
        """Check every value against its rule (BadInput naming the refused ones); returns self."""
        problems: list[dict[str, Any]] = []
        for name, rule in _rules().items():
            value = getattr(self, name)
            if value is not None:
                _take({}, problems, name, rule, f"Settings.{name}={value!r}", rule.from_python, value)
        if problems:
            raise refusal(problems)
        return self

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process see these same settings: every setting (empty
        when unset, so an inherited variable cannot fill it), and an empty MODEL_RUNNER_CONFIG (the
        file's values are in the others already). ``Settings.from_env(settings.to_env())`` equals
        ``settings``; a value its rule refuses raises BadInput here rather than in the child."""
        self.validate()
        out = {CONFIG_ENV: ""}
        for name, rule in _rules().items():
            value = getattr(self, name)
            out[ENV_PREFIX + name.upper()] = "" if value is None else rule.to_text(value)
        return out

    @classmethod
    def accepted(cls, name: str) -> str:
        """What setting ``name`` accepts, e.g. 'an integer from 1 to 64' (for help texts)."""
        return _rules()[name].accepted


class Flag(NamedTuple):
    """A command-line flag's raw text for a setting: Flag('workers', '--workers', '4')."""

    setting: str
    flag: str
    value: str


def refusal(problems: list[dict[str, Any]]) -> BadInput:
    """One BadInput for the refused values: their messages, one a line when there are several."""
    if len(problems) == 1:
        message = problems[0]["message"]
    else:
        message = f"{len(problems)} settings refused:\n" + "\n".join(f"  - {p['message']}" for p in problems)
    return BadInput(message, {"problems": problems, "hint": HINT})


# ------------------------------------------------------------------------------------------- internals


def _rules() -> dict[str, Rule]:
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(Settings)}


def _take(
    values: dict[str, Any],
    problems: list[dict[str, Any]],
    name: str,
    rule: Rule,
    source: str,
    parse: Callable[[Any], Any],
    raw: object,
) -> Any:
    """Parse ``raw`` into ``values[name]``, or add a problem naming ``source``, the setting and its rule."""
    try:
        value = parse(raw)
    except Refused as refused:
        reason = f"{name} must be {rule.accepted}"
        if refused.wrong_type:
            reason += f" (a TOML {rule.toml_type}, not {refused.wrong_type})"
        problems.append(
            {
                "message": f"{source}: {reason}",
                "source": source,
                "setting": name,
                "value": raw if isinstance(raw, (str, int, float, bool, list)) else str(raw),
                "accepted": rule.accepted,
            }
        )
        return None
    values[name] = value
    return value


def _read_file(
    path: Path, rules: Mapping[str, Rule], problems: list[dict[str, Any]], *, origin: str | None
) -> dict[str, Any]:
    """The settings of a TOML file: top-level keys named like the Settings fields, each of its rule's
    TOML type (no conversion: ``workers = "4"`` is refused like ``http_host = 5``)."""
    import tomllib  # noqa: PLC0415 (Python 3.11+; a model's child process may run an older Python)

    named = f"settings file {path}" + (f" (from {origin})" if origin else "")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as err:
        raise BadInput(
            f"cannot read the {named}: {err.strerror or err}", {"file": str(path), "hint": HINT}
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{named}: not valid TOML: {err}", {"file": str(path), "hint": HINT}) from None
    known = _rules()
    unknown = sorted(set(data) - set(known))
    if unknown:
        guesses = [
            f"{key} (did you mean {close[0]}?)"
            if (close := difflib.get_close_matches(key, known, 1))
            else key
            for key in unknown
        ]
        raise BadInput(
            f"{named}: unknown settings {', '.join(guesses)}",
            {"file": str(path), "unknown": unknown, "known": sorted(known), "hint": HINT},
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in rules:
            rule = rules[name]
            source = f"settings file {path} key {name} = {_toml_repr(value)}"
            _take(values, problems, name, rule, source, rule.from_toml, value)
    return values


def _toml_type_of(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if all(isinstance(v, str) for v in value) else "an array of other values"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _toml_repr(value: object) -> str:
    """``value`` as it reads in the TOML file (roughly: enough to recognise it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_repr(v)}" for k, v in value.items()) + "}"
    return str(value)


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
