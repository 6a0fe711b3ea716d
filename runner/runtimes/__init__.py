"""The one model interface of the core, and the loader that picks the runtime.

A model takes a serialized request message and returns a serialized response message; it knows
nothing of JSON, HTTP or gRPC. Two implementations: runner.runtimes.python.model.PythonModel and
runner.runtimes.java.JavaModelAdapter (over bridge.model.JavaModel).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runner.errors import InvalidBundle

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


def load_model(
    version_dir: Path, metadata: Metadata, contract: Contract, settings: Settings | None = None
) -> Model:
    """Load a bundle's model in this process and bind every rpc of ``contract``.

    ``settings`` (optional) supplies the JVM options and heap used when this call starts the JVM;
    by default they come from the MODEL_RUNNER_* environment."""
    if metadata.runtime == "python":
        from runner.runtimes.python.model import PythonModel  # noqa: PLC0415

        return PythonModel(Path(version_dir), metadata, contract)
    if metadata.runtime == "java":
        from runner.runtimes.java import JavaModelAdapter  # noqa: PLC0415 (imports the bridge lazily)

        return JavaModelAdapter(Path(version_dir), metadata, contract, settings=settings)
    raise InvalidBundle(f"runtime {metadata.runtime!r} is not supported (use 'java' or 'python')")
