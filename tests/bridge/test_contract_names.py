"""Generated contracts never clash: a class whose names collide with proto's every way gives a contract that
compiles, names things as docs/java-conventions.md says, and binds back through onboarding and the runtime.

The class is tests/bridge/java/clashes (clash.message.Scorer); the property test over random class shapes is
test_contract_shapes.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.inspect import generate_proto
from runner.bundle import open_bundle
from runner.cli.onboard import explain
from runner.contract import Contract
from runner.errors import InvalidBundle, InvalidContract
from runner.runtimes import load_model
from runner.serving import onboarding
from runner.settings import Settings
from tests.bridge.conftest import build_bundle

SCORER = "clash.message.Scorer"


@pytest.fixture(scope="module")
def clashes_jar() -> Path:
    return build_bundle("clashes") / "model.jar"


@pytest.fixture(scope="module")
def scorer_text(clashes_jar: Path, jvm_started: None) -> str:
    return generate_proto(clashes_jar, SCORER)


def test_names_as_documented(scorer_text: str, clashes_jar: Path) -> None:
    text = scorer_text
    assert generate_proto(clashes_jar, SCORER) == text  # stable
    contract = Contract.compile(text)
    assert contract.package == "clash.message"
    assert contract.full_service_name == "clash.message.Scorer"
    lines = {line.strip() for line in text.splitlines()}
    # a message named like an rpc is written fully qualified in rpc lines (the bare name is the rpc)
    assert "rpc Score (Applicant) returns (.clash.message.Score);" in lines
    assert "rpc Point (.clash.message.Point) returns (Point2);" in lines
    # methods Slot would not find from the rpc name: a free rpc name and a java_method note
    assert "rpc Score2 (Applicant) returns (Applicant);  // java_method: Score" in lines
    assert "rpc Do_it (Do_itRequest) returns (Do_itResponse);  // java_method: do$it" in lines
    assert onboarding.generated_method_overrides(text) == {
        "Score2": {"java_method": "Score"},
        "Do_it": {"java_method": "do$it"},
    }
    # same simple names: nested classes take their enclosing class's name, others a number; the model
    # class itself (used as a message) yields to the service
    messages = contract.messages()
    assert messages["clash.message.Inner"].fields[0].name == "text"
    assert messages["clash.message.OtherInner"].fields[0].name == "count"
    assert [f.name for f in messages["clash.message.Point"].fields] == ["x", "y"]
    assert [f.name for f in messages["clash.message.Point2"].fields] == ["label"]
    assert contract.input_class("Self").DESCRIPTOR.full_name == "clash.message.Scorer2"
    # field names: snake_case, else the Java name, else renamed with json_name = the Java name
    cases = [(f.name, f.json_name) for f in messages["clash.message.Cases"].fields]
    assert cases == [
        ("value", "value"),
        ("Value", "Value"),
        ("fooBar", "fooBar"),
        ("foo_bar_2", "foo_bar"),
        ("url", "url"),
        ("URL", "URL"),
        ("a_b", "a$b"),
        ("descriptor", "descriptor"),
        ("caf_", "café"),
        ("x_y_2", "x_y"),
        ("xY", "xY"),
        ("x__2", "x_"),
        ("x", "x"),
    ]
    keywords = [f.name for f in messages["clash.message.Keywords"].fields]
    assert keywords[:3] == ["message", "option", "syntax"] and keywords[-2:] == ["package", "public"]
    total = contract.input_class("Total").DESCRIPTOR
    assert [(f.name, f.json_name) for f in total.fields] == [
        ("message", "message"),
        ("option", "option"),
        ("fooBar", "fooBar"),
        ("foo_bar_2", "foo_bar"),
    ]
    # enums: values are package-level symbols; clashing or keyword names get the enum's prefix; constants
    # that differ only in case travel as strings
    assert "  LIGHT_off = 0;" in text and "  LIGHT_RED = 1;" in text
    assert "  WEIRD_option = 0;" in text
    enums = messages["clash.message.Enums"]
    assert enums.fields_by_name["cased"].type == enums.fields_by_name["cased"].TYPE_STRING
    assert enums.fields_by_name["maybe"].has_presence
    assert "map<string, int32> counts = 6;" in text  # a Java enum as map key: its name
    containers = messages["clash.message.Containers"]
    assert containers.fields_by_name["series"].message_type.fields_by_name["value"].message_type.name == (
        "DoubleArray"
    )
    # one wrapper per proto shape: List<List<Double>>, double[][] and List<double[]> share it
    assert text.count("message DoubleArray {") == 1


def _call(model: Any, contract: Contract, rpc: str, body: dict[str, Any]) -> dict[str, Any]:
    req = contract.parse_dict(contract.input_class(rpc), body)
    out = contract.output_class(rpc).FromString(model.invoke(rpc, req.SerializeToString()))
    return json.loads(contract.to_json(out))


def test_onboarded_and_served(clashes_jar: Path, tmp_path: Path) -> None:
    """Through onboarding (metadata.json gets the java_method overrides, the self-test runs) and the Java
    runtime: every rpc binds and round-trips its Java names."""
    dest = onboarding.bundle_from_jar(clashes_jar, class_name=SCORER, dest=tmp_path / "b")
    bundle = open_bundle(dest)
    assert bundle.metadata.methods["Score2"] == {"java_method": "Score"}
    assert bundle.metadata.methods["Do_it"] == {"java_method": "do$it"}
    contract = Contract.compile(bundle.proto_text)
    model = load_model(dest, bundle.metadata, contract, Settings())
    try:
        assert model.bindings["Score2"]["java_method"] == "Score"
        assert _call(model, contract, "Score", {"name": "n", "age": 3}) == {
            "value": 6.0,
            "applicant": {"name": "n", "age": 3},
        }
        assert _call(model, contract, "Score2", {"name": "m", "age": 4}) == {"name": "m", "age": 4}
        cases = {
            "value": 1,
            "Value": 2,
            "fooBar": "a",
            "foo_bar": "b",
            "url": "u",
            "URL": "U",
            "a$b": "5",
            "descriptor": "d",
            "café": 1.5,
            "x_y": 3,
            "xY": 4,
            "x_": 6,
            "x": 7,
        }
        # JSON input takes the proto name or the json_name (the Java name); output has the proto names
        renamed = {"foo_bar": "foo_bar_2", "a$b": "a_b", "café": "caf_", "x_y": "x_y_2", "x_": "x__2"}
        assert _call(model, contract, "Cases", cases) == {renamed.get(k, k): v for k, v in cases.items()}
        total = {"message": 1, "option": 2, "fooBar": "3", "foo_bar_2": "4"}
        assert _call(model, contract, "Total", total) == {"value": 433.0}
        enums = {
            "color": "GREEN",
            "light": "LIGHT_off",
            "weird": "WEIRD_reserved",
            "cased": "ON",
            "maybe": "RED",
            "counts": {"GREEN": 2},
            "many": ["on", "ON"],
        }
        assert _call(model, contract, "Enums", enums) == enums
        containers = {
            "series": {"a": {"values": [1.0, 2.0]}},
            "maybe_list": [1.5],
            "rows": [{"values": [1.0]}],
            "matrix": [{"values": [2.0, 3.0]}],
            "maps": [{"entries": {"k": "5"}}],
            "nested": {"n": {"entries": {"z": 1}}},
            "nickname": "",
            "arrays": [{"values": [9.0]}],
        }
        assert _call(model, contract, "Containers", containers) == containers
        keywords = {"message": 1, "option": 2, "reserved": 3, "stream": 9, "package": "p", "public": True}
        out = _call(model, contract, "Keywords", keywords)
        assert len(out) == 22 and {k: out[k] for k in keywords} == keywords
        assert _call(model, contract, "Do_it", {"text": "hi"}) == {"value": "hi!"}
        assert _call(model, contract, "Point", {"x": 1, "y": 2}) == {"label": "1.0,2.0"}
        assert _call(model, contract, "Inner", {"text": "t"}) == {"text": "t"}
        assert _call(model, contract, "OtherInner", {"count": 4}) == {"count": 4}
    finally:
        model.close()


def test_failed_onboarding_names_the_generated_contract(clashes_jar: Path, tmp_path: Path) -> None:
    """The bundle folder is gone after a failure: the error names a copy of the generated contract."""
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_jar(clashes_jar, class_name="clash.message.Broken", dest=tmp_path / "b")
    detail = info.value.detail
    saved = Path(detail["generated_proto"])
    try:
        assert "no model file" in info.value.message
        assert saved.read_text("utf-8") == detail["generated_proto_text"]
        assert "service Broken {" in detail["generated_proto_text"]
        assert str(saved) in detail["hint"]
        assert not (tmp_path / "b").exists()
    finally:
        saved.unlink()


def test_cli_shows_the_lines_an_error_names() -> None:
    text = "\n".join(f"// line {n}" for n in range(1, 21)) + "\n"
    err = InvalidContract(
        "contract does not compile: model.proto:12:3: boom",
        {"line": 12, "column": 3, "generated_proto": "/tmp/x.proto", "generated_proto_text": text},
    )
    shown = explain(err).splitlines()
    assert shown[0] == "contract does not compile: model.proto:12:3: boom"
    assert "  generated model.proto, lines 9-15:" in shown
    assert "  >   12 | // line 12" in shown and "      11 | // line 11" in shown
    assert len(shown) == 1 + 1 + 7


def test_cli_names_the_generated_contract(
    clashes_jar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli import main

    code = main(
        ["onboard", str(clashes_jar), "--class", "clash.message.Broken", "-o", str(tmp_path / "b.zip")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "constructor of clash.message.Broken" in err
    hint = next(line for line in err.splitlines() if line.startswith("hint:"))
    path = Path(hint.split("the generated contract is in ", 1)[1].split(" ", 1)[0])
    try:
        assert "service Broken {" in path.read_text("utf-8")
    finally:
        path.unlink()
