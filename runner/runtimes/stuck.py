"""The calls of this process that do not stop: abandoned at their deadline, still running.

A call past its deadline answers DeadlineExceeded, but its thread cannot always be stopped: a Python
thread cannot be killed at all (runner.runtimes.python.calls abandons the call and it keeps its thread),
and a Java call that ignores interruption (catches ``Throwable`` in a loop) keeps running too. Each such
call is *abandoned*; once it still runs ``grace`` seconds after its deadline it is *stuck*. It leaves the
list when it finally returns.

- Python: :func:`abandoned` when the pool gives up on a running call (model, version, rpc, request id,
  thread), :func:`returned` when it ends; the stack comes from ``sys._current_frames()``.
- Java: merged from runner.runtimes.java's ``java_stuck_calls()`` (cheap; none without a JVM), which
  lists a call once it is past the bridge's own grace.

:func:`current` lists the stuck calls; :class:`StuckWatch` (one per process, polled by the serving
layer) tells which became stuck since its last poll and which calls were abandoned meanwhile, so each is
logged and counted once. Neither imports a transport nor the bridge.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_GRACE = 2.0
"""Seconds past its deadline after which an abandoned call that still runs counts as stuck."""


@dataclass(frozen=True)
class CallOwner:
    """What a call runs for: carried with the call so that an abandoned one names it."""

    model: str
    version: str
    rpc: str
    request_id: str | None = None


@dataclass(frozen=True)
class StuckCall:
    """A call still running past its deadline (stuck once past it by the grace)."""

    runtime: str  # "python" or "java"
    model: str
    version: str
    rpc: str
    thread: str
    overdue_seconds: float
    stack: str
    request_id: str | None = None
    key: str = field(default="", compare=False)
    """Stable for the life of the call (a poll tells a new stuck call from one already reported)."""


@dataclass
class _Abandoned:
    owner: CallOwner
    thread: str
    ident: int | None
    passed: float  # time.monotonic() when its deadline passed (the caller gave up)
    key: str


_lock = threading.Lock()
_python: dict[int, _Abandoned] = {}  # token -> an abandoned Python call still running
_abandoned_total: dict[tuple[str, str], int] = {}  # (model, version) -> Python calls abandoned so far
_tokens = itertools.count(1)
# thread ident -> an inline Python call running on it: (model, version, rpc, request id, deadline as
# time.monotonic(), key); see inline_call
_inline: dict[int, tuple[str, str, str, str | None, float, str]] = {}


def abandoned(owner: CallOwner, thread: threading.Thread | None, *, passed: float | None = None) -> int:
    """A Python call was abandoned while still running on ``thread``; the token for :func:`returned`."""
    token = next(_tokens)
    name = thread.name if thread is not None else "?"
    ident = thread.ident if thread is not None else None
    record = _Abandoned(owner, name, ident, time.monotonic() if passed is None else passed, f"python:{token}")
    with _lock:
        _python[token] = record
        key = (owner.model, owner.version)
        _abandoned_total[key] = _abandoned_total.get(key, 0) + 1
    return token


def returned(token: int) -> None:
    """The abandoned Python call of ``token`` has ended (answered nobody): no longer stuck."""
    with _lock:
        _python.pop(token, None)


def inline_call(model: str, version: str, rpc: str, request_id: str | None, deadline: float) -> int:
    """An inline Python call (bundle ``"calls": "inline"``) starts on this thread, to end at
    ``deadline`` (time.monotonic()): nobody abandons it, so it is listed here while it runs, and is stuck
    once past its deadline by the grace like an abandoned one. Returns the token for :func:`inline_ended`."""
    ident = threading.get_ident()
    _inline[ident] = (model, version, rpc, request_id, deadline, f"python-inline:{next(_tokens)}")
    return ident


def inline_ended(token: int) -> None:
    _inline.pop(token, None)


def python_calls(grace: float = DEFAULT_GRACE, *, abandoned_too: bool = False) -> list[StuckCall]:
    """The Python calls still running ``grace`` seconds past their deadline (all the abandoned ones
    still running with ``abandoned_too``), each with its thread's stack."""
    now = time.monotonic()
    with _lock:
        records = list(_python.values())
    # single dict operations are atomic under the GIL: the hot path takes no lock; copy, then read
    inline = [(ident, call) for ident, call in list(_inline.items()) if now > call[4]]
    if inline:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, (model, version, rpc, request_id, deadline, key) in inline:
            owner = CallOwner(model, version, rpc, request_id)
            records.append(_Abandoned(owner, names.get(ident, "?"), ident, deadline, key))
    frames = sys._current_frames() if records else {}
    out: list[StuckCall] = []
    for rec in records:
        overdue = now - rec.passed
        if overdue < grace and not abandoned_too:
            continue
        frame = frames.get(rec.ident) if rec.ident is not None else None
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack: thread gone)"
        o = rec.owner
        out.append(
            StuckCall("python", o.model, o.version, o.rpc, rec.thread, overdue, stack, o.request_id, rec.key)
        )
    return out


def java_calls(grace: float = DEFAULT_GRACE, *, abandoned_too: bool = False) -> list[StuckCall]:
    """The Java calls still running ``grace`` seconds past their deadline (runner.runtimes.java, which
    lists them once past the bridge's own grace, ``-Dmodelrunner.stuckGraceMillis``: the JVM of a
    serving process is started with ``stuck_grace``)."""
    from runner.runtimes import java  # noqa: PLC0415 (never imports the bridge itself; cheap without a JVM)

    try:
        records: list[Mapping[str, Any]] = list(java.java_stuck_calls())
    except Exception:  # listing is best effort: never hurt the caller
        log.debug("listing the stuck Java calls failed", exc_info=True)
        return []
    out: list[StuckCall] = []
    for rec in records:
        overdue = float(rec.get("overdue_seconds") or 0.0)
        if overdue < grace and not abandoned_too:
            continue
        model, version, rpc = str(rec.get("model")), str(rec.get("version")), str(rec.get("rpc"))
        thread = str(rec.get("thread"))
        stack = rec.get("stack") or ""
        if not isinstance(stack, str):
            stack = "\n".join(f"\tat {frame}" for frame in stack)
        request_id = rec.get("request_id")
        out.append(
            StuckCall(
                "java",
                model,
                version,
                rpc,
                thread,
                overdue,
                stack,
                str(request_id) if request_id else None,
                f"java:{thread}:{model}:{version}:{rpc}",
            )
        )
    return out


def current(grace: float = DEFAULT_GRACE) -> list[StuckCall]:
    """Every stuck call of this process, Python and Java."""
    return [*python_calls(grace), *java_calls(grace)]


def java_counts() -> dict[str, int]:
    """runner.runtimes.java's process totals (``abandoned``, ``stuck``); zeros without them."""
    from runner.runtimes import java  # noqa: PLC0415 (as in java_calls)

    try:
        got = dict(java.java_call_counts())
    except Exception:  # noqa: BLE001 - best effort
        return {"abandoned": 0, "stuck": 0}
    return {"abandoned": int(got.get("abandoned", 0)), "stuck": int(got.get("stuck", 0))}


@dataclass(frozen=True)
class Poll:
    """What changed since the previous poll."""

    stuck: list[StuckCall]
    """Every call stuck now."""
    newly_stuck: list[StuckCall]
    """Those that were not stuck at the previous poll (each reported once)."""
    abandoned: dict[tuple[str, str], int]
    """(model, version) -> calls abandoned since the previous poll while their model still ran."""


class StuckWatch:
    """Polls this process's stuck calls (the serving layer, once a second): each call that becomes
    stuck is new once, each abandoned call is counted once."""

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace
        self._reported: set[str] = set()
        self._python_counted: dict[tuple[str, str], int] = {}
        self._java_seen: set[str] = set()

    def poll(self) -> Poll:
        stuck = [*python_calls(self.grace), *java_calls(self.grace)]
        newly = [c for c in stuck if c.key not in self._reported]
        self._reported = {c.key for c in stuck}
        with _lock:
            totals = dict(_abandoned_total)
        abandoned: dict[tuple[str, str], int] = {}
        for key, total in totals.items():
            delta = total - self._python_counted.get(key, 0)
            if delta > 0:
                abandoned[key] = delta
        self._python_counted = totals
        # a Java call is counted when first listed (runner.runtimes.java lists it once stuck: one that
        # stops soon after its deadline is only in java_counts(), which has no model)
        java_now = java_calls(self.grace, abandoned_too=True)
        for call in java_now:
            if call.key not in self._java_seen:
                key = (call.model, call.version)
                abandoned[key] = abandoned.get(key, 0) + 1
        self._java_seen = {c.key for c in java_now}
        return Poll(stuck, newly, abandoned)


__all__ = [
    "DEFAULT_GRACE",
    "CallOwner",
    "Poll",
    "StuckCall",
    "StuckWatch",
    "abandoned",
    "current",
    "inline_call",
    "inline_ended",
    "java_calls",
    "java_counts",
    "python_calls",
    "returned",
]
