"""Fixtures of the HTTP transport tests: a real Repository + Registry in a tmp folder, the Flask test client."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner.http.app import create_app
from runner.serving.admin import Admin
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository

TOKEN = "s3cret-token"

# A Python model with methods that fail and that take long, for the model_error and deadline statuses.
TOY_MODEL = textwrap.dedent('''
    import time


    class Toy:
        """Echoes; fails on request; sleeps on request."""

        def echo(self, text: str) -> str:
            if text == "boom":
                raise ValueError("the toy model was asked to fail")
            return text

        def sleep(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds
''')


@dataclass
class Env:
    repository: Repository
    registry: Registry
    admin: Admin
    settings: Settings
    client: Any
    app: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


TOY_PROTO = textwrap.dedent("""
    syntax = "proto3";
    package toy;
    message EchoRequest { string text = 1; }
    message EchoResponse { string value = 1; }
    message SleepRequest { double seconds = 1; }
    message SleepResponse { double value = 1; }
    service Toy {
      rpc Echo (EchoRequest) returns (EchoResponse);
      rpc Sleep (SleepRequest) returns (SleepResponse);
    }
""")


def write_toy_bundle(dest: Path) -> Path:
    """A Python bundle folder of TOY_MODEL (written by hand, as docs/bundle.md describes)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "toy_model.py").write_text(TOY_MODEL)
    (dest / "model.proto").write_text(TOY_PROTO)
    (dest / "metadata.json").write_text(
        json.dumps(
            {
                "name": "toy",
                "runtime": "python",
                "entry_point": "toy_model:Toy",
                "description": "test model",
                "examples": {"Echo": [{"text": "hi"}], "Sleep": [{"seconds": 0}]},
            }
        )
    )
    return dest


@pytest.fixture(scope="session")
def toy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle")


def make_env(root: Path, bundles: dict[str, Path], **settings_overrides: Any) -> Env:
    repository = Repository(root)
    settings = Settings(repo=root, admin_token=TOKEN, swap_timeout=15.0, poll_interval=0.05)
    for key, value in settings_overrides.items():
        setattr(settings, key, value)
    admin = Admin(repository, swap_timeout=settings.swap_timeout)
    for name, folder in bundles.items():
        admin.upload(name, folder, caller="test-setup")
    registry = Registry(
        repository, BundleLoader(Settings()), process_kind="http", poll_interval=settings.poll_interval
    )
    registry.start()
    app = create_app(settings, registry, repository, admin=admin)
    return Env(repository, registry, admin, settings, app.test_client(), app)


@pytest.fixture(scope="module")
def shared_env(
    sample_bundles: dict[str, Path], toy_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """Read-only tests: iris (Java POJO), iris-proto (Java proto-native), iris-python, toy."""
    bundles = {n: sample_bundles[n] for n in ("iris", "iris-proto", "iris-python") if n in sample_bundles}
    bundles["toy"] = toy_bundle
    env = make_env(tmp_path_factory.mktemp("http-shared"), bundles)
    yield env
    env.registry.stop()


@pytest.fixture
def iris_env(sample_bundles: dict[str, Path], tmp_path: Path) -> Iterator[Env]:
    """A fresh repository serving only iris: for swaps, rollbacks, deletes and the Acumos paths."""
    env = make_env(tmp_path / "repo", {"iris": sample_bundles["iris"]})
    yield env
    env.registry.stop()
