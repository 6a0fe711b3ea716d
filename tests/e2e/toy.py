"""The HTTP tests' toy model (tests/http/conftest.py) with a signal for end-to-end tests: every Sleep call
(other than the self-test example, seconds=0) leaves a file in a folder as it enters the model, so a
test knows its call is in flight inside a gunicorn worker instead of guessing with a sleep."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import requests

from tests.http.conftest import write_toy_bundle

SIGNALLING_TOY = """

# tests/e2e/toy.py: the toy whose slow calls say when they have entered the model
import uuid as _uuid

_ENTERED = {entered!r}


class SignallingToy(Toy):
    def sleep(self, seconds: float) -> float:
        if seconds > 0:
            open(_ENTERED + "/" + _uuid.uuid4().hex, "w").close()
        return super().sleep(seconds)
"""


def write_signalling_toy_bundle(dest: Path, entered: Path) -> Path:
    """The toy bundle (model name "toy", same contract), its Sleep calls signalling into ``entered``."""
    write_toy_bundle(dest)
    entered.mkdir(parents=True, exist_ok=True)
    with open(dest / "toy_model.py", "a") as model:
        model.write(SIGNALLING_TOY.format(entered=str(entered.resolve())))
    meta = json.loads((dest / "metadata.json").read_text())
    meta["entry_point"] = "toy_model:SignallingToy"
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def calls_entered(entered: Path) -> int:
    """How many Sleep calls have entered the model so far."""
    return len(os.listdir(entered))


def slow_call_in_background(base: str, answer: dict[str, Any], seconds: float = 2.0) -> threading.Thread:
    """A started thread calling the toy's Sleep for ``seconds`` at ``base``; ``answer`` gets its
    status and body, or the error."""

    def call() -> None:
        try:
            r = requests.post(f"{base}/models/toy/methods/Sleep", json={"seconds": seconds}, timeout=60)
            answer.update(status=r.status_code, body=r.json())
        except Exception as err:  # noqa: BLE001 - the test asserts what came back
            answer.update(error=repr(err))

    caller = threading.Thread(target=call)
    caller.start()
    return caller
