"""Adaptive batching on a real Java model: the JPMML-Evaluator scorer of test_real_java_libraries (a
scikit-learn gradient-boosting pipeline exported to PMML) onboarded with `batching` in its metadata.json,
served by the real registry and HTTP app, called by concurrent clients with one flower each on
ClassifyBatch: the calls are merged (the batch-size histogram says how), and every client gets exactly
scikit-learn's probabilities for its own flower."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.serving import metrics
from tests.e2e.test_real_java_libraries import (  # noqa: F401 (fixtures, used by name)
    SCORER_CLASS,
    TOLERANCE,
    PmmlCase,
    jpmml_jars,
    pmml_cases,
    scorer_jar,
    served_proba,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

CLIENTS = 16


def batch_counts(model: str) -> tuple[float, float]:
    """(batch calls, requests in them) of ``model`` from this process's /metrics."""
    found = {"model_runner_batch_size_count": 0.0, "model_runner_batch_size_sum": 0.0}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for sample in family.samples:
            if sample.name in found and sample.labels == {"model": model, "method": "ClassifyBatch"}:
                found[sample.name] += sample.value
    count, total = found["model_runner_batch_size_count"], found["model_runner_batch_size_sum"]
    return count, total


def test_concurrent_single_flower_requests_are_batched_and_answered_exactly(
    pmml_cases: dict[str, PmmlCase],  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    from runner.http.app import create_app
    from runner.serving.admin import Admin
    from runner.serving.loading import BundleLoader
    from runner.serving.onboarding import bundle_from_jar
    from runner.serving.registry import Registry
    from runner.settings import Settings
    from runner.store import Repository

    case = pmml_cases["gradient-boosting"]
    bundle = bundle_from_jar(
        case.scorer_jar,
        class_name=SCORER_CLASS,
        libs=case.libs,
        artifacts=case.artifacts,
        name="gbm-batched",
        examples=["Classify=" + json.dumps(case.rows[0])],
        dest=tmp_path / "bundle",
    )
    meta_file = bundle / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["batching"] = {"max_batch_size": 32, "max_delay_ms": 2, "methods": ["ClassifyBatch"]}
    meta_file.write_text(json.dumps(meta))

    root = tmp_path / "repo"
    settings = Settings(repo=root, admin_token="t0ken", poll_interval=0.05)
    repository = Repository(root)
    admin = Admin(repository, settings, swap_timeout=30.0)
    admin.upload("gbm-batched", bundle, caller="test")  # validation accepts the declaration
    registry = Registry(repository, BundleLoader(settings), poll_interval=settings.poll_interval)
    registry.start()
    try:
        assert registry.ready() and not registry.load_errors(), registry.load_errors()
        app = create_app(settings, registry, repository, admin=admin)
        before = batch_counts("gbm-batched")

        def one(index: int) -> tuple[int, list[dict[str, Any]]]:
            resp = app.test_client().post(
                "/models/gbm-batched/methods/ClassifyBatch", json={"rows": [case.rows[index]]}
            )
            assert resp.status_code == 200, resp.get_data(as_text=True)
            return index, resp.get_json()["values"]

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = list(pool.map(one, range(len(case.rows))))
        for index, values in answers:
            assert len(values) == 1, (index, values)
            assert values[0]["species"] == case.species[index]
            worst = float(np.max(np.abs(served_proba(values)[0] - case.proba[index])))
            assert worst <= TOLERANCE, f"flower {index}: {worst}"
        calls, requests = (a - b for a, b in zip(batch_counts("gbm-batched"), before, strict=True))
        # every request that met another in progress went through a batch; some batches merged several
        assert requests <= len(case.rows) and calls < requests, (calls, requests)
    finally:
        registry.stop()
