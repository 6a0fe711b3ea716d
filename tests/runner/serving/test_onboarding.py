"""runner.serving.onboarding against the real bridge, contract, bundle and validate modules (real JVM, real JARs)."""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runner.errors import BadInput, InvalidBundle, ModelRunnerError, NotFound
from runner.serving import onboarding
from tests.e2e.java_projects import (
    LEGACY_CLASS,
    LIBRARY_CLASSES,
    MISSING_BASE,
    SCORER_CLASS,
    Projects,
    artifacts,
    build_fat_jars,
    build_projects,
    expected_risk,
)

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def iris_jar(sample_bundles: dict[str, Path]) -> Path:
    return sample_bundles["iris"] / "model.jar"


@pytest.fixture(scope="module")
def python_module(sample_bundles: dict[str, Path]) -> Path:
    files = [p for p in sample_bundles["iris-python"].glob("*.py")]
    assert files, "the iris-python sample bundle has no .py file"
    return next((p for p in files if p.stem == "iris_model"), files[0])


def test_default_name() -> None:
    assert onboarding.default_name(class_name=IRIS_CLASS, source="model.jar") == "iris-classifier"
    assert onboarding.default_name(class_name="a.B", source="build/libs/scorer-1.2.0.jar") == "scorer"
    assert onboarding.default_name(class_name="iris_model:IrisClassifier") == "iris-classifier"
    assert onboarding.default_name(class_name="x.HTTPServerModel") == "http-server-model"


def test_is_python_spec() -> None:
    assert onboarding.is_python_spec("models/iris_model.py:IrisClassifier")
    assert onboarding.is_python_spec("pkg.mod:Cls")
    assert not onboarding.is_python_spec("build/libs/iris.jar")
    assert not onboarding.is_python_spec("bundle.zip")


def test_jar_without_class_lists_candidates(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        onboarding.bundle_from_jar(iris_jar, class_name=None, dest=tmp_path / "b")
    cands = info.value.detail["candidates"]
    classes = [c["class"] for c in cands]
    assert IRIS_CLASS in classes
    iris = next(c for c in cands if c["class"] == IRIS_CLASS)
    names = json.dumps(iris["methods"])
    assert "classify" in names and "classifyBatch" in names
    assert "--class" in info.value.detail["hint"]
    assert not (tmp_path / "b").exists()


def test_jar_to_validated_bundle(iris_jar: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_jar(
        iris_jar, class_name=IRIS_CLASS, examples=["Classify=" + json.dumps(ROW)], dest=tmp_path / "b"
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "iris-classifier"  # model.jar is a generic name: the class names it
    assert meta["runtime"] == "java" and meta["entry_point"] == IRIS_CLASS
    assert meta["examples"] == {"Classify": [ROW]}
    proto = (dest / "model.proto").read_text()
    assert "rpc Classify" in proto and "rpc ClassifyBatch" in proto
    assert (dest / "model.jar").read_bytes() == iris_jar.read_bytes()
    from runner.bundle import open_bundle

    assert open_bundle(dest).metadata.name == "iris-classifier"


def test_jar_with_given_proto_and_bare_example(iris_jar: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_jar(
        iris_jar,
        class_name=IRIS_CLASS,
        proto=REPO_ROOT / "protos" / "iris.proto",
        name="iris",
        examples=[json.dumps(ROW), json.dumps({"rows": [ROW]})],
        dest=tmp_path / "b",
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "iris"
    # a bare example goes to the first rpc whose input it fits
    assert meta["examples"]["Classify"] == [ROW]
    assert meta["examples"]["ClassifyBatch"] == [{"rows": [ROW]}]
    assert (dest / "model.proto").read_text() == (REPO_ROOT / "protos" / "iris.proto").read_text()


def test_example_that_does_not_fit(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        onboarding.bundle_from_jar(
            iris_jar,
            class_name=IRIS_CLASS,
            proto=REPO_ROOT / "protos" / "iris.proto",
            examples=['Classify={"sepal_lenght": 5.1}'],
            dest=tmp_path / "b",
        )
    assert "example 1" in info.value.message
    assert "sepal_lenght" in json.dumps(info.value.detail)
    assert not (tmp_path / "b").exists()


def test_wrong_class_name(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelRunnerError) as info:
        onboarding.bundle_from_jar(iris_jar, class_name="org.acme.NoSuchModel", dest=tmp_path / "b")
    assert "org.acme.NoSuchModel" in info.value.message
    assert info.value.detail.get("hint")
    assert not (tmp_path / "b").exists()


def test_not_a_jar(tmp_path: Path) -> None:
    fake = tmp_path / "model.jar"
    fake.write_text("this is not a zip")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_jar(fake, class_name=IRIS_CLASS, dest=tmp_path / "b")
    assert "is not a JAR" in info.value.message
    with pytest.raises(NotFound):
        onboarding.bundle_from_jar(tmp_path / "missing.jar", class_name=IRIS_CLASS, dest=tmp_path / "c")


def test_python_class_to_bundle(python_module: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_python(
        f"{python_module}:IrisClassifier",
        name="iris-py",
        examples=["Classify=" + json.dumps(ROW)],
        proto=python_module.parent / "model.proto",  # the sample takes messages: no hints to read
        dest=tmp_path / "b",
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["runtime"] == "python"
    assert meta["entry_point"] == f"{python_module.stem}:IrisClassifier"
    assert (dest / python_module.name).is_file()
    assert "rpc Classify" in (dest / "model.proto").read_text()


def test_python_class_without_hints_needs_a_proto(python_module: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{python_module}:IrisClassifier", dest=tmp_path / "b")
    assert "type hint" in info.value.message
    assert "--proto" in info.value.detail["hint"]


def test_python_package_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "src" / "acme_models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scoring.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass

        @dataclass
        class Applicant:
            age: int
            city: str

        class Scorer:
            def score(self, a: Applicant) -> float:
                return a.age / 100.0
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    dest = onboarding.bundle_from_python("acme_models.scoring:Scorer", dest=tmp_path / "b")
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "scorer" and meta["entry_point"] == "acme_models.scoring:Scorer"
    assert (dest / "acme_models" / "scoring.py").is_file() and (
        dest / "acme_models" / "__init__.py"
    ).is_file()
    assert "rpc Score" in (dest / "model.proto").read_text()


def test_python_file_that_does_not_import(tmp_path: Path) -> None:
    bad = tmp_path / "broken_model.py"
    bad.write_text("import numpy\nimport no_such_module_xyz\n\nclass M:\n    pass\n")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{bad}:M", dest=tmp_path / "b")
    assert "cannot import broken_model" in info.value.message
    assert "no_such_module_xyz" in info.value.message
    assert info.value.detail["line"] == 2
    assert not (tmp_path / "b").exists()

    syntax = tmp_path / "syntax_model.py"
    syntax.write_text("class M:\n    def f(self) -> int\n        return 1\n")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{syntax}:M", dest=tmp_path / "c")
    assert "SyntaxError" in info.value.message and info.value.detail["line"] == 2


def test_python_missing_class(tmp_path: Path) -> None:
    mod = tmp_path / "some_model.py"
    mod.write_text("class Other:\n    def f(self, x: int) -> int:\n        return x\n")
    with pytest.raises(NotFound) as info:
        onboarding.bundle_from_python(f"{mod}:Model", dest=tmp_path / "b")
    assert "Other" in info.value.detail["hint"]


# ------------------------------------------------------------------ --lib forms, candidate listing
# Model JARs built from source by tests.e2e.java_projects: RiskScorer extends net.mathlib.LinearModel
# (mathlib.jar) and calls net.textlib.Cities (textlib.jar); it reads bias.txt from its artifact folder.


@pytest.fixture(scope="module")
def projects() -> Projects:
    return build_projects()


def _touch_jars(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"PK")
    return [folder / n for n in names]


def test_expand_libs_takes_jars_folders_and_class_paths(tmp_path: Path) -> None:
    a, b = _touch_jars(tmp_path / "libs", "a.jar", "b.JAR")
    (tmp_path / "libs" / "notes.txt").write_text("not a jar")
    (c,) = _touch_jars(tmp_path / "libs" / "sub", "c.jar")  # a subfolder is not searched (as java -cp)
    (d,) = _touch_jars(tmp_path / "other", "d.jar")
    libs = tmp_path / "libs"
    assert onboarding.expand_libs([a]) == [a]
    assert onboarding.expand_libs([libs]) == [a, b]
    assert onboarding.expand_libs([f"{libs}/*"]) == [a, b]
    assert onboarding.expand_libs([f"{d}:{libs}/*"]) == [d, a, b]
    # repeated, overlapping and empty entries: each JAR once, in the order first named
    assert onboarding.expand_libs([str(b), f"{libs}/*::{d}", libs, c]) == [b, a, d, c]
    missing = tmp_path / "nope.jar"
    assert onboarding.expand_libs([f"{a}:{missing}"]) == [a, missing]  # the JAR check names it later
    with pytest.raises(NotFound, match="no such folder"):
        onboarding.expand_libs([f"{tmp_path}/absent/*"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="holds no .jar file") as info:
        onboarding.expand_libs([empty])
    assert "jar cf" in info.value.detail["hint"]


def test_jar_with_lib_folder_class_path_artifacts_and_example(projects: Projects, tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    for jar in (projects.mathlib, projects.textlib):
        shutil.copy(jar, libs)
    shutil.copy(projects.scorer, libs / "scorer-1.0.jar")  # as gradle installDist's lib/: left out
    data = artifacts(tmp_path / "data", bias=0.5)
    example = {"age": 40, "city": "Lyon"}
    reports: list[Any] = []
    for i, lib_spec in enumerate([str(libs), f"{libs}/*", f"{projects.mathlib}:{projects.textlib}"]):
        dest = onboarding.bundle_from_jar(
            projects.scorer,
            class_name=SCORER_CLASS,
            libs=[lib_spec],
            artifacts=data,
            examples=["Score=" + json.dumps(example)],
            dest=tmp_path / f"b{i}",
            on_report=reports.append,
        )
        assert sorted(p.name for p in (dest / "lib").iterdir()) == ["mathlib.jar", "textlib.jar"]
        assert (dest / "bias.txt").read_text().strip() == "0.5"
        assert json.loads((dest / "metadata.json").read_text())["examples"] == {"Score": [example]}
        # the self-test ran the example through the model with both libraries and the data file
        assert reports[-1].outputs["Score"][0]["value"] == pytest.approx(expected_risk(40, "Lyon", 0.5))


def test_two_lib_jars_of_one_name_both_go_in(projects: Projects, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    shutil.copy(projects.mathlib, one / "deps.jar")
    shutil.copy(projects.textlib, two / "deps.jar")
    dest = onboarding.bundle_from_jar(
        projects.scorer,
        class_name=SCORER_CLASS,
        libs=[one, two],
        artifacts=artifacts(tmp_path / "data", bias=0.0),
        dest=tmp_path / "b",
    )
    assert sorted(p.name for p in (dest / "lib").iterdir()) == ["deps-2.jar", "deps.jar"]
    assert (dest / "lib" / "deps-2.jar").read_bytes() == projects.textlib.read_bytes()


def test_listing_names_the_missing_dependency(projects: Projects) -> None:
    cands = onboarding.list_candidates(projects.scorer)
    scorer = next(c for c in cands if c["class"] == SCORER_CLASS)
    assert scorer["methods"] == [] and scorer["missing"] == MISSING_BASE
    assert MISSING_BASE in scorer["hint"] and "--lib" in scorer["hint"]
    assert "NoClassDefFoundError" in scorer["error"]
    # given the JAR that holds it, the class loads and lists its methods with their conventions
    cands = onboarding.list_candidates(projects.scorer, [projects.mathlib])
    assert cands[0]["class"] == SCORER_CLASS and "missing" not in cands[0]
    conventions = {m["name"]: m["convention"] for m in cands[0]["methods"]}
    assert conventions == {"risk": "params", "score": "pojo"}
    assert all("warning" not in m for m in cands[0]["methods"])  # compiled with -parameters
    assert {m["name"]: m["parameters"] for m in cands[0]["methods"]}["risk"] == ["age", "city"]


def test_listing_warns_when_parameter_names_are_missing(projects: Projects) -> None:
    (legacy,) = onboarding.list_candidates(projects.legacy)
    assert legacy["class"] == LEGACY_CLASS
    methods = {m["name"]: m for m in legacy["methods"]}
    risk = methods["risk"]
    assert risk["parameters"] == ["arg0", "arg1"] and risk["convention"] == "params"
    warning = risk["warning"]
    assert "arg0, arg1" in warning and "-parameters" in warning
    assert "options.compilerArgs" in warning and "maven.compiler.parameters" in warning
    # one parameter of a class type: its properties name the fields, the parameter's name is not used
    assert methods["scoreInput"]["convention"] == "pojo" and "warning" not in methods["scoreInput"]


@pytest.mark.slow  # the fat JAR: one javac run of ~1,500 generated classes the first time (then cached)
def test_fat_jar_lists_the_model_first() -> None:
    fat = build_fat_jars()
    for jar in (fat.fat, fat.fat_main):
        cands = onboarding.list_candidates(jar)
        classes = [c["class"] for c in cands]
        assert len(cands) > LIBRARY_CLASSES
        assert classes[0] == SCORER_CLASS, classes[:5]
        assert classes[1] == "com.acme.scoring.Features"  # the model's own helper next
        assert {m["name"]: m["convention"] for m in cands[0]["methods"]} == {
            "risk": "params",
            "score": "pojo",
        }
        # the unknown generated library after the model's code, the known one (com.fasterxml) last
        first_library = min(i for i, c in enumerate(classes) if c.startswith("ai.bigstats."))
        assert classes.index("net.textlib.Cities") < first_library
        assert all(c["library"] for c in cands if c["class"].startswith("com.fasterxml."))
        assert not any(c["library"] for c in cands if c["class"].startswith(("ai.", "com.acme.")))
        assert all(c.startswith("com.fasterxml.") for c in classes[-300:])


def test_ranking_rules(tmp_path: Path) -> None:
    """rank_candidates on its own: Acumos's modelClassName first, the manifest's main class as the
    anchor, library and shaded packages last."""
    jar = tmp_path / "app.jar"
    with zipfile.ZipFile(jar, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nMain-Class: org.shop.app.Main\r\n\r\n")
        z.writestr("modelConfig.properties", "modelClassName=org.shop.legacy.Acu\nmodelMethod=predict\n")

    def cand(cls: str) -> dict[str, Any]:
        return {
            "class": cls,
            "methods": [{"name": "f", "signature": f"public int {cls}.f()", "static": False}],
        }

    names = [
        "com.google.common.Lists",
        "org.shop.shaded.guava.Cache",
        "org.other.Thing",
        "org.shop.app.deep.Helper",
        "org.shop.app.Scorer",
        "org.shop.legacy.Acu",
    ]
    ranked = [c["class"] for c in onboarding.rank_candidates([cand(n) for n in names], jar)]
    assert ranked == [
        "org.shop.legacy.Acu",
        "org.shop.app.Scorer",
        "org.shop.app.deep.Helper",
        "org.other.Thing",
        "org.shop.shaded.guava.Cache",
        "com.google.common.Lists",
    ]
