"""Model administration without a transport (HTTP and the CLI both call this).

Every change follows the swap protocol: stage in the repository's staging area, extract with limits,
validate (contract compiles, model loads, methods bind, examples run), publish under the model lock
(re-checking the expected version there), then wait until every live serving process serves the
result. Any failure before the publish leaves the repository untouched and the staging area clean.

While it waits, a call watches the model's pointer: once another change has made a different version
current (a concurrent push, a rollback, a delete), no process will ever serve this one, so the call
answers at once with Conflict (409) naming the change that superseded it and what is current, rather
than waiting for swap_timeout and answering a 504 that would suggest the version is still on its way.
A 200 means every live serving process served this version; a 504 (SwapTimeout) means the version
was still current at that moment but some processes did not serve it (still loading, or failed to
load it: ``load_errors``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.bundle import (
    JAR_FILE,
    METADATA_FILE,
    PROTO_FILE,
    Bundle,
    BundleLimits,
    content_sha256,
    extract_bundle,
    iter_files,
    open_bundle,
    safe_relpath,
)
from runner.contract import Contract, breaking_changes
from runner.errors import BadInput, Conflict, InvalidBundle, ModelRunnerError, NotFound, SwapTimeout, TooLarge
from runner.runtimes import isolation_of
from runner.serving import acumos
from runner.serving.validate import validate_bundle
from runner.settings import Settings
from runner.store import Repository, ServingRecord, describe, validate_name

log = logging.getLogger(__name__)


@dataclass
class UploadParts:
    """An upload in parts (Acumos ``PUT /model``): what is not given is taken from the current version."""

    jar: bytes | None = None
    proto: str | None = None
    metadata: dict[str, Any] | None = None
    libs: dict[str, bytes] | None = None
    """File name -> bytes of dependency JARs; when given they replace the whole lib/ folder."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Other files by bundle-relative path (Python modules, data)."""


BundleSource = bytes | bytearray | Path | str | UploadParts | dict[str, Any]


class Admin:
    """Upload, proto replacement, rollback and delete, each answered once the swap is served."""

    def __init__(
        self, repository: Repository, settings: Settings | None = None, *, swap_timeout: float | None = None
    ):
        """``settings`` (default: the built-in defaults) give the upload limits, the versions kept, the
        JVM options and heap if validation starts the JVM, and the swap timeout (``swap_timeout``
        overrides it)."""
        self.repository = repository
        self.settings = settings or Settings()
        self.swap_timeout = self.settings.swap_timeout if swap_timeout is None else swap_timeout
        # After each successful swap, versions beyond keep_versions are removed.
        self.keep_versions = self.settings.keep_versions
        self.limits = BundleLimits.from_settings(self.settings)

    # ------------------------------------------------------------------ operations

    def upload(
        self,
        name: str,
        bundle_source: BundleSource,
        *,
        expected_version: int | None = None,
        caller: str = "admin",
        allow_breaking: bool = False,
    ) -> dict[str, Any]:
        """Publish a bundle (zip bytes, a zip file or folder path, or UploadParts) as a new version.

        ``allow_breaking=False`` refuses (Conflict) a contract that breaks the current one's clients.
        The metadata's own name is not used: ``name`` decides where the bundle goes.
        """
        validate_name(name)
        self.repository.check_expected(name, expected_version)
        with self.repository.staging_dir() as stage:
            folder = stage / "bundle"
            base = None
            with _validating("the bundle", name, folder):
                if isinstance(bundle_source, (UploadParts, dict)):
                    parts = (
                        bundle_source
                        if isinstance(bundle_source, UploadParts)
                        else UploadParts(**bundle_source)
                    )
                    base = self._assemble_parts(name, parts, folder)
                else:
                    self._stage(bundle_source, folder)
                same = self._unchanged(name, folder, "upload")
                if same is not None:
                    return same
                bundle = open_bundle(folder)
                # the cheap refusal first: a breaking contract needs no model load to be refused
                breaking = self._refuse_breaking(name, folder, bundle.proto_text, allow_breaking)
                validate_bundle(bundle, settings=self.settings)
            self._check_jvm_options(name, bundle)
            # A bundle assembled from the current version's files must not overwrite a newer version.
            expected = expected_version if expected_version is not None or base is None else base
            version = self._publish(name, folder, bundle, "upload", breaking, expected, caller)
        return self._finish(name, version, "upload", breaking)

    def replace_proto(
        self,
        name: str,
        proto_text: str,
        *,
        allow_breaking: bool = False,
        expected_version: int | None = None,
        caller: str = "admin",
    ) -> dict[str, Any]:
        """A new version with the current artifacts and a new contract. A change that breaks existing
        clients is refused (Conflict, detail.breaking_changes) unless ``allow_breaking``."""
        validate_name(name)
        current = self._current_or_not_found(name)
        self.repository.check_expected(name, expected_version)
        if not isinstance(proto_text, str) or not proto_text.strip():
            raise BadInput("the new contract is empty", {"model": name})

        with self.repository.staging_dir() as stage:
            folder = stage / "bundle"
            self._copy_version(name, current, folder)
            (folder / PROTO_FILE).write_text(proto_text)
            with _validating("the new contract", name, folder):
                breaking = self._refuse_breaking(name, folder, proto_text, allow_breaking)
                self._drop_metadata_of_removed_rpcs(folder, proto_text)
                same = self._unchanged(name, folder, "proto")
                if same is not None:
                    return same
                bundle = open_bundle(folder)
                validate_bundle(bundle, settings=self.settings)
            version = self._publish(name, folder, bundle, "proto", breaking, current, caller)
        return self._finish(name, version, "proto", breaking)

    def rollback(
        self,
        name: str,
        *,
        version: int | None = None,
        expected_version: int | None = None,
        caller: str = "admin",
    ) -> dict[str, Any]:
        """Make the previous version (or ``version``) current again, then wait until it is served."""
        validate_name(name)
        target = self.repository.rollback(
            name, version=version, expected_version=expected_version, caller=caller
        )
        return self._finish(name, target, "rollback", [])

    def delete(
        self, name: str, *, caller: str = "admin", expected_version: int | None = None
    ) -> dict[str, Any]:
        """Stop serving a model everywhere (its versions stay until cleanup)."""
        validate_name(name)
        previous = self.repository.delete(name, caller=caller, expected_version=expected_version)
        laggards = self.repository.fleet.wait_until_served(
            name, None, self.swap_timeout, cancelled=lambda: self.repository.current_version(name) is not None
        )
        if laggards and self.repository.current_version(name) is not None:
            raise self._superseded(
                name, None, "delete", {"name": name, "version": None, "previous_version": previous}, laggards
            )
        if laggards:
            raise SwapTimeout(
                f"model {name!r} is deleted but {len(laggards)} serving process(es) still serve it after "
                f"{self.swap_timeout:g}s: {', '.join(laggards)}",
                {"name": name, "version": None, "previous_version": previous, "laggards": laggards},
            )
        return {
            "name": name,
            "version": None,
            "previous_version": previous,
            "sha256": None,
            "served_by": [],
            "action": "delete",
        }

    # ------------------------------------------------------------------ staging

    def _unchanged(self, name: str, folder: Path, action: str) -> dict[str, Any] | None:
        """The answer to a change whose staged bundle has the content of the current version (by
        runner.bundle's content digest): nothing is published, no version is created (a client that
        re-sends what is served, as Acumos clients do, must not grow the history). None: it differs."""
        current = self.repository.current_version(name)
        if current is None:
            return None
        sha256 = content_sha256(folder)
        try:
            current_sha256 = content_sha256(self.repository.version_dir(name, current))
        except (OSError, ModelRunnerError):
            return None  # a version being removed: publish as usual
        if sha256 != current_sha256:
            return None
        live = self.repository.fleet.live_processes()
        log.info("%s of %s: same content as version %s, nothing published", action, name, current)
        return {
            "name": name,
            "version": current,
            "previous_version": None,
            "sha256": sha256,
            "action": action,
            "unchanged": True,
            "served_by": sorted(
                pid for pid, info in live.items() if (info.get("models") or {}).get(name) == current
            ),
        }

    def _stage(self, source: BundleSource, folder: Path) -> None:

        limits = self.limits
        if isinstance(source, (bytes, bytearray, memoryview)):
            with acumos.accepting_dump(folder):  # an Acumos dump becomes the bundle serving it
                extract_bundle(bytes(source), folder, limits)
            return
        if not isinstance(source, (str, Path)):
            raise BadInput(f"cannot upload a {type(source).__name__}: send zip bytes, a zip file or a folder")
        path = Path(source)
        if path.is_dir():
            self._copy_folder(path, folder, limits)
            acumos.converted_in_place(folder)
        elif path.is_file():
            with acumos.accepting_dump(folder):
                extract_bundle(path, folder, limits)
        else:
            raise BadInput(f"{path}: no such bundle file or folder", {"path": str(path)})

    @staticmethod
    def _copy_folder(src: Path, dest: Path, limits: BundleLimits) -> None:
        """Copy a bundle folder's regular files (links resolved inside it only) within the size limits."""

        files = iter_files(src)
        if len(files) > limits.max_entries:
            raise TooLarge(
                f"the bundle has {len(files)} files; the limit is {limits.max_entries}",
                {"entries": len(files), "limit": limits.max_entries},
            )
        total = 0
        for rel, path in files:
            size = path.stat().st_size
            total += size
            if size > limits.max_file_bytes or total > limits.max_total_bytes:
                raise TooLarge(
                    f"{rel}: the bundle exceeds its size limits",
                    {
                        "entry": rel,
                        "max_file_bytes": limits.max_file_bytes,
                        "max_total_bytes": limits.max_total_bytes,
                    },
                )
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        dest.mkdir(parents=True, exist_ok=True)

    def _copy_version(self, name: str, version: int, dest: Path) -> None:
        shutil.copytree(
            self.repository.version_dir(name, version), dest, ignore=shutil.ignore_patterns("__pycache__")
        )

    def _assemble_parts(self, name: str, parts: UploadParts, folder: Path) -> int | None:
        """Build a bundle folder from parts over the current version's files; returns that version."""

        current = self.repository.current_version(name)
        if current is not None:
            self._copy_version(name, current, folder)
            if parts.libs is not None:
                shutil.rmtree(folder / "lib", ignore_errors=True)
        else:
            folder.mkdir(parents=True)
            missing = [
                what for what, part in (("metadata", parts.metadata), ("proto", parts.proto)) if part is None
            ]
            if missing:
                raise BadInput(
                    f"model {name!r} is new: send its {' and '.join(missing)} with the JAR",
                    {"missing": missing},
                )
        if parts.jar is not None:
            (folder / JAR_FILE).write_bytes(parts.jar)
        if parts.proto is not None:
            (folder / PROTO_FILE).write_text(parts.proto)
        if parts.metadata is not None:
            (folder / METADATA_FILE).write_text(json.dumps(parts.metadata, indent=2))
        for lib_name, data in (parts.libs or {}).items():
            rel = safe_relpath(f"lib/{Path(lib_name).name}")
            (folder / str(rel)).parent.mkdir(parents=True, exist_ok=True)
            (folder / str(rel)).write_bytes(data)
        for rel_name, data in parts.files.items():
            rel = safe_relpath(rel_name)
            (folder / str(rel)).parent.mkdir(parents=True, exist_ok=True)
            (folder / str(rel)).write_bytes(data)
        return current

    def _check_jvm_options(self, name: str, bundle: Bundle) -> None:
        """JVM options are fixed when a JVM starts. A bundle that needs options some live serving
        process's JVM lacks would load here and fail there: refuse it before publishing rather than
        half-apply the swap. (Processes with no JVM yet start theirs with every bundle's options.)"""
        wanted = list(getattr(bundle.metadata, "jvm_options", None) or [])
        if not wanted or getattr(bundle.metadata, "runtime", None) != "java":
            return
        if isolation_of(bundle.metadata, self.settings) == "process":
            return  # its own JVM in a child process, started with its options
        lacking: dict[str, list[str]] = {}
        for process_id, info in self.repository.fleet.live_processes().items():
            running = info.get("jvm_options")
            if running is None:
                continue
            missing = [option for option in wanted if option not in running]
            if missing:
                lacking[process_id] = missing
        if lacking:
            options = sorted({o for missing in lacking.values() for o in missing})
            raise InvalidBundle(
                f"{name}: the bundle needs JVM options {' '.join(options)} that the running JVMs of "
                f"{', '.join(sorted(lacking))} were started without (JVM options are fixed at start)",
                {
                    "name": name,
                    "missing_jvm_options": lacking,
                    "hint": "restart `model-runner serve` with "
                    + " ".join(f"--jvm-option={o}" for o in options)
                    + " (or MODEL_RUNNER_JVM_OPTIONS), then upload again",
                },
            )

    def _publish(
        self,
        name: str,
        folder: Path,
        bundle: Bundle,
        action: str,
        breaking: list[str],
        expected_version: int | None,
        caller: str,
    ) -> int:
        """Publish a staged, validated bundle under the model's lock; history notes breaking changes."""
        return self.repository.publish(
            name,
            folder,
            expected_version=expected_version,
            caller=caller,
            action=action,
            sha256=bundle.sha256,
            extra={"breaking_changes": breaking} if breaking else None,
        )

    def _breaking_changes(self, name: str, folder: Path, proto_text: str) -> list[str]:

        current = self.repository.current_version(name)
        if current is None:
            return []
        old_dir = self.repository.version_dir(name, current)
        try:
            old = Contract.compile((old_dir / PROTO_FILE).read_text(), include_dir=old_dir)
        except (OSError, ModelRunnerError):
            return []  # nothing sensible to compare against
        new = Contract.compile(proto_text, include_dir=folder)
        return breaking_changes(old, new)

    @staticmethod
    def _drop_metadata_of_removed_rpcs(folder: Path, proto_text: str) -> None:
        """A contract that removes an rpc (allowed with allow_breaking) must not keep that rpc's
        examples or method overrides, or validation would refuse the new version for them."""
        rpcs = set(Contract.compile(proto_text, include_dir=folder).method_names())
        path = folder / METADATA_FILE
        metadata = json.loads(path.read_text())
        changed = False
        for key in ("examples", "methods"):
            section = metadata.get(key)
            if isinstance(section, dict) and set(section) - rpcs:
                metadata[key] = {rpc: value for rpc, value in section.items() if rpc in rpcs}
                changed = True
        if changed:
            path.write_text(json.dumps(metadata, indent=2) + "\n")

    def _refuse_breaking(self, name: str, folder: Path, proto_text: str, allow_breaking: bool) -> list[str]:
        """The changes of ``proto_text`` that break the current contract's clients; Conflict naming them
        unless ``allow_breaking``."""
        breaking = self._breaking_changes(name, folder, proto_text)
        if breaking and not allow_breaking:
            raise Conflict(
                f"the new contract of {name!r} breaks existing clients: {'; '.join(breaking)}. "
                "Pass allow_breaking to replace it anyway",
                {"name": name, "breaking_changes": breaking, "hint": "allow_breaking=true"},
            )
        return breaking

    def _current_or_not_found(self, name: str) -> int:
        current = self.repository.current_version(name)
        if current is None:
            raise NotFound(f"no model named {name!r}", {"name": name, "models": self.repository.models()})
        return current

    # ------------------------------------------------------------------ waiting

    def _finish(self, name: str, version: int, action: str, breaking: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = next(
            (
                e
                for e in reversed(self.repository.history(name))
                if e.get("version") == version and e.get("action") == action
            ),
            {},
        )
        result: dict[str, Any] = {
            "name": name,
            "version": version,
            "previous_version": entry.get("previous_version"),
            "sha256": entry.get("sha256"),
            "action": action,
        }
        if breaking:
            result["breaking_changes"] = breaking
        lost: dict[str, ServingRecord] = {}  # lagged, then died or stopped: named in the answer, not awaited
        laggards = self.repository.fleet.wait_until_served(
            name,
            version,
            self.swap_timeout,
            cancelled=lambda: self.repository.current_version(name) != version,
            lost=lost,
        )
        live = self.repository.fleet.live_processes()
        result["served_by"] = sorted(
            pid for pid, info in live.items() if (info.get("models") or {}).get(name) == version
        )
        if lost:
            result["lost"] = sorted(describe(pid, info) for pid, info in lost.items())
        if laggards and self.repository.current_version(name) != version:
            raise self._superseded(name, version, action, result, laggards)
        if laggards:
            errors = {pid: (live.get(pid, {}).get("errors") or {}).get(name) for pid in laggards}
            failed = {pid: e["error"] for pid, e in errors.items() if e and e.get("version") == version}
            why = f"; failed to load: {next(iter(failed.values()))}" if failed else ""
            raise SwapTimeout(
                f"version {version} of {name!r} is published, but {len(laggards)} serving process(es) do not "
                f"serve it after {self.swap_timeout:g}s: "
                f"{', '.join(describe(pid, live.get(pid, {})) for pid in laggards)}{why}",
                {**result, "laggards": laggards, "load_errors": failed},
            )
        if self.keep_versions:
            try:
                self.repository.cleanup(self.keep_versions, [name])
            except OSError:
                log.exception("cleanup of %s failed", name)
        return result

    def _superseded(
        self, name: str, version: int | None, action: str, result: dict[str, Any], laggards: list[str]
    ) -> Conflict:
        """The answer to a change another change replaced before every serving process applied it: which
        change superseded it (the first history entry after it naming another version) and what is
        current now."""

        def superseding() -> dict[str, Any]:
            history = self.repository.history(name)
            mine = max(
                (
                    i
                    for i, e in enumerate(history)
                    if e.get("version") == version and e.get("action") == action
                ),
                default=len(history),
            )
            return next((e for e in history[mine + 1 :] if e.get("version") != version), {})

        after = superseding()
        if not after:
            # A publisher moves the pointer, then appends history, under the model's lock: once we hold
            # it, the entry of the change that moved the pointer is there.
            with self.repository.lock(name):
                after = superseding()
        current = self.repository.current_version(name)
        by, by_action, by_caller = after.get("version"), after.get("action"), after.get("caller")
        if by is not None:
            what = f"version {by} ({by_action} by {by_caller})"
        elif by_action == "delete":
            what = f"a delete by {by_caller}"
        else:
            what = "another change"
        now = f"version {current} is current" if current is not None else f"{name!r} has no current version"
        if version is None:
            message = (
                f"{name!r} was deleted, but {what} superseded the delete before every serving process "
                f"stopped serving it; {now}"
            )
        else:
            message = (
                f"version {version} of {name!r} was published, but {what} superseded it before every "
                f"serving process served it; {now}, so version {version} will not be served "
                "(unless a rollback makes it current again)"
            )
        return Conflict(
            message,
            {
                **result,
                "superseded": True,
                "superseded_by": by,
                "superseded_by_action": by_action,
                "superseded_by_caller": by_caller,
                "current_version": current,
                "laggards": laggards,
                "hint": f"another change won the race: see the history of {name!r}; to make yours current, "
                "push it again (with If-Match: the current version, so that a race is refused instead)",
            },
        )


@contextlib.contextmanager
def _validating(what: str, name: str, folder: Path) -> Iterator[None]:
    """Core errors pass as they are; anything else a check raises is the bundle's fault: InvalidBundle.
    Either names the bundle's files as the bundle has them, never by their path in the staging folder
    (the server's own paths are not the caller's business)."""
    try:
        yield
    except ModelRunnerError as err:
        err.message = _unstaged(err.message, folder)
        err.detail = {k: _unstaged(v, folder) if isinstance(v, str) else v for k, v in err.detail.items()}
        raise
    except Exception as err:
        log.exception("%s of %s: validation failed", what, name)
        raise InvalidBundle(
            _unstaged(f"{what} could not be validated: {type(err).__name__}: {err}", folder)
        ) from err


def _unstaged(text: str, folder: Path) -> str:
    """``text`` with paths inside the staged bundle ``folder`` relative to it ("model.jar")."""
    return text.replace(f"{folder}/", "").replace(str(folder), ".")
