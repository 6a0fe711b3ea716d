"""Session fixtures shared by every test package, and the per-test timeout's backstop.

Nothing here starts a JVM: the bridge starts it lazily, once per test session, in this process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from runner.samples import build_sample_bundles, find_repo_root

# Per-test timeouts come from pytest-timeout (default and method in pyproject's [tool.pytest.ini_options];
# end-to-end modules mark a larger one). Method "signal": at the deadline SIGALRM fails the test in the
# main thread, so its fixtures still tear down (they stop the `serve`, gunicorn and gRPC subprocesses)
# and the session carries on. But a Python signal handler runs only once the main thread is back in the
# interpreter: a call stuck inside the JVM (JPype) or in C code would never see it. So a backstop timer,
# BACKSTOP_GRACE seconds later, does what method "thread" does: dump every thread's stack and exit.
BACKSTOP_GRACE = 120.0


class TimeoutBackstop:
    """Arms and cancels the backstop next to pytest-timeout's own SIGALRM (its hooks are firstresult:
    returning None lets the plugin's implementation run as well)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> None:
        if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
            return  # the plugin falls back to its "thread" method there: no backstop needed
        import pytest_timeout  # only here: the backstop is registered only with the plugin installed

        backstop = threading.Timer(
            settings.timeout + BACKSTOP_GRACE, pytest_timeout.timeout_timer, (item, settings)
        )
        backstop.name = f"timeout backstop {item.nodeid}"
        backstop.daemon = True
        item.stash[_BACKSTOP] = backstop
        backstop.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> None:
        backstop = item.stash.get(_BACKSTOP, None)
        if backstop is not None:
            backstop.cancel()
            backstop.join()


_BACKSTOP = pytest.StashKey[threading.Timer]()


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("timeout"):  # pytest-timeout (the `test` extra) is installed
        config.pluginmanager.register(TimeoutBackstop(), "timeout-backstop")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The source checkout (holds java-samples/, protos/, runner/)."""
    return find_repo_root()


@pytest.fixture(scope="session")
def sample_bundles() -> dict[str, Path]:
    """The sample bundle folders, built from source once per session (cached across sessions):
    name -> folder, for iris, iris-v2, iris-proto, weka and iris-python."""
    return build_sample_bundles()
