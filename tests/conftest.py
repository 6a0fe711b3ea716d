"""Session fixtures shared by every test package.

Nothing here starts a JVM: the bridge starts it lazily, once per test session, in this process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.samples import build_sample_bundles, find_repo_root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The source checkout (holds java-samples/, protos/, runner/)."""
    return find_repo_root()


@pytest.fixture(scope="session")
def sample_bundles() -> dict[str, Path]:
    """The sample bundle folders, built from source once per session (cached across sessions):
    name -> folder, for iris, iris-v2, iris-proto, weka and iris-python."""
    return build_sample_bundles()
