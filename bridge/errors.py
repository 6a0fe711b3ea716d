"""Errors of the Java bridge. runner.runtimes.java maps them to the core's error kinds."""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """Base of every bridge error; ``detail`` is JSON-serialisable."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}


class JvmNotFoundError(BridgeError):
    """No JVM (or no javac to build the host library); detail["tried"] lists the paths tried."""


class JvmOptionsError(BridgeError):
    """The running JVM lacks options a bundle needs (they are fixed at JVM start); detail["missing"]."""


class JavaLoadError(BridgeError):
    """A model cannot be loaded: JAR missing or not a zip, class missing, constructor threw, ..."""


class BindError(JavaLoadError):
    """The contract does not bind to the Java class (a missing method included); detail["problems"]:
    [{"rpc","message","field","reason"}]. A JavaLoadError: both mean "this bundle cannot be served"."""


class JavaInspectError(BridgeError):
    """A contract cannot be generated from a Java class (a type with no proto mapping, no methods)."""


class JavaModelError(BridgeError):
    """The model threw; detail: java_class, java_message, java_stack."""


class JavaExitError(JavaModelError):
    """The model called System.exit / Runtime.halt; the call failed, the process keeps serving."""


class JavaDeadlineError(BridgeError):
    """The call overran its timeout: answered at the deadline, while the host stops the model's call
    (interrupt, then Thread.stop; detail["abandoned"] when the model was still running then)."""
