"""Prometheus text metrics of one serving process (each gunicorn worker counts its own; `pid` label)."""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Mapping

from runner.serving.registry import LoadedVersion

#: Latency histogram bucket bounds (seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Request counts and latency per model/method/status, and swaps per model, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # per-bucket counts + [sum, count]
        self._swaps: dict[tuple[str, str], int] = {}

    def observe_request(self, model: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (model, method, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.get((model, method))
            if hist is None:
                hist = self._latency[(model, method)] = [0.0] * (len(BUCKETS) + 2)
            # one count in the first bucket that holds it (cumulated when rendered); above them all: +Inf only
            i = bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def observe_swap(self, model: str, action: str) -> None:
        with self._lock:
            self._swaps[(model, action)] = self._swaps.get((model, action), 0) + 1

    def render(self, snapshot: Mapping[str, LoadedVersion]) -> str:
        """The Prometheus text exposition of this process's counts and of the versions it serves."""
        pid = os.getpid()
        lines = [
            "# HELP model_runner_requests_total Predictions answered by this process.",
            "# TYPE model_runner_requests_total counter",
        ]
        with self._lock:
            for (model, method, status), n in sorted(self._requests.items()):
                lines.append(
                    f'model_runner_requests_total{{pid="{pid}",model="{_esc(model)}",'
                    f'method="{_esc(method)}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP model_runner_request_seconds Prediction latency in this process.",
                "# TYPE model_runner_request_seconds histogram",
            ]
            for (model, method), hist in sorted(self._latency.items()):
                labels = f'pid="{pid}",model="{_esc(model)}",method="{_esc(method)}"'
                cumulative = 0.0
                for i, bound in enumerate(BUCKETS):
                    cumulative += hist[i]
                    lines.append(
                        f'model_runner_request_seconds_bucket{{{labels},le="{bound}"}} {int(cumulative)}'
                    )
                lines.append(f'model_runner_request_seconds_bucket{{{labels},le="+Inf"}} {int(hist[-1])}')
                lines.append(f"model_runner_request_seconds_sum{{{labels}}} {hist[-2]:.6f}")
                lines.append(f"model_runner_request_seconds_count{{{labels}}} {int(hist[-1])}")
            lines += [
                "# HELP model_runner_swaps_total Admin swaps (upload, proto, rollback, delete) done through this process.",
                "# TYPE model_runner_swaps_total counter",
            ]
            for (model, action), n in sorted(self._swaps.items()):
                lines.append(
                    f'model_runner_swaps_total{{pid="{pid}",model="{_esc(model)}",action="{action}"}} {n}'
                )
        lines += [
            "# HELP model_runner_model_version Version of each model this process serves.",
            "# TYPE model_runner_model_version gauge",
        ]
        for name, loaded in sorted(snapshot.items()):
            lines.append(f'model_runner_model_version{{pid="{pid}",model="{_esc(name)}"}} {loaded.version}')
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
