"""Closing a model version frees its classes: class count and Metaspace stay flat over many cycles."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.bridge.conftest import run_python

# hundreds of load/call/close cycles in a fresh JVM (each run given up to 600 s)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def cycles(bundle, cls: str, rpc: str, example: dict, warmup: int, n: int) -> dict:
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from google.protobuf import json_format
        from bridge import jvm
        from bridge.model import JavaModel
        from runner.contract import Contract

        bundle = Path({str(bundle)!r})
        contract = Contract.compile((bundle / "model.proto").read_text())
        req = json_format.ParseDict({example!r}, contract.input_class({rpc!r})()).SerializeToString()

        def cycle():
            m = JavaModel.load(artifact_dir=bundle, class_name={cls!r}, service=contract.service)
            out = m.call({rpc!r}, req)
            m.close()
            return out

        for _ in range({warmup}):
            cycle()
        jvm.full_gc()
        before = jvm.jvm_stats()
        for _ in range({n}):
            cycle()
        jvm.full_gc()
        after = jvm.jvm_stats()
        print(json.dumps({{"before": before, "after": after}}))
    """)
    proc = run_python(code, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_iris_200_cycles_flat(sample_bundles):
    example = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    r = cycles(
        sample_bundles["iris"], "org.modelrunner.samples.iris.IrisClassifier", "Classify", example, 20, 200
    )
    before, after = r["before"], r["after"]
    assert after["loaded_classes"] - before["loaded_classes"] <= 20, r
    assert after["metaspace_used"] - before["metaspace_used"] <= 2 * 1024 * 1024, r
    assert after["unloaded_classes"] - before["unloaded_classes"] >= 200 * 3  # every version's classes went


def test_weka_cycles_flat(sample_bundles):
    if "weka" not in sample_bundles:
        pytest.skip("weka sample not built")
    meta = json.loads((sample_bundles["weka"] / "metadata.json").read_text())
    rpc, examples = next(iter(meta["examples"].items()))
    r = cycles(sample_bundles["weka"], meta["entry_point"], rpc, examples[0], 5, 40)
    before, after = r["before"], r["after"]
    assert after["loaded_classes"] - before["loaded_classes"] <= 20, r
    assert after["metaspace_used"] - before["metaspace_used"] <= 2 * 1024 * 1024, r
    assert after["unloaded_classes"] > before["unloaded_classes"]
