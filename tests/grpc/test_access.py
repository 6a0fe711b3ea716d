"""Request ids (metadata x-request-id, in and out) and the access log of the gRPC edge
(runner.grpc.access), on a real gRPC server over a real registry."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import grpc
import pytest

from runner.contract import Contract
from runner.serving.access import flush_all
from tests.grpc.conftest import TOOLS_PROTO, Env, tools_bundle

ID = re.compile(r"[0-9a-f]{16}")


def access_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The access lines written so far (written within 0.1 s: flushed here at once)."""
    flush_all()
    return [line for line in capsys.readouterr().err.splitlines() if " access: " in line]


def text_message(contract: Contract, text: str) -> bytes:
    return bytes(contract.input_class("Echo")(text=text).SerializeToString())


@pytest.fixture
def tools(make_env: Callable[..., Env]) -> tuple[Env, Contract]:
    env = make_env()
    env.publish("tools", tools_bundle(env.scratch()))
    return env, Contract.compile(TOOLS_PROTO % "")


def test_a_request_id_given_is_echoed_and_in_the_access_line(
    tools: tuple[Env, Contract], capsys: pytest.CaptureFixture[str]
) -> None:
    env, contract = tools
    capsys.readouterr()
    echo = env.channel().unary_unary("/tools.Tools/Echo")
    _, call = echo.with_call(text_message(contract, "hi"), metadata=[("x-request-id", "grpc-client.7")])
    assert dict(call.trailing_metadata())["x-request-id"] == "grpc-client.7"
    [line] = access_lines(capsys)
    assert re.fullmatch(
        r"\S+Z grpc\[\d+\] access: gRPC /tools\.Tools/Echo OK [0-9.]+ms model=tools version=1 "
        r"request_id=grpc-client\.7 protocol=grpc",
        line,
    ), line


@pytest.mark.parametrize("given", [None, "bad id", "x" * 65])
def test_a_request_id_is_generated_when_none_acceptable_is_given(
    tools: tuple[Env, Contract], capsys: pytest.CaptureFixture[str], given: str | None
) -> None:
    env, contract = tools
    capsys.readouterr()
    echo = env.channel().unary_unary("/tools.Tools/Echo")
    metadata = [] if given is None else [("x-request-id", given)]
    _, call = echo.with_call(text_message(contract, "hi"), metadata=metadata)
    request_id = dict(call.trailing_metadata())["x-request-id"]
    assert ID.fullmatch(request_id)
    [line] = access_lines(capsys)
    assert f"request_id={request_id} " in line


def test_a_model_error_is_logged_under_the_request_id_given(
    tools: tuple[Env, Contract], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    env, contract = tools
    capsys.readouterr()
    fail = env.channel().unary_unary("/tools.Tools/Fail")
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.RpcError) as raised:
        fail.with_call(text_message(contract, "boom"), metadata=[("x-request-id", "trace-g1")])
    error = raised.value
    assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    trailing = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert trailing["x-request-id"] == "trace-g1" and trailing["x-error-kind"] == "model_error"
    assert [k for k, _ in error.trailing_metadata()].count("x-request-id") == 1  # type: ignore[attr-defined]
    logged = [rec.getMessage() for rec in caplog.records if "trace-g1" in rec.getMessage()]
    assert logged and "model_error" in logged[0] and "cannot handle boom" in logged[0]
    [line] = access_lines(capsys)
    assert " INTERNAL " in line and "model=tools version=1 request_id=trace-g1 " in line


def test_a_call_that_reached_no_model_names_none(
    tools: tuple[Env, Contract], capsys: pytest.CaptureFixture[str]
) -> None:
    env, contract = tools
    capsys.readouterr()
    with pytest.raises(grpc.RpcError) as raised:
        env.channel().unary_unary("/nope.Nope/Echo")(text_message(contract, "hi"))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    [line] = access_lines(capsys)
    assert "gRPC /nope.Nope/Echo UNIMPLEMENTED " in line and "model=- version=-" in line
