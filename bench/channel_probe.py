"""The floor of a process boundary on this machine: a 40-byte echo between two processes over a Unix
socket pair, with the reader blocking in ``recv`` or first polling for ``SPIN_US`` microseconds
(``MSG_DONTWAIT``) — what runner.runtimes.child.Channel does before it blocks.

    python bench/channel_probe.py [SPIN_US ...]     # default: 0 20 50

Prints p50/p99 of the round trip per setting (20,000 round trips each).
"""

from __future__ import annotations

import os
import socket
import sys
import time

ROUND_TRIPS = 20_000


def _recv(sock: socket.socket, spin: float) -> bytes:
    end = time.perf_counter() + spin
    while spin > 0 and time.perf_counter() < end:
        try:
            return sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
    return sock.recv(65536)


def probe(spin_us: float) -> tuple[float, float]:
    spin = spin_us * 1e-6
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoing child
        ours.close()
        while data := _recv(theirs, spin):
            theirs.sendall(data)
        os._exit(0)
    theirs.close()
    message = b"x" * 40
    took = []
    for _ in range(ROUND_TRIPS):
        start = time.perf_counter_ns()
        ours.sendall(message)
        _recv(ours, spin)
        took.append(time.perf_counter_ns() - start)
    ours.close()
    os.waitpid(pid, 0)
    took.sort()
    return took[len(took) // 2] / 1000, took[int(len(took) * 0.99)] / 1000


def main() -> None:
    for spin_us in [float(a) for a in sys.argv[1:]] or [0.0, 20.0, 50.0]:
        p50, p99 = probe(spin_us)
        print(f"poll {spin_us:g} µs before blocking: round trip p50 {p50:.1f} µs, p99 {p99:.1f} µs")


if __name__ == "__main__":
    main()
