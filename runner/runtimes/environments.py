"""Per-model Python environments: a Python bundle with its own packages or Python version.

A Python bundle that ships a ``requirements.txt`` (pip requirement lines) or names a ``python``
version ("3.9") in metadata.json runs in a virtual environment of its own, in a child process
(isolation "process", runner.runtimes.process): two models pinning different versions of one package
are served side by side, each importing its own. Such a bundle cannot run in the serving process.

One environment per distinct (interpreter, requirements text, what our own code needs), under
``<repo>/envs/<key>/``, the key a hash of those. It is built when the first bundle needing it is
validated (before its version is published, so serving processes find it ready), and reused by
every later bundle with the same key. A build is atomic: it happens in a temporary folder beside,
under a file lock per key (one builder across processes), and is renamed into place once complete;
a failed or timed-out build leaves nothing and raises InvalidBundle with the installer's last lines.
``uv`` is used when it is installed (on PATH or beside the server's interpreter), else ``python -m venv``
and pip.

The environment does not see the server's site-packages. Besides the bundle's requirements it gets
what the child's own code (runner.runtimes.child, runner.runtimes.python, runner.contract,
runner.errors, runner.bundle, runner.settings: imported from the server's source through PYTHONPATH)
needs from outside the standard library: protobuf, at the server's version (or, on another Python
that version does not support, the newest one from 4.25 up to it; the wire format is the same).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.bundle import METADATA_FILE, REQUIREMENTS_FILE, Metadata
from runner.errors import InvalidBundle
from runner.locks import locked as _locked
from runner.settings import Settings

RUNNER_PACKAGE = Path(__file__).resolve().parents[1]
"""The ``runner`` package the child imports (through a link in each environment)."""
RUNNER_SOURCE_ROOT = RUNNER_PACKAGE.parent
"""The directory that holds the ``runner`` package: the child's PYTHONPATH without an environment."""

ENVS_DIR = "envs"
"""Folder of the repository holding the environments: ``<repo>/envs/<key>/``."""
SPEC_FILE = "model-runner-env.json"
"""Written last into a complete environment: what it was built from."""
RUNNER_PATH_DIR = "runner-path"
"""Folder of an environment holding only a link to the ``runner`` package: the child's PYTHONPATH (a
PYTHONPATH naming the server's site-packages would expose all of its packages)."""

LAYOUT = 1
"""Bumped when what an environment holds changes: every key changes with it."""
MIN_PYTHON = (3, 9)
"""The oldest Python the child's own modules run on."""
PROTOBUF_FLOOR = "4.25"
"""The oldest protobuf the child's own modules run with (message_factory.GetMessageClass)."""
OUTPUT_TAIL_LINES = 15

# pip options a requirements.txt may use: they change where packages come from, not which files the
# build reads (an environment is keyed by the text alone, so -r, -c, -e and local paths are refused)
_ALLOWED_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--trusted-host", "--pre", "--only-binary")
_PROBE = "import json, sys; print(json.dumps([list(sys.version_info[:3]), sys.executable]))"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int, int]

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


@dataclass(frozen=True)
class EnvironmentSpec:
    """What one environment is built from; ``key`` names its folder."""

    interpreter: Interpreter
    requirements: str
    """The bundle's requirements.txt text (line ends normalized), "" when it has none."""
    ours: tuple[str, ...]
    """What the child's own code needs, as requirement lines."""

    @property
    def key(self) -> str:
        text = json.dumps(
            {
                "layout": LAYOUT,
                "interpreter": self.interpreter.path,
                "python": list(self.interpreter.version),
                "requirements": self.requirements,
                "ours": list(self.ours),
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def declares_environment(version_dir: Path, metadata: Metadata) -> bool:
    """Whether a bundle needs an environment of its own (and therefore a child process): a Python
    bundle with a requirements.txt or a ``python`` version."""
    return metadata.runtime == "python" and (
        metadata.python is not None or (Path(version_dir) / REQUIREMENTS_FILE).is_file()
    )


def environment_spec(version_dir: Path, metadata: Metadata, settings: Settings) -> EnvironmentSpec | None:
    """The environment a bundle needs, None when it runs with the server's own packages; InvalidBundle
    for a requirements.txt or a ``python`` version that cannot be served."""
    if not declares_environment(version_dir, metadata):
        return None
    if metadata.isolation == "in-process":
        raise InvalidBundle(
            f"{METADATA_FILE}: isolation 'in-process' cannot serve this bundle: it has "
            + (
                "a requirements.txt"
                if (Path(version_dir) / REQUIREMENTS_FILE).is_file()
                else "a 'python' version"
            )
            + ", so it runs in an environment of its own, in a child process (remove 'isolation' or set it "
            "to 'process')",
            detail={"file": METADATA_FILE, "isolation": "in-process"},
        )
    requirements = read_requirements(Path(version_dir))
    interpreter = find_interpreter(metadata.python, settings)
    return EnvironmentSpec(interpreter, requirements, our_requirements(interpreter))


def read_requirements(version_dir: Path) -> str:
    """The bundle's requirements text, checked: requirement lines, comments and a few index options."""
    path = version_dir / REQUIREMENTS_FILE
    if not path.is_file():
        return ""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidBundle(
            f"{REQUIREMENTS_FILE} is not UTF-8 text: {err}", detail={"file": REQUIREMENTS_FILE}
        ) from None
    text = text.replace("\r\n", "\n").strip()
    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            option = re.split(r"[\s=]", line, maxsplit=1)[0]
            if option not in _ALLOWED_OPTIONS:
                problems.append(
                    f"line {number}: option {option} is not supported (only {', '.join(_ALLOWED_OPTIONS)}): "
                    "list the packages themselves"
                )
        elif line.startswith((".", "/", "~", "file:")):
            problems.append(
                f"line {number}: {line!r} is a local path: an environment is built from the text alone; "
                "name packages from an index"
            )
    if problems:
        raise InvalidBundle(
            f"{REQUIREMENTS_FILE}: " + "; ".join(problems),
            detail={"file": REQUIREMENTS_FILE, "problems": problems},
        )
    return text


def our_requirements(interpreter: Interpreter) -> tuple[str, ...]:
    """What the child's own modules need from outside the standard library, for ``interpreter``."""
    protobuf = importlib.metadata.version("protobuf")
    if interpreter.version[:2] == tuple(sys.version_info[:2]):
        return (f"protobuf=={protobuf}",)
    # another Python may lack wheels of the server's version (protobuf 7 needs 3.10+)
    return (f"protobuf>={PROTOBUF_FLOOR},<={protobuf}",)


# ------------------------------------------------------------------------------------------ interpreters


def find_interpreter(version: str | None, settings: Settings) -> Interpreter:
    """The interpreter for a bundle's ``python`` version ("3.9"; None: the server's own): the server's
    when it is that version, else the first of ``settings.python_interpreters``, ``python3.9`` on PATH
    and pyenv's 3.9.* (newest first) that runs and is that version."""
    own = Interpreter(sys.executable, (sys.version_info[0], sys.version_info[1], sys.version_info[2]))
    if version is None or version == own.minor:
        return own
    wanted = tuple(int(part) for part in version.split("."))
    if wanted < MIN_PYTHON:
        raise InvalidBundle(
            f"{METADATA_FILE}: python {version!r} is not supported: model-runner's code in the model's "
            f"process needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
            detail={"file": METADATA_FILE, "python": version},
        )
    tried: list[str] = []
    for candidate in _candidates(version, settings):
        found = _probe(candidate)
        tried.append(f"{candidate} ({'Python ' + found.minor if found else 'does not run'})")
        if found is not None and found.version[:2] == wanted:
            return found
    raise InvalidBundle(
        f"{METADATA_FILE}: no Python {version} interpreter found for this bundle"
        + (f" (tried {', '.join(tried)})" if tried else "")
        + f"; install one (python{version} on PATH, or pyenv), or name it in the python_interpreters setting",
        detail={"file": METADATA_FILE, "python": version, "tried": tried},
    )


def _candidates(version: str, settings: Settings) -> Iterator[str]:
    seen: set[str] = set()

    def fresh(path: str) -> bool:
        if path in seen:
            return False
        seen.add(path)
        return True

    for configured in settings.python_interpreters:
        if fresh(str(configured)):
            yield str(configured)
    on_path = shutil.which(f"python{version}")
    if on_path and fresh(on_path):
        yield on_path
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for folder in pyenv.glob(f"{version}.*"):
        patch = folder.name[len(version) + 1 :]
        if patch.isdigit() and (folder / "bin" / "python").exists():
            found.append((int(patch), str(folder / "bin" / "python")))
    for _patch, path in sorted(found, reverse=True):
        if fresh(path):
            yield path


@functools.lru_cache(maxsize=64)
def _probe(path: str) -> Interpreter | None:
    """The version and real executable of an interpreter, None when it does not run (a pyenv shim of
    a version not selected fails, for one)."""
    try:
        done = subprocess.run(
            [path, "-c", _PROBE], capture_output=True, text=True, timeout=30, env=_clean_env(), check=False
        )
        version, executable = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if done.returncode != 0:
        return None
    return Interpreter(str(executable), (int(version[0]), int(version[1]), int(version[2])))


# -------------------------------------------------------------------------------------------- building


def environments_dir(settings: Settings) -> Path:
    return Path(settings.repo) / ENVS_DIR


def ensure_environment(version_dir: Path, metadata: Metadata, settings: Settings) -> Path | None:
    """The folder of the environment a bundle needs, built first if missing (within
    ``settings.environment_build_timeout``); None when the bundle needs none."""
    spec = environment_spec(version_dir, metadata, settings)
    if spec is None:
        return None
    return build_environment(spec, environments_dir(settings), timeout=settings.environment_build_timeout)


def build_environment(spec: EnvironmentSpec, envs: Path, *, timeout: float) -> Path:
    """``envs/<key>``, built unless it is there. One builder per key across processes (a file lock);
    the others wait for it and use its result."""
    final = envs / spec.key
    if (final / SPEC_FILE).is_file():
        return final
    locks = envs / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with _locked(locks / f"{spec.key}.lock"):
        if (final / SPEC_FILE).is_file():
            return final  # built by another process while this one waited
        if final.exists():  # never complete without SPEC_FILE (renamed into place whole): a stray copy
            shutil.rmtree(final)
        for stale in envs.glob(f".build-{spec.key}-*"):  # a build cut short (the lock is ours now)
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".build-{spec.key}-", dir=envs))
        try:
            built = work / "env"
            _create(spec, built, work, time.monotonic() + timeout, timeout)
            _retarget(built, final)
            _link_runner(built)
            (built / SPEC_FILE).write_text(
                json.dumps(
                    {
                        "interpreter": spec.interpreter.path,
                        "python": ".".join(map(str, spec.interpreter.version)),
                        "requirements": spec.requirements,
                        "ours": list(spec.ours),
                        "layout": LAYOUT,
                    },
                    indent=2,
                )
                + "\n",
                "utf-8",
            )
            os.rename(built, final)
            _fsync_dir(envs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def uv_path() -> str | None:
    """uv, when installed: on PATH, or beside this interpreter (``pip install uv`` puts it there, which
    is not on PATH when the server's venv is not activated). None: ``python -m venv`` and pip."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _create(spec: EnvironmentSpec, env: Path, work: Path, deadline: float, timeout: float) -> None:
    requirements = work / REQUIREMENTS_FILE
    requirements.write_text(spec.requirements + "\n", "utf-8")
    ours = work / "runner-requirements.txt"
    ours.write_text("\n".join(spec.ours) + "\n", "utf-8")
    python = str(env / "bin" / "python")
    uv = uv_path()
    if uv:
        steps = [
            ("uv venv", [uv, "venv", "--quiet", "--python", spec.interpreter.path, str(env)]),
            (
                "uv pip install",
                [uv, "pip", "install", "--python", python, "-r", str(requirements), "-r", str(ours)],
            ),
        ]
    else:
        steps = [
            ("python -m venv", [spec.interpreter.path, "-m", "venv", str(env)]),
            (
                "pip install",
                [
                    python,
                    *("-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile"),
                    *("-r", str(requirements), "-r", str(ours)),
                ],
            ),
        ]
    for what, argv in steps:
        _run(what, argv, spec, deadline, timeout, cwd=work)


def _run(
    what: str, argv: Sequence[str], spec: EnvironmentSpec, deadline: float, timeout: float, cwd: Path
) -> None:
    python = ".".join(map(str, spec.interpreter.version))
    left = deadline - time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # pip's own children end with it at the time limit
    )
    try:
        output, _ = process.communicate(timeout=max(left, 0.001))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise InvalidBundle(
            f"{REQUIREMENTS_FILE}: the model's Python {python} environment did not build within "
            f"environment_build_timeout={timeout:g}s ({what}); nothing was kept",
            detail={"file": REQUIREMENTS_FILE, "python": python, "step": what, "output_tail": _tail(output)},
        ) from None
    if process.returncode != 0:
        tail = _tail(output)
        failed = _failed_requirement(output, spec.requirements)
        last = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "")
        raise InvalidBundle(
            f"{REQUIREMENTS_FILE}: the model's Python {python} environment could not be built"
            + (f": cannot install {failed!r}" if failed else "")
            + f" ({what} exited with {process.returncode}: {last.strip()})",
            detail={
                "file": REQUIREMENTS_FILE,
                "python": python,
                "step": what,
                "requirement": failed,
                "output_tail": tail,
            },
        )


_FAILED_PATTERNS = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"Because (\S+) was not found in the package registry"),  # uv
    re.compile(r"Because there is no version of (\S+)"),  # uv
    re.compile(r"Invalid requirement: '([^']+)'"),
)


def _failed_requirement(output: str, requirements: str) -> str | None:
    """The requirement the installer could not satisfy, as the bundle wrote it (uv names only the
    package: its line in ``requirements`` is looked up)."""
    for pattern in _FAILED_PATTERNS:
        match = pattern.search(output)
        if match:
            return _as_written(match.group(1), requirements)
    return None


def _as_written(found: str, requirements: str) -> str:
    name = project_name(found)
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and project_name(line) == name:
            return line
    return found


def project_name(requirement: str) -> str:
    """The project a requirement names, normalized as pip compares names (``Scikit_Learn>=1.6`` ->
    ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s=<>!~;\[@]", requirement.strip(), maxsplit=1)[0]).lower()


def _tail(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()][-OUTPUT_TAIL_LINES:]


def _clean_env() -> dict[str, str]:
    """The environment for the installer and probes: without the server's Python paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _retarget(built: Path, final: Path) -> None:
    """Scripts in bin/ (activate, console scripts' #! lines) name the folder they were built in; make
    them name the folder they are renamed to."""
    old, new = str(built).encode(), str(final).encode()
    for script in (built / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if old in data and b"\0" not in data[:1024]:
            script.write_bytes(data.replace(old, new))


def _link_runner(env: Path) -> None:
    """``env/runner-path/runner`` -> this server's ``runner`` package (replaced atomically when the
    server's source moved)."""
    folder = env / RUNNER_PATH_DIR
    folder.mkdir(exist_ok=True)
    link = folder / "runner"
    if link.is_symlink() and os.readlink(link) == str(RUNNER_PACKAGE):
        return
    staged = folder / f".runner-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    os.symlink(RUNNER_PACKAGE, staged)
    os.replace(staged, link)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ the child


def child_interpreter(
    version_dir: Path, metadata: Metadata, settings: Settings
) -> tuple[list[str], dict[str, str]]:
    """The argv prefix that starts a Python for a model's child process, and extra environment
    variables for it (``PYTHONPATH`` so the child finds the ``runner`` package).

    A bundle with an environment of its own gets that environment's Python (built here if it is
    missing, e.g. a repository copied without its envs/ folder); any other, the server's.

    Such an environment holds protobuf and the model's packages only, no grpcio-tools: the child
    cannot compile the contract (protoc) and must build it from the parent's compiled descriptor set
    (``Contract(proto_text, filename, contract.file_descriptor_set)``)."""
    env = ensure_environment(Path(version_dir), metadata, settings)
    if env is None:
        return [sys.executable], {"PYTHONPATH": str(RUNNER_SOURCE_ROOT)}
    _link_runner(env)
    return [str(env / "bin" / "python")], {"PYTHONPATH": str(env / RUNNER_PATH_DIR), "PYTHONNOUSERSITE": "1"}
