"""Settings from one place: defaults here, overridden by a TOML file (``--config FILE`` or
MODEL_RUNNER_CONFIG; keys are the field names below), then by MODEL_RUNNER_* environment variables,
then by command-line flags (runner.cli builds a Settings and passes it down).

Every field is documented where it is declared; docs/configuration.md lists them for operators.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "MODEL_RUNNER_"


def default_repo_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "model-runner" / "repo"


@dataclass
class Settings:
    repo: Path = field(default_factory=default_repo_dir)
    """Folder of the model repository (the embedded default store)."""
    http_host: str = "127.0.0.1"
    """Address HTTP and gRPC bind to."""
    http_port: int = 8080
    """HTTP port (0 picks a free one)."""
    grpc_port: int = 50051
    """gRPC port (0 picks a free one; -1 disables gRPC)."""
    grpc_processes: int = 2
    """gRPC serving processes sharing the port (SO_REUSEPORT); two use both cores of a small machine
    (gRPC's Python machinery holds the GIL, Java model calls do not)."""
    workers: int = 2
    """gunicorn worker processes, each with its own JVM and registry."""
    threads: int = 8
    """Threads per HTTP worker."""
    admin_token: str | None = None
    """Bearer token for admin endpoints; when unset, read from admin_token_file."""
    admin_token_file: Path | None = None
    """File holding the admin token; `serve` generates one (0600) in the repository when neither is set."""
    max_body_bytes: int = 256 * 1024 * 1024
    """Largest accepted request body (uploads included); larger answers 413."""
    max_message_bytes: int = 64 * 1024 * 1024
    """Largest predict request / gRPC message."""
    bundle_max_total_bytes: int = 1024 * 1024 * 1024
    """Largest total uncompressed size of a bundle."""
    bundle_max_file_bytes: int = 512 * 1024 * 1024
    """Largest single file in a bundle."""
    bundle_max_entries: int = 10_000
    """Most entries (files and folders) in a bundle zip."""
    max_json_depth: int = 64
    """Deepest nesting accepted in a JSON body."""
    poll_interval: float = 0.1
    """How often a serving process checks the repository for new current versions (seconds)."""
    swap_timeout: float = 30.0
    """How long an admin call waits for every live serving process to serve a new version (seconds)."""
    predict_timeout: float = 30.0
    """Default deadline of one model call (seconds); a bundle's timeout_seconds or the client's deadline may lower it."""
    jvm_max_heap: str | None = None
    """Maximum JVM heap per process, e.g. '2g'."""
    jvm_options: tuple[str, ...] = ()
    """Extra JVM options for every serving process (space-separated in the environment)."""
    keep_versions: int = 20
    """Versions kept per model by cleanup (the current one and any still served are never removed)."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, config_file: Path | None = None, **overrides: object
    ) -> Settings:
        env = os.environ if environ is None else environ
        config = config_file or env.get(ENV_PREFIX + "CONFIG") or None
        values: dict[str, object] = _read_config(Path(config)) if config else {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process see these same settings."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = " ".join(value)
            out[ENV_PREFIX + f.name.upper()] = str(value)
        return out


def _read_config(path: Path) -> dict[str, object]:
    """The settings of a TOML file: top-level keys named like the Settings fields."""
    import tomllib

    from runner.errors import BadInput

    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise BadInput(f"cannot read the settings file {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise BadInput(f"{path}: not valid TOML: {err}") from None
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadInput(
            f"{path}: unknown settings {', '.join(unknown)}",
            {
                "unknown": unknown,
                "known": sorted(fields),
                "hint": "docs/configuration.md lists every setting",
            },
        )
    values: dict[str, object] = {}
    for name, value in data.items():
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)  # jvm_options = ["-Xss2m", ...]
        try:
            values[name] = _parse(fields[name].type, str(value))
        except ValueError:
            raise BadInput(f"{path}: {name} = {value!r} is not a valid {fields[name].type}") from None
    return values


def _parse(type_name: object, raw: str) -> object:
    t = str(type_name)
    if t.startswith("Path"):
        return Path(raw)
    if t == "int":
        return int(raw)
    if t == "float":
        return float(raw)
    if t.startswith("tuple"):
        return tuple(raw.split())
    return raw
