"""`serve BUNDLE` restarted: a restart with the same command line changes nothing that was pushed since;
a changed bundle on the command line is a deploy and is published (docs/operations.md, "The repository")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from runner.bundle import write_bundle_zip
from tests.e2e.serve_process import Serve, start_serve
from tests.http.conftest import write_toy_bundle

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def _toy(dest: Path, description: str) -> Path:
    """The toy bundle with its own description: a different content (sha256) per description."""
    write_toy_bundle(dest)
    meta = json.loads((dest / "metadata.json").read_text())
    meta["description"] = description
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def _current(served: Serve) -> int:
    r = requests.get(f"{served.base}/models/toy/versions", timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def _history(served: Serve) -> list[dict[str, object]]:
    r = requests.get(f"{served.base}/models/toy/history", timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["history"])


def _echo_version(served: Serve) -> str:
    r = requests.post(f"{served.base}/models/toy/methods/Echo", json={"text": "hi"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["X-Model-Version"]


def test_restart_keeps_pushes_and_a_changed_bundle_is_deployed(tmp_path: Path) -> None:
    v1 = _toy(tmp_path / "toy-v1", "first")
    pushed = _toy(tmp_path / "toy-pushed", "pushed over HTTP")
    changed = _toy(tmp_path / "toy-v3", "a new deploy")

    served = start_serve([str(v1)], tmp_path, log_name="serve-1.log")
    try:
        assert "toy: published version 1" in served.log_text()
        r = requests.put(
            f"{served.base}/models/toy",
            data=write_bundle_zip(pushed),
            headers={**served.auth, "Content-Type": "application/zip"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert int(r.json()["version"]) == 2
    finally:
        assert served.stop() == 0

    # the same command line again: the push stands, nothing is published
    served = start_serve([str(v1)], tmp_path, log_name="serve-2.log")
    try:
        history = _history(served)
        assert _current(served) == 2 and _echo_version(served) == "2"
        assert [e["version"] for e in history] == [1, 2]
        assert "toy: version 2 kept" in served.log_text()
    finally:
        assert served.stop() == 0

    # a changed bundle on the command line is a deploy: published
    served = start_serve([str(changed)], tmp_path, log_name="serve-3.log")
    try:
        assert "toy: published version 3" in served.log_text()
        assert _current(served) == 3 and _echo_version(served) == "3"
        entry = _history(served)[-1]
        assert entry["version"] == 3 and entry["caller"] == "cli:serve"
    finally:
        assert served.stop() == 0

    # and that command line restarted is a no-op too
    served = start_serve([str(changed)], tmp_path, log_name="serve-4.log")
    try:
        assert "toy: unchanged (version 3)" in served.log_text()
        assert [e["version"] for e in _history(served)] == [1, 2, 3]
    finally:
        assert served.stop() == 0
