"""The versioned model store on disk: immutable versions, atomic ``current`` pointers, history, and the
serving records through which the processes of a host (or a fleet) report what they serve."""

from runner.store.repository import (
    CRASH_ENV,
    HEARTBEAT_STALE_SECONDS,
    HOST,
    PUBLISH_STEPS,
    Repository,
    folder_sha256,
    validate_name,
)

__all__ = [
    "CRASH_ENV",
    "HEARTBEAT_STALE_SECONDS",
    "HOST",
    "PUBLISH_STEPS",
    "Repository",
    "folder_sha256",
    "validate_name",
]
