"""The versioned model store on disk: immutable versions, atomic ``current`` pointers, history, and the
serving records through which the processes of a host (or a fleet) report what they serve.

runner.store.repository: the versions; runner.store.fleet: the serving records (``Repository.fleet``);
runner.store.files: the file-system helpers both use.
"""

from runner.store.files import CRASH_ENV, HOST
from runner.store.fleet import HEARTBEAT_STALE_SECONDS, Fleet, LoadError, ServingRecord, describe
from runner.store.repository import PUBLISH_STEPS, HistoryEntry, Repository, folder_sha256, validate_name

__all__ = [
    "CRASH_ENV",
    "HEARTBEAT_STALE_SECONDS",
    "HOST",
    "PUBLISH_STEPS",
    "Fleet",
    "HistoryEntry",
    "LoadError",
    "Repository",
    "ServingRecord",
    "folder_sha256",
    "describe",
    "validate_name",
]
