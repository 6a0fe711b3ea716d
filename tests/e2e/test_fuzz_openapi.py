"""The fuzz stage: schemathesis against a real `model-runner serve` of the sample models, driven by the
service's own `/openapi.json` (every route: predictions derived from the live contracts, reads, admin
with its bearer scheme, health, the Open Inference Protocol).

Every generated request (valid and invalid ones, a bounded number per operation) is checked:
no 5xx anywhere; each status is one the document lists for that operation and each body, content type
and header conforms to what it documents; an admin operation sent again without its token answers 401
(tests/e2e/fuzz_hooks.py); every error is the bounded JSON error, without stack traces or server paths.

The run is reproducible: the seed is printed (FUZZ_SEED=<n> replays it; FUZZ_EXAMPLES sets the examples
per operation). Schemathesis runs in a subprocess, its CLI (`st run`), as a person would run it:

    python -m schemathesis.cli run http://127.0.0.1:PORT/openapi.json --seed N ... (printed below)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.serve_process import start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

#: A fixed default: CI runs the same cases each time; FUZZ_SEED explores others.
FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or 20261201)
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 12)
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "ignored_auth",
    "admin_needs_a_token",
    "errors_are_bounded_json",
)


def test_schemathesis_finds_nothing(sample_bundles: dict[str, Path], repo_root: Path, tmp_path: Path) -> None:
    served = start_serve([], tmp_path, workers=1, threads=8)
    try:
        token = served.auth["Authorization"]
        doc = requests.get(f"{served.base}/openapi.json", timeout=30).json()
        operations = sum(len(item) for item in doc["paths"].values())
        secured = sorted(
            f"{verb.upper()} {path}"
            for path, item in doc["paths"].items()
            for verb, op in item.items()
            if op.get("security")
        )
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert len(secured) == 6, secured
        report = tmp_path / "report.ndjson"
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{served.base}/openapi.json",
            "--seed",
            str(FUZZ_SEED),
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--checks",
            ",".join(CHECKS),
            "--header",
            f"Authorization: {token}",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
        ]
        shown = " ".join(
            a if not a.startswith("Authorization") else "'Authorization: Bearer ...'" for a in cmd
        )
        print(
            f"fuzz seed of this run: FUZZ_SEED={FUZZ_SEED} reproduces it ({operations} operations)\n{shown}"
        )
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "FUZZ_SERVER_PATHS": os.pathsep.join([str(served.repo), str(repo_root), sys.prefix]),
        }
        started = time.monotonic()
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
        took = time.monotonic() - started
        print(run.stdout[-30000:], run.stderr[-5000:], sep="\n")
        statuses = _statuses(report)
        print(
            f"schemathesis: {sum(statuses.values())} answers in {took:.0f} s, by status: {dict(sorted(statuses.items()))}"
        )
        assert run.returncode == 0, (
            f"schemathesis found problems (FUZZ_SEED={FUZZ_SEED}); its output is above"
        )
        assert not [s for s in statuses if s >= 500], statuses
        # it did reach the models and the admin checks, not only 404s
        assert statuses[200] > 50 and statuses[401] == 0, statuses
        assert statuses[400] > 0 and statuses[404] > 0, statuses
        assert served.proc.poll() is None, "serve died during the fuzz run"
    finally:
        served.stop()
    log = served.log_text()
    assert "Traceback" not in log or "answered 5" not in log, log[-4000:]


def _statuses(report: Path) -> Counter[int]:
    """The status of every answer in schemathesis' ndjson report."""
    counts: Counter[int] = Counter()
    if not report.exists():
        return counts
    for line in report.read_text().splitlines():
        _walk(json.loads(line), counts)
    return counts


def _walk(node: Any, counts: Counter[int]) -> None:
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            counts[response["status_code"]] += 1
        for value in node.values():
            _walk(value, counts)
    elif isinstance(node, list):
        for value in node:
            _walk(value, counts)
