"""Swap convergence against fleet size, with many light simulated replicas on one shared repository.

    python bench/fleet_sim_bench.py [--sizes 10 50 200] [--swaps 20] [--workers 4] [--repo DIR]

Each replica is a real runner.serving.registry.Registry (its own Repository and host id, ``sim-<i>``)
following the ``current`` pointers every ``poll_interval`` and rewriting its serving record every
``heartbeat_interval``, exactly as a serving process does; only its hooks are stubs (a "load" returns at
once, so what is measured is the store's protocol, not a model's load time). The replicas run as threads
in ``--workers`` processes. The publisher moves the pointer (Repository.rollback between two versions)
and times until Fleet.wait_until_served says every live replica serves it: what a push waits for after
its validation. Also timed: one Fleet.live_processes() scan (the publisher's poll, every 20 ms).

Prints one line per fleet size: swap convergence p50/p99/max, swaps that timed out, the scan, the CPU
one replica uses following the repository (percent of a core, while the swaps run), the publisher's CPU
while it waits, and the load average after the swaps (the machine is shared: read it beside the times).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from runner.bundle import Metadata
from runner.contract import Contract
from runner.serving import metrics
from runner.serving.registry import LoadedVersion, Registry
from runner.store import Repository

MODEL = "sim"
PROTO = """syntax = "proto3";
package sim;
message Text { string text = 1; }
service Sim { rpc Say (Text) returns (Text); }
"""


class StubHooks:
    """Registry hooks whose loads return at once (the contract is compiled once per process)."""

    def __init__(self) -> None:
        self.metadata = Metadata(name=MODEL, runtime="python", entry_point="model:Model")
        self.contract = Contract.compile(PROTO)

    def prepare(self, current: Mapping[str, Path]) -> None:
        pass

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        return LoadedVersion(name, version, self.metadata, self.contract, model=None)  # type: ignore[arg-type]

    def unload(self, loaded: LoadedVersion) -> None:
        pass

    def facts(self) -> dict[str, object]:
        return {}


def replicas(
    root: str, first: int, count: int, poll: float, beat: float, expiry: float, conn: Connection
) -> None:
    """A worker process: ``count`` replicas (host ids sim-<first>...), until the parent says stop."""
    # One process's gauges and metric files are sampled by each registry's heartbeat: here 50 registries
    # share a process, so that would be 50 times a real process's cost. Not the store's protocol: off.
    metrics.sample_process = lambda process: None
    metrics.flush = lambda: None
    hooks = StubHooks()
    registries = [
        Registry(
            Repository(root, host_id=f"sim-{i}", heartbeat_expiry=expiry),
            hooks,
            poll_interval=poll,
            heartbeat_interval=beat,
        )
        for i in range(first, first + count)
    ]
    for registry in registries:
        registry.start()
    conn.send("started")
    conn.recv()  # measure from now
    cpu, wall = sum(os.times()[:2]), time.monotonic()
    conn.recv()  # stop
    conn.send((sum(os.times()[:2]) - cpu, time.monotonic() - wall))
    for registry in registries:
        registry.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_size(root: Path, size: int, args: argparse.Namespace) -> dict[str, Any]:
    publisher = Repository(root, host_id="publisher", heartbeat_expiry=args.expiry)
    workers = min(args.workers, size)
    ctx = multiprocessing.get_context("spawn")
    procs, conns = [], []
    conns_open = True
    first = 0
    for w in range(workers):
        count = size // workers + (1 if w < size % workers else 0)
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=replicas,
            args=(str(root), first, count, args.poll_interval, args.heartbeat_interval, args.expiry, child),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
        conns.append(parent)
        first += count
    try:
        for conn in conns:
            if not conn.poll(600):
                raise SystemExit("a worker did not start its replicas within 600 s")
            conn.recv()
        live = publisher.fleet.live_processes()
        if len(live) != size:
            raise SystemExit(f"{len(live)} live replicas, expected {size}")
        for conn in conns:
            conn.send("measure")
        publisher_cpu = sum(os.times()[:2])
        wall_before = time.monotonic()
        times: list[float] = []
        lagging: list[int] = []
        for swap in range(args.swaps):
            target = 1 if swap % 2 == 0 else 2
            began = time.monotonic()
            publisher.rollback(MODEL, version=target, caller="bench")
            laggards = publisher.fleet.wait_until_served(MODEL, target, timeout=args.timeout)
            times.append(time.monotonic() - began)
            lagging.append(len(laggards))
        wall = time.monotonic() - wall_before
        scans = []
        for _ in range(20):
            began = time.monotonic()
            publisher.fleet.live_processes()
            scans.append(time.monotonic() - began)
        load1 = os.getloadavg()[0]
        publisher_cpu = sum(os.times()[:2]) - publisher_cpu
        for conn in conns:
            conn.send("stop")
        replica_cpu = 0.0
        for conn in conns:
            used, seconds = conn.recv()
            replica_cpu += used / seconds
        conns_open = False
        return {
            "size": size,
            "workers": workers,
            "p50": statistics.median(times),
            "p99": percentile(times, 0.99),
            "max": max(times),
            "timeouts": sum(1 for n in lagging if n),
            "scan": statistics.median(scans),
            "wall": wall,
            "load1": load1,
            "replica_cpu": replica_cpu / size,
            "publisher_cpu": publisher_cpu / wall,
        }
    finally:
        for conn in conns if conns_open else []:
            conn.send("stop")
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()


def prepare_repository(root: Path) -> None:
    repo = Repository(root)
    for label in ("v1", "v2"):
        staged = root.parent / f"staged-{label}"
        staged.mkdir(parents=True, exist_ok=True)
        (staged / "model.proto").write_text(PROTO)
        (staged / "label").write_text(label)
        repo.publish(MODEL, staged, expected_version=None, caller="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="processes the replicas run in")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="the poll_interval setting")
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--expiry", type=float, default=5.0, help="the heartbeat_expiry setting")
    parser.add_argument("--timeout", type=float, default=30.0, help="the swap_timeout setting")
    parser.add_argument("--repo", type=Path, default=None, help="a folder for the repositories (e.g. on NFS)")
    args = parser.parse_args()
    print(
        f"poll_interval {args.poll_interval:g} s, heartbeat every {args.heartbeat_interval:g} s, "
        f"{args.swaps} swaps per size, {os.cpu_count()} cores"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'replicas':>8} {'procs':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'timeouts':>8} "
        f"{'scan ms':>8} {'cpu/replica':>11} {'cpu/publisher':>13} {'load1':>6}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.repo) as tmp:
            root = Path(tmp) / "repo"
            prepare_repository(root)
            r = run_size(root, size, args)
        print(
            f"{r['size']:>8} {r['workers']:>5} {r['p50'] * 1000:>8.0f} {r['p99'] * 1000:>8.0f} "
            f"{r['max'] * 1000:>8.0f} {r['timeouts']:>8} {r['scan'] * 1000:>8.1f} "
            f"{r['replica_cpu'] * 100:>10.2f}% {r['publisher_cpu'] * 100:>12.1f}% {r['load1']:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
