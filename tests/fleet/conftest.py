"""The fleet tests' fixtures: three hosts (network namespaces) serving one shared repository, nginx in
front (tests/fleet/hosts.py). Skipped, with the reason, where this machine cannot make them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.hosts import FLEET_SETTINGS, Fleet, FleetUnavailable, check_prerequisites, write_gen_bundle


@pytest.fixture(scope="session")
def fleet_prerequisites() -> None:
    try:
        check_prerequisites()
    except FleetUnavailable as why:
        pytest.skip(f"fleet tests need network namespaces and nginx: {why}")


@pytest.fixture
def fleet(fleet_prerequisites: None, tmp_path: Path) -> Iterator[Fleet]:
    """Three hosts serving model "gen" generation 1 from one repository, nginx in front of them. Each
    test gets a fresh fleet (the tests kill and restart hosts); everything is removed afterwards, passed
    or failed."""
    made = Fleet(tmp_path, env=FLEET_SETTINGS)
    try:
        hosts = [made.add_host() for _ in range(3)]
        # the first host publishes generation 1; the others serve the repository as they find it
        hosts[0].start(str(write_gen_bundle(tmp_path / "gen-1", 1, made.hang_dir)))
        for host in hosts[1:]:
            host.start(wait=False)
        for host in hosts[1:]:
            host.wait_ready()
        made.start_nginx()
        yield made
    finally:
        made.close()
