"""The sample models built from source (runner.samples): jars, bundles, caching, default repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from runner.samples import build as samples
from runner.settings import Settings

JAVA_CLASSES = {
    "iris": [
        "org/modelrunner/samples/iris/IrisClassifier.class",
        "org/modelrunner/samples/iris/IrisInput.class",
        "org/modelrunner/samples/iris/IrisPrediction.class",
    ],
    "iris-v2": [
        "org/modelrunner/samples/iris/IrisClassifier.class",
        "org/modelrunner/samples/iris/IrisInput.class",
        "org/modelrunner/samples/iris/IrisPrediction.class",
    ],
    "iris-proto": [
        "org/modelrunner/samples/irisproto/IrisProtoClassifier.class",
        *(
            f"org/modelrunner/samples/irisproto/proto/{m}.class"
            for m in (
                "IrisInput",
                "IrisPrediction",
                "IrisBatch",
                "IrisPredictions",
                "FeatureRow",
                "FeatureMatrix",
                "ClassIndices",
                "Iris",
            )
        ),
    ],
    "weka": [
        "org/modelrunner/samples/weka/WekaIrisClassifier.class",
        "org/modelrunner/samples/weka/IrisInput.class",
        "org/modelrunner/samples/weka/IrisPrediction.class",
    ],
}
LIBS = {"iris": [], "iris-v2": [], "iris-proto": ["protobuf.jar"], "weka": ["weka.jar"]}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

# Run a sample against every row of the iris data (path in args[0]; the artifact folder in args[1]),
# compiled against the built jar (no reflection); print one predicted species per row.
_CHECK_MAIN = """
import java.nio.file.*;
import java.util.*;

public class SampleCheck {
    static final String[] SPECIES = {"setosa", "versicolor", "virginica"};

    public static void main(String[] args) throws Exception {
        List<double[]> rows = new ArrayList<>();
        for (String line : Files.readAllLines(Paths.get(args[0]))) {
            if (line.isEmpty() || !Character.isDigit(line.charAt(0))) continue;
            String[] v = line.split(",");
            rows.add(new double[] {Double.parseDouble(v[0]), Double.parseDouble(v[1]),
                                   Double.parseDouble(v[2]), Double.parseDouble(v[3])});
        }
        List<String> out = new ArrayList<>();
        run(rows, Paths.get(args[1]), out);
        System.out.println(String.join("\\n", out));
    }

    static void sameAsMatrix(List<String> out, int i, int index) {
        if (!SPECIES[index].equals(out.get(i))) throw new AssertionError("matrix differs at row " + i);
    }
"""
CHECKERS = {
    "weka": _CHECK_MAIN
    + """
    static void run(List<double[]> rows, Path artifacts, List<String> out) throws Exception {
        var model = new org.modelrunner.samples.weka.WekaIrisClassifier(artifacts);
        List<org.modelrunner.samples.weka.IrisInput> batch = new ArrayList<>();
        for (double[] r : rows) batch.add(new org.modelrunner.samples.weka.IrisInput(r[0], r[1], r[2], r[3]));
        for (var p : model.classifyBatch(batch)) out.add(p.getSpecies());
        int[] indices = model.classifyMatrix(rows.toArray(new double[0][]));
        for (int i = 0; i < indices.length; i++) sameAsMatrix(out, i, indices[i]);
    }
}
""",
    "iris-proto": _CHECK_MAIN
    + """
    static void run(List<double[]> rows, Path artifacts, List<String> out) {
        var model = new org.modelrunner.samples.irisproto.IrisProtoClassifier();
        var batch = org.modelrunner.samples.irisproto.proto.IrisBatch.newBuilder();
        var matrix = org.modelrunner.samples.irisproto.proto.FeatureMatrix.newBuilder();
        for (double[] r : rows) {
            batch.addRows(org.modelrunner.samples.irisproto.proto.IrisInput.newBuilder()
                    .setSepalLength(r[0]).setSepalWidth(r[1]).setPetalLength(r[2]).setPetalWidth(r[3]));
            var row = org.modelrunner.samples.irisproto.proto.FeatureRow.newBuilder();
            for (double x : r) row.addValues(x);
            matrix.addRows(row);
        }
        for (var p : model.classifyBatch(batch.build()).getPredictionsList()) {
            double sum = 0;
            for (double x : p.getProbabilitiesList()) sum += x;
            if (Math.abs(sum - 1) > 1e-9) throw new AssertionError("probabilities sum to " + sum);
            out.add(p.getSpecies());
        }
        List<Integer> indices = model.classifyMatrix(matrix.build()).getIndicesList();
        for (int i = 0; i < indices.size(); i++) sameAsMatrix(out, i, indices.get(i));
    }
}
""",
}


def _iris_rows(repo_root: Path) -> list[tuple[list[float], str]]:
    rows = []
    for line in (repo_root / "java-samples" / "weka" / "data" / "iris.arff").read_text().splitlines():
        if line[:1].isdigit():
            *values, species = line.split(",")
            rows.append(([float(v) for v in values], species))
    return rows


def _git(repo_root: Path, *args: str) -> list[str]:
    result = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def test_every_sample_is_built(sample_bundles: dict[str, Path]) -> None:
    assert set(sample_bundles) == {"iris", "iris-v2", "iris-proto", "weka", "iris-python"}
    for name, folder in sample_bundles.items():
        assert folder == folder.resolve()
        assert folder.parent.name == "samples" and folder.name == name


@pytest.mark.parametrize("sample", sorted(JAVA_CLASSES))
def test_jar_contains_expected_classes_and_libs(sample_bundles: dict[str, Path], sample: str) -> None:
    bundle = sample_bundles[sample]
    with zipfile.ZipFile(bundle / "model.jar") as jar:
        names = set(jar.namelist())
    missing = [c for c in JAVA_CLASSES[sample] if c not in names]
    assert not missing, f"{sample}: model.jar lacks {missing}"
    # The model jar is the sample's own code only: no bundled dependency, no build-time trainer.
    assert not any(n.startswith(("com/google/protobuf/", "weka/")) for n in names)
    assert not any("/trainer/" in n for n in names)
    libs = sorted(p.name for p in (bundle / "lib").iterdir())
    assert libs == LIBS[sample]


def test_java_samples_are_compiled_with_parameter_names(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    # -parameters puts a MethodParameters attribute in the class file (the bridge maps names by it).
    with zipfile.ZipFile(sample_bundles["weka"] / "model.jar") as jar:
        data = jar.read("org/modelrunner/samples/weka/WekaIrisClassifier.class")
    assert b"MethodParameters" in data
    # Class file major version 61 = Java 17.
    assert int.from_bytes(data[6:8], "big") == 61


def test_generated_and_built_files_are_not_in_git(repo_root: Path, sample_bundles: dict[str, Path]) -> None:
    # Everything git would commit (tracked, or untracked and not ignored) under java-samples/.
    committable = _git(
        repo_root,
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "java-samples",
        "build.gradle",
        "settings.gradle",
    )
    assert committable, "git sees no java-samples files"
    assert not [f for f in committable if "/build/" in f or f.endswith((".jar", ".class", ".model"))]
    generated = [
        f
        for f in committable
        if f.endswith(".java") and "Generated by the protocol buffer compiler" in (repo_root / f).read_text()
    ]
    assert generated == []
    # The generated sources exist (the build made them) and git ignores them.
    generated_dir = repo_root / "java-samples" / "iris-proto" / "build" / "generated"
    assert list(generated_dir.rglob("IrisInput.java"))
    assert _git(repo_root, "check-ignore", str(generated_dir))


def test_weka_model_artifact(sample_bundles: dict[str, Path]) -> None:
    model = sample_bundles["weka"] / "iris-j48.model"
    data = model.read_bytes()
    assert data[:2] == b"\xac\xed", "not a Java serialization stream"
    assert b"weka.classifiers.trees.J48" in data


def test_bundles_have_valid_metadata_and_proto(repo_root: Path, sample_bundles: dict[str, Path]) -> None:
    contract = (repo_root / "protos" / "iris.proto").read_text()
    rpcs = set(re.findall(r"\brpc\s+(\w+)", contract))
    for name, bundle in sample_bundles.items():
        metadata = json.loads((bundle / "metadata.json").read_text())
        assert NAME_RE.match(metadata["name"]), name
        assert metadata["name"] == ("iris" if name == "iris-v2" else name)
        assert metadata["runtime"] in ("java", "python")
        assert (bundle / "model.proto").read_text() == contract
        assert set(metadata.get("examples", {})) <= rpcs, name
        if metadata["runtime"] == "java":
            assert (bundle / "model.jar").is_file()
            assert set(metadata["examples"]) == rpcs
            assert metadata["examples"]["Classify"][0] == {
                "sepal_length": 5.1,
                "sepal_width": 3.5,
                "petal_length": 1.4,
                "petal_width": 0.2,
            }
        else:
            module, _, cls = metadata["entry_point"].partition(":")
            assert cls and (bundle / f"{module}.py").is_file()


def test_bundles_open_with_the_bundle_reader(sample_bundles: dict[str, Path]) -> None:
    from runner.bundle import open_bundle

    for name, folder in sample_bundles.items():
        bundle = open_bundle(folder)
        assert bundle.metadata.name == ("iris" if name == "iris-v2" else name)
        assert bundle.proto_text.startswith("// The iris contract")


@pytest.mark.parametrize("sample", ["iris", "iris-v2", "iris-proto", "weka", "iris-python"])
def test_bundle_passes_validation_and_its_examples_are_right(
    sample_bundles: dict[str, Path], sample: str
) -> None:
    # The real pre-swap validation: contract compiles, the model loads (JVM for Java) and binds,
    # and every example runs. The Java examples are one row per species, in order.
    from runner.bundle import open_bundle
    from runner.serving.validate import validate_bundle

    report = validate_bundle(open_bundle(sample_bundles[sample]), settings=Settings())
    assert sorted(report.methods) == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    if sample != "iris-python":
        prefix = "Iris-" if sample == "iris-v2" else ""
        species = [f"{prefix}{s}" for s in ("setosa", "versicolor", "virginica")]
        assert [out["species"] for out in report.outputs["Classify"]] == species
        assert [p["species"] for p in report.outputs["ClassifyBatch"][0]["predictions"]] == species
        assert report.outputs["ClassifyMatrix"] == [{"indices": [0, 1, 2]}]


@pytest.mark.parametrize("sample", ["iris-proto", "weka"])
def test_sample_classifies_the_iris_data(
    repo_root: Path, sample_bundles: dict[str, Path], tmp_path: Path, sample: str
) -> None:
    bundle = sample_bundles[sample]
    classpath = ":".join(
        [str(bundle / "model.jar"), *(str(p) for p in sorted((bundle / "lib").glob("*.jar")))]
    )
    (tmp_path / "SampleCheck.java").write_text(CHECKERS[sample])
    subprocess.run(
        ["javac", "-cp", classpath, "-d", str(tmp_path), str(tmp_path / "SampleCheck.java")],
        check=True,
        capture_output=True,
    )
    data = repo_root / "java-samples" / "weka" / "data" / "iris.arff"
    result = subprocess.run(
        ["java", "-cp", f"{tmp_path}:{classpath}", "SampleCheck", str(data), str(bundle)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    predicted = result.stdout.split()
    expected = [species for _, species in _iris_rows(repo_root)]
    assert len(predicted) == len(expected) == 150
    right = sum(p == e for p, e in zip(predicted, expected))
    assert right >= 140, f"{sample}: {right}/150 right"
    # The bundle's example rows (one per species) are classified right.
    for index in (0, 50, 100):
        assert predicted[index] == expected[index]


def _copy_sources(repo_root: Path, dest: Path) -> Path:
    """A copy of the build inputs, so a test can change sources without touching the shared tree."""
    dest.mkdir(parents=True)
    for name in ("build.gradle", "settings.gradle"):
        shutil.copy2(repo_root / name, dest / name)
    shutil.copytree(repo_root / "protos", dest / "protos")
    shutil.copytree(
        repo_root / "java-samples", dest / "java-samples", ignore=shutil.ignore_patterns("build", ".gradle")
    )
    if (repo_root / "runner" / "samples" / "iris-python").is_dir():
        shutil.copytree(
            repo_root / "runner" / "samples" / "iris-python",
            dest / "runner" / "samples" / "iris-python",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return dest


@pytest.mark.slow
@pytest.mark.timeout(900)  # three Gradle builds of every sample, the first from scratch
def test_rebuild_is_cached_until_a_source_changes(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _copy_sources(repo_root, tmp_path / "src")
    monkeypatch.setenv("MODEL_RUNNER_SOURCE_ROOT", str(source))
    trained = source / "java-samples" / "weka" / "build" / "artifacts" / "iris-j48.model"

    first = samples.build_sample_bundles()
    assert first["weka"] == source / "build" / "samples" / "weka"
    stamp = trained.stat().st_mtime_ns
    bundle_inode = first["weka"].stat().st_ino

    # Unchanged sources: no Gradle at all (a missing gradle would fail), the same bundle folders.
    monkeypatch.setenv("GRADLE", str(tmp_path / "no-gradle-here"))
    assert samples.build_sample_bundles() == first
    assert first["weka"].stat().st_ino == bundle_inode
    monkeypatch.delenv("GRADLE")

    # Forced: Gradle runs, but the trainer is up to date, so the model is not trained again.
    assert samples.build_sample_bundles(force=True) == first
    assert trained.stat().st_mtime_ns == stamp

    # Changed training data: the tree is trained again, and the bundle carries the new model.
    data = source / "java-samples" / "weka" / "data" / "iris.arff"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(line for line in lines if not line.startswith("5.1,3.5,1.4,0.2")) + "\n")
    again = samples.build_sample_bundles()
    assert trained.stat().st_mtime_ns != stamp
    assert (again["weka"] / "iris-j48.model").read_bytes() == trained.read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a Gradle build from scratch
def test_build_failure_is_reported_with_the_reason(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _copy_sources(repo_root, tmp_path / "src")
    monkeypatch.setenv("MODEL_RUNNER_SOURCE_ROOT", str(source))
    broken = (
        source
        / "java-samples"
        / "iris-proto"
        / "src"
        / "main"
        / "java"
        / "org"
        / "modelrunner"
        / "samples"
        / "irisproto"
        / "IrisProtoClassifier.java"
    )
    broken.write_text(
        broken.read_text().replace("public IrisPrediction classify(", "public IrisPrediction classify((", 1)
    )
    with pytest.raises(samples.SampleBuildError) as caught:
        samples.build_sample_bundles()
    assert "compileJava" in caught.value.message
    assert "IrisProtoClassifier.java" in caught.value.detail["output"]
    assert not (source / "build" / "samples" / samples.HASH_FILE).exists()


def test_missing_gradle_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADLE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(samples.SampleBuildError) as caught:
        samples._gradle_command()
    assert ".ci/setup" in caught.value.detail["hint"]


def test_ensure_default_repository_publishes_the_samples_once(
    tmp_path: Path, sample_bundles: dict[str, Path]
) -> None:
    from runner.store import Repository

    repo = Repository(tmp_path / "repo")
    published = samples.ensure_default_repository(repo)
    assert sorted(published) == sorted(samples.DEFAULT_SAMPLES)
    assert sorted(repo.models()) == sorted(samples.DEFAULT_SAMPLES)
    for name in published:
        version = repo.current_version(name)
        assert version == 1
        stored = repo.version_dir(name, version)
        assert json.loads((stored / "metadata.json").read_text())["name"] == name
        assert (stored / "model.proto").is_file()
    assert (repo.version_dir("weka", 1) / "iris-j48.model").is_file()
    # A repository with models is left alone.
    assert samples.ensure_default_repository(repo) == []
    assert all(repo.current_version(name) == 1 for name in published)
