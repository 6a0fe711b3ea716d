"""Adaptive batching (runner.serving.batching) through the real data plane, registry and Python runtime:
concurrent requests merged into one model call, answers split back to their callers, deadlines, error
isolation, versions never mixed, nothing batched unless the bundle asks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.bundle import Metadata
from runner.contract import Contract
from runner.errors import DeadlineExceeded, InvalidBundle, ModelError
from runner.serving import metrics
from runner.serving.batching import BatchQueue, batched_methods, describe, policy_of, row_shape
from runner.serving.dataplane import DataPlane
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
from tests.waiting import wait_for

JSON = "application/json"
BOUND = 60.0  # a generous bound against hangs (futures' results), never a speed assertion

ROWS_PROTO = """syntax = "proto3";
package rows;

message Row {
  double x = 1;
  string tag = 2;        // "fail": the model raises; "drop": the model leaves the row out of its answer
  string wait_for = 3;   // a file path: the call blocks until it exists (holds a call in flight)
}
message Rows { repeated Row rows = 1; }
message Result {
  double y = 1;
  string tag = 2;
  string label = 3;       // the version's label
  int32 call = 4;         // which model invocation answered (1, 2, ...)
  int32 call_rows = 5;    // rows of that invocation
}
message Results { repeated Result values = 1; }
message Empty {}
message Count { int32 count = 1; }

service Scorer {
  rpc Score (Rows) returns (Results);
  rpc Calls (Empty) returns (Count);
}
"""

MODEL_PY = """
import os
import threading
import time

LABEL = {label!r}
_lock = threading.Lock()
_calls = []


class Scorer:
    def __init__(self, artifact_dir=None):
        pass

    def Score(self, req):
        with _lock:
            _calls.append(len(req.rows))
            serial = len(_calls)
        for row in req.rows:
            if row.wait_for:
                deadline = time.time() + 60
                while not os.path.exists(row.wait_for) and time.time() < deadline:
                    time.sleep(0.005)
            if row.tag == "fail":
                raise ValueError("cannot score a row tagged fail")
        return {{"values": [
            {{"y": row.x * 2, "tag": row.tag, "label": LABEL, "call": serial, "call_rows": len(req.rows)}}
            for row in req.rows if row.tag != "drop"
        ]}}

    def Calls(self, req):
        with _lock:
            return {{"count": len(_calls)}}
"""


def write_rows_bundle(folder: Path, name: str, label: str, batching: dict[str, Any] | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "scorer.py").write_text(MODEL_PY.format(label=label))
    (folder / "model.proto").write_text(ROWS_PROTO)
    metadata: dict[str, Any] = {"name": name, "runtime": "python", "entry_point": "scorer:Scorer"}
    if batching is not None:
        metadata["batching"] = batching
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


BATCH_OF_5 = {"max_batch_size": 5, "max_delay_ms": 10_000}  # a batch runs when full (long window)
MODELS = {
    "batched": BATCH_OF_5,
    "isolated": BATCH_OF_5,
    "strict": BATCH_OF_5,
    "timed": BATCH_OF_5,
    "plain": None,
    "listed": {"max_batch_size": 5, "max_delay_ms": 10_000, "methods": ["Score"]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Repository, Registry, Path]]:
    tmp = tmp_path_factory.mktemp("batching")
    repo = Repository(tmp / "repo")
    for name, batching in MODELS.items():
        bundle = write_rows_bundle(tmp / name, name, "v1", batching)
        repo.publish(name, bundle, expected_version=None, caller="t")
    registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.05)
    registry.start()
    assert registry.ready() and not registry.load_errors(), registry.load_errors()
    yield repo, registry, tmp
    registry.stop()


@pytest.fixture
def plane(served: tuple[Repository, Registry, Path]) -> DataPlane:
    return DataPlane(served[1])


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16) as executor:
        yield executor


def score(
    plane: DataPlane, model: str, rows: list[dict[str, Any]], timeout: float | None = None
) -> list[Any]:
    body = json.dumps({"rows": rows}).encode()
    result = plane.predict(model, "Score", body, JSON, timeout=timeout)
    return list(json.loads(result.body).get("values", []))


def calls(plane: DataPlane, model: str) -> int:
    return int(json.loads(plane.predict(model, "Calls", b"{}", JSON).body).get("count", 0))


def batch_metrics(model: str) -> dict[str, float]:
    """This process's batching figures for ``model``'s Score (runner.serving.metrics)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for sample in family.samples:
            if sample.labels == {"model": model, "method": "Score"}:
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return {
        name: found.get(name, 0.0)
        for name in (
            "model_runner_batch_size_count",
            "model_runner_batch_size_sum",
            "model_runner_batch_queue_wait_seconds_count",
        )
    }


class Hold:
    """A call held in flight in the model (so that the requests that follow find it busy and queue)."""

    def __init__(self, plane: DataPlane, model: str, pool: ThreadPoolExecutor, folder: Path) -> None:
        self.release_file = folder / f"release-{model}-{time.monotonic_ns()}"
        before = calls(plane, model)
        self.future = pool.submit(
            score, plane, model, [{"x": 0, "tag": "hold", "wait_for": str(self.release_file)}]
        )
        wait_for(lambda: calls(plane, model) > before, what=f"the held call of {model} to reach the model")

    def release(self) -> list[Any]:
        self.release_file.touch()
        return self.future.result(BOUND)


def queue_of(plane: DataPlane, registry: Registry, model: str) -> BatchQueue:
    assert plane.batching is not None
    queue = plane.batching.queue(registry.snapshot()[model], "Score")
    assert queue is not None
    return queue


def test_concurrent_requests_merge_into_one_call_and_answers_go_back_to_their_callers(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    hold = Hold(plane, "batched", pool, served[2])
    before = calls(plane, "batched")
    metrics_before = batch_metrics("batched")
    # five callers, each with its own rows (one caller sends two, another none)
    mine = {
        "a": [{"x": 1.0, "tag": "a1"}],
        "b": [{"x": 2.0, "tag": "b1"}, {"x": 3.0, "tag": "b2"}],
        "c": [],
        "d": [{"x": 4.0, "tag": "d1"}],
        "e": [{"x": 5.0, "tag": "e1"}],
    }
    futures = {who: pool.submit(score, plane, "batched", rows) for who, rows in mine.items()}
    answers = {who: f.result(BOUND) for who, f in futures.items()}
    assert calls(plane, "batched") == before + 1, "the five requests were not one model call"
    for who, rows in mine.items():
        assert [(v["tag"], v["y"]) for v in answers[who]] == [(r["tag"], r["x"] * 2) for r in rows], who
        assert all(v["call_rows"] == 5 for v in answers[who])  # 5 rows in the one merged call
    assert len({v["call"] for vs in answers.values() for v in vs}) == 1
    # one batch of 5 in the histogram, and 5 queue waits
    after = batch_metrics("batched")
    assert after["model_runner_batch_size_count"] - metrics_before["model_runner_batch_size_count"] == 1
    assert after["model_runner_batch_size_sum"] - metrics_before["model_runner_batch_size_sum"] == 5
    waits = "model_runner_batch_queue_wait_seconds_count"
    assert after[waits] - metrics_before[waits] == 5
    assert [v["tag"] for v in hold.release()] == ["hold"]


def test_a_lone_request_runs_at_once(plane: DataPlane) -> None:
    """Nothing else in progress: no window waited (the window here is 10 s)."""
    started = time.monotonic()
    assert score(plane, "batched", [{"x": 1.5, "tag": "alone"}])[0]["call_rows"] == 1
    assert time.monotonic() - started < 5.0


def test_a_failing_batch_runs_each_request_alone_so_only_the_bad_one_fails(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    hold = Hold(plane, "isolated", pool, served[2])
    before = calls(plane, "isolated")
    tags = ["ok1", "ok2", "fail", "ok3", "ok4"]
    futures: dict[str, Future[list[Any]]] = {
        tag: pool.submit(score, plane, "isolated", [{"x": float(i), "tag": tag}])
        for i, tag in enumerate(tags)
    }
    with pytest.raises(ModelError, match="cannot score"):
        futures["fail"].result(BOUND)
    for i, tag in enumerate(tags):
        if tag != "fail":
            [value] = futures[tag].result(BOUND)
            assert (value["tag"], value["y"], value["call_rows"]) == (tag, 2.0 * i, 1)  # answered alone
    assert calls(plane, "isolated") == before + 1 + len(tags)  # the failed batch, then each alone
    hold.release()


def test_a_model_breaking_the_row_count_fails_the_batch_and_batching_stops(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    registry = served[1]
    hold = Hold(plane, "strict", pool, served[2])
    tags = ["k1", "drop", "k2", "k3", "k4"]
    futures = {tag: pool.submit(score, plane, "strict", [{"x": 1.0, "tag": tag}]) for tag in tags}
    answers = {tag: f.result(BOUND) for tag, f in futures.items()}
    assert answers["drop"] == []  # the model's own answer to that request alone
    for tag in tags:
        if tag != "drop":
            assert [(v["tag"], v["call_rows"]) for v in answers[tag]] == [(tag, 1)]
    assert describe(queue_of(plane, registry, "strict"))["batched"] is False
    hold.release()


def test_a_request_never_waits_past_its_deadline(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    registry = served[1]
    hold = Hold(plane, "timed", pool, served[2])
    queue = queue_of(plane, registry, "timed")
    before = calls(plane, "timed")
    # a leader with no deadline opens a 10 s window; a follower allowing 0.3 s leaves it unanswered
    leader = pool.submit(score, plane, "timed", [{"x": 1.0, "tag": "leader"}])
    wait_for(lambda: queue.waiting() == 1, what="the leader to wait for its batch")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="waited for a batch"):
        score(plane, "timed", [{"x": 2.0, "tag": "late"}], timeout=0.3)
    assert time.monotonic() - started < 5.0
    assert queue.waiting() == 1
    others = [pool.submit(score, plane, "timed", [{"x": 3.0, "tag": f"o{i}"}]) for i in range(4)]
    assert [v["call_rows"] for f in [leader, *others] for v in f.result(BOUND)] == [5] * 5  # "late" not in it
    assert calls(plane, "timed") == before + 1
    hold.release()


def test_a_leader_past_its_deadline_is_not_run(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    hold = Hold(plane, "timed", pool, served[2])
    before = calls(plane, "timed")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        score(plane, "timed", [{"x": 1.0, "tag": "hurried"}], timeout=0.3)
    assert time.monotonic() - started < 5.0
    assert calls(plane, "timed") == before
    hold.release()


def test_nothing_is_batched_unless_the_bundle_asks(
    plane: DataPlane, served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    registry = served[1]
    assert plane.batching is not None and plane.batching.queue(registry.snapshot()["plain"], "Score") is None
    hold = Hold(plane, "plain", pool, served[2])
    futures = [pool.submit(score, plane, "plain", [{"x": float(i), "tag": f"p{i}"}]) for i in range(5)]
    assert [v["call_rows"] for f in futures for v in f.result(BOUND)] == [1] * 5
    hold.release()


def test_the_setting_turns_batching_off(
    served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    registry = served[1]
    plane = DataPlane(registry, batching=False)
    hold = Hold(plane, "listed", pool, served[2])
    futures = [pool.submit(score, plane, "listed", [{"x": float(i), "tag": f"s{i}"}]) for i in range(5)]
    assert [v["call_rows"] for f in futures for v in f.result(BOUND)] == [1] * 5
    hold.release()
    assert Settings().batching is True
    assert Settings.from_env({"MODEL_RUNNER_BATCHING": "false"}).batching is False


def test_a_swap_mid_window_never_mixes_versions(
    served: tuple[Repository, Registry, Path], pool: ThreadPoolExecutor
) -> None:
    repo, registry, tmp = served
    plane = DataPlane(registry)
    bundle = write_rows_bundle(
        tmp / "swapped-v1", "swapped", "v1", {"max_batch_size": 3, "max_delay_ms": 10_000}
    )
    repo.publish("swapped", bundle, expected_version=None, caller="t")
    wait_for(lambda: registry.poll_now() or "swapped" in registry.snapshot(), what="swapped v1 served")
    v1 = registry.snapshot()["swapped"]
    hold = Hold(plane, "swapped", pool, tmp)
    queue = queue_of(plane, registry, "swapped")
    old = [pool.submit(score, plane, "swapped", [{"x": float(i), "tag": f"old{i}"}]) for i in range(2)]
    wait_for(lambda: queue.waiting() == 2, what="two v1 requests waiting for their batch")
    bundle2 = write_rows_bundle(
        tmp / "swapped-v2", "swapped", "v2", {"max_batch_size": 3, "max_delay_ms": 10_000}
    )
    repo.publish("swapped", bundle2, expected_version=1, caller="t")
    wait_for(
        lambda: registry.poll_now() or registry.snapshot()["swapped"] is not v1, what="swapped v2 served"
    )
    # v2 requests: the third one v1's batch needs is never one of them
    new = [score(plane, "swapped", [{"x": float(i), "tag": f"new{i}"}]) for i in range(3)]
    assert [v["label"] for vs in new for v in vs] == ["v2"] * 3
    assert queue.waiting() == 2
    # the last v1 request (a caller holding v1 still) completes v1's batch
    assert queue.loaded is v1
    queue_answer = queue.call(
        v1.contract.input_class("Score")(rows=[{"x": 9.0, "tag": "old9"}]).SerializeToString(), None
    )
    last = v1.contract.output_class("Score").FromString(queue_answer)
    assert [(v.tag, v.label, v.call_rows) for v in last.values] == [("old9", "v1", 3)]
    assert [(v["label"], v["call_rows"]) for f in old for v in f.result(BOUND)] == [("v1", 3)] * 2
    hold.release()


def test_the_batch_shape_and_the_metadata_are_checked() -> None:
    contract = Contract.compile(ROWS_PROTO)
    assert row_shape(contract, "Score") is not None and row_shape(contract, "Calls") is None
    meta = Metadata.from_dict(
        {"name": "m", "runtime": "python", "entry_point": "scorer:Scorer", "batching": {"methods": ["Calls"]}}
    )
    with pytest.raises(InvalidBundle, match="Calls cannot be batched"):
        batched_methods(meta, contract)
    defaults = Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "a:B", "batching": {}})
    assert set(batched_methods(defaults, contract)) == {"Score"}
    policy = policy_of(defaults)
    assert policy is not None and (policy.max_batch_size, policy.max_delay) == (32, 0.002)
    for bad, says in [
        ({"max_batch_size": 0}, "max_batch_size must be an integer from 1"),
        ({"max_delay_ms": -1}, "max_delay_ms must be a number from 0"),
        ({"window": 3}, "unknown keys window"),
    ]:
        meta = Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "a:B", "batching": bad})
        with pytest.raises(InvalidBundle, match=says):
            policy_of(meta)
    with pytest.raises(InvalidBundle, match="'batching' must be an object"):
        Metadata.from_dict({"name": "m", "runtime": "python", "entry_point": "a:B", "batching": []})
    assert Metadata.from_dict(defaults.to_dict()).batching == {}


def test_validation_refuses_a_bundle_whose_batching_does_not_fit(tmp_path: Path) -> None:
    from runner.bundle import open_bundle
    from runner.serving.validate import validate_bundle

    bundle = write_rows_bundle(tmp_path / "b", "b", "v1", {"methods": ["Calls"]})
    with pytest.raises(InvalidBundle, match="Calls cannot be batched"):
        validate_bundle(open_bundle(bundle), settings=Settings())
    good = write_rows_bundle(tmp_path / "g", "g", "v1", {"methods": ["Score"]})
    assert validate_bundle(open_bundle(good), settings=Settings()).warnings == []
