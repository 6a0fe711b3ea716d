"""Onboarding what Java teams have, through the real CLI in subprocesses: dependency JARs given as a folder,
a class path or a `dir/*` wildcard; `serve` and `push` taking every `onboard` flag (--lib, --artifacts,
--example, --name, ...); candidate listings of a fat JAR (the model first), of a class whose dependency is
missing (named), and of a class compiled without -parameters (warned). The JARs are built from source by
tests.e2e.java_projects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from tests.e2e.java_projects import (
    LEGACY_CLASS,
    MISSING_BASE,
    SCORER_CLASS,
    Projects,
    artifacts,
    build_fat_jars,
    build_projects,
    expected_risk,
)
from tests.e2e.test_cli import ok, run_cli, start_serve, stop_serve

pytestmark = pytest.mark.e2e

APPLICANT = {"age": 40, "city": "Lyon"}


@pytest.fixture(scope="module")
def projects() -> Projects:
    return build_projects()


@pytest.fixture
def workspace(projects: Projects, tmp_path: Path) -> Path:
    """scorer.jar (named like a build output: the model is `scorer`) and libs/ with its two dependencies."""
    shutil.copy(projects.scorer, tmp_path / "scorer.jar")
    (tmp_path / "libs").mkdir()
    for jar in (projects.mathlib, projects.textlib):
        shutil.copy(jar, tmp_path / "libs")
    return tmp_path


@pytest.mark.slow  # the fat JAR: one javac run of ~1,500 generated classes the first time (then cached)
def test_onboard_lists_the_model_of_a_fat_jar_first() -> None:
    fat = build_fat_jars().fat
    r = ok(run_cli("onboard", fat))
    lines = r.stdout.splitlines()
    assert "candidate class(es)" in lines[0] and "in library packages (listed last)" in lines[0]
    assert lines[1].strip() == SCORER_CLASS
    assert "double risk(double age, String city)   [params]" in lines[2]
    assert "Risk score(Applicant a)   [pojo]" in lines[3]
    assert "--json lists every one" in r.stdout  # not 1,500 classes on the terminal
    assert len(lines) < 50
    assert r.stdout.rstrip().endswith(f"next: model-runner onboard {fat} --class {SCORER_CLASS}")
    doc = json.loads(ok(run_cli("onboard", fat, "--json")).stdout)
    assert doc["candidates"][0]["class"] == SCORER_CLASS and len(doc["candidates"]) > 1500


def test_onboard_listing_names_the_missing_class(workspace: Path) -> None:
    jar = workspace / "scorer.jar"
    r = ok(run_cli("onboard", jar))
    assert f"{SCORER_CLASS}   cannot load: class {MISSING_BASE} is missing" in r.stdout
    assert f"missing: {MISSING_BASE}: add the JAR(s) that hold them with --lib" in r.stdout
    assert f"next: model-runner onboard {jar} --lib DEPENDENCIES" in r.stdout
    # the folder of dependencies resolves it: the class is listed with its methods
    r = ok(run_cli("onboard", jar, "--lib", workspace / "libs"))
    assert "cannot load" not in r.stdout and "Risk score(Applicant a)   [pojo]" in r.stdout
    assert f"--class {SCORER_CLASS} --lib {workspace / 'libs'}" in r.stdout


def test_onboard_listing_warns_about_missing_parameter_names(projects: Projects) -> None:
    r = ok(run_cli("onboard", projects.legacy))
    assert LEGACY_CLASS in r.stdout and "double risk(double arg0, String arg1)   [params]" in r.stdout
    assert "! compiled without -parameters: its fields would be named arg0, arg1" in r.stdout
    assert "warning: compile with javac -parameters" in r.stdout
    assert "<maven.compiler.parameters>true</maven.compiler.parameters>" in r.stdout
    doc = json.loads(ok(run_cli("onboard", projects.legacy, "--json")).stdout)
    risk = next(m for m in doc["candidates"][0]["methods"] if m["name"] == "risk")
    assert "-parameters" in risk["warning"]


def test_flags_that_do_not_apply_are_refused(workspace: Path) -> None:
    jar, libs = workspace / "scorer.jar", workspace / "libs"
    repo = ["--repo", str(workspace / "repo"), "--http-port", "0", "--grpc-port", "-1"]
    # a bundle is what it is: the model flags would be silently ignored
    r = run_cli("serve", workspace / "bundle.zip", "--lib", libs, *repo)
    assert r.returncode == 1 and "--lib apply to a JAR or a Python class" in r.stderr
    # `--lib libs/*` unquoted: the shell hands the other JARs to serve as more targets
    r = run_cli(
        "serve", jar, libs / "textlib.jar", "--class", SCORER_CLASS, "--lib", libs / "mathlib.jar", *repo
    )
    assert r.returncode == 1 and "describe one model" in r.stderr and "quote it (--lib 'libs/*')" in r.stderr
    assert not (workspace / "repo" / "models").exists()
    r = run_cli("push", "scorer", jar, "--name", "other", "--class", SCORER_CLASS)
    assert r.returncode == 1 and "two model names" in r.stderr
    r = run_cli("push", "scorer", workspace / "bundle.zip", "--artifacts", workspace)
    assert r.returncode == 1 and "not to a bundle" in r.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)  # starts a real `serve`
def test_serve_and_push_take_every_onboard_flag(workspace: Path) -> None:
    jar, libs = workspace / "scorer.jar", workspace / "libs"
    example = "Score=" + json.dumps(APPLICANT)
    served = start_serve(
        [jar],
        workspace,
        *("--class", SCORER_CLASS, "--lib", str(libs), "--example", example),
        *("--artifacts", str(artifacts(workspace / "data-1", bias=0.5)), "--workers", "1"),
    )

    def risk(version: int, bias: float) -> None:
        resp = requests.post(f"{served.url}/models/scorer/methods/Score", json=APPLICANT, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-Model-Version"] == str(version)
        assert resp.json()["value"] == pytest.approx(expected_risk(40, "Lyon", bias))

    try:
        # serve: the dependencies from a folder, the data file, the example kept in the bundle
        risk(1, 0.5)
        meta = requests.get(f"{served.url}/models/scorer/metadata", timeout=30).json()
        assert meta["examples"] == {"Score": [APPLICANT]} and meta["entry_point"] == SCORER_CLASS
        # push NAME JAR with a class path of JARs
        mathlib, textlib = libs / "mathlib.jar", libs / "textlib.jar"
        data = artifacts(workspace / "data-2", bias=1.5)
        r = ok(
            served.cli(
                "push", "scorer", jar, "--class", SCORER_CLASS, "--lib", f"{mathlib}:{textlib}",
                "--artifacts", data, "--example", example,
            )
        )  # fmt: skip
        assert "scorer: version 2 is current" in r.stdout
        risk(2, 1.5)
        # push JAR (the name comes from the JAR, as serve names it) with a java -cp wildcard
        data = artifacts(workspace / "data-3", bias=2.5)
        r = ok(served.cli("push", jar, "--class", SCORER_CLASS, "--lib", f"{libs}/*", "--artifacts", data))
        assert "scorer: version 3 is current" in r.stdout
        risk(3, 2.5)
        # push JAR --name NAME, the libraries as two --lib JARs, one rpc only (a breaking change)
        only_score = ("--class", SCORER_CLASS, "--lib", libs, "--method", "score")
        r = served.cli("push", jar, "--name", "scorer", *only_score)
        assert r.returncode == 1 and "rpc Risk removed" in r.stderr and "--allow-breaking" in r.stderr
        data = artifacts(workspace / "data-4", bias=3.5)
        r = ok(
            served.cli(
                "push", jar, "--name", "scorer", "--class", SCORER_CLASS, "--lib", mathlib, "--lib", textlib,
                "--artifacts", data, "--method", "score", "--allow-breaking", "--json",
            )
        )  # fmt: skip
        assert json.loads(r.stdout)["version"] == 4
        risk(4, 3.5)
        proto = requests.get(f"{served.url}/models/scorer/proto", timeout=30).text
        assert "rpc Score" in proto and "rpc Risk" not in proto
    finally:
        stop_serve(served.proc)
