"""runner.runtimes.python and runner.runtimes: isolated Python model versions, calls, errors, deadlines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runner.bundle import Metadata, open_bundle
from runner.contract import MEDIA_JSON, Contract
from runner.errors import BadInput, DeadlineExceeded, InvalidBundle, MethodNotFound, ModelError
from runner.runtimes import Model, load_model
from runner.runtimes.python.isolation import ROOT_PACKAGE
from runner.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
IRIS_PROTO = (ROOT / "protos" / "iris.proto").read_text()
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def make_bundle(
    folder: Path,
    files: dict[str, str],
    *,
    proto: str = IRIS_PROTO,
    entry: str = "iris_model:IrisClassifier",
    **meta: object,
) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    (folder / "model.proto").write_text(proto)
    (folder / "metadata.json").write_text(
        json.dumps({"name": "iris-python", "runtime": "python", "entry_point": entry, **meta})
    )
    return folder


def load(folder: Path) -> tuple[Model, Contract]:
    b = open_bundle(folder)
    contract = Contract.compile(b.proto_text, include_dir=folder)
    return load_model(folder, b.metadata, contract, Settings()), contract


def call(model: Model, contract: Contract, rpc: str, body: dict, timeout: float | None = None) -> dict:
    req = contract.decode(contract.input_class(rpc), json.dumps(body).encode(), MEDIA_JSON)
    out = model.invoke(rpc, req.SerializeToString(), timeout)
    return json.loads(contract.encode(contract.output_class(rpc).FromString(out), MEDIA_JSON))


VERSIONED = """
    import labels                     # a sibling module, imported by its plain name
    from helpers.scale import factor  # a sibling package

    class IrisClassifier:
        def __init__(self, artifact_dir):
            self.extra = (artifact_dir / "suffix.txt").read_text().strip()

        def Classify(self, request):
            return {"species": labels.NAME + self.extra, "probabilities": [factor()]}

        def ClassifyBatch(self, request):
            return {"predictions": []}

        def ClassifyMatrix(self, request):
            return {"indices": [labels.INDEX]}
"""


def versioned(folder: Path, n: int) -> Path:
    b = make_bundle(
        folder,
        {
            "iris_model.py": VERSIONED,
            "labels.py": f"NAME = 'v{n}'\nINDEX = {n}\n",
            "helpers/__init__.py": "",
            "helpers/scale.py": f"def factor():\n    return {n}.5\n",
        },
    )
    (b / "suffix.txt").write_text(f"-data{n}\n")
    return b


def test_sample_iris_python(tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    shutil.copytree(ROOT / "runner" / "samples" / "iris-python", folder)
    (folder / "model.proto").write_text(IRIS_PROTO)
    model, c = load(folder)
    try:
        assert call(model, c, "Classify", SETOSA)["species"] == "setosa"
        batch = call(
            model,
            c,
            "ClassifyBatch",
            {
                "rows": [
                    SETOSA,
                    {"sepal_length": 6.4, "sepal_width": 3.2, "petal_length": 4.5, "petal_width": 1.5},
                    {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},
                ]
            },
        )
        assert [p["species"] for p in batch["predictions"]] == ["setosa", "versicolor", "virginica"]
        assert abs(sum(batch["predictions"][1]["probabilities"]) - 1) < 1e-9
        out = call(
            model,
            c,
            "ClassifyMatrix",
            {"rows": [{"values": [5.1, 3.5, 1.4, 0.2]}, {"values": [6.3, 3.3, 6.0, 2.5]}]},
        )
        assert out == {"indices": [0, 2]}
        with pytest.raises(ModelError, match="expected 4 features"):
            call(model, c, "ClassifyMatrix", {"rows": [{"values": [1.0]}]})
    finally:
        model.close()
    assert not (folder / "__pycache__").exists()  # version folders stay untouched


def test_non_finite_floats_a_model_returns_are_answered(tmp_path: Path) -> None:
    """A model's nan or inf (a Python float, or numpy's) is a double like any other: answered as proto3
    JSON spells it, not refused as a model error (found by the fuzz stage: the sample's 0/0 on NaN input)."""
    model, c = load(
        make_bundle(
            tmp_path / "m",
            {
                "iris_model.py": """
                    import numpy as np

                    class IrisClassifier:
                        def Classify(self, request):
                            nan = float("nan")
                            return {"species": "?", "probabilities": [nan, float("inf"), -np.inf, 0.5]}

                        def ClassifyBatch(self, request):
                            return {"predictions": []}

                        def ClassifyMatrix(self, request):
                            return {"indices": []}
                """
            },
        )
    )
    try:
        out = call(model, c, "Classify", SETOSA)
        assert out["probabilities"] == ["NaN", "Infinity", "-Infinity", 0.5]
    finally:
        model.close()


def test_two_versions_side_by_side(tmp_path: Path) -> None:
    m1, c1 = load(versioned(tmp_path / "v1", 1))
    m2, c2 = load(versioned(tmp_path / "v2", 2))
    try:
        # plain names never enter sys.modules: no version can replace the other's modules
        assert (
            "iris_model" not in sys.modules and "labels" not in sys.modules and "helpers" not in sys.modules
        )
        results: dict[int, list[dict]] = {1: [], 2: []}

        def hammer(n: int, model: Model, c: Contract) -> None:
            for _ in range(50):
                results[n].append(call(model, c, "Classify", SETOSA))

        threads = [threading.Thread(target=hammer, args=a) for a in ((1, m1, c1), (2, m2, c2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {json.dumps(r) for r in results[1]} == {
            json.dumps({"species": "v1-data1", "probabilities": [1.5]})
        }
        assert {json.dumps(r) for r in results[2]} == {
            json.dumps({"species": "v2-data2", "probabilities": [2.5]})
        }
        assert call(m1, c1, "ClassifyMatrix", {}) == {"indices": [1]}
        assert call(m2, c2, "ClassifyMatrix", {}) == {"indices": [2]}
    finally:
        m1.close()
    # closing v1 drops its modules only; v2 keeps serving
    assert call(m2, c2, "Classify", SETOSA)["species"] == "v2-data2"
    m2.close()
    assert [k for k in sys.modules if k.startswith(ROOT_PACKAGE + ".")] == []


RAISING = """
    class IrisClassifier:
        def Classify(self, request):
            if request.sepal_length < 0:
                raise ValueError("negative length")
            return {"species": "x", "probabilities": []}

        def classify_batch(self, request):          # snake_case binds to ClassifyBatch
            return {"predictions": [{"nope": 1}]}

        def ClassifyMatrix(self, request):
            return 42                                 # bare value: the single field of ClassIndices
"""


def test_model_errors(tmp_path: Path) -> None:
    model, c = load(make_bundle(tmp_path / "b", {"iris_model.py": RAISING}))
    try:
        assert model.bindings["ClassifyBatch"]["python_method"] == "classify_batch"
        with pytest.raises(ModelError) as e:
            call(model, c, "Classify", {"sepal_length": -1})
        d = e.value.detail
        assert d["exception_class"] == "ValueError" and d["exception_message"] == "negative length"
        assert d["rpc"] == "Classify"
        assert 'raise ValueError("negative length")' in d["traceback"]
        assert "ValueError" in e.value.message
        with pytest.raises(ModelError, match="does not fit iris.IrisPredictions"):
            call(model, c, "ClassifyBatch", {})
        with pytest.raises(ModelError, match="does not fit iris.ClassIndices"):
            call(model, c, "ClassifyMatrix", {})  # 42 is not a list
        with pytest.raises(MethodNotFound):
            model.invoke("Nope", b"")
        with pytest.raises(BadInput):
            model.invoke("Classify", b"\xff\xff")
        # the model still serves after its errors
        assert call(model, c, "Classify", SETOSA)["species"] == "x"
    finally:
        model.close()


EXITING = """
    import sys

    class IrisClassifier:
        def Classify(self, request):
            sys.exit(3)

        def ClassifyBatch(self, request):
            return {}

        def ClassifyMatrix(self, request):
            return {}
"""


def test_sys_exit_in_a_model_is_a_model_error(tmp_path: Path) -> None:
    # SystemExit is not an Exception: escaping, it would end the serving process's worker
    model, c = load(make_bundle(tmp_path / "b", {"iris_model.py": EXITING}))
    try:
        with pytest.raises(ModelError) as e:
            call(model, c, "Classify", SETOSA)
        assert e.value.detail["exception_class"] == "SystemExit"
        with pytest.raises(ModelError):
            call(model, c, "Classify", SETOSA, timeout=5)  # on a pool thread too
    finally:
        model.close()
    with pytest.raises(InvalidBundle):
        load(make_bundle(tmp_path / "c", {"iris_model.py": "import sys\nsys.exit(1)\n"}))


SLOW = """
    import time

    class IrisClassifier:
        def Classify(self, request):
            time.sleep(request.sepal_length)
            return {"species": "slow"}

        def ClassifyBatch(self, request):
            return {}

        def ClassifyMatrix(self, request):
            return {}
"""


def test_deadline(tmp_path: Path) -> None:
    model, c = load(make_bundle(tmp_path / "b", {"iris_model.py": SLOW}))
    try:
        with pytest.raises(DeadlineExceeded) as e:
            call(model, c, "Classify", {"sepal_length": 2}, timeout=0.2)
        assert e.value.detail == {"rpc": "Classify", "timeout": 0.2}
        assert call(model, c, "Classify", {"sepal_length": 0}, timeout=5)["species"] == "slow"
    finally:
        model.close()


def test_binding_failures_are_reported(tmp_path: Path) -> None:
    src = "class IrisClassifier:\n    def Classify(self, request):\n        return {}\n"
    with pytest.raises(InvalidBundle) as e:
        load(make_bundle(tmp_path / "a", {"iris_model.py": src}))
    rpcs = [p["rpc"] for p in e.value.detail["problems"]]
    assert rpcs == ["ClassifyBatch", "ClassifyMatrix"]
    with pytest.raises(InvalidBundle, match="cannot import iris_model: ZeroDivisionError") as e:
        load(make_bundle(tmp_path / "b", {"iris_model.py": "x = 1 / 0\n"}))
    assert "1 / 0" in e.value.detail["traceback"]
    with pytest.raises(InvalidBundle, match="has no Missing"):
        load(make_bundle(tmp_path / "c", {"iris_model.py": "X = 1\n"}, entry="iris_model:Missing"))
    ctor = "class IrisClassifier:\n    def __init__(self):\n        raise OSError('no weights')\n"
    with pytest.raises(InvalidBundle, match="constructor raised OSError: no weights"):
        load(make_bundle(tmp_path / "d", {"iris_model.py": ctor}))
    assert [k for k in sys.modules if k.startswith(ROOT_PACKAGE + ".")] == []


TYPED_PROTO = """
syntax = "proto3";
package scoring;
message Applicant { string name = 1; int64 age = 2; repeated double scores = 3; }
message Decision { bool accepted = 1; string reason = 2; }
message ScoreRequest { int64 age = 1; string city = 2; }
message ScoreResponse { double value = 1; }
service Scorer {
  rpc Decide (Applicant) returns (Decision);
  rpc Score (ScoreRequest) returns (ScoreResponse);
}
"""

TYPED = """
    from dataclasses import dataclass

    @dataclass
    class Applicant:
        name: str
        age: int
        scores: list[float]

    @dataclass
    class Decision:
        accepted: bool
        reason: str

    class Scorer:
        def decide(self, a: Applicant) -> Decision:
            assert isinstance(a, Applicant) and isinstance(a.age, int)
            return Decision(accepted=sum(a.scores) > 1, reason=f"{a.name} ({a.age})")

        def score(self, age: int, city: str) -> float:
            return age * 2.0 + len(city)
"""


def test_typed_conventions(tmp_path: Path) -> None:
    model, c = load(
        make_bundle(tmp_path / "b", {"scorer.py": TYPED}, proto=TYPED_PROTO, entry="scorer:Scorer")
    )
    try:
        assert model.bindings == {
            "Decide": {"python_method": "decide", "convention": "struct"},
            "Score": {"python_method": "score", "convention": "params"},
        }
        out = call(model, c, "Decide", {"name": "ann", "age": "41", "scores": [0.5, 0.7]})
        assert out == {"accepted": True, "reason": "ann (41)"}
        assert call(model, c, "Score", {"age": 20, "city": "Oslo"}) == {"value": 44.0}
    finally:
        model.close()


PICKLING = """
    import pickle

    class IrisClassifier:
        def __init__(self, artifact_dir):
            with open(artifact_dir / "scaler.pkl", "rb") as f:
                self.scaler = pickle.load(f)        # names features.Scaler, a class of this bundle

        def Classify(self, request):
            return {"species": type(self.scaler).__module__, "probabilities": [self.scaler.scale(2.0)]}

        def ClassifyBatch(self, request):
            return {}

        def ClassifyMatrix(self, request):
            return {}
"""


def test_pickles_of_bundle_classes_load(tmp_path: Path) -> None:
    folder = make_bundle(
        tmp_path / "b",
        {
            "iris_model.py": PICKLING,
            "features.py": "class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
            "    def scale(self, x):\n        return self.k * x\n",
        },
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import features, pickle; pickle.dump(features.Scaler(3.0), open('scaler.pkl', 'wb'))",
        ],
        cwd=folder,
        check=True,
    )
    model, c = load(folder)
    try:
        out = call(model, c, "Classify", SETOSA)
        assert out["probabilities"] == [6.0]
        assert out["species"].startswith(ROOT_PACKAGE + ".")  # the version's own module
        assert "features" not in sys.modules  # the plain name was only there while loading
    finally:
        model.close()


def test_inline_calls_run_on_the_callers_thread_and_answer_late_calls_with_the_deadline(
    tmp_path: Path,
) -> None:
    where = SLOW.replace('return {"species": "slow"}', 'return {"species": threading.current_thread().name}')
    where = where.replace("import time", "import threading\n    import time")
    folder = make_bundle(tmp_path / "b", {"iris_model.py": where}, calls="inline")
    model, c = load(folder)
    try:
        caller = threading.current_thread().name
        assert call(model, c, "Classify", {"sepal_length": 0}, timeout=5)["species"] == caller
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as e:
            call(model, c, "Classify", {"sepal_length": 0.5}, timeout=0.2)
        # a Python call cannot be interrupted: it is answered when it returns, with the deadline error
        assert time.monotonic() - started >= 0.5
        assert e.value.detail == {"rpc": "Classify", "timeout": 0.2, "calls": "inline"}
        assert call(model, c, "Classify", {"sepal_length": 0}, timeout=5)["species"] == caller
    finally:
        model.close()
    # the setting decides when the bundle does not say; the bundle wins over it
    guarded = make_bundle(tmp_path / "g", {"iris_model.py": where}, calls="guarded")
    for folder, settings, on_caller in (
        (guarded, Settings(calls="inline"), False),
        (make_bundle(tmp_path / "d", {"iris_model.py": where}), Settings(calls="inline"), True),
    ):
        b = open_bundle(folder)
        contract = Contract.compile(b.proto_text, include_dir=folder)
        model = load_model(folder, b.metadata, contract, settings)
        try:
            answer = call(model, contract, "Classify", {"sepal_length": 0}, timeout=5)["species"]
            assert (answer == threading.current_thread().name) is on_caller
        finally:
            model.close()


def test_calls_is_validated_with_its_name() -> None:
    with pytest.raises(InvalidBundle) as err:
        Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "m:M", "calls": "fast"})
    assert "'calls' 'fast' must be one of 'guarded', 'inline'" in err.value.message
    with pytest.raises(BadInput) as refused:
        Settings.from_env({"MODEL_RUNNER_CALLS": "fast"})
    assert "MODEL_RUNNER_CALLS" in refused.value.message and "guarded or inline" in refused.value.message
    assert Settings.from_env({"MODEL_RUNNER_CALLS": "inline"}).calls == "inline"
    meta = Metadata.from_dict({"name": "m", "runtime": "java", "entry_point": "a.B", "calls": "inline"})
    assert meta.calls == "inline" and meta.to_dict()["calls"] == "inline"
    assert "calls" not in Metadata.from_dict({"name": "m", "runtime": "java", "entry_point": "a.B"}).to_dict()


def test_an_inline_call_past_its_deadline_is_listed_as_stuck_until_it_returns(tmp_path: Path) -> None:
    from runner.runtimes import stuck
    from tests.waiting import wait_for

    model, c = load(make_bundle(tmp_path / "b", {"iris_model.py": SLOW}, calls="inline"))
    errors: list[BaseException] = []

    def late() -> None:
        try:
            call(model, c, "Classify", {"sepal_length": 1.5}, timeout=0.1)
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            errors.append(err)

    thread = threading.Thread(target=late, name="inline-caller")
    try:
        thread.start()
        # (an earlier test's abandoned pool call of the same model may still be listed too)
        mine = lambda grace: [s for s in stuck.current(grace=grace) if s.thread == "inline-caller"]  # noqa: E731
        listed = wait_for(lambda: mine(0.2), timeout=5)
        assert listed[0].runtime == "python" and listed[0].model == "iris-python"
        assert listed[0].rpc == "Classify" and "time.sleep" in listed[0].stack
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0], DeadlineExceeded)
        assert not mine(0)
    finally:
        thread.join(10)
        model.close()
