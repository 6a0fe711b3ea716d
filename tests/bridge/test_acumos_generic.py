"""The acumos convention gives the answers of the Acumos generic model runner (acumos/generic-model-runner,
RunnerController.doPredictGeneric) for "generic java" models written like its samples: what the model gets
(CSV with the header line, JSON of the whole input message, a temporary file for File-taking methods) and how
the returned list becomes the output message (getPredictionRow: fields filled by values of their Java type).
The models are tests/bridge/java/acumos; modelConfig.properties sits beside model.jar, as Acumos has it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import BindError, JavaModelError
from bridge.model import JavaModel
from runner.contract import Contract
from tests.bridge.conftest import HERE, compile_contract

PKG = "org.modelrunner.tests.acumos"

MESSAGES = """
syntax = "proto3";
package acugen;
enum Color { RED = 0; GREEN = 1; BLUE = 2; }
message DataFrameRow { double sepal_length = 1; double sepal_width = 2; double petal_length = 3; double petal_width = 4; }
message DataFrame { repeated DataFrameRow rows = 1; }
message Prediction { string species = 1; double score = 2; }
message Text { string text = 1; }
message SubFrameRow { repeated string srow_1 = 1; repeated string srow_2 = 2; }
message NestedRow { string sepal_len = 1; int32 sepal_wid = 2; SubFrameRow petal_len = 3; string petal_wid = 4; }
message MyFrameRow { repeated int64 mrow_1 = 1; repeated string mrow_2 = 2; }
message NestedFrame { repeated NestedRow rows = 1; repeated MyFrameRow myRow = 2; }
message PetData {
  enum PET { CAT = 0; MOUSE = 1; DOG = 2; }
  PET pet = 1; repeated PET precious = 2; repeated Color wild = 3;
}
message Scalars { uint32 u32 = 7; uint64 u64 = 6; float f = 5; bool flag = 4; string name = 3; bytes blob = 2; sint64 s64 = 1; }
message AllKinds {
  int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4; sint32 s32 = 5; sint64 s64 = 6;
  fixed32 f32 = 7; fixed64 f64 = 8; sfixed32 sf32 = 9; sfixed64 sf64 = 10; float fl = 11; double db = 12;
  bool flag = 13; string name = 14; bytes blob = 15; Color color = 16;
  repeated double scores = 17; repeated string tags = 18; repeated Color colors = 19; repeated bytes blobs = 20;
  repeated int64 counts = 21; repeated float ratios = 22; repeated bool flags = 23; repeated int32 nums = 24;
}
message Detail { double p = 1; string why = 2; }
message Explained { string label = 1; Detail detail = 2; repeated Detail others = 3; }
message Answer { string answer = 1; }
message JsonPrediction { string species = 1; double score = 2; int64 rows = 3; }
message Described { string path = 1; string permissions = 2; string content = 3; }
message Everything {
  Scalars scalars = 9; repeated Scalars more = 8; Color color = 1; repeated Color colors = 2;
  map<string, double> weights = 3; map<int64, Detail> details = 4; double nan = 5; float inf = 6;
  double neg_zero = 7; string text = 10; repeated int64 big = 11; optional int32 opt = 12; PetData.PET pet = 13;
  repeated bool flags = 14; Detail empty = 15; repeated float ratios = 16;
}
"""

IRIS_ROWS = [(5.1, 3.5, 1.4, 0.2), (6.3, 3.3, 6.0, 2.5)]
IRIS_CSV = "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n\n"

Loader = Callable[..., Any]


@pytest.fixture
def acumos(acumos_bundle: Path, copy_bundle: Callable[[Path], Path], jvm_started: None) -> Iterator[Loader]:
    """acumos(config, rpcs, overrides=None) -> (model, contract): the bundle with modelConfig.properties
    ``config`` beside model.jar (it takes precedence over the JAR's), bound to service ``rpcs``."""
    folder = copy_bundle(acumos_bundle)
    opened: list[JavaModel] = []

    def load(
        config: str, rpcs: str, overrides: dict[str, dict[str, Any]] | None = None
    ) -> tuple[Any, Contract]:
        (folder / "modelConfig.properties").write_text(config)
        contract = compile_contract(MESSAGES + "service Model {\n" + rpcs + "\n}\n")
        class_name = next(
            line.split("=", 1)[1].strip()
            for line in config.splitlines()
            if line.startswith("modelClassName=")
        )
        model = JavaModel.load(
            artifact_dir=folder, class_name=class_name, service=contract.service, overrides=overrides
        )
        opened.append(model)
        return model, contract

    yield load
    for m in opened:
        m.close()


def call(model: Any, contract: Contract, rpc: str, request: Any) -> Any:
    return contract.output_class(rpc).FromString(model.call(rpc, request.SerializeToString()))


def iris_frame(contract: Contract, rpc: str, rows: Sequence[tuple[float, ...]] = IRIS_ROWS) -> Any:
    frame: Any = contract.input_class(rpc)()
    for r in rows:
        row = frame.rows.add()
        row.sepal_length, row.sepal_width, row.petal_length, row.petal_width = r
    return frame


def test_csv_model_skipping_the_header_fills_a_string_and_a_double(acumos: Loader) -> None:
    """getRowString writes the header line (the field names) before the rows, every message ending its line
    (so the input DataFrame adds a last empty line); getPredictionRow puts the first String into the string
    field and the first Double into the double field. The rpc calls modelMethod (its name is not a method)."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=classify\nmodelInputType=CSV\n",
        "rpc Predict (DataFrame) returns (Prediction);\nrpc Echo (DataFrame) returns (Text);",
        {"Echo": {"java_method": "echo"}},
    )
    assert model.bindings["Predict"]["java_method"] == "classify"
    assert model.bindings["Predict"]["convention"] == "acumos"
    assert call(model, contract, "Echo", iris_frame(contract, "Echo")).text == IRIS_CSV
    out = call(model, contract, "Predict", iris_frame(contract, "Predict"))
    assert out.species == "virginica"
    assert out.score == 0.0 + 6.3 + 3.3 + 6.0 + 2.5  # the Java double, summed in the same order


def test_csv_of_nested_and_repeated_messages(acumos: Loader) -> None:
    """getRowString: nested messages flattened in place under their own field names (no prefix), a repeated
    field's name once per value, no comma before a nested message and a line end after each one; the header
    stops at the first message's end. Enum fields give their numbers and no header name. Values are Java's
    toString of protobuf-java's getters (uint32/uint64 signed, float as float), strings unquoted, unset
    fields their defaults. Only bytes differ: Acumos writes the byte[] object ("[B@1b6d3586"), this base64."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\n",
        "rpc Nested (NestedFrame) returns (Text);\nrpc Pets (PetData) returns (Text);\n"
        "rpc Flat (Scalars) returns (Text);",
    )
    frame = contract.input_class("Nested")()
    frame.rows.add(
        sepal_len="1", sepal_wid=2, petal_len={"srow_1": ["3", "3"], "srow_2": ["4", "4"]}, petal_wid="5"
    )
    frame.myRow.add(mrow_1=[6, 6], mrow_2=["7", "7"])
    assert call(model, contract, "Nested", frame).text == (
        "sepal_len,sepal_wid,srow_1,srow_1,srow_2,srow_2\n1,2,3,3,4,4\n5\n6,6,7,7\n\n"
    )
    pets = contract.input_class("Pets")(pet=1, precious=[2, 1], wild=[1])
    assert call(model, contract, "Pets", pets).text == "\n1,2,1,1\n"
    flat = contract.input_class("Flat")(
        u32=2**32 - 1, u64=2**64 - 2, f=0.1, flag=True, name='a,b "c"', blob=b"\x00\xff", s64=-5
    )
    assert (
        call(model, contract, "Flat", flat).text
        == 'u32,u64,f,flag,name,blob,s64\n-1,-2,0.1,true,a,b "c",AP8=,-5\n'
    )
    empty = contract.input_class("Flat")()
    assert call(model, contract, "Flat", empty).text == "u32,u64,f,flag,name,blob,s64\n0,0,0.0,false,,,0\n"


def test_header_line_can_be_dropped(acumos: Loader) -> None:
    """modelInputHeader=false (not an Acumos key): the same CSV without its header line."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputHeader=false\n",
        "rpc Echo (DataFrame) returns (Text);",
    )
    assert (
        call(model, contract, "Echo", iris_frame(contract, "Echo")).text
        == "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n\n"
    )


JSON_FRAME = """{
  "rows": [{
    "sepal_length": 5.1,
    "sepal_width": 3.5,
    "petal_length": 1.4,
    "petal_width": 0.2
  }, {
    "sepal_length": 6.0,
    "petal_width": 2.5
  }]
}"""

JSON_SCALARS = """{
  "s64": "-5",
  "blob": "AP8=",
  "name": "a\\u003cb \\"c\\"",
  "flag": true,
  "f": 0.1,
  "u64": "18446744073709551614",
  "u32": 4294967295
}"""


def test_json_input_is_the_whole_message_as_jsonformat_prints_it(acumos: Loader) -> None:
    """modelInputType=JSON: doPredictGeneric passes JsonFormat.printer().preservingProtoFieldNames().print(input):
    pretty printed, fields by number, defaults omitted, 64-bit integers quoted, uint32 unsigned, bytes base64,
    strings escaped as Gson does (HTML-safe)."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputType=JSON\n",
        "rpc Echo (DataFrame) returns (Text);\nrpc Flat (Scalars) returns (Text);",
    )
    frame = iris_frame(contract, "Echo", [(5.1, 3.5, 1.4, 0.2), (6.0, 0.0, 0.0, 2.5)])
    assert call(model, contract, "Echo", frame).text == JSON_FRAME
    flat = contract.input_class("Flat")(
        u32=2**32 - 1, u64=2**64 - 2, f=0.1, flag=True, name='a<b "c"', blob=b"\x00\xff", s64=-5
    )
    assert call(model, contract, "Flat", flat).text == JSON_SCALARS
    assert call(model, contract, "Flat", contract.input_class("Flat")()).text == "{\n}"


SHARE = Path("/usr/share/java")
JSONFORMAT_JARS = [SHARE / n for n in ("protobuf.jar", "protobuf-util.jar", "gson.jar", "guava.jar")]


def jsonformat(
    descriptor: Any, items: list[tuple[str, bytes]], tmp: Path, *, parse: bool = False
) -> list[str]:
    """protobuf-java's own JsonFormat (tests/bridge/java/jsonformat) on (message name, bytes or JSON) items:
    each printed as JSON, or with ``parse`` each JSON parsed (base64 of the message, or "ERROR ...")."""
    java = shutil.which("java")
    if java is None or not all(p.is_file() for p in JSONFORMAT_JARS):
        pytest.skip("java or protobuf-java-util (libprotobuf-java) not installed")
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto()
    descriptor.file.CopyToProto(fdp)
    (tmp / "file.pb").write_bytes(fdp.SerializeToString())
    args = [*(["--parse"] if parse else []), str(tmp / "file.pb")]
    for i, (name, data) in enumerate(items):
        (tmp / f"{i}.in").write_bytes(data)
        args += [name, str(tmp / f"{i}.in")]
    src = HERE / "java" / "jsonformat" / "JsonFormatPrint.java"
    cp = os.pathsep.join(map(str, JSONFORMAT_JARS))
    done = subprocess.run([java, "-cp", cp, str(src), *args], capture_output=True, timeout=120, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_json_input_matches_protobuf_java_jsonformat(acumos: Loader, tmp_path: Path) -> None:
    """The JSON a model gets is, byte for byte, what protobuf-java-util's JsonFormat printer (the Acumos
    runner's) prints for the same message: every scalar kind, special floats, -0.0, escapes, enums (unknown
    numbers as numbers), maps, nested, repeated and empty messages, proto3 optional set to its default."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputType=JSON\n",
        "rpc All (Everything) returns (Text);",
    )
    E = contract.input_class("All")
    everything = E(
        scalars={
            "u32": 2**31,
            "u64": 2**63,
            "f": 3.4e38,
            "flag": True,
            "name": "\u2028<&>='\\\"\x01\t\u00e9\U0001f600",
            "blob": b"\xfb\xff",
            "s64": -(2**63),
        },
        more=[{"name": "one"}, {}, {"f": -1.5e-7}],
        color=2,
        colors=[0, 1, 7],
        weights={"b": 1.0, "a": -2.5e-300},
        details={5: {"p": 1e21, "why": "x"}, -1: {}},
        nan=float("nan"),
        inf=float("-inf"),
        neg_zero=-0.0,
        text="line\nbreak",
        big=[2**53 + 1, -1],
        opt=0,
        pet=2,
        flags=[True, False],
        empty={},
        ratios=[0.1, 1e-5, 123456789.0],
    )
    cases = [everything, E(), E(scalars={}), E(inf=float("inf"), nan=1e-320)]
    items = [("Everything", m.SerializeToString()) for m in cases]
    expected = jsonformat(E.DESCRIPTOR, items, tmp_path)
    got = [call(model, contract, "All", m).text for m in cases]
    assert got == expected


def test_json_mode_both_ways(acumos: Loader) -> None:
    """modelInputType=JSON and modelOutputType=JSON: the model reads the input's JSON and returns the output
    message's JSON as element 0, which doPredictGeneric parses with JsonFormat.parser() (64-bit integers as
    strings or numbers)."""
    model, contract = acumos(
        f"modelClassName={PKG}.JsonIris\nmodelMethod=predict\nmodelInputType=JSON\nmodelOutputType=JSON\n",
        "rpc Predict (DataFrame) returns (JsonPrediction);",
    )
    out = call(model, contract, "Predict", iris_frame(contract, "Predict"))
    assert (out.species, out.score, out.rows) == ("virginica", 1.4 + 6.0, 2)


def test_json_output_parsing(acumos: Loader) -> None:
    """modelOutputType=JSON: element 0 parsed as JsonFormat.parser() does (proto or JSON field names, numbers
    in strings, null = unset). What Acumos' parser refuses (unknown field, wrong type) Acumos answers with an
    empty message; here it is an error naming the field."""
    model, contract = acumos(
        f"modelClassName={PKG}.JsonIris\nmodelMethod=answer\nmodelInputType=CSV\nmodelOutputType=JSON\n",
        "rpc Parse (Answer) returns (JsonPrediction);",
    )

    def answer(text: str) -> Any:
        return call(model, contract, "Parse", contract.input_class("Parse")(answer=text))

    out = answer('{"species": "setosa", "score": "1.5", "rows": 3}')
    assert (out.species, out.score, out.rows) == ("setosa", 1.5, 3)
    out = answer('{"species": null, "score": 2e0, "rows": "9007199254740993"}')
    assert (out.species, out.score, out.rows) == ("", 2.0, 9007199254740993)
    with pytest.raises(JavaModelError, match=r'message acugen.JsonPrediction has no field "speciez"'):
        answer('{"speciez": "x"}')
    with pytest.raises(JavaModelError, match=r'acugen.JsonPrediction.score cannot be "abc" \(double\)'):
        answer('{"score": "abc"}')
    with pytest.raises(JavaModelError, match=r"acugen.JsonPrediction.rows cannot be 1.5 \(int64\)"):
        answer('{"rows": 1.5}')
    with pytest.raises(JavaModelError, match="not valid JSON"):
        answer('{"species": ')


PARSE_CASES = [
    '{"scalars": {"u32": 4294967295, "u64": "18446744073709551615", "f": "NaN", "flag": "true", "name": 5,'
    ' "blob": "-_8=", "s64": "-9223372036854775808"}}',
    '{"color": "BLUE", "colors": ["RED", 1, 7], "pet": "DOG", "more": [{}, {"name": "x"}]}',
    '{"weights": {"a": 1, "b": "2.5"}, "details": {"5": {"p": 1e21}, "-1": {}}}',
    '{"opt": 0, "empty": {}, "neg_zero": -0.0, "big": ["9007199254740993", -1], "ratios": [0.1, "1e-5"]}',
    '{"nan": "Infinity", "inf": "-Infinity", "negZero": 1.5, "scalars": null, "text": "\\u00e9\\n"}',
    '{"scalars": {"u32": 1.0, "s64": 1e3}}',
    "{}",
]
PARSE_REFUSED = [
    '{"moreX": 1}',
    '{"inf": 1e39}',
    '{"flags": [true, null]}',
    '{"scalars": {"u32": -1}}',
    '{"text": {"a": 1}}',
    '{"neg_zero": 1, "negZero": 2}',
    '{"color": "PURPLE"}',
    '{"opt": 1.5}',
    '{"flags": [1]}',
    '{"weights": [1]}',
]


def test_json_output_parses_as_protobuf_java_jsonformat(acumos: Loader, tmp_path: Path) -> None:
    """modelOutputType=JSON: element 0 gives the message protobuf-java-util's JsonFormat.parser() (the Acumos
    runner's) gives for the same JSON, and what that parser refuses fails the call."""
    model, contract = acumos(
        f"modelClassName={PKG}.JsonIris\nmodelMethod=answer\nmodelOutputType=JSON\n",
        "rpc Parse (Answer) returns (Everything);",
    )
    E = contract.output_class("Parse")
    texts = PARSE_CASES + PARSE_REFUSED
    expected = jsonformat(E.DESCRIPTOR, [("Everything", t.encode()) for t in texts], tmp_path, parse=True)
    for text, want in zip(texts, expected, strict=True):
        request = contract.input_class("Parse")(answer=text).SerializeToString()
        if want.startswith("ERROR "):
            assert text in PARSE_REFUSED, (text, want)
            with pytest.raises(JavaModelError, match="modelOutputType=JSON"):
                model.call("Parse", request)
        else:
            assert text in PARSE_CASES, (text, want)
            assert E.FromString(model.call("Parse", request)) == E.FromString(base64.b64decode(want)), text


def test_output_runs_of_every_scalar_kind(acumos: Loader) -> None:
    """getPredictionRow, field by field in declaration order: a singular field takes the first value of its
    Java type anywhere in the list (int32 kinds: Integer, int64 kinds: Long, float: Float, double: Double,
    bool: Boolean, string: String, bytes: byte[], enum: an Integer that is one of its numbers); a repeated
    field the first run of such values (an enum number with no constant is skipped and stays); every value
    equal to one taken leaves the list (removeAll: the second 0.2 goes with the run [0.1, 0.2])."""
    model, contract = acumos(
        f"modelClassName={PKG}.OutputRuns\nmodelMethod=kinds\n", "rpc Kinds (Text) returns (AllKinds);"
    )
    out = call(model, contract, "Kinds", contract.input_class("Kinds")(text="x"))
    singular = (out.i32, out.i64, out.u32, out.u64, out.s32, out.s64, out.f32, out.f64, out.sf32, out.sf64)
    assert singular == (7, -70, 2**32 - 1, 2**64 - 2, -3, -4, 5, 6, -7, -8)
    assert (out.fl, out.db, out.flag, out.name, out.blob, out.color) == (
        0.5,
        11.96,
        True,
        "virginica",
        b"\1\2",
        2,
    )
    assert list(out.scores) == [0.1, 0.2]
    assert list(out.tags) == ["a", "b"]
    assert list(out.colors) == [1, 2]
    assert list(out.blobs) == [b"\3", b"\4"]
    assert list(out.counts) == [10, 11]
    assert list(out.ratios) == [1.25, 2.5]
    assert list(out.flags) == [False, True]
    assert list(out.nums) == [9, 42]


def test_output_runs_fill_nested_messages(acumos: Loader) -> None:
    """getPredictionRow recurses into message fields on the same list: a singular one is set when it took
    anything; a repeated one takes messages while values remain and the next one takes something."""
    model, contract = acumos(
        f"modelClassName={PKG}.OutputRuns\nmodelMethod=nested\n", "rpc Explain (Text) returns (Explained);"
    )
    out = call(model, contract, "Explain", contract.input_class("Explain")(text="x"))
    assert out.label == "top"
    assert (out.detail.p, out.detail.why) == (0.9, "because")
    assert [(d.p, d.why) for d in out.others] == [(0.1, "other"), (0.05, "")]


def test_output_that_does_not_fit_is_an_error(acumos: Loader) -> None:
    """Values no field takes: Acumos drops them silently (score stays 0 when the model returns it as a
    String); here the call fails naming the value, its Java type and the fields left empty with the type
    each takes. An immutable list works (Acumos would fail removing from it); an empty one is the empty
    message."""
    model, contract = acumos(
        f"modelClassName={PKG}.OutputRuns\nmodelMethod=wrongType\n",
        "rpc WrongType (Text) returns (Prediction);\nrpc TooMany (Text) returns (Prediction);\n"
        "rpc Fixed (Text) returns (Prediction);\nrpc Nothing (Text) returns (Prediction);",
    )
    text = contract.input_class("WrongType")(text="x").SerializeToString()
    with pytest.raises(JavaModelError) as e:
        model.call("WrongType", text)
    assert 'value 1 "11.96" (java.lang.String) fills no field' in str(e.value)
    assert "fields left empty: score (double, takes java.lang.Double)" in str(e.value)
    with pytest.raises(JavaModelError) as e:
        model.call("TooMany", text)
    assert "value 2 0.5 (java.lang.Double) fills no field; every field is filled (too many values)" in str(
        e.value
    )
    out = contract.output_class("Fixed").FromString(model.call("Fixed", text))
    assert (out.species, out.score) == ("virginica", 11.96)
    assert model.call("Nothing", text) == b""


def test_file_taking_method_gets_a_private_temporary_file(acumos: Loader) -> None:
    """A method taking java.io.File (preferred over a String overload, as getMethodParamType does) gets a file
    <uuid>_genfile.csv (.json in JSON mode) holding the text, in a folder only the owner can read, and both
    are gone after the call."""
    model, contract = acumos(
        f"modelClassName={PKG}.FileModel\nmodelMethod=classify\n",
        "rpc Predict (DataFrame) returns (Prediction);\nrpc Describe (DataFrame) returns (Described);",
        {"Describe": {"java_method": "describe"}},
    )
    assert "java.io.File" in model.bindings["Predict"]["signature"]
    out = call(model, contract, "Predict", iris_frame(contract, "Predict"))
    assert (out.species, out.score) == ("virginica", 0.0 + 6.3 + 3.3 + 6.0 + 2.5)
    d = call(model, contract, "Describe", iris_frame(contract, "Describe"))
    assert d.path.endswith("_genfile.csv")
    assert Path(d.path).parent.name.startswith("modelrunner-acumos-")
    assert d.permissions == "rwx------"
    assert d.content == IRIS_CSV
    assert not Path(d.path).exists() and not Path(d.path).parent.exists()


def test_file_taking_method_in_json_mode(acumos: Loader) -> None:
    """modelInputType=JSON with a File method: the file is <uuid>_genfile.json holding the JSON."""
    model, contract = acumos(
        f"modelClassName={PKG}.FileModel\nmodelMethod=describe\nmodelInputType=JSON\n",
        "rpc Describe (DataFrame) returns (Described);",
    )
    frame = iris_frame(contract, "Describe", [(5.1, 3.5, 1.4, 0.2), (6.0, 0.0, 0.0, 2.5)])
    d = call(model, contract, "Describe", frame)
    assert d.path.endswith("_genfile.json")
    assert d.content == JSON_FRAME


def test_previous_layout_and_fill_stay_reachable(acumos: Loader) -> None:
    """modelInputLayout=rows: the rows of the only repeated message field, one line each, no header unless
    modelInputHeader=true (dotted names), JSON as an array of row objects with defaults;
    modelOutputFill=first: the list fills one field (the only repeated one, else the first)."""
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputLayout=rows\n",
        "rpc Echo (DataFrame) returns (Text);",
    )
    assert (
        call(model, contract, "Echo", iris_frame(contract, "Echo")).text == "5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5"
    )
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputLayout=rows\nmodelInputHeader=true\n",
        "rpc Echo (DataFrame) returns (Text);",
    )
    assert call(model, contract, "Echo", iris_frame(contract, "Echo")).text == (
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5"
    )
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=echo\nmodelInputLayout=rows\nmodelInputType=json\n",
        "rpc Echo (DataFrame) returns (Text);",
    )
    frame = iris_frame(contract, "Echo", [(1.0, 0.0, 0.0, 0.0)])
    assert json.loads(call(model, contract, "Echo", frame).text) == [
        {"sepal_length": 1.0, "sepal_width": 0.0, "petal_length": 0.0, "petal_width": 0.0}
    ]
    model, contract = acumos(
        f"modelClassName={PKG}.IrisClassifier\nmodelMethod=classify\nmodelOutputFill=first\n",
        "rpc Predict (DataFrame) returns (Prediction);",
    )
    out = call(model, contract, "Predict", iris_frame(contract, "Predict"))
    assert (out.species, out.score) == ("virginica", 0.0)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        (
            "modelInputType=XML",
            "modelInputType=XML (modelConfig.properties) is not supported: use CSV or JSON",
        ),
        (
            "modelInputHeader=yes",
            "modelInputHeader=yes (modelConfig.properties) is not supported: use true or false",
        ),
        (
            "modelInputLayout=lines",
            "modelInputLayout=lines (modelConfig.properties) is not supported: use acumos or rows",
        ),
        (
            "modelOutputFill=all",
            "modelOutputFill=all (modelConfig.properties) is not supported: use runs or first",
        ),
    ],
)
def test_bad_settings_fail_the_load(acumos: Loader, setting: str, reason: str) -> None:
    with pytest.raises(BindError) as e:
        acumos(
            f"modelClassName={PKG}.IrisClassifier\nmodelMethod=classify\n{setting}\n",
            "rpc P (DataFrame) returns (Prediction);",
        )
    assert reason in str(e.value)
