"""A load client on healthy models while a test makes another model fail: predictions over HTTP, each
thread on its own keep-alive session, every failure kept."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Self

import requests

from tests.waiting import wait_for

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


class ClientThreads:
    """Client threads (``threads``, made by a subclass) that run from the start of a ``with`` block until
    its end, when ``stop`` is set and they are joined."""

    join_timeout = 60.0
    """Seconds each thread gets to end its last call at the end of the block."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.join_timeout)


class HealthyLoad(ClientThreads):
    """``threads`` clients per model in ``models`` posting SETOSA to Classify at ``base`` until the
    ``with`` block ends; an answer other than 200 "setosa" or a connection error is a failure."""

    def __init__(self, base: str, models: Sequence[str], threads: int = 2) -> None:
        super().__init__()
        self.base = base
        self.models = tuple(models)
        self.failures: list[str] = []
        self.answered = dict.fromkeys(self.models, 0)
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(m,)) for m in self.models for _ in range(threads)
        ]

    def _run(self, model: str) -> None:
        url = f"{self.base}/models/{model}/methods/Classify"
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    r = session.post(url, json=SETOSA, timeout=60)
                    ok = r.status_code == 200 and r.json().get("species") == "setosa"
                    failure = None if ok else f"{model}: {r.status_code} {r.text[:300]}"
                except requests.RequestException as err:
                    failure = f"{model}: {err!r}"
                with self._lock:
                    if failure is None:
                        self.answered[model] += 1
                    else:
                        self.failures.append(failure)

    def wait_answers(self, more: int = 5) -> None:
        """Until each model has answered ``more`` more calls (the load runs across a fault)."""
        start = dict(self.answered)
        wait_for(
            lambda: all(self.answered[m] >= start[m] + more for m in self.models) or self.failures,
            60,
            "the healthy models to answer",
        )
