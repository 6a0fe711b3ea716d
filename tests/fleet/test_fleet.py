"""The fleet on one machine with real parts (tests/fleet/hosts.py): three hosts, each a network namespace
with its own address running `model-runner serve` on one shared repository folder, nginx in front for
HTTP and gRPC, a load client through nginx. Model "gen" answers its generation and the host serving it,
so a stale answer (an older generation after a newer one's push answered) is seen in the answer itself.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

from runner.bundle import write_bundle_zip
from runner.contract import Contract
from tests.e2e.load import ClientThreads
from tests.fleet.hosts import FLEET_SETTINGS, GEN_PROTO, GRPC_PORT, Fleet, Host, Nginx, write_gen_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

CONTRACT = Contract.compile(GEN_PROTO)
ASK_REQUEST = CONTRACT.input_class("Ask")(text="hi").SerializeToString()
ASK_REPLY = CONTRACT.output_class("Ask")

HEARTBEAT_EXPIRY = float(FLEET_SETTINGS["MODEL_RUNNER_HEARTBEAT_EXPIRY"])
"""Seconds another host's serving record may stay unchanged and still count as live."""


# What a gRPC client of a fleet behind nginx configures: nginx cannot resend a gRPC call it already sent
# (grpc_pass does not buffer request bodies), so a call refused by a host that died or is draining answers
# UNAVAILABLE (a trailers-only answer nginx makes of its 502), and gRPC's retry policy sends it again.
GRPC_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [{}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
GRPC_CLIENT_OPTIONS = [("grpc.service_config", json.dumps(GRPC_RETRY_POLICY)), ("grpc.enable_retries", 1)]


@dataclass
class Answer:
    protocol: str
    sent: float
    done: float
    generation: int | None
    host: str | None
    failure: str | None


class FleetLoad(ClientThreads):
    """HTTP and gRPC clients calling gen's Ask through nginx until the ``with`` block ends; every answer
    kept with when it was sent and received, its generation and host; anything but a well-formed answer
    is a failure."""

    join_timeout = 120.0

    def __init__(self, nginx: Nginx, http_threads: int = 3, grpc_threads: int = 2) -> None:
        super().__init__()
        self.nginx = nginx
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._http) for _ in range(http_threads)] + [
            threading.Thread(target=self._grpc) for _ in range(grpc_threads)
        ]

    def _keep(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _http(self) -> None:
        url = f"{self.nginx.base}/models/gen/methods/Ask"
        with requests.Session() as session:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = session.post(url, json={"text": "hi"}, timeout=120)
                    body = r.json() if r.status_code == 200 else {}
                    if r.status_code == 200 and body.get("generation"):
                        answer = Answer(
                            "http", sent, time.monotonic(), int(body["generation"]), body["host"], None
                        )
                    else:
                        answer = Answer(
                            "http", sent, time.monotonic(), None, None, f"{r.status_code} {r.text[:300]}"
                        )
                except (requests.RequestException, ValueError) as err:
                    answer = Answer("http", sent, time.monotonic(), None, None, repr(err)[:300])
                self._keep(answer)

    def _grpc(self) -> None:
        with grpc.insecure_channel(self.nginx.grpc_target, options=GRPC_CLIENT_OPTIONS) as channel:
            ask: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/fleet.Gen/Ask")
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    reply = ASK_REPLY.FromString(ask(ASK_REQUEST, timeout=120))
                    generation, host = int(getattr(reply, "generation")), str(getattr(reply, "host"))
                    answer = Answer("grpc", sent, time.monotonic(), generation, host, None)
                except grpc.RpcError as err:
                    failure = f"{err.code()} {err.details()}"
                    answer = Answer("grpc", sent, time.monotonic(), None, None, failure)
                except ValueError as err:
                    answer = Answer("grpc", sent, time.monotonic(), None, None, repr(err)[:300])
                self._keep(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def failures(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.failure is not None]

    def wait_answered(self, what: str, predicate: Any, since: float, timeout: float = 60) -> None:
        """Until both protocols got an answer sent after ``since`` that satisfies ``predicate``."""

        def seen() -> bool:
            fresh = [a for a in self.snapshot() if a.sent >= since and a.failure is None and predicate(a)]
            return {a.protocol for a in fresh} == {"http", "grpc"}

        wait_for(seen, timeout, what, interval=0.02, describe=lambda: repr(self.failures()[:5]))


def push(base: str, fleet: Fleet, generation: int, timeout: float = 120) -> requests.Response:
    """PUT generation ``generation`` of gen to ``base`` (nginx or one host)."""
    folder = write_gen_bundle(fleet.workdir / f"gen-{generation}", generation, fleet.hang_dir)
    return requests.put(
        f"{base}/models/gen",
        data=write_bundle_zip(folder),
        headers={**fleet.auth, "Content-Type": "application/zip"},
        timeout=timeout,
    )


def assert_no_stale_answer(answers: list[Answer], pushes: list[tuple[int, float, float]]) -> None:
    """pushes: (generation, sent, answered). A request sent after generation k's push answered gets k or a
    later generation; an answer is never a generation whose push was not sent yet."""
    for a in answers:
        assert a.generation is not None
        newest_answered = max((g for g, _sent, answered in pushes if answered < a.sent), default=1)
        assert a.generation >= newest_answered, (
            f"stale answer: {a.protocol} request sent {a.sent:.3f} got generation {a.generation} from "
            f"{a.host}, after generation {newest_answered}'s push answered"
        )
        assert all(sent < a.done for g, sent, _answered in pushes if g == a.generation) or a.generation == 1


def nginx_outcomes(nginx: Nginx, uri: str) -> tuple[int, int]:
    """From nginx's access log, calls of ``uri`` that a host refused or failed: (those nginx then sent to
    another host, those it answered with an error: a gRPC UNAVAILABLE or an HTTP 5xx)."""
    resent = failed = 0
    for line in nginx.access_log().splitlines():
        if f" {uri} " not in line:
            continue
        status = int(line.split(f" {uri} ")[1].split()[0])
        upstreams = line.split(" ups=")[1].split(" rt=")[0].replace(",", " ").split()
        if status != 200:
            failed += 1
        elif len(upstreams) > 1:
            resent += 1
    return resent, failed


HTTP_ASK = "/models/gen/methods/Ask"
GRPC_ASK = "/fleet.Gen/Ask"


def report(nginx: Nginx) -> str:
    http, grpc_calls = nginx_outcomes(nginx, HTTP_ASK), nginx_outcomes(nginx, GRPC_ASK)
    return (
        f"nginx resent {http[0]} HTTP and {grpc_calls[0]} gRPC calls to another host, answered "
        f"{http[1]} HTTP calls 5xx and {grpc_calls[1]} gRPC calls UNAVAILABLE (the client's retry policy resent them)"
    )


def served_by_hosts(answer: dict[str, Any], hosts: list[Host]) -> set[str]:
    """The host ids among the serving processes an admin answer names."""
    named = " ".join(answer.get("served_by") or [])
    return {h.host_id for h in hosts if h.host_id in named}


# ------------------------------------------------------------------------------------------------ tests


def test_twenty_swaps_through_nginx_under_load(fleet: Fleet) -> None:
    """20 pushes through nginx (each lands on whichever host nginx picks) while HTTP and gRPC clients call
    through nginx: no failed request, and once a push answered no host answers an older generation."""
    nginx = fleet.nginx
    assert nginx is not None
    pushes: list[tuple[int, float, float]] = []
    with FleetLoad(nginx) as load:
        load.wait_answered("first answers through nginx", lambda a: a.generation == 1, 0.0)
        for generation in range(2, 22):
            sent = time.monotonic()
            r = push(nginx.base, fleet, generation)
            answered = time.monotonic()
            assert r.status_code == 200, r.text
            assert served_by_hosts(r.json(), fleet.hosts) == {h.host_id for h in fleet.hosts}, r.text
            pushes.append((generation, sent, answered))
            load.wait_answered(
                f"answers of generation {generation}", lambda a, g=generation: a.generation == g, answered
            )
    answers = load.snapshot()
    failures = [a for a in answers if a.failure is not None]
    assert not failures, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:5]}"
    assert_no_stale_answer(answers, pushes)
    for protocol in ("http", "grpc"):
        hosts = {a.host for a in answers if a.protocol == protocol}
        assert hosts == {h.host_id for h in fleet.hosts}, f"{protocol}: nginx spread the load on {hosts}"
    assert len({a.generation for a in answers}) == 21
    push_ms = sorted(1000 * (answered - sent) for _g, sent, answered in pushes)
    print(
        f"20 swaps: {len(answers)} calls, pushes {push_ms[len(push_ms) // 2]:.0f} ms p50, {push_ms[-1]:.0f} ms max"
    )
    # no host failed a call either: nginx had nothing to retry, the gRPC clients nothing to resend
    assert nginx_outcomes(nginx, HTTP_ASK) == (0, 0) and nginx_outcomes(nginx, GRPC_ASK) == (0, 0)
    admin_lines = [line for line in nginx.access_log().splitlines() if " PUT /models/gen " in line]
    assert len({line.split(" up=")[1].split()[0] for line in admin_lines}) > 1, (
        "pushes landed on several hosts"
    )


def test_host_killed_mid_swap_is_named_and_does_not_block_it(fleet: Fleet) -> None:
    """A push to host 0 while host 2 is loading the new version; host 2 dies (SIGKILL of every process in
    its namespace). The push answers once host 2's heartbeat expired, naming host 2's processes in `lost`;
    through nginx no call fails but one the dead host had begun to answer, and after the push's answer
    none gets an older generation."""
    nginx = fleet.nginx
    assert nginx is not None
    pusher, victim = fleet.hosts[0], fleet.hosts[2]
    fleet.hang(victim)
    result: dict[str, Any] = {}

    def push_to_pusher() -> None:
        result["sent"] = time.monotonic()
        try:
            result["response"] = push(pusher.base, fleet, 2)
        except requests.RequestException as err:
            result["error"] = repr(err)
        result["answered"] = time.monotonic()

    with FleetLoad(nginx) as load:
        load.wait_answered("first answers through nginx", lambda a: a.generation == 1, 0.0)
        pushing = threading.Thread(target=push_to_pusher)
        pushing.start()
        try:
            # mid-swap: generation 2 is published and host 2's processes are loading it (they serve 1)
            wait_for(
                lambda: len(fleet.loads_waiting(victim)) >= fleet.workers + fleet.grpc_processes,
                120,
                f"{victim.host_id} to start loading generation 2",
            )
            assert "answered" not in result, result
            killed = time.monotonic()
            victim.kill()
            died = time.monotonic()  # kill() returns once every process of the host is gone
        finally:
            pushing.join(180)
            fleet.unhang(victim)
        load.wait_answered("answers after the push", lambda a: a.generation == 2, result["answered"])
    assert "error" not in result, result
    r = result["response"]
    assert r.status_code == 200, r.text
    waited = result["answered"] - killed
    # the dead host's processes counted as live until their records went unchanged for the expiry
    # (other hosts' pids are never checked), then no longer held the swap
    assert HEARTBEAT_EXPIRY - 1.5 <= waited < HEARTBEAT_EXPIRY + 15, f"answered {waited:.1f} s after the kill"
    assert served_by_hosts(r.json(), fleet.hosts) == {pusher.host_id, fleet.hosts[1].host_id}, r.text
    lost = r.json().get("lost") or []
    assert len(lost) == fleet.workers + fleet.grpc_processes, r.text
    assert all(entry.endswith(f" on {victim.host_id})") for entry in lost), r.text
    answers = load.snapshot()
    # Only a call the dead host had begun to answer can fail (nginx passed its answer's headers on: it can
    # neither resend the call nor finish the answer; for gRPC the client gets INTERNAL, not retried).
    failures = [a for a in answers if a.failure is not None]
    cut = [a for a in failures if a.sent <= died and a.done >= killed]  # in flight while the host died
    assert failures == cut, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:5]}"
    assert len(cut) <= len(load.threads), cut
    assert_no_stale_answer(
        [a for a in answers if a.failure is None], [(2, result["sent"], result["answered"])]
    )
    print(f"killed mid-swap: {len(answers)} calls, {len(cut)} cut by the kill, push answered {waited:.2f} s")
    print(f"  after the kill; {report(nginx)}")


def test_rolling_restart_through_nginx_fails_no_request(fleet: Fleet) -> None:
    """Each host in turn gets SIGTERM (drains, exits 0) and is started again, while HTTP and gRPC clients
    call through nginx, which sends a refused or cut request to another host: no request fails."""
    nginx = fleet.nginx
    assert nginx is not None
    stopping: list[tuple[float, float]] = []  # (SIGTERM sent, every process of the host gone)
    with FleetLoad(nginx) as load:
        load.wait_answered("first answers through nginx", lambda a: a.generation == 1, 0.0)
        for host in fleet.hosts:
            sigterm = time.monotonic()
            assert host.terminate() == 0, host.log_text()[-3000:]
            stopping.append((sigterm, time.monotonic()))
            host.start()
            restarted = time.monotonic()
            load.wait_answered(
                f"answers from {host.host_id} after its restart",
                lambda a, h=host: a.host == h.host_id,
                restarted,
            )
    answers = load.snapshot()
    assert {a.generation for a in answers if a.failure is None} == {1}
    assert len(answers) > 100, "the clients kept calling during the restarts"
    stops = ", ".join(f"{gone - sigterm:.1f}" for sigterm, gone in stopping)
    print(f"rolling restart: {len(answers)} calls, hosts stopped in {stops} s; {report(nginx)}")
    failures = [a for a in answers if a.failure is not None]
    # a gRPC process that got SIGTERM keeps serving the connections nginx holds until they go (or go
    # quiet) before it stops: nothing reaches a stopping grpc server, which would answer CANCELLED
    assert not failures, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:5]}"


def test_a_joining_host_serves_the_current_version_before_it_is_ready(fleet: Fleet) -> None:
    """After two pushes, a fourth host starts on the repository. Polled from the moment it starts (its
    /readyz, an HTTP call and a gRPC call to its own address), it never answers an older generation, and
    /readyz says ready only once it answers the current one; added to nginx, it takes its share."""
    nginx = fleet.nginx
    assert nginx is not None
    for generation in (2, 3):
        r = push(nginx.base, fleet, generation)
        assert r.status_code == 200, r.text
    joining = fleet.add_host()
    joining.start(wait=False)
    probes: list[tuple[int | None, int | None]] = []  # (readyz status or None: refused, generation or None)
    grpc_generations: list[int] = []
    session = requests.Session()
    # reconnect at once while the port is not open yet (gRPC backs off up to 2 minutes by default)
    backoff = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 100)]
    channel = grpc.insecure_channel(joining.grpc_target, options=backoff)
    ask: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/fleet.Gen/Ask")

    def probe() -> bool:
        try:
            ready: int | None = session.get(f"{joining.base}/readyz", timeout=5).status_code
        except requests.RequestException:
            ready = None
        try:
            r = session.post(f"{joining.base}/models/gen/methods/Ask", json={"text": "hi"}, timeout=30)
            probes.append((ready, int(r.json()["generation"]) if r.status_code == 200 else None))
        except requests.RequestException:
            probes.append((ready, None))
        try:
            grpc_generations.append(
                int(getattr(ASK_REPLY.FromString(ask(ASK_REQUEST, timeout=5)), "generation"))
            )
        except grpc.RpcError:
            pass  # not listening yet
        return ready == 200

    try:
        wait_for(probe, 300, f"{joining.host_id} to be ready", interval=0.02, describe=joining.log_text)
        joining.wait_ready()
        # serve says every process serves: its gRPC side answers too
        wait_for(lambda: probe() and grpc_generations, 30, f"{joining.host_id}'s gRPC answer")
    finally:
        channel.close()
    assert probes[0][0] != 200, "the polling began before the host was ready"
    assert {g for _ready, g in probes if g is not None} == {3}, f"{joining.host_id} answered {probes}"
    assert all(g == 3 for ready, g in probes if ready == 200), probes
    assert grpc_generations and set(grpc_generations) == {3}, grpc_generations

    nginx.reload(fleet.hosts)
    with FleetLoad(nginx) as load:
        load.wait_answered(
            f"answers from {joining.host_id} through nginx",
            lambda a: a.host == joining.host_id,
            time.monotonic(),
        )
    answers = load.snapshot()
    assert not [a for a in answers if a.failure is not None]
    assert {a.generation for a in answers} == {3}


def test_ready_means_grpc_accepts(fleet_prerequisites: None, tmp_path: Path) -> None:
    """When `serve` writes its ready file, its gRPC port accepts connections (a second host joining)."""
    pair = Fleet(tmp_path, env=FLEET_SETTINGS)
    try:
        first, host = pair.add_host(), pair.add_host()
        first.start(str(write_gen_bundle(tmp_path / "gen-1", 1, pair.hang_dir)))
        host.start(wait=False)
        wait_for(host.ready_file.exists, 300, f"{host.host_id}'s ready file", interval=0.005)
        assert host.accepts(GRPC_PORT), f"{host.host_id} is ready but refuses gRPC connections"
    finally:
        pair.close()
