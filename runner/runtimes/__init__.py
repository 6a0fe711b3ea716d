"""The one model interface of the core, and the loader that picks the runtime.

A model takes a serialized request message and returns a serialized response message; it knows
nothing of JSON, HTTP or gRPC. Two implementations: runner.runtimes.python.model.PythonModel and
runner.runtimes.java.JavaModelAdapter (over bridge.model.JavaModel).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runner.errors import InvalidBundle
from runner.runtimes.environments import declares_environment

if TYPE_CHECKING:
    from runner.bundle import Metadata
    from runner.contract import Contract
    from runner.settings import Settings


@runtime_checkable
class Model(Protocol):
    """A loaded model version."""

    bindings: dict[str, dict[str, Any]]
    """rpc -> how it is bound (method name, convention, ...)."""

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        """Binary proto in, binary proto out. Raises BadInput, MethodNotFound, ModelError,
        DeadlineExceeded."""
        ...

    def close(self) -> None:
        """Release the model (class loader, modules, threads). Calls must have drained."""
        ...


def isolation_of(metadata: Metadata, settings: Settings) -> str:
    """Where ``metadata``'s model runs: its bundle's ``isolation``, else the deployment's setting."""
    return metadata.isolation or settings.isolation


def calls_of(metadata: Metadata, settings: Settings) -> str:
    """How ``metadata``'s model runs its timed calls: its bundle's ``calls``, else the deployment's setting."""
    return metadata.calls or settings.calls


def load_model(version_dir: Path, metadata: Metadata, contract: Contract, settings: Settings) -> Model:
    """Load a bundle's model in this process, or in a child process of its own (isolation "process":
    runner.runtimes.process), and bind every rpc of ``contract``.

    ``settings`` supplies the JVM options and heap used when this call starts the JVM."""
    own_environment = declares_environment(version_dir, metadata)  # requirements.txt / python: a child
    if metadata.runtime in ("python", "java") and (
        own_environment or isolation_of(metadata, settings) == "process"
    ):
        from runner.runtimes.process import ProcessModel  # noqa: PLC0415 (only for isolated bundles)

        return ProcessModel(Path(version_dir), metadata, contract, settings)
    if metadata.runtime == "python":
        from runner.runtimes.python.model import PythonModel  # noqa: PLC0415 (Java-only services never import it)

        return PythonModel(
            Path(version_dir), metadata, contract, inline_calls=calls_of(metadata, settings) == "inline"
        )
    if metadata.runtime == "java":
        from runner.runtimes.java import JavaModelAdapter  # noqa: PLC0415 (the bridge, only when needed)

        return JavaModelAdapter(Path(version_dir), metadata, contract, settings=settings)
    raise InvalidBundle(f"runtime {metadata.runtime!r} is not supported (use 'java' or 'python')")


def prepare_runtimes(metadata: Iterable[Metadata], settings: Settings) -> None:
    """Start what the given models need before the first of them loads: the JVM, once, with the union of
    the options every Java bundle declares (options are fixed at JVM start). No Java model in this
    process, no JVM: a bundle isolated in a child process starts its own there."""
    options: list[str] = []
    java = False
    for meta in metadata:
        if meta.runtime == "java" and isolation_of(meta, settings) != "process":
            java = True
            options.extend(o for o in meta.jvm_options if o not in options)
    if java:
        from runner.runtimes.java import ensure_jvm  # noqa: PLC0415 (the bridge, only when needed)

        ensure_jvm(options, settings, name="registry")


def process_facts() -> dict[str, object]:
    """What this process's runtimes are, for its serving record: the options its JVM runs with (None:
    no JVM yet), which lets a publisher refuse a bundle whose JVM options this process lacks."""
    from runner.runtimes.java import running_jvm_options  # noqa: PLC0415 (never imports the bridge itself)

    return {"jvm_options": running_jvm_options()}


def jvm_stats() -> dict[str, Any] | None:
    """This process's JVM figures (heap, Metaspace, classes, garbage collections) for the metrics, or None
    when it runs no JVM (never starts one)."""
    from runner.runtimes.java import jvm_stats as java_stats  # noqa: PLC0415 (never imports the bridge itself)

    return java_stats()
