"""runner.runtimes.environments: a Python bundle's own environment (requirements.txt, ``python``).

The builds are real (venv + pip from the package index), so the tests that build are marked slow;
each builds a distinct small environment once (module-scoped) and checks what matters from inside it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner import locks
from runner.bundle import Metadata
from runner.errors import BadInput, InvalidBundle
from runner.runtimes.environments import (
    ENVS_DIR,
    RUNNER_SOURCE_ROOT,
    SPEC_FILE,
    EnvironmentSpec,
    Interpreter,
    build_environment,
    child_interpreter,
    declares_environment,
    ensure_environment,
    environment_spec,
    find_interpreter,
    uv_path,
)
from runner.settings import Settings
from tests.waiting import wait_for

PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
OWN_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
OWN_VERSION = ".".join(map(str, sys.version_info[:3]))
OWN = Interpreter(sys.executable, (sys.version_info[0], sys.version_info[1], sys.version_info[2]))


def python_meta(**fields: object) -> Metadata:
    return Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "m:Model", **fields})


def bundle(folder: Path, requirements: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    return folder


def run_in(argv: list[str], env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [*argv, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def leftovers(envs: Path) -> list[str]:
    """What a build left in envs/ besides complete environments and lock files."""
    return sorted(p.name for p in envs.iterdir() if p.name != ".locks" and not (p / SPEC_FILE).is_file())


# ------------------------------------------------------------------------------------------ declaring


def test_only_a_python_bundle_with_requirements_or_a_python_version_declares_one(tmp_path: Path) -> None:
    plain = bundle(tmp_path / "plain", None)
    with_requirements = bundle(tmp_path / "req", "six==1.15.0\n")
    assert not declares_environment(plain, python_meta())
    assert declares_environment(with_requirements, python_meta())
    assert declares_environment(plain, python_meta(python="3.9"))
    java = Metadata.from_dict({"name": "j", "runtime": "java", "entry_point": "a.B"})
    assert not declares_environment(with_requirements, java)
    assert environment_spec(plain, python_meta(), Settings(repo=tmp_path)) is None
    assert child_interpreter(plain, python_meta(), Settings(repo=tmp_path)) == (
        [sys.executable],
        {"PYTHONPATH": str(RUNNER_SOURCE_ROOT)},
    )


@pytest.mark.parametrize("value", ["3", "3.9.1", 3.9, "python3.9", "2.7.18", ""])
def test_metadata_refuses_a_python_that_is_not_major_minor(value: object) -> None:
    with pytest.raises(InvalidBundle, match="'python' must be a Python version like \"3.9\""):
        python_meta(python=value)


def test_metadata_python_is_for_python_bundles_and_round_trips() -> None:
    with pytest.raises(InvalidBundle, match="'python' applies only to runtime 'python'"):
        Metadata.from_dict({"name": "j", "runtime": "java", "entry_point": "a.B", "python": "3.9"})
    meta = python_meta(python="3.9")
    assert meta.python == "3.9" and meta.to_dict()["python"] == "3.9"
    assert "python" not in python_meta().to_dict()


def test_an_own_environment_cannot_run_in_process(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b", "six==1.15.0\n")
    with pytest.raises(
        InvalidBundle, match="isolation 'in-process' cannot serve this bundle: it has a requirements.txt"
    ):
        environment_spec(folder, python_meta(isolation="in-process"), Settings(repo=tmp_path))


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("-r other.txt", "option -r is not supported"),
        ("-e .", "option -e is not supported"),
        ("--find-links /wheels", "option --find-links is not supported"),
        ("./wheels/mine-1.0-py3-none-any.whl", "is a local path"),
        ("/abs/pkg.tar.gz", "is a local path"),
    ],
)
def test_requirements_that_read_other_files_are_refused(tmp_path: Path, line: str, says: str) -> None:
    folder = bundle(tmp_path / "b", f"six==1.15.0\n{line}\n")
    with pytest.raises(InvalidBundle, match=f"requirements.txt: line 2: .*{says}"):
        environment_spec(folder, python_meta(), Settings(repo=tmp_path))


# ------------------------------------------------------------------------------------------------- keys


def test_the_key_is_a_hash_of_interpreter_requirements_and_our_needs(tmp_path: Path) -> None:
    settings = Settings(repo=tmp_path)
    a = environment_spec(bundle(tmp_path / "a", "six==1.15.0\n"), python_meta(), settings)
    same = environment_spec(bundle(tmp_path / "same", "six==1.15.0\r\n\n"), python_meta(), settings)
    other = environment_spec(bundle(tmp_path / "other", "six==1.16.0\n"), python_meta(), settings)
    assert a is not None and same is not None and other is not None
    assert a.key == same.key  # line ends and trailing blank lines do not count
    assert a.key != other.key
    assert a.ours == (f"protobuf=={importlib.metadata.version('protobuf')}",)  # the server's version
    older = EnvironmentSpec(Interpreter("/x/python3.9", (3, 9, 18)), a.requirements, a.ours)
    assert len({a.key, older.key, EnvironmentSpec(a.interpreter, a.requirements, ("protobuf==1",)).key}) == 3
    # a python version alone (no requirements.txt) declares one too, keyed apart from the server's own
    versioned = environment_spec(bundle(tmp_path / "v", None), python_meta(python=OWN_MINOR), settings)
    assert versioned is not None and versioned.requirements == "" and versioned.interpreter == OWN


# ----------------------------------------------------------------------------------------- interpreters


def test_the_servers_own_version_is_the_servers_interpreter(tmp_path: Path) -> None:
    assert find_interpreter(None, Settings(repo=tmp_path)) == OWN
    assert find_interpreter(OWN_MINOR, Settings(repo=tmp_path)) == OWN


def test_a_python_older_than_our_code_supports_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle, match=r"python '3.8' is not supported: .* needs Python 3.9 or newer"):
        find_interpreter("3.8", Settings(repo=tmp_path))


def test_a_missing_interpreter_names_what_was_tried_and_the_setting(tmp_path: Path) -> None:
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\nexit 3\n")
    not_python.chmod(0o755)
    with pytest.raises(InvalidBundle) as caught:
        find_interpreter(
            "3.99", Settings(repo=tmp_path, python_interpreters=(not_python, Path(sys.executable)))
        )
    err = caught.value
    assert "no Python 3.99 interpreter found" in err.message and "python_interpreters" in err.message
    assert err.detail["tried"][:2] == [
        f"{not_python} (does not run)",
        f"{sys.executable} (Python {OWN_MINOR})",
    ]


@pytest.mark.skipif(not PYTHON39.exists(), reason="pyenv's Python 3.9.18 is not installed")
def test_a_configured_interpreter_is_found_by_its_version(tmp_path: Path) -> None:
    found = find_interpreter("3.9", Settings(repo=tmp_path, python_interpreters=(PYTHON39,)))
    assert found.version[:2] == (3, 9) and Path(found.path).resolve() == PYTHON39.resolve()


# ---------------------------------------------------------------------------------------------- builds


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("repo")


@pytest.fixture(params=["uv", "pip"])
def installer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each real build once with uv and once with ``python -m venv`` and pip (no uv)."""
    if request.param == "uv":
        if uv_path() is None:
            pytest.skip("uv is not installed (the test extra installs it)")
    else:
        monkeypatch.setattr("runner.runtimes.environments.uv_path", lambda: None)
    return str(request.param)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_environment_has_its_own_packages_and_not_the_servers(tmp_path: Path, installer: str) -> None:
    repo = tmp_path / "repo"  # each installer builds its own
    settings = Settings(repo=repo)
    folder = bundle(tmp_path / "b", "six==1.15.0\n")
    argv, env = child_interpreter(folder, python_meta(), settings)
    envs = repo / ENVS_DIR
    spec = environment_spec(folder, python_meta(), settings)
    assert spec is not None and argv == [str(envs / spec.key / "bin" / "python")]
    seen = json.loads(
        run_in(
            argv,
            env,
            "import json, importlib.util, six, google.protobuf, runner.runtimes.python.model as m;"
            "print(json.dumps([six.__version__, google.protobuf.__version__, m.__file__,"
            " [n for n in ('flask', 'grpc', 'numpy') if importlib.util.find_spec(n)]]))",
        )
    )
    assert seen[0] == "1.15.0"  # the server has its own six; the model's pin wins
    assert seen[1] == importlib.metadata.version("protobuf")
    assert Path(seen[2]).resolve() == RUNNER_SOURCE_ROOT / "runner" / "runtimes" / "python" / "model.py"
    assert seen[3] == []  # nothing of the server's site-packages
    recorded = json.loads((envs / spec.key / SPEC_FILE).read_text())
    assert recorded["requirements"] == "six==1.15.0" and recorded["ours"] == list(spec.ours)
    assert leftovers(envs) == []

    # a second bundle with the same requirements reuses it: nothing is built again
    marker = envs / spec.key / "reused"
    marker.write_text("")
    again = bundle(tmp_path / "again", "six==1.15.0\n")
    assert ensure_environment(again, python_meta(), settings) == envs / spec.key
    assert marker.exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_requirement_that_does_not_exist_is_named_and_leaves_nothing(
    tmp_path: Path, installer: str
) -> None:
    settings = Settings(repo=tmp_path / "repo")
    folder = bundle(tmp_path / "b", "six==1.15.0\nmodel-runner-no-such-package-4242==1.0\n")
    with pytest.raises(InvalidBundle) as caught:
        ensure_environment(folder, python_meta(), settings)
    err = caught.value
    assert err.message.startswith(
        f"requirements.txt: the model's Python {OWN_VERSION} environment could not be built"
    )
    assert "cannot install 'model-runner-no-such-package-4242==1.0'" in err.message
    assert err.detail["requirement"] == "model-runner-no-such-package-4242==1.0"
    assert any("model-runner-no-such-package-4242" in line for line in err.detail["output_tail"])
    assert leftovers(tmp_path / "repo" / ENVS_DIR) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_build_over_its_time_limit_is_stopped_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with pip: `python -m venv` alone takes longer than 0.2 s (uv, with a warm cache, may not)
    monkeypatch.setattr("runner.runtimes.environments.uv_path", lambda: None)
    settings = Settings(repo=tmp_path / "repo", environment_build_timeout=0.2)
    with pytest.raises(InvalidBundle, match=r"did not build within environment_build_timeout=0.2s"):
        ensure_environment(bundle(tmp_path / "b", "six==1.15.0\n"), python_meta(), settings)
    assert leftovers(tmp_path / "repo" / ENVS_DIR) == []


def test_a_builder_waits_for_the_one_holding_the_lock_and_uses_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = tmp_path / ENVS_DIR
    spec = EnvironmentSpec(OWN, "six==1.15.0", ("protobuf==1",))
    built: list[Path] = []
    monkeypatch.setattr("runner.runtimes.environments._create", lambda *a: built.append(a[1]))
    (envs / ".locks").mkdir(parents=True)
    lock = envs / ".locks" / f"{spec.key}.lock"
    holder = locks.acquire(lock)  # another process is building this environment (an fcntl OFD lock)
    assert holder is not None
    result: list[Path] = []
    waiter = threading.Thread(target=lambda: result.append(build_environment(spec, envs, timeout=60)))
    waiter.start()
    inode = os.stat(lock).st_ino
    wait_for(lambda: _blocked_on(inode), what="the second builder waiting on the lock")
    (envs / spec.key).mkdir()
    (envs / spec.key / SPEC_FILE).write_text("{}")  # the other process's build, renamed into place
    holder.release()
    waiter.join(timeout=60)
    assert result == [envs / spec.key] and built == []  # used, not built again


def test_a_build_cut_short_is_cleaned_by_the_next_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = tmp_path / ENVS_DIR
    spec = EnvironmentSpec(OWN, "", ("protobuf==1",))
    stale = envs / f".build-{spec.key}-crashed"
    (stale / "env" / "bin").mkdir(parents=True)

    def create(spec: EnvironmentSpec, env: Path, *rest: object) -> None:
        (env / "bin").mkdir(parents=True)

    monkeypatch.setattr("runner.runtimes.environments._create", create)
    final = build_environment(spec, envs, timeout=60)
    assert final == envs / spec.key and (final / SPEC_FILE).is_file()
    assert os.readlink(final / "runner-path" / "runner") == str(RUNNER_SOURCE_ROOT / "runner")
    assert leftovers(envs) == []


def _blocked_on(inode: int) -> bool:
    """Whether /proc/locks shows a waiter ("->") on the lock file with this inode."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any(
        line.split()[1] == "->" and line.split()[6].endswith(f":{inode}") for line in lines if "->" in line
    )


# ------------------------------------------------------------------------------------------ python 3.9


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not PYTHON39.exists(), reason="pyenv's Python 3.9.18 is not installed")
def test_our_child_code_runs_a_model_under_python_39(repo: Path, tmp_path: Path) -> None:
    from runner.contract import Contract

    folder = bundle(tmp_path / "b", "six==1.15.0\n")
    (folder / "model.proto").write_text(
        'syntax = "proto3"; package v; message Empty {} message Info { string python = 1; string six = 2; }\n'
        "service Versions { rpc Get(Empty) returns (Info); }\n"
    )
    (folder / "versions_model.py").write_text(
        "import sys\nimport six\n\n\nclass Model:\n    def Get(self, request):\n"
        "        return {'python': '%d.%d' % sys.version_info[:2], 'six': six.__version__}\n"
    )
    meta = python_meta(python="3.9", entry_point="versions_model:Model")
    (folder / "metadata.json").write_text(meta.to_json())
    contract = Contract.compile((folder / "model.proto").read_text())
    (tmp_path / "fds").write_bytes(contract.file_descriptor_set)
    argv, env = child_interpreter(folder, meta, Settings(repo=repo, python_interpreters=(PYTHON39,)))
    out = run_in(
        argv,
        env,
        "from pathlib import Path\n"
        "from runner.bundle import read_metadata\n"
        "from runner.contract import Contract\n"
        "from runner.runtimes.python.model import PythonModel\n"
        f"folder, fds = Path({str(folder)!r}), Path({str(tmp_path / 'fds')!r}).read_bytes()\n"
        "contract = Contract((folder / 'model.proto').read_text(), 'model.proto', fds)\n"
        "model = PythonModel(folder, read_metadata(folder), contract)\n"
        "raw = model.invoke('Get', contract.input_class('Get')().SerializeToString(), 10)\n"
        "print(contract.to_json(contract.output_class('Get').FromString(raw)))\n"
        "model.close()\n",
    )
    assert json.loads(out) == {"python": "3.9", "six": "1.15.0"}


# ------------------------------------------------------------------------------------------- onboarding


def test_onboarding_puts_the_requirements_file_into_the_bundle(tmp_path: Path) -> None:
    from runner.serving.onboarding import ModelOptions, bundle_from_source

    (tmp_path / "versions_model.py").write_text(
        "class Model:\n    def get(self) -> str:\n        return 'x'\n"
    )
    requirements = tmp_path / "my-requirements.txt"
    requirements.write_text("six==1.15.0\n")
    options = ModelOptions(requirements=requirements)
    assert options.given() == ["--requirements"]
    dest = bundle_from_source(
        f"{tmp_path / 'versions_model.py'}:Model", options, dest=tmp_path / "bundle", validate=False
    )
    assert (dest / "requirements.txt").read_text() == "six==1.15.0\n"
    assert declares_environment(dest, Metadata.from_json((dest / "metadata.json").read_text()))
    with pytest.raises(BadInput, match=r"--requirements is for Python models; .*model.jar is a JAR"):
        bundle_from_source(str(tmp_path / "model.jar"), options, dest=tmp_path / "jar-bundle", validate=False)


def test_the_child_finds_this_servers_runner_even_when_the_environment_was_built_by_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def create(spec: EnvironmentSpec, env: Path, *rest: object) -> None:
        (env / "bin").mkdir(parents=True)

    monkeypatch.setattr("runner.runtimes.environments._create", create)
    settings = Settings(repo=tmp_path / "repo")
    folder = bundle(tmp_path / "b", "six==1.15.0\n")
    env = ensure_environment(folder, python_meta(), settings)
    assert env is not None
    link = env / "runner-path" / "runner"
    link.unlink()
    link.symlink_to(tmp_path / "elsewhere" / "runner")  # built by a server installed elsewhere
    argv, extra = child_interpreter(folder, python_meta(), settings)
    assert argv == [str(env / "bin" / "python")]
    assert extra == {"PYTHONPATH": str(env / "runner-path"), "PYTHONNOUSERSITE": "1"}
    assert link.resolve() == RUNNER_SOURCE_ROOT / "runner"
