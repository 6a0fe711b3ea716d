"""runner.runtimes.python.hints: a contract from type hints that compiles and serves."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, NotRequired, TypedDict

import pytest

from runner.bundle import open_bundle
from runner.contract import MEDIA_JSON, Contract
from runner.errors import InvalidBundle
from runner.runtimes import load_model
from runner.runtimes.python.hints import generate_proto, generate_proto_for_entry, pascal, snake
from runner.settings import Settings


@dataclass
class Address:
    city: str
    zip_code: str | None


class Point(NamedTuple):
    x: float
    y: float


class Options(TypedDict):
    verbose: bool
    tag: NotRequired[str]


@dataclass
class Applicant:
    name: str
    age: int
    scores: list[float]
    address: Address
    history: list[Address]
    weights: dict[str, float]
    grid: list[list[int]]
    photo: bytes
    where: Point
    options: Options
    nickname: str | None = None


@dataclass
class Decision:
    accepted: bool
    reasons: list[str]


class Underwriter:
    def decide(self, applicant: Applicant) -> Decision:
        return Decision(True, [])

    def risk_score(self, age: int, city: str, factors: list[float]) -> float:
        return 0.0

    def ping(self) -> None:
        return None

    def _private(self) -> None:
        pass


def test_generated_contract_compiles_with_stable_numbers() -> None:
    text = generate_proto(Underwriter, package="uw")
    c = Contract.compile(text)
    assert c.full_service_name == "uw.Underwriter"
    assert c.method_names() == ["Decide", "RiskScore", "Ping"]
    app = c.input_class("Decide").DESCRIPTOR
    assert app.full_name == "uw.Applicant"
    assert [(f.name, f.number) for f in app.fields] == [
        ("name", 1),
        ("age", 2),
        ("scores", 3),
        ("address", 4),
        ("history", 5),
        ("weights", 6),
        ("grid", 7),
        ("photo", 8),
        ("where", 9),
        ("options", 10),
        ("nickname", 11),
    ]
    assert app.fields_by_name["nickname"].has_presence  # Optional[str] -> proto3 optional
    assert app.fields_by_name["weights"].message_type.GetOptions().map_entry
    assert app.fields_by_name["grid"].message_type.name == "ApplicantGridItem"
    assert c.input_class("RiskScore").DESCRIPTOR.name == "RiskScoreRequest"
    assert [f.name for f in c.output_class("RiskScore").DESCRIPTOR.fields] == ["value"]
    opts = c.messages()["uw.Options"]
    assert opts.fields_by_name["tag"].has_presence
    assert generate_proto(Underwriter, package="uw") == text  # deterministic


def test_unsupported_hints_are_named() -> None:
    class NoHints:
        def predict(self, x):
            return x

    class Weird:
        def predict(self, x: complex) -> float:
            return 0.0

    with pytest.raises(InvalidBundle, match="add type hints"):
        generate_proto(NoHints)
    with pytest.raises(InvalidBundle, match="Request.x: type builtins.complex has no proto mapping"):
        generate_proto(Weird)


def test_names() -> None:
    assert pascal("risk_score") == "RiskScore" and snake("RiskScore") == "risk_score"
    assert snake("ClassifyBatch") == "classify_batch"


MODEL = """
from dataclasses import dataclass

@dataclass
class House:
    rooms: int
    area: float
    tags: list[str]

@dataclass
class Price:
    amount: float
    currency: str

class HousePricer:
    def __init__(self, artifact_dir):
        self.rate = float((artifact_dir / "rate.txt").read_text())

    def price(self, house: House) -> Price:
        return Price(amount=house.area * self.rate + 1000 * house.rooms, currency="EUR")

    def price_per_room(self, area: float, rooms: int) -> float:
        return area * self.rate / rooms

    def transpose(self, grid: list[list[float]], names: dict[str, list[int]]) -> list[list[float]]:
        assert names == {"a": [1, 2]}, names
        return [list(col) for col in zip(*grid)]
"""


def test_generated_contract_serves_the_class(tmp_path: Path) -> None:
    (tmp_path / "pricer.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "rate.txt").write_text("2.5")
    text = generate_proto_for_entry(tmp_path, "pricer:HousePricer")
    assert "package pricer;" in text and "service HousePricer" in text
    (tmp_path / "model.proto").write_text(text)
    (tmp_path / "metadata.json").write_text(
        json.dumps({"name": "pricer", "runtime": "python", "entry_point": "pricer:HousePricer"})
    )
    b = open_bundle(tmp_path)
    c = Contract.compile(b.proto_text)
    model = load_model(tmp_path, b.metadata, c, Settings())
    try:
        req = c.decode(c.input_class("Price"), b'{"rooms": 2, "area": 100, "tags": ["x"]}', MEDIA_JSON)
        out = c.output_class("Price").FromString(model.invoke("Price", req.SerializeToString()))
        assert (out.amount, out.currency) == (2250.0, "EUR")
        req = c.decode(c.input_class("PricePerRoom"), b'{"rooms": 2, "area": 100}', MEDIA_JSON)
        out = c.output_class("PricePerRoom").FromString(model.invoke("PricePerRoom", req.SerializeToString()))
        assert out.value == 125.0
        body = b'{"grid": [{"values": [1, 2]}, {"values": [3, 4]}], "names": {"a": {"values": [1, 2]}}}'
        req = c.decode(c.input_class("Transpose"), body, MEDIA_JSON)
        out = c.output_class("Transpose").FromString(model.invoke("Transpose", req.SerializeToString()))
        assert [list(row.values) for row in out.value] == [[1, 3], [2, 4]]
    finally:
        model.close()
