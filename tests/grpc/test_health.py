"""The standard health service follows the registry: overall, per model, per contract service."""

from __future__ import annotations

import queue
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.grpc.conftest import Env, tools_bundle
from tests.waiting import wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int | None:
    try:
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        return None


def test_health_flips_for_a_model_deleted_and_back(env: Env) -> None:
    stub = health_pb2_grpc.HealthStub(env.channel())
    assert _status(stub, "tools") is None  # never served: unknown
    env.publish("tools", tools_bundle(env.scratch()))
    wait_for(lambda: _status(stub, "tools") == SERVING, what="tools SERVING")
    assert _status(stub, "tools.Tools") == SERVING
    assert _status(stub, "") == SERVING

    # a Watch stream sees every flip
    seen: queue.Queue[int] = queue.Queue()
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="tools"), timeout=120)

    def read() -> None:
        try:
            for response in watch:
                seen.put(response.status)
        except grpc.RpcError as err:  # cancelled at the end of the test
            assert err.code() == grpc.StatusCode.CANCELLED

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.get(timeout=30) == SERVING

    env.repo.delete("tools", caller="test")
    assert seen.get(timeout=30) == NOT_SERVING
    assert _status(stub, "tools") == NOT_SERVING
    # the sync sets one name after another: the contract's service may flip a moment after the model
    wait_for(lambda: _status(stub, "tools.Tools") == NOT_SERVING, what="tools.Tools NOT_SERVING")
    assert _status(stub, "") == SERVING  # nothing configured is missing

    env.publish("tools", tools_bundle(env.scratch(), label="back"))
    assert seen.get(timeout=30) == SERVING
    assert _status(stub, "tools") == SERVING
    wait_for(lambda: _status(stub, "tools.Tools") == SERVING, what="tools.Tools SERVING again")
    watch.cancel()
    reader.join(timeout=30)


def test_health_not_serving_while_a_model_fails_to_load(env: Env) -> None:
    stub = health_pb2_grpc.HealthStub(env.channel())
    env.publish("tools", tools_bundle(env.scratch()))
    broken = tools_bundle(env.scratch(), name="broken")
    (broken / "tools_model.py").write_text("raise ImportError('this bundle is broken')\n")
    env.repo.publish("broken", broken, expected_version=None, caller="test")
    wait_for(lambda: "broken" in env.registry.load_errors(), what="load error")
    wait_for(lambda: _status(stub, "") == NOT_SERVING, what="overall NOT_SERVING")
    # the sync sets the names one after another: the model's own name may follow the overall one
    wait_for(lambda: _status(stub, "broken") == NOT_SERVING, what="broken NOT_SERVING")
    assert _status(stub, "tools") == SERVING

    env.repo.delete("broken", caller="test")
    wait_for(lambda: _status(stub, "") == SERVING, what="overall SERVING again")


def test_stop_reports_not_serving(env: Env) -> None:
    env.publish("tools", tools_bundle(env.scratch()))
    env.server.health.sync()
    servicer = env.server.health.servicer
    env.server.stop(None).wait()
    ctx = None
    for name in ("", "tools", "tools.Tools"):
        assert servicer.Check(health_pb2.HealthCheckRequest(service=name), ctx).status == NOT_SERVING
    env.server = None
