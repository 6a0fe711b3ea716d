"""Required fields in bundles: metadata.json's ``required`` is checked at validation (presence, examples),
the default inputs of validation set them, and generated contracts (Python type hints, Java primitive
parameters and record components) mark them. Real runtimes, real JVM."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from runner.bundle import Metadata, open_bundle
from runner.contract import Contract
from runner.errors import InvalidBundle
from runner.serving import onboarding
from runner.serving.validate import validate_bundle
from runner.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
IRIS_FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def required_iris_proto() -> str:
    """protos/iris.proto with the four IrisInput measurements declared ``optional`` (presence)."""
    text = (ROOT / "protos" / "iris.proto").read_text()
    for number, name in enumerate(IRIS_FIELDS, 1):
        text = text.replace(f"  double {name} = {number};", f"  optional double {name} = {number};")
    return text


@pytest.fixture()
def iris_py(tmp_path: Path) -> Path:
    folder = tmp_path / "iris-python"
    shutil.copytree(ROOT / "runner" / "samples" / "iris-python", folder)
    (folder / "model.proto").write_text(required_iris_proto())
    edit_metadata(folder, required={"IrisInput": IRIS_FIELDS})
    return folder


def edit_metadata(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    meta.update(changes)
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_metadata_required_shape() -> None:
    base = {"name": "m", "runtime": "python", "entry_point": "m:M"}
    meta = Metadata.from_dict({**base, "required": {"IrisInput": ["a", "b", "a"]}})
    assert meta.required == {"IrisInput": ["a", "b"]}
    assert meta.to_dict()["required"] == {"IrisInput": ["a", "b"]}
    assert "required" not in Metadata.from_dict(base).to_dict()  # absent stays absent
    for bad, says in (
        (["a"], "'required' must be an object"),
        ({"IrisInput": "a"}, "required.IrisInput must be a list of field names"),
        ({"IrisInput": ["a", 1]}, "required.IrisInput must be a list of field names"),
    ):
        with pytest.raises(InvalidBundle, match=says):
            Metadata.from_dict({**base, "required": bad})


def test_required_scalar_without_presence_is_refused_at_validation(iris_py: Path) -> None:
    (iris_py / "model.proto").write_text((ROOT / "protos" / "iris.proto").read_text())  # plain doubles
    with pytest.raises(InvalidBundle) as info:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    message = info.value.message
    assert message.startswith(
        "metadata.json: required.IrisInput.sepal_length: a required double needs presence"
    )
    assert "declare it `optional double sepal_length = 1;` in model.proto" in message
    assert len(info.value.detail["problems"]) == 4  # each field named, not only the first


def test_examples_must_set_required_fields(iris_py: Path) -> None:
    edit_metadata(
        iris_py, examples={"ClassifyBatch": [{"rows": [{"sepal_length": 5.1, "sepal_width": 3.5}]}]}
    )
    with pytest.raises(InvalidBundle) as info:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    assert info.value.message == (
        "examples.ClassifyBatch[0] is not a valid iris.IrisBatch: missing required fields "
        "rows[0].petal_length, rows[0].petal_width (in iris.IrisBatch)"
    )


def test_valid_bundle_and_default_inputs_set_required_fields(iris_py: Path, tmp_path: Path) -> None:
    report = validate_bundle(open_bundle(iris_py), settings=Settings())
    assert [o["species"] for o in report.outputs["Classify"]] == ["setosa", "virginica"]
    # a model taking its fields as keyword arguments gets them in the default input, at 0
    folder = tmp_path / "kw"
    folder.mkdir()
    (folder / "kw.py").write_text(
        textwrap.dedent("""
        class Kw:
            def Classify(self, sepal_length: float, sepal_width: float, petal_length: float, petal_width: float) -> dict:
                return {"species": "x", "probabilities": [sepal_length, sepal_width, petal_length, petal_width]}
        """)
    )
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "name": "kw",
                "runtime": "python",
                "entry_point": "kw:Kw",
                "required": {"iris.IrisInput": IRIS_FIELDS},
            }
        )
    )
    (folder / "model.proto").write_text(
        required_iris_proto()
        .replace("  rpc ClassifyBatch (IrisBatch) returns (IrisPredictions);\n", "")
        .replace("  rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);\n", "")
    )
    report = validate_bundle(open_bundle(folder), settings=Settings())
    assert report.generated_inputs == ["Classify"]
    assert report.outputs["Classify"] == [{"species": "x", "probabilities": [0.0, 0.0, 0.0, 0.0]}]


def test_required_output_message_is_a_warning(iris_py: Path) -> None:
    proto = required_iris_proto().replace("  string species = 1;", "  optional string species = 1;")
    (iris_py / "model.proto").write_text(proto)
    edit_metadata(iris_py, required={"IrisInput": IRIS_FIELDS, "IrisPrediction": ["species"]})
    report = validate_bundle(open_bundle(iris_py), settings=Settings())
    assert any(
        "required lists iris.IrisPrediction" in w and "nothing checks it" in w for w in report.warnings
    )


PY_MODEL = '''
from dataclasses import dataclass, field
from typing import Optional, TypedDict, NotRequired


@dataclass
class Address:
    zip_code: str
    floor: int = 0


class Extras(TypedDict):
    note: str
    tag: NotRequired[str]


@dataclass
class Applicant:
    age: int
    income: float
    address: Address
    debts: list[float]
    extras: Extras
    nickname: Optional[str] = None
    married: bool = False


@dataclass
class Decision:
    score: float
    label: str


class Underwriter:
    """Scores applicants."""

    def score(self, applicant: Applicant) -> Decision:
        return Decision(applicant.age * 0.5 + applicant.income / 1000, "ok")

    def rate(self, base: float, years: int, bonus: Optional[float] = None, factor: float = 1.0) -> float:
        return base * years * factor + (bonus or 0)
'''


def test_generated_python_contract_marks_required_fields(tmp_path: Path) -> None:
    (tmp_path / "uw.py").write_text(PY_MODEL)
    dest = onboarding.bundle_from_python(f"{tmp_path / 'uw.py'}:Underwriter", dest=tmp_path / "b")
    meta = json.loads((dest / "metadata.json").read_text())
    # no default, not Optional, a scalar or a message (lists and dicts cannot be required)
    assert meta["required"] == {
        "Applicant": ["age", "income", "address", "extras"],
        "Address": ["zip_code"],
        "Extras": ["note"],
        "RateRequest": ["base", "years"],
    }
    contract = Contract.compile((dest / "model.proto").read_text())
    messages = contract.messages()
    presence = {
        name: sorted(f.name for f in desc.fields if f.has_presence) for name, desc in messages.items()
    }
    assert presence["uw.Applicant"] == ["address", "age", "extras", "income", "nickname"]
    assert presence["uw.Address"] == ["zip_code"]  # floor has a default: plain, as before
    assert presence["uw.RateRequest"] == ["base", "bonus", "years"]
    assert presence["uw.Decision"] == []  # an output only: nothing to require
    validate_bundle(open_bundle(dest), settings=Settings())  # the bundle as written is valid


@pytest.fixture(scope="module")
def underwriter_jar() -> Path:
    from tests.bridge.conftest import build_bundle

    return build_bundle("required") / "model.jar"


def test_generated_java_contract_marks_primitives_and_record_components(
    underwriter_jar: Path, tmp_path: Path
) -> None:
    dest = onboarding.bundle_from_jar(
        underwriter_jar, class_name="org.modelrunner.tests.required.Underwriter", dest=tmp_path / "b"
    )
    meta = json.loads((dest / "metadata.json").read_text())
    # primitives only: a boxed Double, a String, a nested record, a list or a bean's field may be null
    assert meta["required"] == {
        "RateRequest": ["base", "years"],
        "Applicant": ["age", "income"],
        "Address": ["floor"],
        "Loan": ["amount"],  # followed into List<Loan>
    }
    contract = Contract.compile((dest / "model.proto").read_text())
    presence = {
        name.rsplit(".", 1)[1]: sorted(f.name for f in desc.fields if f.has_presence)
        for name, desc in contract.messages().items()
    }
    assert presence["RateRequest"] == ["base", "years"]
    assert presence["Applicant"] == ["address", "age", "income"]
    assert presence["Address"] == ["floor"]
    assert presence["Point"] == []  # a bean: its fields have defaults of their own
    validate_bundle(open_bundle(dest), settings=Settings())


def test_given_proto_is_left_as_written(underwriter_jar: Path, tmp_path: Path) -> None:
    generated = onboarding.bundle_from_jar(
        underwriter_jar,
        class_name="org.modelrunner.tests.required.Underwriter",
        dest=tmp_path / "g",
        validate=False,
    )
    proto = tmp_path / "plain.proto"
    proto.write_text((generated / "model.proto").read_text().replace("optional ", ""))
    dest = onboarding.bundle_from_jar(
        underwriter_jar,
        class_name="org.modelrunner.tests.required.Underwriter",
        proto=proto,
        dest=tmp_path / "b",
    )
    assert "required" not in json.loads((dest / "metadata.json").read_text())
    assert (dest / "model.proto").read_text() == proto.read_text()
