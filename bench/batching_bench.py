"""Adaptive batching: the same model with batching on and off, side by side in one run.

    python bench/batching_bench.py [--duration 10] [--rounds 3] [--concurrency 32] [--workers 2]
        [--threads 8] [--trees 30] [--depth 2] [--kinds jpmml sklearn] [--skip-http] [--skip-dataplane]
        [--http-server gunicorn|granian] [--calls guarded|inline]

The model: a scikit-learn GradientBoostingClassifier on iris (``--trees`` trees of ``--depth``), served
two ways (``--kinds``):

- jpmml: exported to PMML with sklearn2pmml and scored by the JPMML-Evaluator scorer of
  tests/e2e/test_real_java_libraries.py (compiled here with javac against the `jpmml_evaluator` wheel's
  JARs); its batch method evaluates row by row (JPMML has no vectorised path);
- sklearn: the fitted classifier in a Python bundle whose ClassifyBatch makes one vectorised
  ``predict_proba`` call for all its rows (scikit-learn's per-call cost is most of a one-row call).

Each client sends one flower per request to ClassifyBatch (``{"rows": [flower]}``). Per kind, two
bundles of the same model are served together: ``KIND-batched`` declares
``"batching": {"max_batch_size": 32, "max_delay_ms": 2}``, ``KIND`` declares nothing; rounds take turns.

- dataplane: the data plane in this process (no HTTP: the model call and what the data plane does around
  it), ``--concurrency`` threads calling ``DataPlane.predict`` in a loop;
- http: `serve` (gunicorn, ``--workers`` x ``--threads``, each worker its own JVM), load from `hey` with
  ``--concurrency`` connections.

Mean batch: requests per model call, from the batched model's ``model_runner_batch_size`` histogram.
Needs jpmml_evaluator, sklearn2pmml, scikit-learn (the test extra), a JDK and hey. Results:
bench/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' scorer sources
sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import hey, start_runner, stop

from runner.serving.onboarding import bundle_from_jar
from tests.e2e.test_real_java_libraries import FEATURES, SCORER_CLASS, SCORER_SOURCES, SPECIES

BATCHING = {"max_batch_size": 32, "max_delay_ms": 2}
JSON = "application/json"


def jpmml_jars() -> list[Path]:
    import jpmml_evaluator

    return sorted(Path(jpmml_evaluator.__file__).parent.rglob("*.jar"))


def scorer_jar(libs: list[Path], work: Path) -> Path:
    """The test's scorer, compiled with javac against the wheel's JARs."""
    src, classes = work / "src", work / "classes"
    for name, text in SCORER_SOURCES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    javac = shutil.which("javac") or "javac"
    cmd = [javac, "-parameters", "--release", "17", "-cp", ":".join(map(str, libs)), "-d", str(classes)]
    subprocess.run([*cmd, *map(str, src.rglob("*.java"))], check=True)
    jar = work / "pmml-scorer.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        for cls in sorted(classes.rglob("*.class")):
            zf.write(cls, cls.relative_to(classes).as_posix())
    return jar


def export_pmml(trees: int, depth: int, work: Path) -> tuple[Path, dict[str, float]]:
    """A gradient-boosting pipeline on iris exported to PMML; the artifact folder and one flower."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn2pmml import sklearn2pmml
    from sklearn2pmml.pipeline import PMMLPipeline

    iris = load_iris(as_frame=True)
    x = iris.data.set_axis(FEATURES, axis=1)
    y = pd.Series(np.asarray(iris.target_names)[iris.target], name="species")
    pipeline = PMMLPipeline(
        [("classifier", GradientBoostingClassifier(n_estimators=trees, max_depth=depth, random_state=7))]
    )
    pipeline.fit(x, y)
    assert list(pipeline.classes_) == SPECIES
    artifacts = work / "artifacts"
    artifacts.mkdir()
    sklearn2pmml(pipeline, str(artifacts / "model.pmml"))
    return artifacts, dict(zip(FEATURES, map(float, x.iloc[77]), strict=True))


SKLEARN_PROTO = """syntax = "proto3";
package bench.gbm;

message IrisInput {
  double sepal_length = 1;
  double sepal_width = 2;
  double petal_length = 3;
  double petal_width = 4;
}
message IrisPrediction {
  string species = 1;
  double probability_setosa = 2;
  double probability_versicolor = 3;
  double probability_virginica = 4;
}
message ClassifyBatchRequest { repeated IrisInput rows = 1; }
message ClassifyBatchResponse { repeated IrisPrediction values = 1; }

service GbmScorer {
  rpc ClassifyBatch (ClassifyBatchRequest) returns (ClassifyBatchResponse);
}
"""

SKLEARN_MODEL = """
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier

SPECIES = ("setosa", "versicolor", "virginica")


class GbmScorer:
    def __init__(self, artifact_dir=None):
        x, y = load_iris(return_X_y=True)
        self.model = GradientBoostingClassifier(n_estimators={trees}, max_depth={depth}, random_state=7).fit(x, y)

    def ClassifyBatch(self, req):
        if not req.rows:
            return {{"values": []}}
        x = np.array([[r.sepal_length, r.sepal_width, r.petal_length, r.petal_width] for r in req.rows])
        proba = self.model.predict_proba(x)  # one vectorised call for every row
        return {{"values": [
            {{"species": SPECIES[int(p.argmax())], "probability_setosa": float(p[0]),
             "probability_versicolor": float(p[1]), "probability_virginica": float(p[2])}}
            for p in proba
        ]}}
"""


def with_batching(folder: Path) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    meta["batching"] = BATCHING
    (folder / "metadata.json").write_text(json.dumps(meta))


def bundles(args: argparse.Namespace, work: Path) -> tuple[list[Path], dict[str, float]]:
    """Per kind asked (jpmml, sklearn), two bundles of the same model: ``KIND`` and ``KIND-batched``."""
    made = []
    artifacts, flower = export_pmml(args.trees, args.depth, work)
    if "jpmml" in args.kinds:
        libs = jpmml_jars()
        jar = scorer_jar(libs, work / "scorer")
        for name in ("jpmml", "jpmml-batched"):
            folder = bundle_from_jar(
                jar,
                class_name=SCORER_CLASS,
                libs=libs,
                artifacts=artifacts,
                name=name,
                examples=["Classify=" + json.dumps(flower)],
                dest=work / name,
            )
            if name.endswith("-batched"):
                with_batching(folder)
            made.append(folder)
    if "sklearn" in args.kinds:
        for name in ("sklearn", "sklearn-batched"):
            folder = work / name
            folder.mkdir()
            (folder / "gbm_scorer.py").write_text(SKLEARN_MODEL.format(trees=args.trees, depth=args.depth))
            (folder / "model.proto").write_text(SKLEARN_PROTO)
            meta = {"name": name, "runtime": "python", "entry_point": "gbm_scorer:GbmScorer"}
            (folder / "metadata.json").write_text(json.dumps(meta))
            if name.endswith("-batched"):
                with_batching(folder)
            made.append(folder)
    return made, flower


def batch_sizes(text: str, model: str) -> tuple[float, float]:
    """(batch calls, requests batched) of ``model`` in a /metrics scrape."""
    found = {"model_runner_batch_size_count": 0.0, "model_runner_batch_size_sum": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("model") == model:
                found[sample.name] += sample.value
    return found["model_runner_batch_size_count"], found["model_runner_batch_size_sum"]


Measure = Callable[[str, float], dict[str, Any]]


def rounds(names: list[str], args: argparse.Namespace, measure: Measure) -> dict[str, list[dict[str, Any]]]:
    """Each model warmed, then ``args.rounds`` rounds taking turns (off, on, off, on, ...)."""
    for name in names:
        measure(name, 2.0)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _round in range(args.rounds):
        for name in names:
            results[name].append(measure(name, args.duration))
    return results


def report(title: str, results: dict[str, list[dict[str, Any]]], before: str, after: str) -> None:
    print(f"\n{title}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        "| model | batching | req/s | p50 ms | p99 ms | errors | mean batch |\n|---|---|---|---|---|---|---|"
    )
    for name, measured in results.items():
        median = sorted(measured, key=lambda r: r["rps"])[len(measured) // 2]
        batched = name.endswith("-batched")
        mean = ""
        if batched:
            calls = batch_sizes(after, name)[0] - batch_sizes(before, name)[0]
            requests_in = batch_sizes(after, name)[1] - batch_sizes(before, name)[1]
            mean = f"{requests_in / calls:.1f}" if calls else "-"
        print(
            f"| {name.removesuffix('-batched')} | {'on' if batched else 'off'} | {median['rps']:,.0f} | "
            f"{median['p50_ms']:.2f} | {median['p99_ms']:.2f} | {sum(r.get('non_2xx', 0) for r in measured)} "
            f"| {mean} |"
        )


def http_rounds(args: argparse.Namespace, made: list[Path], flower: dict[str, float], work: Path) -> None:
    flags = ["--http-server", args.http_server, "--calls", args.calls]
    proc, ready = start_runner(made, args.workers, args.threads, work, extra_args=flags)
    url = f"http://127.0.0.1:{ready['http_port']}"
    body = json.dumps({"rows": [flower]}).encode()

    def measure(name: str, seconds: float) -> dict[str, Any]:
        target = f"{url}/models/{name}/methods/ClassifyBatch"
        return hey(target, body, JSON, seconds, args.concurrency, work)

    try:
        before = requests.get(f"{url}/metrics", timeout=30).text
        results = rounds([f.name for f in made], args, measure)
        after = requests.get(f"{url}/metrics", timeout=30).text
    finally:
        stop(proc)
    report(
        f"http: serve --workers {args.workers} --threads {args.threads}, hey -c {args.concurrency}, "
        f"{args.duration:g}s x {args.rounds} rounds (median round)",
        results,
        before,
        after,
    )


def dataplane_rounds(
    args: argparse.Namespace, made: list[Path], flower: dict[str, float], work: Path
) -> None:
    from runner.serving import metrics
    from runner.serving.dataplane import DataPlane
    from runner.serving.loading import BundleLoader
    from runner.serving.registry import Registry
    from runner.settings import Settings
    from runner.store import Repository

    repo = Repository(work / "dp-repo")
    for folder in made:
        repo.publish(folder.name, folder, expected_version=None, caller="bench")
    registry = Registry(
        repo, BundleLoader(Settings(repo=work / "dp-repo", calls=args.calls)), poll_interval=0.5
    )
    registry.start()
    plane = DataPlane(registry)
    body = json.dumps({"rows": [flower]}).encode()

    def measure(name: str, seconds: float) -> dict[str, Any]:
        latencies: list[list[float]] = [[] for _ in range(args.concurrency)]
        stop_at = time.monotonic() + seconds

        def client(mine: list[float]) -> None:
            while (start := time.monotonic()) < stop_at:
                plane.predict(name, "ClassifyBatch", body, JSON)
                mine.append(time.monotonic() - start)

        threads = [threading.Thread(target=client, args=(lat,)) for lat in latencies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = sorted(x for lat in latencies for x in lat)
        return {
            "rps": len(every) / seconds,
            "p50_ms": every[len(every) // 2] * 1000,
            "p99_ms": every[int(len(every) * 0.99)] * 1000,
        }

    try:
        before = metrics.render()[0].decode()
        results = rounds([f.name for f in made], args, measure)
        after = metrics.render()[0].decode()
    finally:
        registry.stop()
    report(
        f"dataplane: {args.concurrency} threads calling DataPlane.predict (JSON) in this process, "
        f"{args.duration:g}s x {args.rounds} rounds (median round)",
        results,
        before,
        after,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--trees", type=int, default=30)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", choices=["jpmml", "sklearn"], default=["jpmml", "sklearn"])
    parser.add_argument("--http-server", default="gunicorn", help="serve's --http-server")
    parser.add_argument("--calls", default="guarded", help="serve's --calls (guarded or inline)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-dataplane", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="batching-bench-") as tmp:
        work = Path(tmp)
        made, flower = bundles(args, work)
        if not args.skip_dataplane:
            dataplane_rounds(args, made, flower, work)
        if not args.skip_http:
            http_rounds(args, made, flower, work)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
