"""`model-runner serve`: HTTP workers under gunicorn plus the gRPC server(s), all on one repository.

The serve process itself is gunicorn's master. It never starts a JVM: everything that loads a model
(building the samples, onboarding a JAR, validating a bundle before publishing) runs in a spawned helper
process, and every serving process (HTTP worker, gRPC process) starts its own JVM after it exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.bundle import extract_bundle, open_bundle, read_metadata
from runner.cli import EXIT_FAILURE
from runner.cli.onboard import add_model_options, model_options
from runner.errors import BadInput, ModelRunnerError, PreconditionFailed
from runner.runtimes.environments import declares_environment, ensure_environment
from runner.runtimes.java import jvm_crash_report
from runner.serving.lifecycle import CLOSE_GRACE, ProcessEnd, die_with_parent
from runner.settings import Flag, Settings
from runner.store import Repository
from runner.store.files import atomic_write

if TYPE_CHECKING:
    from runner.http.granian_app import GranianHttpServer
    from runner.serving.admin import Admin
    from runner.serving.onboarding import ModelOptions

log = logging.getLogger(__name__)

# The flags that set a setting: flag -> (setting, metavar, help). Their text goes through the same
# checks as the settings file and the environment (runner.settings), so a refusal names the flag.
SETTING_FLAGS: dict[str, tuple[str, str, str]] = {
    "--repo": (
        "repo",
        "DIR",
        "repository folder (default: MODEL_RUNNER_REPO or ~/.local/share/model-runner/repo)",
    ),
    "--host": ("http_host", "HOST", "address to bind (default 127.0.0.1)"),
    "--http-port": ("http_port", "PORT", "HTTP port (default 8080; 0 = a free one)"),
    "--grpc-port": ("grpc_port", "PORT", "gRPC port (default 50051; 0 = a free one; -1 = no gRPC)"),
    "--workers": ("workers", "N", "HTTP worker processes, one JVM each (default 2)"),
    "--threads": ("threads", "N", "threads per HTTP worker (default 8)"),
    "--http-server": ("http_server", "NAME", "HTTP server running the workers (default gunicorn)"),
    "--calls": (
        "calls",
        "MODE",
        "how a model's timed calls run when its bundle does not say: guarded (default: on a thread of "
        "their own, answered at the deadline whatever the model does) or inline (on the request's "
        "thread: faster, the deadline cooperative; docs/bundle.md)",
    ),
    "--grpc-processes": ("grpc_processes", "N", "gRPC serving processes sharing the port (default 2)"),
    "--admin-token-file": ("admin_token_file", "FILE", "file holding the admin bearer token"),
    "--max-body-bytes": ("max_body_bytes", "BYTES", "largest accepted request body (413 above)"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve models over HTTP and gRPC (no arguments: the sample models)",
        description="Serve the models of a repository over HTTP (gunicorn workers) and gRPC. "
        "Bundles (zip or folder), JARs (with --class) or Python classes (module.py:Class) given "
        "as arguments are published into the repository first when they changed since serve last "
        "published them (a restart with the same arguments keeps what was pushed since). With no "
        "arguments, an empty "
        "repository (the embedded default one unless --repo) is filled with the sample models. "
        "SIGTERM drains the requests in flight and stops; SIGHUP replaces the HTTP workers with "
        "fresh ones (fresh JVMs) without failing a request. JVM options are fixed when a JVM "
        "starts: an upload needing options the running JVMs lack is refused with the options "
        "to restart with (--jvm-option).",
        epilog="examples:\n"
        "  model-runner serve                                  # the sample models\n"
        "  model-runner serve scorer.jar --class com.acme.Scorer --http-port 8080\n"
        "  model-runner serve scorer.jar --class com.acme.Scorer --lib build/install/scorer/lib \\\n"
        "      --artifacts model-files/ --example 'Score={\"age\": 42}'\n"
        "  model-runner serve iris_model.py:IrisClassifier --name iris-python\n"
        "  model-runner serve --repo /srv/models --workers 4 --grpc-port 50051",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "targets",
        nargs="*",
        metavar="BUNDLE|JAR|DIR|module.py:Class",
        help="bundles, JARs or Python classes to publish before serving",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file (TOML, keys as in docs/configuration.md; default: MODEL_RUNNER_CONFIG); "
        "environment variables and flags override it",
    )
    for flag, (setting, metavar, text) in SETTING_FLAGS.items():
        # read as text: the settings' own rules check it (BadInput naming the flag, e.g. --workers 0)
        p.add_argument(flag, metavar=metavar, help=f"{text}; {Settings.accepted(setting)}")
    add_model_options(p)  # --class, --method, --lib, --proto, --artifacts, --example, --name: as `onboard`
    p.add_argument(
        "--jvm-option",
        action="append",
        default=[],
        metavar="OPT",
        help="extra JVM option for every serving process, added to jvm_options (repeatable; write "
        "--jvm-option=-Xss2m, since a value starting with '-' would be read as a flag)",
    )
    p.add_argument(
        "--ready-file",
        type=Path,
        help="write a JSON file {http_port, grpc_port, repo, token_file} once every process serves",
    )
    p.add_argument("--log-level", default="info", help="gunicorn log level (default info)")
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the settings file, the environment and the flags given (each value checked)."""
    flags = [
        Flag(setting, flag, value)
        for flag, (setting, _, _) in SETTING_FLAGS.items()
        if (value := getattr(args, flag[2:].replace("-", "_"))) is not None
    ]
    flags += [Flag("jvm_options", "--jvm-option", option) for option in args.jvm_option]
    settings = Settings.from_env(config_file=args.config, flags=flags)
    settings.repo = Path(settings.repo).expanduser().resolve()
    return settings


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.name and len(args.targets) > 1:
        raise BadInput("--name applies to a single argument", {"targets": args.targets})
    _check_model_options(args)
    settings.repo.mkdir(parents=True, exist_ok=True)

    # Open the repository once here: it clears staging left by a crash and repairs torn writes. Opening
    # takes file locks, so it must never happen in a thread that may run while gunicorn forks (a lock
    # held at fork time would stay held by the worker's copy of the descriptor, forever).
    repository = Repository.from_settings(settings)

    published = _prepare_in_child(settings, args)
    for line in published:
        print(line, flush=True)

    token_file = ensure_admin_token(settings)

    # HTTP port 0: gunicorn binds it and on_ready reads the port back. gRPC port 0: the processes must
    # share one port, so it is chosen here.
    if settings.grpc_port == 0:
        settings.grpc_port = free_port(settings.http_host)

    # Every serving process started from here on writes its metrics into one fresh folder (it inherits
    # the variable), which any of them (and the metrics port) scrapes whole: runner.serving.metrics.
    from runner.serving import metrics  # noqa: PLC0415 (prometheus_client: only for serve)

    metrics_folder = metrics.prepare_multiprocess()
    if settings.metrics_port >= 0:
        settings.metrics_port = metrics.serve_port(settings.http_host, settings.metrics_port)

    grpc_procs: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()
    failed = threading.Event()

    signalled: set[int] = set()

    def signal_grpc(signum: int = signal.SIGTERM, *, again: bool = True) -> None:
        # a second signal makes a gRPC process stop at once, without waiting for its connections to go:
        # sent only when serve gets one too (again=False: serve's own stop, not a new signal)
        stopping.set()
        for proc in grpc_procs:
            if proc.poll() is None and (again or proc.pid not in signalled):
                signalled.add(proc.pid)
                proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    def stop_grpc() -> None:
        signal_grpc(again=False)
        # a gRPC process drains for stop_timeout, then is gone within CLOSE_GRACE (runner.serving.lifecycle)
        deadline = time.monotonic() + settings.stop_timeout + CLOSE_GRACE + 2
        for proc in grpc_procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            metrics.process_ended(proc.pid)

    env = {**os.environ, **settings.to_env()}

    def start_grpc() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner.grpc",
                "--port",
                str(settings.grpc_port),
                "--log-level",
                args.log_level,
                "--parent-pid",  # it stops when serve dies, even by SIGKILL
                str(os.getpid()),
            ],
            env=env,
        )

    def watch_grpc() -> None:
        # A gRPC process that ends (retired, crashed, killed): its gauges go, its counts stay, and once
        # serve has announced it serves, a fresh one takes its place (the others serve meanwhile).
        # Replacements come from this thread: its parent-death signal fires when the thread ends, which
        # is when serve stops them anyway.
        started = {proc.pid: time.monotonic() for proc in grpc_procs}
        backoff = {i: GRPC_RESTART_BACKOFF for i in range(len(grpc_procs))}
        ended: set[int] = set()
        while not stopping.wait(1.0):
            for i, proc in enumerate(list(grpc_procs)):
                code = proc.poll()
                if code is None or proc.pid in ended:
                    continue
                ended.add(proc.pid)
                metrics.process_ended(proc.pid)
                report = jvm_crash_report(proc.pid)
                if report is not None:
                    log.error(
                        "gRPC process %d: its JVM crashed; the JVM's crash report: %s", proc.pid, report
                    )
                if not announced.is_set():  # ended before serving: _announce_when_serving stops serve
                    continue
                lived = time.monotonic() - started.pop(proc.pid, time.monotonic())
                # a process that keeps ending early waits longer each time (at most GRPC_RESTART_MAX)
                wait = backoff[i] if lived < 30 else GRPC_RESTART_BACKOFF
                backoff[i] = min(wait * 2, GRPC_RESTART_MAX)
                log.warning(
                    "gRPC process %d %s after %.0f s; starting a fresh one in %.1f s",
                    proc.pid,
                    _ended_how(code),
                    lived,
                    wait,
                )
                if stopping.wait(wait):
                    return
                fresh = start_grpc()
                started[fresh.pid] = time.monotonic()
                grpc_procs[i] = fresh
                log.warning("gRPC process %d replaces %d", fresh.pid, proc.pid)
                if stopping.is_set():  # serve began stopping meanwhile: it may not have seen this one
                    signalled.add(fresh.pid)
                    fresh.send_signal(signal.SIGTERM)
                    return

    announced = threading.Event()
    if settings.grpc_port >= 0:
        for _ in range(max(1, settings.grpc_processes)):  # they share the port (SO_REUSEPORT)
            grpc_procs.append(start_grpc())

    if grpc_procs:
        threading.Thread(target=watch_grpc, name="grpc-watch", daemon=True).start()

    def on_ready(http_port: int) -> None:
        settings.http_port = http_port
        threading.Thread(
            target=_announce_when_serving,
            args=(settings, repository, token_file, args.ready_file, grpc_procs, stopping, failed, announced),
            name="ready-watch",
            daemon=True,
        ).start()

    from runner.http.gunicorn_app import HttpServer  # noqa: PLC0415 (gunicorn and flask: only for serve)

    server_class: type[HttpServer] | type[GranianHttpServer] = HttpServer
    if settings.http_server == "granian":
        from runner.http import granian_app  # noqa: PLC0415 (an optional dependency)

        server_class = granian_app.GranianHttpServer
    server = server_class(
        settings,
        on_ready=on_ready,
        on_exit=stop_grpc,
        on_stop_signal=signal_grpc,
        log_level=args.log_level,
        other_children=lambda: list(grpc_procs),
    )
    try:
        server.run()  # gunicorn's arbiter: SIGTERM drains the workers, SIGINT stops them quickly
    except SystemExit as exit_:
        if failed.is_set():
            return EXIT_FAILURE
        if exit_.code not in (None, 0):
            raise
    finally:
        stop_grpc()
        shutil.rmtree(metrics_folder, ignore_errors=True)
        if args.ready_file is not None:
            try:
                Path(args.ready_file).unlink()
            except OSError:
                pass
    return EXIT_FAILURE if failed.is_set() else 0


GRPC_RESTART_BACKOFF = 1.0
"""Seconds before `serve` replaces a gRPC process that ended (doubled while replacements keep ending
within 30 s, up to GRPC_RESTART_MAX)."""
GRPC_RESTART_MAX = 30.0


def _ended_how(code: int) -> str:
    from runner.serving.stuck_calls import RETIRED_EXIT  # noqa: PLC0415 (prometheus_client: only for serve)

    if code == RETIRED_EXIT:
        return "retired (too many stuck calls)"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


# ------------------------------------------------------------------------------- preparing the repository


def _prepare_in_child(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Fill the repository (samples, or the arguments) in a spawned process: it may start a JVM.

    The helper validates the models it publishes, so a model that starts a non-daemon thread (Python or
    Java) leaves it running there: the helper ends like a serving process (runner.serving.lifecycle),
    and is killed if it has not ended a little later."""
    ctx = multiprocessing.get_context("spawn")
    options = model_options(args) if args.targets else None
    receiver, sender = ctx.Pipe(duplex=False)
    helper = ctx.Process(
        target=_prepare_main,
        args=(sender, os.getpid(), settings, list(args.targets), options),
        name="model-runner-prepare",
    )
    helper.start()
    sender.close()
    try:
        try:
            outcome, value = receiver.recv()
        except EOFError:
            helper.join(5)
            raise ModelRunnerError(
                f"preparing the repository crashed (exit status {helper.exitcode}); see the log above", {}
            ) from None
        if outcome == "error":
            kind, message, detail = value
            raise kind(message, detail)
        if outcome == "crash":
            raise ModelRunnerError(f"preparing the repository failed: {value}", {})
        return list(value)
    finally:
        receiver.close()
        helper.join(CLOSE_GRACE + 3)
        if helper.is_alive():
            helper.kill()
            helper.join()
        _stop_resource_tracker()


def _prepare_main(
    sender: Any, parent: int, settings: Settings, targets: list[str], options: ModelOptions | None
) -> None:
    """The helper process: prepare, send the outcome, end within the bound."""
    logging.basicConfig(level="WARNING", stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    die_with_parent(parent)  # serve killed meanwhile: stop (a publish cut short is crash-safe)
    end = ProcessEnd("serve's preparing helper", since="its work was done")
    try:
        outcome: tuple[str, object] = ("ok", prepare_repository(settings, targets, options=options))
    except ModelRunnerError as err:  # sent as its parts: an exception pickles its message only
        outcome = ("error", (type(err), err.message, err.detail))
    except BaseException as err:  # reported to serve, which stops
        log.exception("preparing the repository failed")
        outcome = ("crash", f"{type(err).__name__}: {err}")
    try:
        sender.send(outcome)
    except Exception as err:  # noqa: BLE001 - e.g. an error that does not pickle: say it in words
        sender.send(("crash", f"{type(outcome[1]).__name__}: {outcome[1]} ({err})"))
    sender.close()
    end.exit(0)


def _stop_resource_tracker() -> None:
    """Stop the multiprocessing resource tracker the helper pool started. Left running, it would be
    inherited by every gunicorn worker (its pipe) and outlive a `serve` killed with SIGKILL for as
    long as any of them."""
    from multiprocessing import resource_tracker  # noqa: PLC0415 (only after the helper pool ran)

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # private: absent, it stays
    if stop is not None:
        try:
            stop()
        except Exception:  # noqa: BLE001 - a tracker that is already gone is fine
            pass


def prepare_repository(
    settings: Settings,
    targets: list[str],
    class_name: str | None = None,
    name: str | None = None,
    *,
    options: ModelOptions | None = None,
) -> list[str]:
    """Publish `targets` into the repository (or the samples when there are none and it is empty).
    ``options`` (the `onboard` flags; else ``class_name`` and ``name``) describe a JAR or Python target.

    Runs in a helper process. Returns lines to print. A target is published only when it is a deploy:
    see :func:`publish_target` (restarting `serve` with the same arguments changes nothing).
    """
    from runner.serving.admin import Admin  # noqa: PLC0415 (contracts and runtimes: only for serve)

    repository = Repository.from_settings(settings)
    lines: list[str] = []
    if not targets:
        if not repository.models():
            from runner.samples import ensure_default_repository  # noqa: PLC0415 (tooling, first run only)

            lines.append(f"filling {settings.repo} with the sample models (first run builds them)...")
            ensure_default_repository(repository)
        return lines + prepare_environments(settings, repository)

    from runner.serving.onboarding import ModelOptions  # noqa: PLC0415 (contracts: only for serve)

    options = options or ModelOptions(class_name=class_name, name=name)
    name = options.name
    admin = Admin(repository, swap_timeout=settings.swap_timeout, settings=settings)
    with tempfile.TemporaryDirectory(prefix="mr-serve-") as tmp:
        for i, target in enumerate(targets):
            for folder in _bundle_folders(target, options, Path(tmp) / str(i)):
                bundle_name = name or _bundle_name(folder)
                lines.append(publish_target(admin, repository, bundle_name, folder))
    return lines + prepare_environments(settings, repository)


def prepare_environments(settings: Settings, repository: Repository) -> list[str]:
    """Build the Python environments the current versions need and lack (a repository copied without
    its envs/, another interpreter path on this host), before the serving processes load them. A
    failure is reported, not fatal: that model's load reports it too, the others are served."""
    lines = []
    for name, version in sorted(repository.pointers().items()):
        folder = repository.version_dir(name, version)
        try:
            metadata = read_metadata(folder)
            if declares_environment(folder, metadata):
                ensure_environment(folder, metadata, settings)
        except ModelRunnerError as err:
            lines.append(f"{name}: version {version}'s Python environment is not ready: {err.message}")
    return lines


def _check_model_options(args: argparse.Namespace) -> None:
    """The model flags (--class, --lib, ...) describe the one JAR or Python class among the targets."""
    if not args.targets:
        return
    from runner.serving import onboarding  # noqa: PLC0415 (only when there are targets)

    given = model_options(args).given()
    if not given:
        return
    buildable = [t for t in args.targets if _builds(t, onboarding.is_python_spec(t))]
    flags = "/".join(given)
    if not buildable:
        raise BadInput(
            f"{flags} apply to a JAR or a Python class, not to a bundle",
            {"targets": args.targets, "hint": "edit the bundle, or serve the JAR (with --class) instead"},
        )
    if len(buildable) > 1:
        hint = "serve one JAR (or class) per command, or onboard each into a bundle first (`onboard -o`)"
        if args.libs:
            hint = (
                "if the shell expanded a --lib wildcard, quote it (--lib 'libs/*') or pass the folder "
                "(--lib libs); else " + hint
            )
        raise BadInput(
            f"{flags} describe one model, but {len(buildable)} JARs or classes are given: "
            + ", ".join(buildable),
            {"targets": args.targets, "hint": hint},
        )


def _builds(target: str, python_spec: bool) -> bool:
    """Whether serve onboards ``target`` (a JAR or a Python class) rather than reading a bundle."""
    return Path(target).suffix == ".jar" or (python_spec and not Path(target).exists())


def _bundle_folders(target: str, options: ModelOptions, work: Path) -> list[Path]:
    from runner.serving import onboarding  # noqa: PLC0415 (contracts and runtimes: only for serve)

    path = Path(target)
    if not path.exists() and not onboarding.is_python_spec(target):
        raise BadInput(f"{target}: no such file or directory", {"target": target})
    if _builds(target, onboarding.is_python_spec(target)):
        return [onboarding.bundle_from_source(target, options, dest=work / "bundle")]
    from runner.serving.acumos import is_acumos_dump  # noqa: PLC0415

    if is_acumos_dump(path):  # the bundle serving it; validated when published
        return [onboarding.bundle_from_acumos(path, name=options.name, dest=work / "bundle", validate=False)]
    if path.suffix == ".zip":
        return [_unzip(path, work / "bundle")]
    if path.is_dir():
        if (path / "metadata.json").exists():
            return [path]
        # a folder of bundles
        found: list[Path] = []
        for j, child in enumerate(sorted(path.iterdir())):
            if is_acumos_dump(child):
                found.append(onboarding.bundle_from_acumos(child, dest=work / f"b{j}", validate=False))
            elif child.is_dir() and (child / "metadata.json").exists():
                found.append(child)
            elif child.suffix == ".zip":
                found.append(_unzip(child, work / f"b{j}"))
        if not found:
            raise BadInput(
                f"{target}: neither a bundle (no metadata.json) nor a folder of bundles", {"target": target}
            )
        return found
    raise BadInput(f"{target}: not a bundle (.zip or folder), a .jar or module.py:Class", {"target": target})


def _unzip(path: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    bundle = extract_bundle(path, dest)
    return Path(bundle.root)


def _bundle_name(folder: Path) -> str:
    meta = json.loads((folder / "metadata.json").read_text())
    if not isinstance(meta, dict) or not meta.get("name"):
        raise BadInput(f"{folder}/metadata.json has no name; pass --name", {"bundle": str(folder)})
    return str(meta["name"])


SERVE_RECORD = "serve-target.json"
"""In a model's folder of the repository: what `serve`'s command line last brought for that model
({"sha256", "version", "time"}), written each time serve publishes a command-line bundle or finds it
already current. It is what tells a restart from a deploy (see publish_target)."""

SERVE_CALLER = "cli:serve"


def publish_target(admin: Admin, repository: Repository, name: str, folder: Path) -> str:
    """Publish a bundle named on `serve`'s command line, if it is a deploy; the line to print.

    The rule: a command-line bundle is published only when its content (sha256) differs both from what
    `serve`'s command line brought for this model last time (SERVE_RECORD; for a repository written
    before that record existed, serve's last publish in the history) and from the current version. So
    a restart with the same command line changes nothing, whatever happened since (a push, a rollback,
    a delete stands), and a changed bundle on the command line is an intentional deploy: published,
    contract changes included (the operator's call).
    """
    sha = open_bundle(folder).sha256
    for _attempt in range(3):
        current = repository.current_version(name)
        current_sha = _version_sha256(repository, name, current)
        if _last_served_sha256(repository, name) == sha:
            if current_sha == sha:
                return f"{name}: unchanged (version {current})"
            if current is None:
                return (
                    f"{name}: not published: deleted since `serve` published this same bundle "
                    "(push it, or serve a changed bundle, to serve it again)"
                )
            return (
                f"{name}: version {current} kept: it changed since `serve` published this same bundle "
                "(a changed bundle on the command line would be published)"
            )
        if current_sha == sha:
            _record_served(repository, name, sha, current)
            return f"{name}: unchanged (version {current})"
        try:
            # If-Match the version just looked at: a push meanwhile is never overwritten unseen
            result = admin.upload(
                name, folder, expected_version=current or 0, caller=SERVE_CALLER, allow_breaking=True
            )
        except PreconditionFailed:
            continue  # someone changed the model meanwhile: decide again
        version = int(result["version"])
        _record_served(repository, name, sha, version)
        return f"{name}: published version {version}"
    raise PreconditionFailed(
        f"{name}: the model kept changing while `serve` published its bundle; start serve again",
        {"name": name},
    )


def _version_sha256(repository: Repository, name: str, version: int | None) -> str | None:
    if version is None:
        return None
    try:
        return open_bundle(repository.version_dir(name, version)).sha256
    except Exception:  # noqa: BLE001 - an unreadable version is simply not the same content
        return None


def _last_served_sha256(repository: Repository, name: str) -> str | None:
    """What `serve`'s command line brought for ``name`` last time (None: never)."""
    try:
        record = json.loads((repository.models_root / name / SERVE_RECORD).read_text())
        return str(record["sha256"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("model %s: unreadable %s; using the history", name, SERVE_RECORD)
    for entry in reversed(repository.history(name)):
        if entry.get("caller") == SERVE_CALLER and entry.get("sha256"):
            return str(entry["sha256"])
    return None


def _record_served(repository: Repository, name: str, sha: str, version: int | None) -> None:
    record = {"sha256": sha, "version": version, "time": time.time()}
    atomic_write(repository.models_root / name / SERVE_RECORD, (json.dumps(record) + "\n").encode())


# ------------------------------------------------------------------------------- token, ports, readiness


def ensure_admin_token(settings: Settings) -> Path | None:
    """Make sure admin endpoints have a token: generate one into <repo>/admin-token (0600) if none is set.

    Returns the token file in use (None when the token comes from MODEL_RUNNER_ADMIN_TOKEN).
    """
    if settings.admin_token:
        return None
    if settings.admin_token_file is not None:
        path = Path(settings.admin_token_file).expanduser().resolve()
        if not path.exists() or not path.read_text().strip():
            raise BadInput(f"admin token file {path} is missing or empty", {"file": str(path)})
        settings.admin_token_file = path
        return path
    path = settings.repo / "admin-token"
    if not path.exists() or not path.read_text().strip():
        tmp = path.with_name(f".admin-token.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    settings.admin_token_file = path
    return path


def free_port(host: str) -> int:
    """A port free right now on `host` (the kernel picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _announce_when_serving(
    settings: Settings,
    repository: Repository,
    token_file: Path | None,
    ready_file: Path | None,
    grpc_procs: list[subprocess.Popen[bytes]],
    stopping: threading.Event,
    failed: threading.Event,
    announced: threading.Event | None = None,
) -> None:
    """Wait until every serving process serves every current model, then print the banner and 'ready'.

    Runs while gunicorn forks its workers: only lock-free reads of the repository here."""
    expected_http = max(1, settings.workers)
    expected_grpc = len(grpc_procs)
    deadline = time.monotonic() + 900
    while not stopping.is_set():
        if any(p.poll() is not None for p in grpc_procs):
            print(
                "error: a gRPC serving process exited before serving; see its log above. Stopping.",
                file=sys.stderr,
                flush=True,
            )
            failed.set()
            os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's arbiter stops the workers and returns
            return
        try:
            if _all_serving(repository, expected_http, expected_grpc):
                break
        except Exception:  # noqa: BLE001 - a record being written; try again
            pass
        if time.monotonic() > deadline:
            print(
                "warning: not every serving process reports every model yet; serving anyway",
                file=sys.stderr,
                flush=True,
            )
            break
        time.sleep(0.1)
    if stopping.is_set():
        return
    if announced is not None:
        announced.set()  # from now on a gRPC process that ends is replaced
    print(banner(settings, token_file, repository), flush=True)
    if ready_file is not None:
        tmp = Path(str(ready_file) + ".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "http_port": settings.http_port,
                    "grpc_port": settings.grpc_port if grpc_procs else None,
                    "host": settings.http_host,
                    "repo": str(settings.repo),
                    "token_file": str(token_file) if token_file else None,
                    "pid": os.getpid(),
                    "metrics_port": settings.metrics_port if settings.metrics_port >= 0 else None,
                }
            )
        )
        os.replace(tmp, ready_file)


def _all_serving(repository: Repository, expected_http: int, expected_grpc: int) -> bool:
    current = {name: repository.current_version(name) for name in repository.models()}
    counts = {"http": 0, "grpc": 0}
    for record in repository.fleet.live_processes().values():
        if record.get("host") != repository.fleet.host_id:
            continue  # another host of the fleet: not one of ours
        models = record.get("models") or {}
        errors: Mapping[str, Mapping[str, object]] = record.get("errors") or {}
        # a model that failed to load in a process counts as settled there (it is reported, not awaited)
        if not record.get("listening", True):
            continue  # loaded, but its server does not take connections yet
        if all(
            models.get(name) == version or (errors.get(name) or {}).get("version") == version
            for name, version in current.items()
        ):
            kind = record.get("kind", "http")
            counts[kind] = counts.get(kind, 0) + 1
    return counts["http"] >= expected_http and counts["grpc"] >= expected_grpc


def banner(settings: Settings, token_file: Path | None, repository: Repository) -> str:
    """What `serve` prints once ready: repository, token, URLs and a curl example."""
    host = settings.http_host
    url_host = f"[{host}]" if ":" in host else host
    base = f"http://{url_host}:{settings.http_port}"
    models = repository.models()
    lines = [
        f"repository:   {settings.repo}",
        f"admin token:  {token_file if token_file else '(from MODEL_RUNNER_ADMIN_TOKEN)'}",
        f"HTTP:         {base}  ({settings.workers} workers x {settings.threads} threads)",
    ]
    if settings.grpc_port >= 0:
        lines.append(f"gRPC:         {url_host}:{settings.grpc_port}")
    lines.append(f"models:       {', '.join(models) if models else '(none yet: PUT /models/{name})'}")
    lines.append(f"OpenAPI:      {base}/openapi.json")
    example = _curl_example(base, repository, models)
    if example:
        lines.append("try:")
        lines.append("  " + example)
    if token_file:
        lines.append("admin:")
        lines.append(
            f'  curl -H "Authorization: Bearer $(cat {shlex.quote(str(token_file))})" '
            f"-X PUT --data-binary @bundle.zip -H 'Content-Type: application/zip' {base}/models/NAME"
        )
    lines.append(f"model-runner ready: {base}")
    return "\n".join(lines)


_IRIS_EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _curl_example(base: str, repository: Repository, models: list[str]) -> str | None:
    if not models:
        return None
    name = "iris" if "iris" in models else models[0]
    try:
        current = repository.current_version(name)
        if current is None:  # deleted since it was listed: the iris example below
            raise LookupError(name)
        meta = json.loads((repository.version_dir(name, current) / "metadata.json").read_text())
        examples = meta.get("examples") or {}
        method, inputs = next(iter(examples.items())) if examples else ("Classify", [_IRIS_EXAMPLE])
        body = json.dumps(inputs[0] if isinstance(inputs, list) else inputs)
    except Exception:  # noqa: BLE001
        method, body = "Classify", json.dumps(_IRIS_EXAMPLE)
    return (
        f"curl -s -H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"{base}/models/{name}/methods/{method}"
    )
