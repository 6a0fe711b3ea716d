"""Real Java libraries, from the PyPI wheels that carry their JARs, in models written as the libraries'
own documentation writes them, served and checked against the reference implementation.

JPMML-Evaluator (the JARs inside the `jpmml_evaluator` wheel) scoring a PMML that `sklearn2pmml` exports
from a scikit-learn pipeline: the scorer is the README's code (`new LoadingModelEvaluatorBuilder().load(file)
.build()`, `evaluator.evaluate(arguments)`, `EvaluatorUtil.decodeAll`) in a constructor taking the artifact
folder, records in and out. JPMML finds its JAXB runtime through `ServiceLoader` and the thread context
class loader, so this only works when model code runs with its own loader as the context loader. The
served probabilities must equal scikit-learn's `predict_proba` to 1e-9, over HTTP, on many rows.

Everything is built here: the model is trained and exported to tmp, the scorer compiled with javac
against the wheel's JARs; nothing binary is in git.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e.test_cli import ok, run_cli, start_serve, stop_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

SCORER_CLASS = "org.acme.pmml.PmmlScorer"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]
TOLERANCE = 1e-9

# The scorer, as JPMML-Evaluator's README writes one (records in and out; the PMML read from the
# artifact folder the host hands to the constructor).
SCORER_SOURCES = {
    "org/acme/pmml/IrisInput.java": """
        package org.acme.pmml;

        public record IrisInput(double sepalLength, double sepalWidth, double petalLength, double petalWidth) {}
    """,
    "org/acme/pmml/IrisPrediction.java": """
        package org.acme.pmml;

        public record IrisPrediction(
            String species, double probabilitySetosa, double probabilityVersicolor, double probabilityVirginica) {}
    """,
    "org/acme/pmml/PmmlScorer.java": """
        package org.acme.pmml;

        import java.nio.file.Path;
        import java.util.ArrayList;
        import java.util.LinkedHashMap;
        import java.util.List;
        import java.util.Map;

        import org.jpmml.evaluator.Evaluator;
        import org.jpmml.evaluator.EvaluatorUtil;
        import org.jpmml.evaluator.FieldValue;
        import org.jpmml.evaluator.InputField;
        import org.jpmml.evaluator.LoadingModelEvaluatorBuilder;

        /** Scores iris flowers with a PMML model (model.pmml in the artifact folder). */
        public class PmmlScorer {

            private final Evaluator evaluator;

            public PmmlScorer(Path artifactDir) throws Exception {
                // Building a model evaluator from a PMML file
                evaluator = new LoadingModelEvaluatorBuilder()
                    .load(artifactDir.resolve("model.pmml").toFile())
                    .build();
                // Performing the self-check (against the verification data the exporter embedded)
                evaluator.verify();
            }

            public IrisPrediction classify(IrisInput input) {
                Map<String, Object> inputRecord = new LinkedHashMap<>();
                inputRecord.put("sepal_length", input.sepalLength());
                inputRecord.put("sepal_width", input.sepalWidth());
                inputRecord.put("petal_length", input.petalLength());
                inputRecord.put("petal_width", input.petalWidth());

                // Mapping the record field-by-field from data source schema to PMML schema
                Map<String, FieldValue> arguments = new LinkedHashMap<>();
                for (InputField inputField : evaluator.getInputFields()) {
                    String inputName = inputField.getName();
                    Object rawValue = inputRecord.get(inputName);
                    FieldValue inputValue = inputField.prepare(rawValue);
                    arguments.put(inputName, inputValue);
                }

                // Evaluating the model with known-good arguments
                Map<String, ?> results = evaluator.evaluate(arguments);

                // Decoupling results from the JPMML-Evaluator runtime environment
                Map<String, ?> resultRecord = EvaluatorUtil.decodeAll(results);

                return new IrisPrediction(
                    (String) resultRecord.get("species"),
                    ((Number) resultRecord.get("probability(setosa)")).doubleValue(),
                    ((Number) resultRecord.get("probability(versicolor)")).doubleValue(),
                    ((Number) resultRecord.get("probability(virginica)")).doubleValue());
            }

            public List<IrisPrediction> classifyBatch(List<IrisInput> rows) {
                List<IrisPrediction> predictions = new ArrayList<>(rows.size());
                for (IrisInput row : rows) {
                    predictions.add(classify(row));
                }
                return predictions;
            }
        }
    """,
}


@dataclass
class PmmlCase:
    """One exported model: its scorer JAR, the wheel's JARs, the artifact folder, the rows to score and
    scikit-learn's answers for them."""

    kind: str
    scorer_jar: Path
    libs: list[Path]
    artifacts: Path
    rows: list[dict[str, float]]
    proba: np.ndarray[Any, np.dtype[np.float64]]
    species: list[str]


@pytest.fixture(scope="module")
def jpmml_jars() -> list[Path]:
    """Every JAR the `jpmml_evaluator` wheel installs (JPMML-Evaluator and its dependencies, JAXB too)."""
    jpmml_evaluator = pytest.importorskip(
        "jpmml_evaluator", reason="jpmml_evaluator is not installed (.ci/setup installs the test extra)"
    )
    pytest.importorskip("sklearn2pmml", reason="sklearn2pmml is not installed (.ci/setup installs it)")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (.ci/setup installs it)")
    jars = sorted(Path(jpmml_evaluator.__file__).parent.rglob("*.jar"))
    names = {jar.name for jar in jars}
    assert len(jars) >= 20 and any(n.startswith("pmml-evaluator-1.") for n in names), names
    assert any(n.startswith("jaxb-runtime-") for n in names), f"the wheel ships no JAXB runtime: {names}"
    return jars


@pytest.fixture(scope="module")
def scorer_jar(jpmml_jars: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scorer compiled with javac (-parameters, as a Gradle build with the sample settings would)
    against the wheel's JARs, packed as a plain JAR."""
    work = tmp_path_factory.mktemp("pmml-scorer")
    src, classes = work / "src", work / "classes"
    for name, text in SCORER_SOURCES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    javac = shutil.which("javac")
    assert javac, "javac is needed (.ci/setup installs a JDK)"
    classpath = ":".join(map(str, jpmml_jars))
    cmd = [javac, "-parameters", "--release", "17", "-cp", classpath, "-d", str(classes)]
    done = subprocess.run([*cmd, *map(str, src.rglob("*.java"))], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"javac failed:\n{done.stderr}"
    jar = work / "pmml-scorer-1.0.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        for cls in sorted(classes.rglob("*.class")):
            zf.write(cls, cls.relative_to(classes).as_posix())
    return jar


def export_case(kind: str, scorer_jar: Path, libs: list[Path], work: Path) -> PmmlCase:
    """Train a fixed-seed scikit-learn pipeline on iris and export it with sklearn2pmml, as its README
    shows (a PMMLPipeline, verification data, `sklearn2pmml(pipeline, path)`)."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn2pmml import sklearn2pmml
    from sklearn2pmml.pipeline import PMMLPipeline

    iris = load_iris(as_frame=True)
    x = iris.data.set_axis(FEATURES, axis=1)
    y = pd.Series(np.asarray(iris.target_names)[iris.target], name="species")
    if kind == "logistic":
        steps = [("scaler", StandardScaler()), ("classifier", LogisticRegression(max_iter=1000))]
    else:
        steps = [("classifier", GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=7))]
    pipeline = PMMLPipeline(steps)
    pipeline.fit(x, y)
    pipeline.verify(x.sample(n=15, random_state=13))
    artifacts = work / "artifacts"
    artifacts.mkdir()
    sklearn2pmml(pipeline, str(artifacts / "model.pmml"))

    # many rows: the 150 flowers, and 350 random points spanning (and leaving) the observed ranges
    rng = np.random.default_rng(2024)
    low, high = x.min().to_numpy() - 1.0, x.max().to_numpy() + 1.0
    points = np.vstack([x.to_numpy(), rng.uniform(low, high, size=(350, 4))])
    frame = pd.DataFrame(points, columns=FEATURES)
    assert list(pipeline.classes_) == SPECIES
    rows = [dict(zip(FEATURES, map(float, p), strict=True)) for p in points]
    return PmmlCase(
        kind=kind,
        scorer_jar=scorer_jar,
        libs=libs,
        artifacts=artifacts,
        rows=rows,
        proba=pipeline.predict_proba(frame),
        species=list(pipeline.predict(frame)),
    )


@pytest.fixture(scope="module")
def pmml_cases(
    scorer_jar: Path, jpmml_jars: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, PmmlCase]:
    """Exported models by kind, each exported once per module on first use."""

    class Cases(dict[str, PmmlCase]):
        def __missing__(self, kind: str) -> PmmlCase:
            self[kind] = export_case(kind, scorer_jar, jpmml_jars, tmp_path_factory.mktemp(kind))
            return self[kind]

    return Cases()


@pytest.fixture(params=["logistic", "gradient-boosting"])
def pmml_case(request: pytest.FixtureRequest, pmml_cases: dict[str, PmmlCase]) -> PmmlCase:
    return pmml_cases[request.param]


def served_proba(predictions: list[dict[str, Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([[p.get(f"probability_{s}", 0.0) for s in SPECIES] for p in predictions])


def assert_matches(case: PmmlCase, predictions: list[dict[str, Any]]) -> None:
    assert len(predictions) == len(case.rows)
    got = served_proba(predictions)
    worst = float(np.max(np.abs(got - case.proba)))
    assert worst <= TOLERANCE, f"{case.kind}: served probabilities differ from predict_proba by {worst}"
    assert [p["species"] for p in predictions] == case.species


@dataclass
class InProcess:
    client: Any
    registry: Any


@pytest.fixture
def in_process(pmml_case: PmmlCase, tmp_path: Path) -> Iterator[InProcess]:
    """Onboarded with bundle_from_jar (the wheel's JARs as libs, the PMML as artifact; the generated
    contract; validated), published through Admin, served by the real registry and HTTP app."""
    from runner.http.app import create_app
    from runner.serving.admin import Admin
    from runner.serving.loading import BundleLoader
    from runner.serving.onboarding import bundle_from_jar
    from runner.serving.registry import Registry
    from runner.settings import Settings
    from runner.store import Repository

    bundle = bundle_from_jar(
        pmml_case.scorer_jar,
        class_name=SCORER_CLASS,
        libs=pmml_case.libs,
        artifacts=pmml_case.artifacts,
        name="iris-pmml",
        examples=["Classify=" + json.dumps(pmml_case.rows[0])],
        dest=tmp_path / "bundle",
    )
    assert sorted(p.name for p in (bundle / "lib").iterdir()) == sorted(p.name for p in pmml_case.libs)
    root = tmp_path / "repo"
    settings = Settings(repo=root, admin_token="t0ken", poll_interval=0.05)
    repository = Repository(root)
    admin = Admin(repository, settings, swap_timeout=30.0)
    admin.upload("iris-pmml", bundle, caller="test")
    registry = Registry(repository, BundleLoader(settings), poll_interval=settings.poll_interval)
    registry.start()
    try:
        assert registry.ready() and not registry.load_errors(), registry.load_errors()
        yield InProcess(create_app(settings, registry, repository, admin=admin).test_client(), registry)
    finally:
        registry.stop()


def test_jpmml_scorer_served_equals_scikit_learn(pmml_case: PmmlCase, in_process: InProcess) -> None:
    client = in_process.client
    # one row per call
    single = []
    for row in pmml_case.rows:
        resp = client.post("/models/iris-pmml/methods/Classify", json=row)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        single.append(resp.get_json())
    assert_matches(pmml_case, single)
    # the whole batch in one call
    resp = client.post("/models/iris-pmml/methods/ClassifyBatch", json={"rows": pmml_case.rows})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert_matches(pmml_case, resp.get_json()["values"])


def test_jpmml_cli_onboard_and_serve(pmml_cases: dict[str, PmmlCase], tmp_path: Path) -> None:
    """What a Java team types: `model-runner onboard` with every wheel JAR as --lib and the PMML folder
    as --artifacts, then `model-runner serve` of the bundle (gunicorn workers, each its own JVM)."""
    pmml_case = pmml_cases["logistic"]
    out = tmp_path / "iris-pmml.zip"
    libs = [arg for lib in pmml_case.libs for arg in ("--lib", str(lib))]
    ok(
        run_cli(
            "onboard",
            pmml_case.scorer_jar,
            "--class",
            SCORER_CLASS,
            *libs,
            "--artifacts",
            pmml_case.artifacts,
            "--name",
            "iris-pmml",
            "--example",
            "Classify=" + json.dumps(pmml_case.rows[0]),
            "-o",
            out,
        )
    )
    served = start_serve([out], tmp_path, "--workers", "1")  # one JVM is enough here: 2 shared cores
    try:
        resp = requests.post(
            f"{served.url}/models/iris-pmml/methods/ClassifyBatch", json={"rows": pmml_case.rows}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        assert_matches(pmml_case, resp.json()["values"])
        for row, proba in list(zip(pmml_case.rows, pmml_case.proba, strict=True))[::25]:
            resp = requests.post(f"{served.url}/models/iris-pmml/methods/Classify", json=row, timeout=60)
            assert resp.status_code == 200, resp.text
            assert np.max(np.abs(served_proba([resp.json()])[0] - proba)) <= TOLERANCE
    finally:
        stop_serve(served.proc)
