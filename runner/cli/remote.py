"""Verbs against a running service: push, proto, rollback, models, history, predict, delete.

Every verb takes --url (default MODEL_RUNNER_URL or http://127.0.0.1:8080), --token (default
MODEL_RUNNER_TOKEN, MODEL_RUNNER_ADMIN_TOKEN, or the admin-token file of the local repository) and
--json (machine-readable output; tables for people otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import BadInput, Conflict

if TYPE_CHECKING:
    from runner.client import Client, JsonObject

DEFAULT_URL = "http://127.0.0.1:8080"
PROGRESS_MIN_BYTES = 1024 * 1024  # show upload progress from this size on


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from runner.cli.onboard import add_model_options, with_explained_errors  # noqa: PLC0415

    def verb(name: str, help_: str, epilog: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = subparsers.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog="example:\n  " + epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--url", help="the service (default: $MODEL_RUNNER_URL or http://127.0.0.1:8080)")
        p.add_argument(
            "--token",
            help="admin token (default: $MODEL_RUNNER_TOKEN, else the admin-token "
            "file of the local repository)",
        )
        p.add_argument("--repo", type=Path, help="local repository whose admin-token file to use")
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable JSON output")
        return p

    p = verb(
        "push",
        "upload a bundle (or a JAR/Python class) as a new version of a model and swap to it",
        "model-runner push iris build/iris.zip\n"
        "  model-runner push iris build/libs/iris.jar --class org.modelrunner.samples.iris.IrisClassifier\n"
        "  model-runner push scorer scorer.jar --class com.acme.Scorer --lib 'libs/*' --artifacts data/\n"
        "  model-runner push iris-python iris_model.py:IrisClassifier",
    )
    p.usage = "%(prog)s [options] [NAME] BUNDLE|JAR|MODULE.py:CLASS"
    p.add_argument(
        "model", metavar="NAME", help="model name (or give it with --name; default: as `serve` names it)"
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="BUNDLE|JAR|MODULE.py:CLASS",
        help="a bundle zip or folder, a JAR (with --class), or a Python class",
    )
    add_model_options(p)
    p.add_argument("--if-match", type=int, metavar="VERSION", help="fail (412) unless VERSION is current")
    p.add_argument(
        "--allow-breaking",
        action="store_true",
        help="accept a contract that breaks existing clients (removed/renumbered fields or methods)",
    )
    p.set_defaults(handler=with_explained_errors(cmd_push))

    p = verb(
        "proto",
        "replace only the contract of a model (a new version with the same artifacts)",
        "model-runner proto iris iris-v2.proto --allow-breaking",
    )
    p.add_argument("name")
    p.add_argument("file", type=Path, metavar="FILE.proto")
    p.add_argument(
        "--allow-breaking",
        action="store_true",
        help="accept a change that breaks existing clients (removed/renumbered fields or methods)",
    )
    p.add_argument("--if-match", type=int, metavar="VERSION")
    p.set_defaults(handler=with_explained_errors(cmd_proto))

    p = verb(
        "rollback",
        "make the previous version (or --version N) of a model current again",
        "model-runner rollback iris --version 1",
    )
    p.add_argument("name")
    p.add_argument("--version", type=int, metavar="N")
    p.add_argument("--if-match", type=int, metavar="VERSION")
    p.set_defaults(handler=with_explained_errors(cmd_rollback))

    p = verb(
        "models", "list the models the service serves", "model-runner models --url http://127.0.0.1:8080"
    )
    p.set_defaults(handler=with_explained_errors(cmd_models))

    p = verb(
        "history", "show a model's history of swaps, proto changes and rollbacks", "model-runner history iris"
    )
    p.add_argument("name")
    p.set_defaults(handler=with_explained_errors(cmd_history))

    # predict prints the answer as JSON on stdout (script-friendly) and the serving version on stderr,
    # so here --json takes the request body.
    p = verb(
        "predict",
        "call a method of a model (prints the answer as JSON)",
        "model-runner predict iris Classify --json "
        '\'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}\'\n'
        "  model-runner predict iris ClassifyBatch --data @rows.json",
        json_flag=False,
    )
    p.add_argument("name")
    p.add_argument("method")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--json", dest="body", metavar="JSON", help="the request as proto3 JSON")
    body.add_argument(
        "--data",
        "-d",
        dest="data",
        metavar="@FILE|JSON",
        help="the request: JSON text, @file, or @- for stdin",
    )
    p.add_argument(
        "--protobuf",
        action="store_true",
        help="send and receive binary protobuf on the wire (the request is still given as JSON)",
    )
    p.set_defaults(handler=with_explained_errors(cmd_predict))

    p = verb(
        "delete",
        "stop serving a model (its versions stay in the repository until cleanup)",
        "model-runner delete iris --if-match 3",
    )
    p.add_argument("name")
    p.add_argument("--if-match", type=int, metavar="VERSION", help="fail (412) unless VERSION is current")
    p.set_defaults(handler=with_explained_errors(cmd_delete))


# ------------------------------------------------------------------------------------------ plumbing
def resolve_token(args: argparse.Namespace) -> str | None:
    """--token, then MODEL_RUNNER_TOKEN / MODEL_RUNNER_ADMIN_TOKEN, then the local repository's token file."""
    if getattr(args, "token", None):
        return str(args.token)
    for var in ("MODEL_RUNNER_TOKEN", "MODEL_RUNNER_ADMIN_TOKEN"):
        if os.environ.get(var):
            return os.environ[var].strip()
    from runner.settings import Flag, Settings  # noqa: PLC0415

    # only the two settings that locate the token: a bad serving setting must not block a client verb
    repo = getattr(args, "repo", None)
    flags = [Flag("repo", "--repo", str(repo))] if repo is not None else []
    settings = Settings.from_env(flags=flags, only=("repo", "admin_token_file"))
    for path in (settings.admin_token_file, Path(settings.repo) / "admin-token"):
        if path is None:
            continue
        try:
            token = Path(path).read_text("utf-8").strip()
        except OSError:
            continue
        if token:
            return token
    return None


def client_for(args: argparse.Namespace) -> Client:
    from runner.client import Client  # noqa: PLC0415

    url = args.url or os.environ.get("MODEL_RUNNER_URL") or DEFAULT_URL
    return Client(url, resolve_token(args))


def _out(args: argparse.Namespace, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2) if args.json else text)


def table(rows: list[JsonObject], columns: list[tuple[str, str]]) -> str:
    """A plain-text table of ``rows``; ``columns`` are (key, header)."""
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.upper().ljust(w) for (_, h), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value > 1e9:  # epoch seconds
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class _Progress:
    """Upload progress on stderr: a live percentage on a terminal, quarter steps otherwise."""

    def __init__(self, total: int):
        self.total = total
        self.tty = sys.stderr.isatty()
        self.shown = -1
        self.started = time.monotonic()

    def __call__(self, sent: int, total: int) -> None:
        pct = int(sent * 100 / total) if total else 100
        step = pct if self.tty else pct // 25 * 25
        if step == self.shown:
            return
        self.shown = step
        rate = sent / max(time.monotonic() - self.started, 1e-6) / 1e6
        line = f"uploading {sent / 1e6:.1f}/{total / 1e6:.1f} MB ({pct}%, {rate:.1f} MB/s)"
        if self.tty:
            print("\r" + line, end="\n" if sent >= total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ verbs
def cmd_push(args: argparse.Namespace) -> int:
    from runner.client import bundle_bytes  # noqa: PLC0415
    from runner.serving import onboarding  # noqa: PLC0415

    client = client_for(args)
    # `push NAME SOURCE`, or `push SOURCE` with --name or the name `serve` would give it
    source: str = args.source if args.source is not None else args.model
    name: str | None = args.model if args.source is not None else None
    if name is not None and args.name is not None and args.name != name:
        raise BadInput(
            f"two model names: {name} and --name {args.name}",
            {"hint": "give the name once: push NAME SOURCE"},
        )
    args.name = name = name or args.name
    path = Path(source)
    if path.suffix == ".py" and not onboarding.is_python_spec(source):
        raise BadInput(
            f"{source}: name the model class, e.g. {source}:MyModel",
            {"hint": f"`model-runner onboard {source}` lists the classes it defines"},
        )
    from runner.serving.acumos import is_acumos_dump  # noqa: PLC0415

    dump = not onboarding.is_python_spec(source) and is_acumos_dump(path)
    if onboarding.is_python_spec(source) or (path.suffix.lower() == ".jar") or dump:
        from runner.cli.onboard import acumos_class  # noqa: PLC0415

        if (
            not onboarding.is_python_spec(source)
            and not args.class_name
            and not dump
            and not acumos_class(path, args)
        ):
            raise BadInput(
                f"{source} is a JAR: say which class is the model with --class",
                {"hint": f"`model-runner onboard {source}` lists the candidate classes"},
            )
        from runner.cli.onboard import build_bundle  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="mr-push-") as tmp:
            # the service validates on upload (it runs the model there), so skip the local run
            folder = build_bundle(args, source, Path(tmp) / "bundle", validate=False)
            name = name or _bundle_name(folder)
            data = bundle_bytes(folder)
    else:
        if any(
            (
                args.class_name,
                args.methods,
                args.libs,
                args.proto,
                args.artifacts,
                args.examples,
                args.requirements,
                getattr(args, "model_config", None),
            )
        ):
            raise BadInput(
                "--class/--method/--lib/--proto/--artifacts/--example/--requirements apply to a JAR or Python "
                "class, not to a bundle",
                {"hint": "edit the bundle, or push the JAR instead"},
            )
        if not path.exists():
            raise BadInput(
                f"{source}: no such file or folder",
                {
                    "hint": "pass a bundle zip/folder (see `model-runner onboard`), a JAR with --class, "
                    "or module.py:Class"
                    + (
                        "; with one argument, push takes it as what to push (NAME comes from --name)"
                        if args.source is None
                        else ""
                    )
                },
            )
        data = bundle_bytes(path)
        name = name or _bundle_name(path)
    progress = _Progress(len(data)) if len(data) >= PROGRESS_MIN_BYTES and not args.json else None
    started = time.monotonic()
    try:
        result = client.push(
            name, data, expected_version=args.if_match, allow_breaking=args.allow_breaking, progress=progress
        )
    except Conflict as err:
        if err.detail.get("breaking_changes") or "breaks existing clients" in err.message:
            err.detail["hint"] = (
                "rerun with --allow-breaking to accept it (clients of the old contract may fail)"
            )
        raise
    elapsed = time.monotonic() - started
    version = result.get("version")
    text = f"{name}: version {version} is current and served ({_size(len(data))} uploaded, {elapsed:.1f} s)"
    if result.get("unchanged"):
        text = f"{name}: unchanged, version {version} already has this content (no version created)"
    warnings = result.get("warnings") or []
    if warnings:
        text += "\n" + "\n".join(f"warning: {w}" for w in warnings)
    _out(args, result, text)
    return 0


def _bundle_name(bundle: Path) -> str:
    """The name in a bundle's metadata.json (a folder or a zip), for `push SOURCE` without a name."""
    import zipfile  # noqa: PLC0415 (push of a bundle without a name only)

    try:
        if bundle.is_dir():
            meta = json.loads((bundle / "metadata.json").read_text("utf-8"))
        else:
            with zipfile.ZipFile(bundle) as zf:
                entry = min((n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "metadata.json"), key=len)
                meta = json.loads(zf.read(entry))
    except (OSError, ValueError, zipfile.BadZipFile):
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise BadInput(
            f"{bundle}: no model name in its metadata.json", {"hint": "name the model: push NAME BUNDLE"}
        )
    return str(meta["name"])


def cmd_proto(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise BadInput(f"{args.file}: no such file", {"hint": "pass the path to the new .proto"})
    from runner.errors import Conflict  # noqa: PLC0415

    try:
        result = client_for(args).swap_proto(
            args.name, args.file, allow_breaking=args.allow_breaking, expected_version=args.if_match
        )
    except Conflict as err:
        changes = err.detail.get("breaking_changes") or []
        if changes or not err.detail.get("superseded"):  # a superseded swap keeps the server's hint
            err.detail["hint"] = (
                "rerun with --allow-breaking to accept it (clients of the old contract may fail)"
                + ("; changes: " + "; ".join(map(str, changes)) if changes else "")
            )
        raise
    text = f"{args.name}: contract replaced, version {result.get('version')} is current"
    if result.get("unchanged"):
        text = f"{args.name}: unchanged, version {result.get('version')} already has this contract"
    changes = result.get("breaking_changes") or result.get("breaking") or []
    if changes:
        text += "\nbreaking changes accepted:\n" + "\n".join(f"  - {c}" for c in changes)
    _out(args, result, text)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    result = client_for(args).rollback(args.name, version=args.version, expected_version=args.if_match)
    _out(args, result, f"{args.name}: rolled back, version {result.get('version')} is current")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    models = client_for(args).models()
    if args.json:
        _out(args, models, "")
        return 0
    if not models:
        print("no models (push one: model-runner push NAME BUNDLE.zip)")
        return 0
    rows = [{**m, "methods": m.get("methods") or m.get("load_error") and "(load error)"} for m in models]
    print(
        table(
            rows,
            [
                ("name", "name"),
                ("version", "version"),
                ("runtime", "runtime"),
                ("methods", "methods"),
                ("entry_point", "entry point"),
            ],
        )
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    history = client_for(args).history(args.name)
    if args.json:
        _out(args, history, "")
        return 0
    shown = ("time", "action", "version", "previous_version", "sha256", "caller")
    rows = []
    for h in history:
        extra = {k: v for k, v in h.items() if k not in shown}
        rows.append(
            {
                **h,
                "sha256": (h.get("sha256") or "")[:12] or None,
                "detail": " ".join(f"{k}={_cell(v)}" for k, v in extra.items()) or None,
            }
        )
    print(
        table(
            rows,
            [
                ("time", "time"),
                ("action", "action"),
                ("version", "version"),
                ("previous_version", "from"),
                ("caller", "caller"),
                ("sha256", "sha256"),
                ("detail", "detail"),
            ],
        )
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    raw = args.body if args.body is not None else args.data
    if raw.startswith("@"):
        src = raw[1:]
        try:
            raw = sys.stdin.read() if src == "-" else Path(src).read_text("utf-8")
        except OSError as exc:
            raise BadInput(
                f"cannot read {src}: {exc.strerror}", {"hint": "--data @path/to/request.json"}
            ) from None
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise BadInput(
            f"the request is not JSON: {exc}", {"hint": "quote it for the shell: --json '{\"field\": 1}'"}
        ) from None
    client = client_for(args)
    if args.protobuf:
        doc = _predict_protobuf(client, args.name, args.method, payload)
    else:
        resp = client.predict_response(args.name, args.method, payload)
        doc = resp.json()
        print(f"({resp.model} version {resp.version})", file=sys.stderr)
    print(json.dumps(doc, indent=2))
    return 0


def _predict_protobuf(client: Client, name: str, method: str, payload: Any) -> JsonObject:
    """Fetch the model's contract, send the request as binary protobuf, decode the answer to JSON."""
    from google.protobuf import json_format  # noqa: PLC0415

    from runner.contract import Contract  # noqa: PLC0415

    contract = Contract.compile(client.proto(name))
    try:
        request = json_format.ParseDict(payload, contract.input_class(method)())
    except json_format.ParseError as exc:
        raise BadInput(f"the request does not fit {method}'s input: {exc}", {}) from None
    resp = client.predict_response(name, method, request, protobuf=True)
    print(f"({resp.model} version {resp.version}, protobuf)", file=sys.stderr)
    answer = contract.output_class(method).FromString(resp.body)
    return json_format.MessageToDict(answer, preserving_proto_field_name=True)


def cmd_delete(args: argparse.Namespace) -> int:
    result = client_for(args).delete(args.name, expected_version=args.if_match)
    _out(args, result, f"{args.name}: deleted (no longer served; its versions stay in the repository)")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
