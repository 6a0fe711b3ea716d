"""The sample models, built from source into bundle folders.

`build_sample_bundles()` runs the root Gradle build of java-samples/ (offline, local dependencies only)
and assembles one bundle folder per sample under ``<repo root>/build/samples/<name>/``:
``metadata.json``, ``model.proto`` (a copy of protos/iris.proto), ``model.jar``, ``lib/*.jar`` and data
artifacts (Java), or the Python files (iris-python, from runner/samples/iris-python/).

The build is skipped while a hash of every input (sources, build files, this module, the dependency
jars) is unchanged; the hash is stored next to the outputs. A file lock makes concurrent callers
(pytest workers, `serve` and a test run) build once and then share the result.

There is no javac fallback: without Gradle the build fails with a message pointing at `.ci/setup`,
which installs Gradle, a JDK, protoc and protobuf-java on Debian.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ModelRunnerError, PreconditionFailed

if TYPE_CHECKING:
    from runner.store import Repository

log = logging.getLogger(__name__)

PROTOBUF_JAR = Path("/usr/share/java/protobuf.jar")
"""Debian's protobuf-java 3.21 (libprotobuf-java): the runtime that matches Debian's protoc 3.21."""

DEFAULT_SAMPLES = ("iris", "iris-proto", "weka", "iris-python")
"""The samples `ensure_default_repository` publishes into an empty repository."""

HASH_FILE = ".sources.sha256"
LOCK_FILE = ".samples.lock"

# Three rows of the classic iris data, one per species: the bundles' pre-swap self-test inputs.
_ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},  # setosa
    {"sepal_length": 7.0, "sepal_width": 3.2, "petal_length": 4.7, "petal_width": 1.4},  # versicolor
    {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},  # virginica
]
IRIS_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "Classify": [dict(row) for row in _ROWS],
    "ClassifyBatch": [{"rows": [dict(row) for row in _ROWS]}],
    "ClassifyMatrix": [{"rows": [{"values": list(row.values())} for row in _ROWS]}],
}
"""Proto3 JSON examples of every rpc of protos/iris.proto (inputs only)."""


class SampleBuildError(ModelRunnerError):
    """The sample build failed; ``detail`` holds the command, its output and a hint."""


@dataclass(frozen=True)
class JavaSample:
    """A Gradle project under java-samples/ and the metadata of the bundle built from it."""

    project: str
    """Folder under java-samples/ (and Gradle project name)."""
    name: str
    """Model name in metadata.json."""
    entry_point: str
    description: str
    jvm_options: tuple[str, ...] = ()
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: copy.deepcopy(IRIS_EXAMPLES))


JAVA_SAMPLES: dict[str, JavaSample] = {
    sample.project: sample
    for sample in (
        JavaSample(
            "iris",
            "iris",
            "org.modelrunner.samples.iris.IrisClassifier",
            "Iris species from the four flower measurements: a fixed linear softmax classifier in plain Java.",
        ),
        JavaSample(
            "iris-v2",
            "iris",
            "org.modelrunner.samples.iris.IrisClassifier",
            "Second version of iris: same class and contract, labels Iris-setosa/Iris-versicolor/Iris-virginica.",
        ),
        JavaSample(
            "iris-proto",
            "iris-proto",
            "org.modelrunner.samples.irisproto.IrisProtoClassifier",
            "Iris species, proto-native: protobuf-java classes generated from the contract, protobuf-java in lib/.",
        ),
        JavaSample(
            "weka",
            "weka",
            "org.modelrunner.samples.weka.WekaIrisClassifier",
            "Iris species from a Weka J48 decision tree trained on the iris data at build time; weka.jar in lib/.",
        ),
    )
}

PYTHON_SAMPLE = "iris-python"
"""Copied from runner/samples/iris-python/ (iris_model.py + metadata.json); model.proto added here."""


def find_repo_root() -> Path:
    """The source tree holding java-samples/ and protos/ (this editable install's checkout).

    ``MODEL_RUNNER_SOURCE_ROOT`` overrides; else the folder above this package, else the current
    directory or one of its parents.
    """
    candidates: list[Path] = []
    if env := os.environ.get("MODEL_RUNNER_SOURCE_ROOT"):
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2])
    cwd = Path.cwd().resolve()
    candidates.extend([cwd, *cwd.parents])
    for candidate in candidates:
        if (candidate / "java-samples").is_dir() and (candidate / "protos" / "iris.proto").is_file():
            return candidate
    raise SampleBuildError(
        "cannot find the model-runner source tree (a folder with java-samples/ and protos/iris.proto)",
        {
            "tried": [str(c) for c in candidates[:3]],
            "hint": "install model-runner editable from its checkout (pip install -e .), "
            "or set MODEL_RUNNER_SOURCE_ROOT to the checkout",
        },
    )


def find_weka_jar() -> Path | None:
    """weka.jar: ``$WEKA_JAR``, else the copy inside the PyPI package python-weka-wrapper3."""
    if env := os.environ.get("WEKA_JAR"):
        return Path(env) if Path(env).is_file() else None
    try:
        import weka  # noqa: PLC0415 (optional: only the weka sample needs it)
    except ImportError:
        return None
    jar = Path(weka.__file__).parent / "lib" / "weka.jar"
    return jar if jar.is_file() else None


def build_sample_bundles(dest: Path | None = None, *, force: bool = False) -> dict[str, Path]:
    """Build every sample into a bundle folder under ``dest`` (default ``<repo root>/build/samples``).

    Returns model folder name -> bundle folder: ``iris``, ``iris-v2``, ``iris-proto``, ``weka``,
    ``iris-python``. A sample whose sources are not in the tree yet is left out (with a warning).
    Skips the build when the inputs' hash is unchanged, unless ``force`` (then Gradle still skips
    its up-to-date tasks). Raises SampleBuildError when the build fails.
    """
    root = find_repo_root()
    dest = (dest or root / "build" / "samples").resolve()
    dest.mkdir(parents=True, exist_ok=True)
    weka_jar = find_weka_jar()
    # One lock per source tree, whatever the dest: the Gradle outputs under java-samples/ are shared.
    (root / "build").mkdir(exist_ok=True)
    with _locked(root / "build" / LOCK_FILE):
        digest = _sources_hash(root, weka_jar)
        hash_file = dest / HASH_FILE
        if not force and hash_file.is_file() and hash_file.read_text().strip() == digest:
            cached = _existing_bundles(dest)
            if cached:
                return cached
        hash_file.unlink(missing_ok=True)  # a failed build must not look cached
        _run_gradle(root, weka_jar)
        bundles: dict[str, Path] = {}
        for sample in JAVA_SAMPLES.values():
            bundle = _assemble_java(root, sample, dest)
            if bundle is not None:
                bundles[sample.project] = bundle
        python_bundle = _assemble_python(root, dest)
        if python_bundle is not None:
            bundles[PYTHON_SAMPLE] = python_bundle
        (dest / "bundles.json").write_text(json.dumps(sorted(bundles), indent=2) + "\n")
        _atomic_write(hash_file, digest + "\n")
        return bundles


def ensure_default_repository(repo: Repository) -> list[str]:
    """Publish the default samples into ``repo`` when it has no models; returns the names published.

    The bundles are our own, built from source, so they are published without the pre-swap
    validation (which would start a JVM in the calling process). Each is published only if its model
    still has no version (expected version 0), so concurrent callers publish each sample once.
    """
    if repo.models():
        return []
    bundles = build_sample_bundles()
    published: list[str] = []
    for sample in DEFAULT_SAMPLES:
        bundle = bundles.get(sample)
        if bundle is None:
            log.warning("default sample %s is not built; not published", sample)
            continue
        name = json.loads((bundle / "metadata.json").read_text())["name"]
        with repo.staging_dir() as staging:
            staged = staging / name
            shutil.copytree(bundle, staged)
            try:
                repo.publish(name, staged, expected_version=0, caller="model-runner (default samples)")
            except PreconditionFailed:
                continue  # another process published it first
        published.append(name)
    return published


# --- build --------------------------------------------------------------------------------------


def _gradle_command() -> str:
    gradle = os.environ.get("GRADLE") or shutil.which("gradle")
    if gradle and not shutil.which(gradle):
        raise SampleBuildError(
            f"GRADLE={gradle} is not an executable", {"hint": "unset GRADLE or fix the path"}
        )
    if not gradle:
        raise SampleBuildError(
            "Gradle is not installed: the Java samples are built with Gradle",
            {
                "hint": "run `bash .ci/setup` (installs gradle, a JDK, protoc and protobuf-java on Debian), "
                "or set GRADLE to a gradle executable"
            },
        )
    return gradle


def _run_gradle(root: Path, weka_jar: Path | None) -> None:
    command = [_gradle_command(), "--offline", "--no-daemon", "-q", f"-PprotobufJar={PROTOBUF_JAR}"]
    if weka_jar is not None:
        command.append(f"-PwekaJar={weka_jar}")
    command.append("assemble")
    log.info("building the sample models: %s", " ".join(command))
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise SampleBuildError(
            f"building the sample models failed (gradle exit {result.returncode}): {_gradle_reason(output)}",
            {
                "command": command,
                "cwd": str(root),
                "output": output[-8000:],
                "hint": "the output names the failing task and file; if a build tool is missing (JDK 17, "
                "gradle, protoc, protobuf-java, weka.jar from python-weka-wrapper3), run `bash .ci/setup`",
            },
        )


def _gradle_reason(output: str) -> str:
    """The 'What went wrong' part of Gradle's failure report (or the output's tail)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("* What went wrong"):
            reason = []
            for follow in lines[i + 1 :]:
                if follow.startswith("* "):
                    break
                if follow.strip():
                    reason.append(follow.strip())
            return " ".join(reason)
    return " ".join(line.strip() for line in lines[-5:] if line.strip())


# --- assembly -----------------------------------------------------------------------------------


def _assemble_java(root: Path, sample: JavaSample, dest: Path) -> Path | None:
    project = root / "java-samples" / sample.project
    jars = sorted((project / "build" / "libs").glob("*.jar"))
    if len(jars) != 1:
        raise SampleBuildError(
            f"expected one jar in {project / 'build' / 'libs'}, found {[j.name for j in jars]}"
        )
    class_entry = sample.entry_point.replace(".", "/") + ".class"
    if not _jar_has(jars[0], class_entry):
        # The build succeeded with no sources: the sample is still being written.
        log.warning(
            "sample %s: %s has no class %s yet; bundle not built", sample.project, jars[0], sample.entry_point
        )
        _remove(dest / sample.project)
        return None
    metadata: dict[str, Any] = {
        "name": sample.name,
        "runtime": "java",
        "entry_point": sample.entry_point,
        "description": sample.description,
        "examples": sample.examples,
    }
    if sample.jvm_options:
        metadata["jvm_options"] = list(sample.jvm_options)

    def fill(folder: Path) -> None:
        shutil.copy2(jars[0], folder / "model.jar")
        lib = folder / "lib"
        lib.mkdir()
        bundle_lib = project / "build" / "bundle-lib"
        for dep in sorted(bundle_lib.glob("*.jar")) if bundle_lib.is_dir() else []:
            shutil.copy2(dep, lib / dep.name)
        artifacts = project / "build" / "artifacts"
        if artifacts.is_dir():
            shutil.copytree(artifacts, folder, dirs_exist_ok=True)
        shutil.copy2(root / "protos" / "iris.proto", folder / "model.proto")
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")

    return _replace_folder(dest / sample.project, fill)


def _assemble_python(root: Path, dest: Path) -> Path | None:
    source = Path(__file__).resolve().parent / PYTHON_SAMPLE
    if not (source / "metadata.json").is_file():
        log.warning("sample %s: %s is not written yet; bundle not built", PYTHON_SAMPLE, source)
        _remove(dest / PYTHON_SAMPLE)
        return None

    def fill(folder: Path) -> None:
        shutil.copytree(
            source, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        shutil.copy2(root / "protos" / "iris.proto", folder / "model.proto")

    return _replace_folder(dest / PYTHON_SAMPLE, fill)


def _replace_folder(target: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a fresh folder beside ``target`` and swap it in, so no reader sees half a bundle."""
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(fresh)
        # Plain modes whatever the sources had (Gradle copies a symlinked jar as 0777, for one).
        for dirpath, _, filenames in os.walk(fresh):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        _remove(target)
        fresh.rename(target)
    except BaseException:
        _remove(fresh)
        raise
    return target


def _existing_bundles(dest: Path) -> dict[str, Path]:
    listed = dest / "bundles.json"
    if not listed.is_file():
        return {}
    names = json.loads(listed.read_text())
    bundles = {name: dest / name for name in names}
    if all((path / "metadata.json").is_file() for path in bundles.values()):
        return bundles
    return {}


# --- helpers ------------------------------------------------------------------------------------


def _sources_hash(root: Path, weka_jar: Path | None) -> str:
    """sha256 over every build input: sources and build files by content, external jars by stat."""
    digest = hashlib.sha256()
    files = [
        root / "build.gradle",
        root / "settings.gradle",
        root / "protos" / "iris.proto",
        Path(__file__).resolve(),
    ]
    files += _tree_files(root / "java-samples")
    files += _tree_files(Path(__file__).resolve().parent / PYTHON_SAMPLE)
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    for jar in (PROTOBUF_JAR, weka_jar):
        if jar is not None and jar.exists():
            stat = jar.stat()
            digest.update(f"{jar.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _tree_files(top: Path) -> list[Path]:
    """Files under ``top`` that are build inputs (not build outputs or caches), sorted."""
    skip = {"build", ".gradle", "__pycache__", ".idea", "out"}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        found.extend(
            Path(dirpath) / name for name in sorted(filenames) if not name.endswith((".pyc", ".zip"))
        )
    return found


def _jar_has(jar: Path, entry: str) -> bool:
    with zipfile.ZipFile(jar) as archive:
        return entry in archive.namelist()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on ``path``, held for the ``with`` block (across processes)."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    """`python -m runner.samples [--force] [--dest DIR]`: build the sample bundles, list them."""
    import argparse  # noqa: PLC0415
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m runner.samples", description=main.__doc__)
    parser.add_argument("--dest", type=Path, help="bundle folder (default: <repo root>/build/samples)")
    parser.add_argument("--force", action="store_true", help="run Gradle even if the sources are unchanged")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        bundles = build_sample_bundles(args.dest, force=args.force)
    except ModelRunnerError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if output := err.detail.get("output"):
            print(output, file=sys.stderr)
        if hint := err.detail.get("hint"):
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    if not args.quiet:
        for name, folder in sorted(bundles.items()):
            print(f"{name:12} {folder}")
    return 0
