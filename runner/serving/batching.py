"""Adaptive batching: concurrent single requests of one model version and rpc merged into one model call.

A bundle opts in with ``batching`` in metadata.json (docs/bundle.md)::

    "batching": {"max_batch_size": 32, "max_delay_ms": 2, "methods": ["ClassifyBatch"]}

``methods`` omitted: every rpc of the contract with the batch shape. The ``batching`` setting
(``false``) turns it off for the whole service. Nothing is batched otherwise.

The batch shape (:func:`row_shape`): the rpc's input message has exactly one field, a repeated message
field (the rows), and so has its output message. A batch call is then the same for every runtime (Java
in-process or isolated, Python): one ``Model.invoke`` of the input message holding the rows of every
merged request in arrival order (the serialized requests concatenated: protobuf merges repeated fields
by appending), whose output must hold exactly as many rows; request *i* gets the output rows at the
positions its own rows had. A model that answers another number of rows breaks the invariant: the batch
fails (logged on ``runner.batching``), batching stays off for that version and rpc, and its requests
are run alone.

Guarantees:

- never across versions: a queue belongs to one held ``LoadedVersion`` (a swap mid-window leaves the old
  version's requests in the old version's batch);
- deadlines: a request waits for a batch no longer than its own deadline (then DeadlineExceeded, having
  not run), and a batch call runs within the earliest deadline of its requests;
- errors isolated: when a batch call fails, each of its requests runs again alone, in its own thread with
  its own deadline, so only the requests that cause the failure fail;
- adaptive: a request that finds no other call of its rpc in progress runs at once (no added latency
  when idle); otherwise the first one waits up to ``max_delay_ms`` (or until ``max_batch_size`` requests
  are there) while the others join it.

Metrics: ``model_runner_batch_size`` and ``model_runner_batch_queue_wait_seconds`` (runner.serving.metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import DeadlineExceeded, InvalidBundle, ModelError
from runner.runtimes.deadline import call_timeout
from runner.serving import metrics

if TYPE_CHECKING:
    from runner.bundle import Metadata
    from runner.contract import Contract
    from runner.serving.registry import LoadedVersion

log = logging.getLogger("runner.batching")

MAX_BATCH_SIZE = 1024
MAX_DELAY_MS = 10_000.0


@dataclass(frozen=True)
class BatchPolicy:
    """A bundle's ``batching``: at most ``max_batch_size`` requests per call, the first waiting at most
    ``max_delay`` seconds; ``methods``: the rpcs batched (None: every rpc with the batch shape)."""

    max_batch_size: int
    max_delay: float
    methods: frozenset[str] | None


@dataclass(frozen=True)
class RowShape:
    """An rpc of the batch shape: the one repeated message field of its input and of its output."""

    input_field: str
    output_field: str


def policy_of(metadata: Metadata) -> BatchPolicy | None:
    """The bundle's batching policy (None: it declares none); InvalidBundle names what is wrong."""
    spec = metadata.batching
    if spec is None:
        return None
    problems: list[str] = []
    unknown = sorted(set(spec) - {"max_batch_size", "max_delay_ms", "methods"})
    if unknown:
        problems.append(
            f"batching: unknown keys {', '.join(unknown)} (max_batch_size, max_delay_ms, methods)"
        )
    size = spec.get("max_batch_size", 32)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        problems.append(
            f"batching.max_batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, not {size!r}"
        )
    delay = spec.get("max_delay_ms", 2)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_MS:
        problems.append(f"batching.max_delay_ms must be a number from 0 to {MAX_DELAY_MS:g}, not {delay!r}")
    methods = spec.get("methods")
    if methods is not None and not (
        isinstance(methods, list) and all(isinstance(m, str) and m for m in methods)
    ):
        problems.append("batching.methods must be a list of rpc names")
    if problems:
        raise _invalid(problems)
    return BatchPolicy(int(size), float(delay) / 1000.0, frozenset(methods) if methods is not None else None)


def row_shape(contract: Contract, rpc: str) -> RowShape | None:
    """``rpc``'s rows (its input's and output's one repeated message field), or None: not batchable."""
    fields = []
    for cls in (contract.input_class(rpc), contract.output_class(rpc)):
        own = cls.DESCRIPTOR.fields
        if len(own) != 1:
            return None
        rows = own[0].message_type  # None: a scalar field
        if not own[0].is_repeated or rows is None or rows.GetOptions().map_entry:
            return None
        fields.append(own[0].name)
    return RowShape(fields[0], fields[1])


def batched_methods(metadata: Metadata, contract: Contract) -> dict[str, RowShape]:
    """The rpcs a version batches, with their rows; InvalidBundle for a bad ``batching`` or a listed rpc
    the contract lacks or that has not the batch shape (called by validation before a publish)."""
    policy = policy_of(metadata)
    if policy is None:
        return {}
    rpcs = contract.method_names()
    if policy.methods is None:
        found = {rpc: shape for rpc in rpcs if (shape := row_shape(contract, rpc)) is not None}
        if not found:
            raise _invalid(
                ["batching: no rpc has the batch shape (input and output: one repeated message field each)"]
            )
        return found
    problems: list[str] = []
    shapes: dict[str, RowShape] = {}
    for rpc in sorted(policy.methods):
        if rpc not in rpcs:
            problems.append(f"batching.methods: the contract has no rpc {rpc} (it has {', '.join(rpcs)})")
        elif (shape := row_shape(contract, rpc)) is None:
            problems.append(
                f"batching.methods: {rpc} cannot be batched: its input and output messages must each "
                "have exactly one field, a repeated message field (the rows)"
            )
        else:
            shapes[rpc] = shape
    if problems:
        raise _invalid(problems)
    return shapes


def _invalid(problems: list[str]) -> InvalidBundle:
    return InvalidBundle(
        "metadata.json: " + "; ".join(problems), {"file": "metadata.json", "problems": problems}
    )


class _Pending:
    """One request waiting for (or in) a batch."""

    __slots__ = ("arrived", "deadline", "done", "error", "lead", "request", "response", "rows", "taken")

    def __init__(self, request: bytes, rows: int, deadline: float | None, arrived: float) -> None:
        self.request = request
        self.rows = rows
        self.deadline = deadline  # time.monotonic() value; None: unbounded
        self.arrived = arrived
        self.done = threading.Event()
        self.taken = False  # in a batch now: its answer will come
        self.lead = False  # it collects the next batch
        self.response: bytes | None = None
        self.error: BaseException | None = None  # None and no response: run alone


class BatchQueue:
    """The requests of one held version's rpc waiting for a batch."""

    def __init__(self, loaded: LoadedVersion, rpc: str, shape: RowShape, policy: BatchPolicy) -> None:
        self.loaded = loaded
        self.rpc = rpc
        self.shape = shape
        self.policy = policy
        self.input_class = loaded.contract.input_class(rpc)
        self.output_class = loaded.contract.output_class(rpc)
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Pending] = []
        self._leader: _Pending | None = None
        self._active = 0  # calls of this rpc in progress (waiting or running)
        self.disabled = False  # the model broke the row-count invariant: every call alone

    def waiting(self) -> int:
        """Requests waiting for a batch now."""
        with self._cond:
            return len(self._pending)

    def call(self, request: bytes, limit: float | None) -> bytes:
        """The model's answer to ``request`` (binary input message), run within ``limit`` seconds, in a
        batch with concurrent requests when there are some."""
        if self.disabled:
            return self._alone(request, limit)
        try:
            rows = len(getattr(self.input_class.FromString(request), self.shape.input_field))
        except Exception:  # noqa: BLE001 (not the input message: the model answers it alone, as unbatched)
            return self._alone(request, limit)
        now = time.monotonic()
        me = _Pending(request, rows, None if limit is None else now + limit, now)
        with self._cond:
            self._active += 1
            # nothing else of this rpc in progress: no one to wait for, run at once
            alone = self._leader is None and self._active == 1
            if not alone:
                self._pending.append(me)
                if self._leader is None:
                    self._leader = me
                    me.lead = True
                elif len(self._pending) >= self.policy.max_batch_size:
                    self._cond.notify_all()
        try:
            if alone:
                return self._alone(request, limit)
            if not me.lead:
                self._follow(me)
            if me.lead:
                self._collect_and_run(me)
            if me.response is not None:
                return me.response
            if me.error is not None:
                raise me.error
            return self._alone(request, None if me.deadline is None else me.deadline - time.monotonic())
        finally:
            with self._cond:
                self._active -= 1

    def _alone(self, request: bytes, limit: float | None) -> bytes:
        limit = call_timeout(limit) if limit is not None else None  # a passed deadline: not run
        return self.loaded.model.invoke(self.rpc, request, timeout=limit)

    def _follow(self, me: _Pending) -> None:
        """Wait until a batch answers ``me``, or ``me`` is to lead, or its deadline passes unanswered."""
        timeout = None if me.deadline is None else max(0.0, me.deadline - time.monotonic())
        if me.done.wait(timeout):
            return
        with self._cond:
            if not me.taken and not me.lead:
                self._pending.remove(me)
                raise DeadlineExceeded(
                    "the call's deadline passed while it waited for a batch",
                    {"model": self.loaded.name, "method": self.rpc},
                )
        me.done.wait()  # in a batch, whose call ends by its earliest deadline; or told to lead

    def _collect_and_run(self, me: _Pending) -> None:
        policy = self.policy
        with self._cond:
            end = me.arrived + policy.max_delay
            if me.deadline is not None:
                end = min(end, me.deadline)
            while len(self._pending) < policy.max_batch_size and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            batch = self._pending[: policy.max_batch_size]
            del self._pending[: policy.max_batch_size]
            for item in batch:
                item.taken = True
            self._leader = None
            if self._pending:  # more than one batch's worth: the next one leads the rest
                nxt = self._pending[0]
                nxt.lead = True
                self._leader = nxt
                nxt.done.set()
        me.lead = False
        self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
        loaded, rpc = self.loaded, self.rpc
        started = time.monotonic()
        metrics.batch_called(loaded.name, rpc, len(batch), [started - item.arrived for item in batch])
        deadlines = [item.deadline for item in batch if item.deadline is not None]
        try:
            if len(batch) == 1:
                item = batch[0]
                limit = None if item.deadline is None else item.deadline - started
                item.response = self._alone(item.request, limit)
            else:
                limit = call_timeout(min(deadlines) - started) if deadlines else None
                merged = b"".join(item.request for item in batch)
                self._split(batch, loaded.model.invoke(rpc, merged, timeout=limit))
        except BaseException as err:  # noqa: BLE001 (every request runs again alone, or gets it)
            if len(batch) == 1:
                batch[0].error = err
            else:
                log.debug(
                    "batch of %d for %s/%s failed (%s): each runs alone", len(batch), loaded.name, rpc, err
                )
                for item in batch:
                    item.response = None  # run alone by its own thread
        for item in batch:
            item.done.set()

    def _split(self, batch: list[_Pending], response: bytes) -> None:
        out = self.output_class.FromString(response)
        rows = getattr(out, self.shape.output_field)
        expected = sum(item.rows for item in batch)
        if len(rows) != expected:
            self.disabled = True
            log.error(
                "model %s version %s, rpc %s: a batch of %d requests (%d rows) was answered with %d rows; "
                "batching is off for this version and rpc, every request runs alone",
                self.loaded.name,
                self.loaded.version,
                self.rpc,
                len(batch),
                expected,
                len(rows),
            )
            raise ModelError(
                f"batch answered {len(rows)} rows for {expected}",
                {"model": self.loaded.name, "method": self.rpc, "rows_in": expected, "rows_out": len(rows)},
            )
        start = 0
        for item in batch:
            part = self.output_class()
            getattr(part, self.shape.output_field).extend(rows[start : start + item.rows])
            start += item.rows
            item.response = part.SerializeToString()


class Batching:
    """The batch queues of a data plane, one per held version and batched rpc (runner.serving.dataplane)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[tuple[int, str], tuple[LoadedVersion, BatchQueue | None]] = {}

    def queue(self, loaded: LoadedVersion, rpc: str) -> BatchQueue | None:
        """The queue of ``rpc`` of this very version (None: not batched)."""
        found = self._queues.get((id(loaded), rpc))
        if found is not None and found[0] is loaded:
            return found[1]
        with self._lock:
            queue = self._build(loaded, rpc)
            # a version no longer held by anyone keeps no queue: drop other versions of the model
            stale = [k for k, (lv, _q) in self._queues.items() if lv.name == loaded.name and lv is not loaded]
            for key in stale:
                del self._queues[key]
            self._queues[(id(loaded), rpc)] = (loaded, queue)
        return queue

    @staticmethod
    def _build(loaded: LoadedVersion, rpc: str) -> BatchQueue | None:
        try:
            policy = policy_of(loaded.metadata)
            if policy is None:
                return None
            shapes = batched_methods(loaded.metadata, loaded.contract)
        except InvalidBundle as err:  # validation refuses such a bundle; one served anyway runs unbatched
            log.warning("model %s version %s: batching off: %s", loaded.name, loaded.version, err)
            return None
        shape = shapes.get(rpc)
        return None if shape is None else BatchQueue(loaded, rpc, shape, policy)


def describe(queue: BatchQueue | None) -> dict[str, Any]:
    """What a queue batches (tests, logs)."""
    if queue is None:
        return {"batched": False}
    return {
        "batched": not queue.disabled,
        "max_batch_size": queue.policy.max_batch_size,
        "max_delay_ms": queue.policy.max_delay * 1000.0,
        "rows": queue.shape.input_field,
    }
