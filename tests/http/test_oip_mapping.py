"""The V2 tensor mapping (runner.serving.oip) under generated inputs: any request object and binary tail is
either mapped or refused with BadInput (never another exception), and any output message survives being
answered as binary tensors and sent back as a request, field for field."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.contract import Contract
from runner.errors import BadInput, MethodNotFound
from runner.serving import oip
from tests.http.test_oip_tritonclient import KINDS_PROTO

KINDS = Contract.compile(KINDS_PROTO)
FIELDS = [f.name for f in KINDS.input_class("Echo").DESCRIPTOR.fields]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=10,
)
parameters = st.dictionaries(
    st.sampled_from(["binary_data_size", "binary_data", "classification", "method", "other"]),
    scalars | st.integers(0, 40),
    max_size=2,
)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from([*FIELDS, "nope"]) | scalars,
        "datatype": st.sampled_from([*oip.ELEMENT_SIZES, "FLOAT"]) | scalars,
        "shape": st.lists(st.integers(-1, 3), max_size=3) | json_values,
        "data": json_values,
        "parameters": parameters | json_values,
    },
)
outputs = st.lists(
    st.fixed_dictionaries(
        {}, optional={"name": st.sampled_from([*FIELDS, "nope"]), "parameters": parameters}
    ),
    max_size=3,
)
requests = json_values | st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.lists(tensors, max_size=5) | json_values,
        "outputs": outputs | json_values,
        "id": scalars,
        "parameters": parameters | json_values,
    },
)


@SETTINGS
@given(requests, st.binary(max_size=40))
def test_any_request_is_mapped_or_refused_with_bad_input(body: Any, tail: bytes) -> None:
    try:
        fields = oip.request_to_json(KINDS, "Echo", body, tail)
    except (BadInput, MethodNotFound):
        return
    KINDS.from_json(KINDS.input_class("Echo"), fields)  # what the mapping lets through, the contract reads


messages = st.fixed_dictionaries(
    {},
    optional={
        "d": st.floats(allow_nan=False),
        "f": st.floats(width=32, allow_nan=False),
        "i32": st.integers(-(2**31), 2**31 - 1),
        "i64": st.integers(-(2**63), 2**63 - 1),
        "u32": st.integers(0, 2**32 - 1),
        "u64": st.integers(0, 2**64 - 1),
        "flag": st.booleans(),
        "text": st.text(max_size=5),
        "blob": st.binary(max_size=5),
        "colour": st.integers(0, 5),  # 3 to 5: numbers the enum does not name
        "values": st.lists(st.floats(allow_nan=False), max_size=3),
        "words": st.lists(st.text(max_size=3), max_size=3),
        "weights": st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=2),
        "maybe": st.floats(allow_nan=False),
    },
)


@SETTINGS
@given(messages, st.booleans())
def test_any_output_round_trips_through_binary_tensors(values: dict[str, Any], with_points: bool) -> None:
    cls = KINDS.input_class("Echo")
    message = cls(**values)
    if with_points:
        message.point.x = 1.5
        message.points.add(y=-2.0)
    header, tail = oip.infer_response(
        KINDS, "Echo", KINDS.to_dict(message), name="kinds", version=1, request_id=None, binary_output=True
    )
    assert sum(t["parameters"]["binary_data_size"] for t in header["outputs"]) == len(tail)
    request = {
        "inputs": [
            {
                "name": t["name"],
                "datatype": t["datatype"],
                "shape": t["shape"],
                "parameters": {"binary_data_size": t["parameters"]["binary_data_size"]},
            }
            for t in header["outputs"]
        ]
    }
    back = KINDS.from_json(cls, oip.request_to_json(KINDS, "Echo", request, tail))
    assert back == message
    try:
        answer = oip.response_from_json(
            KINDS, "Echo", KINDS.to_dict(message), name="kinds", version=1, request_id=None
        )
    except BadInput as err:  # JSON carries text only: bytes that are not UTF-8 go as binary data
        assert "output 'blob' holds bytes that are not UTF-8 text" in err.message
        assert not _is_utf8(message.blob)
    else:
        data = {t["name"]: t["data"] for t in answer["outputs"]}
        assert data["i64"] == [message.i64] and data["u64"] == [message.u64]  # exact, no float on the way
        assert data["blob"] == [message.blob.decode()]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
