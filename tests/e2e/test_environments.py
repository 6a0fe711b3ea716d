"""Per-model Python environments end to end: two Python models pinning different versions of one
package (six), each answering with the version it imported, and a model under Python 3.9.

The environments are built for real (venv + pip from the package index); six is small, pure Python and
its version is observable from the model (``six.__version__``). The server has a six of its own, which
neither model may see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from runner.bundle import open_bundle, write_bundle_zip
from runner.contract import Contract
from runner.runtimes.environments import ENVS_DIR, SPEC_FILE, child_interpreter
from runner.settings import Settings
from tests.e2e.serve_process import start_serve
from tests.e2e.test_cli import cli_env, ok, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
PROTO = """syntax = "proto3";
package versions;
message Empty {}
message Versions { string six = 1; string python = 2; }
service VersionService { rpc Get(Empty) returns (Versions); }
"""
MODEL = """import sys

import six


class Model:
    def Get(self, request):
        return {"six": six.__version__, "python": "%d.%d" % sys.version_info[:2]}
"""


def versions_bundle(folder: Path, name: str, six: str, python: str | None = None) -> Path:
    """A Python bundle whose one rpc answers the six and Python versions it runs with."""
    folder.mkdir(parents=True)
    (folder / "model.proto").write_text(PROTO)
    (folder / "versions_model.py").write_text(MODEL)
    (folder / "requirements.txt").write_text(f"# the model's own pin\nsix=={six}\n")
    meta = {"name": name, "runtime": "python", "entry_point": "versions_model:Model"}
    (folder / "metadata.json").write_text(json.dumps({**meta, **({"python": python} if python else {})}))
    return folder


def run_model_in_its_environment(folder: Path, settings: Settings, tmp: Path) -> dict[str, str]:
    """Load the bundle's model with our Python runtime in its environment's interpreter (what the
    model's child process does) and call Get."""
    bundle = open_bundle(folder)
    fds = tmp / f"{bundle.metadata.name}.fds"
    fds.write_bytes(Contract.compile(bundle.proto_text).file_descriptor_set)
    argv, env = child_interpreter(folder, bundle.metadata, settings)
    code = (
        "from pathlib import Path\n"
        "from runner.bundle import read_metadata\n"
        "from runner.contract import Contract\n"
        "from runner.runtimes.python.model import PythonModel\n"
        f"folder, fds = Path({str(folder)!r}), Path({str(fds)!r}).read_bytes()\n"
        "contract = Contract((folder / 'model.proto').read_text(), 'model.proto', fds)\n"
        "model = PythonModel(folder, read_metadata(folder), contract)\n"
        "raw = model.invoke('Get', b'', 10)\n"
        "print(contract.to_json(contract.output_class('Get').FromString(raw)))\n"
        "model.close()\n"
    )
    done = subprocess.run(
        [*argv, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, str] = json.loads(done.stdout)
    return answer


def test_each_model_imports_its_own_pin_of_one_package(tmp_path: Path) -> None:
    import six  # the server's own six: neither model may see it

    settings = Settings(repo=tmp_path / "repo")
    a = versions_bundle(tmp_path / "a", "six-a", "1.15.0")
    b = versions_bundle(tmp_path / "b", "six-b", "1.16.0")
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert run_model_in_its_environment(a, settings, tmp_path) == {"six": "1.15.0", "python": own}
    assert run_model_in_its_environment(b, settings, tmp_path) == {"six": "1.16.0", "python": own}
    assert six.__version__ not in ("1.15.0", "1.16.0")
    envs = [p for p in (tmp_path / "repo" / ENVS_DIR).iterdir() if (p / SPEC_FILE).is_file()]
    assert len(envs) == 2


@pytest.mark.skipif(not PYTHON39.exists(), reason="pyenv's Python 3.9.18 is not installed")
def test_a_model_runs_under_the_python_it_names(tmp_path: Path) -> None:
    settings = Settings(repo=tmp_path / "repo", python_interpreters=(PYTHON39,))
    folder = versions_bundle(tmp_path / "old", "six-39", "1.15.0", python="3.9")
    assert run_model_in_its_environment(folder, settings, tmp_path) == {"six": "1.15.0", "python": "3.9"}


def _get(served_base: str, name: str) -> dict[str, str]:
    r = requests.post(f"{served_base}/models/{name}/methods/Get", json={}, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, str] = r.json()
    return answer


def test_one_serve_serves_conflicting_pins_side_by_side(tmp_path: Path) -> None:
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    bundles = [
        versions_bundle(tmp_path / "a", "six-a", "1.15.0"),
        versions_bundle(tmp_path / "b", "six-b", "1.16.0"),
    ]
    expected = {"six-a": {"six": "1.15.0", "python": own}, "six-b": {"six": "1.16.0", "python": own}}
    if PYTHON39.exists():
        bundles.append(versions_bundle(tmp_path / "c", "six-39", "1.16.0", python="3.9"))
        expected["six-39"] = {"six": "1.16.0", "python": "3.9"}
    served = start_serve([str(b) for b in bundles], tmp_path, workers=2, timeout=600)
    try:
        for name in expected:
            assert f"{name}: published version 1" in served.log_text()
        for _ in range(3):  # each of the two workers, whichever answers
            assert {name: _get(served.base, name) for name in expected} == expected

        # an upload whose requirement pip cannot install is refused, naming it, and leaves nothing
        bad = versions_bundle(tmp_path / "bad", "six-bad", "1.15.0")
        (bad / "requirements.txt").write_text("six==1.15.0\nmodel-runner-no-such-package-4242==1.0\n")
        r = requests.put(
            f"{served.base}/models/six-bad",
            data=write_bundle_zip(bad),
            headers={**served.auth, "Content-Type": "application/zip"},
            timeout=600,
        )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert "cannot install 'model-runner-no-such-package-4242==1.0'" in error["message"]
        envs = served.repo / ENVS_DIR
        assert sorted(p.name for p in envs.iterdir() if not (p / SPEC_FILE).is_file()) == [".locks"]
        assert requests.get(f"{served.base}/models/six-bad", timeout=30).status_code == 404
    finally:
        assert served.stop() == 0


def test_onboard_takes_a_requirements_file_and_validates_in_that_environment(tmp_path: Path) -> None:
    folder = versions_bundle(tmp_path / "src", "unused", "1.15.0")
    (folder / "requirements.txt").rename(tmp_path / "pins.txt")
    r = ok(
        run_cli(
            "onboard",
            f"{folder / 'versions_model.py'}:Model",
            *("--proto", folder / "model.proto", "--requirements", tmp_path / "pins.txt"),
            *("--json", "-o", tmp_path / "out.zip"),
            env=cli_env(MODEL_RUNNER_REPO=str(tmp_path / "repo")),
        )
    )
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert json.loads(r.stdout)["outputs"] == {"Get": [{"six": "1.15.0", "python": own}]}  # its own six ran
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert zf.read("requirements.txt").decode() == (tmp_path / "pins.txt").read_text()
