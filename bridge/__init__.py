"""The Java bridge: the only package that imports jpype.

Python talks only to a small host library (bridge/java, built from source on first use); model classes
and exceptions never reach Python, so closing a model version frees its class loader and classes.
"""

from bridge.errors import (
    BindError,
    BridgeError,
    JavaDeadlineError,
    JavaExitError,
    JavaInspectError,
    JavaLoadError,
    JavaModelError,
    JvmNotFoundError,
    JvmOptionsError,
)

__all__ = [
    "BindError",
    "BridgeError",
    "JavaDeadlineError",
    "JavaExitError",
    "JavaInspectError",
    "JavaLoadError",
    "JavaModelError",
    "JvmNotFoundError",
    "JvmOptionsError",
]
