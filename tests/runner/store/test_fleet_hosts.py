"""A fleet of hosts on one shared repository: host identity, liveness by heartbeat only for other hosts
(judged by the reader's own clock, whatever the writer's says), swaps that wait for and then name a dead
replica, and fcntl locks that exclude threads, processes and hosts."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import locks
from runner.errors import BadInput, SwapTimeout
from runner.serving.admin import Admin
from runner.serving.registry import LoadedVersion, Registry
from runner.settings import Settings
from runner.store import Fleet, Repository
from runner.store.files import default_host_id, try_lock
from tests.runner.repo_helpers import TrackingLoader, write_echo_bundle
from tests.waiting import wait_for

EXPIRY = 0.5
ROOT = Path(__file__).resolve().parents[3]


def dead_pid() -> int:
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    assert proc.pid is not None
    return proc.pid


def host(root: Path, host_id: str) -> Fleet:
    return Fleet(root, host_id=host_id, heartbeat_expiry=EXPIRY)


class Beater:
    """A serving process of another host: rewrites its record every 0.1 s until stopped (or "killed":
    stopped without removing its record), each write with the same skewed heartbeat if given."""

    def __init__(self, fleet: Fleet, process_id: str, record: dict[str, object]):
        self.fleet, self.process_id, self.record = fleet, process_id, record
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.fleet.record_serving(self.process_id, self.record)
            if self.stopped.wait(0.1):
                return

    def kill(self) -> None:
        self.stopped.set()
        self.thread.join()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def test_host_id_comes_from_the_setting_then_hostname(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOSTNAME", "pod-7")
    assert default_host_id() == "pod-7"  # the host_id setting unset: a Kubernetes pod's name
    monkeypatch.delenv("HOSTNAME")
    assert default_host_id() == socket.gethostname()
    settings = Settings.from_env({"MODEL_RUNNER_HOST_ID": "web-2", "MODEL_RUNNER_HEARTBEAT_EXPIRY": "2.5"})
    settings.repo = tmp_path / "repo"
    repo = Repository.from_settings(settings)
    assert repo.fleet.host_id == "web-2" and repo.fleet.heartbeat_expiry == 2.5
    registry = Registry(repo, TrackingLoader([]), poll_interval=0.02)
    assert registry.process_id.startswith(f"web-2-{os.getpid()}")
    with registry:
        assert repo.fleet.live_processes()[registry.process_id]["host"] == "web-2"
    with pytest.raises(BadInput, match="MODEL_RUNNER_HOST_ID='a b'"):
        Settings.from_env({"MODEL_RUNNER_HOST_ID": "a b"})


def test_another_hosts_record_lives_by_its_heartbeat_only_never_by_pid(root: Path) -> None:
    a, b = host(root, "host-a"), host(root, "host-b")
    # host-b's process has a pid that is dead *here* (hosts sharing a machine share its pids): no matter
    b.record_serving("host-b-1", {"kind": "http", "models": {"m": 1}, "pid": dead_pid()})
    assert set(a.live_processes()) == {"host-b-1"}
    assert (root / "serving" / "host-b-1.json").exists()  # not cleaned as a dead local pid
    # while it beats it stays live well past the expiry; once it stops, it expires
    beater = Beater(b, "host-b-1", {"kind": "http", "models": {"m": 1}, "pid": dead_pid()})
    began = time.monotonic()
    wait_for(lambda: time.monotonic() - began > 3 * EXPIRY, what="three expiries")
    assert set(a.live_processes()) == {"host-b-1"}
    beater.kill()
    stopped = time.monotonic()
    wait_for(lambda: a.live_processes() == {}, what="host-b's record to expire")
    assert time.monotonic() - stopped >= EXPIRY - 0.15  # its last beat came up to 0.1 s before
    # host-b's own view of its record is by pid: a dead pid of its own host is removed at once
    b.live_processes()
    assert not (root / "serving" / "host-b-1.json").exists()


@pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["clock-ahead", "clock-behind"])
def test_clock_skew_makes_a_record_neither_live_for_ever_nor_dead_at_once(root: Path, skew: float) -> None:
    a = host(root, "host-a")
    other_machine = {"kind": "grpc", "models": {}, "boot": "another-kernel", "host": "host-c"}
    c = host(root, "host-c")
    c.record_serving("host-c-1", {**other_machine, "heartbeat": time.time() + skew})
    assert set(a.live_processes()) == {"host-c-1"}  # not dead at once (a clock an hour behind)
    wait_for(lambda: a.live_processes() == {}, what="the silent record to expire")  # nor live for ever
    # the same record rewritten (its seq moves) is live again at once, and stays live while it beats
    beater = Beater(c, "host-c-1", {**other_machine, "heartbeat": time.time() + skew})
    wait_for(lambda: set(a.live_processes()) == {"host-c-1"}, what="the beating record to live again")
    began = time.monotonic()
    wait_for(lambda: time.monotonic() - began > 3 * EXPIRY, what="three expiries")
    assert set(a.live_processes()) == {"host-c-1"}
    beater.kill()
    wait_for(lambda: a.live_processes() == {}, what="the record to expire again")
    # a reader that never saw it change removes it after FORGET_AFTER expiries, not before
    assert (root / "serving" / "host-c-1.json").exists()


def test_a_reader_judges_a_record_it_first_sees_by_the_volumes_clock(root: Path) -> None:
    c = host(root, "host-c")
    record = {"kind": "http", "models": {}, "boot": "another-kernel", "heartbeat": time.time()}
    c.record_serving("host-c-1", record)  # its heartbeat claims "now": another clock, not believed
    c.record_serving("host-c-2", record)
    path_1, path_2 = root / "serving" / "host-c-1.json", root / "serving" / "host-c-2.json"
    an_hour_ago, two_expiries_ago = time.time() - 3600, time.time() - 2 * EXPIRY
    os.utime(path_1, (an_hour_ago, an_hour_ago))  # written an hour ago, as the file system stamps it
    os.utime(path_2, (two_expiries_ago, two_expiries_ago))
    assert host(root, "host-a").live_processes() == {}  # a new reader: neither is live
    assert not path_1.exists() and path_2.exists()  # the long-dead one is removed, the other kept a while


def test_a_swap_waits_for_a_dead_replica_until_its_heartbeat_expires_and_names_it(
    root: Path, tmp_path: Path
) -> None:
    repo = Repository(root, host_id="host-a", heartbeat_expiry=EXPIRY)
    for label in ("v1", "v2"):
        src = write_echo_bundle(tmp_path / f"src-{label}", label)
        repo.publish("echo", src, expected_version=None, caller="test")
    b = host(root, "host-b")
    replica = Beater(b, "host-b-42", {"kind": "grpc", "models": {"echo": 2}})
    wait_for(lambda: "host-b-42" in repo.fleet.live_processes(), what="host-b's replica")
    admin = Admin(repo, swap_timeout=0.3)
    # alive and lagging: the swap times out naming it with its kind and host
    with pytest.raises(SwapTimeout, match=r"host-b-42 \(grpc on host-b\)") as timed_out:
        admin.rollback("echo", version=1)
    assert timed_out.value.detail["laggards"] == ["host-b-42"]
    # it dies (SIGKILL: its record stays) mid-swap: the swap waits its heartbeat expiry, then answers
    admin = Admin(repo, swap_timeout=30)
    killer = threading.Timer(0.3, replica.kill)
    killer.start()
    began = time.monotonic()
    result = admin.rollback("echo", version=1)  # again: host-b still serves version 2
    waited = time.monotonic() - began
    killer.join()
    assert result["version"] == 1 and result["lost"] == ["host-b-42 (grpc on host-b)"]
    assert waited < 0.3 + EXPIRY + 2  # not swap_timeout: the dead replica blocks it for its expiry only


def test_a_replica_that_starts_is_waited_for_before_its_first_load_ends(root: Path, tmp_path: Path) -> None:
    publisher = Repository(root, host_id="host-a", heartbeat_expiry=EXPIRY)
    src = write_echo_bundle(tmp_path / "src-v1", "v1")
    publisher.publish("echo", src, expected_version=None, caller="test")
    release = threading.Event()

    class SlowFirstLoad(TrackingLoader):
        def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
            release.wait(30)
            return super().load(name, version, version_dir)

    replica = Registry(
        Repository(root, host_id="host-b", heartbeat_expiry=EXPIRY),
        SlowFirstLoad([]),
        poll_interval=0.02,
        heartbeat_interval=0.1,
    )
    starting = threading.Thread(target=replica.start)
    starting.start()
    try:
        record = wait_for(lambda: publisher.fleet.live_processes().get(replica.process_id), what="its record")
        assert record["models"] == {} and record["ready"] is False  # there before it serves anything
        # its first load takes longer than the expiry: its heartbeats keep it live, the swap waits for it
        began = time.monotonic()
        wait_for(lambda: time.monotonic() - began > 2 * EXPIRY, what="two expiries")
        assert publisher.fleet.wait_until_served("echo", 1, timeout=0.05) == [replica.process_id]
        release.set()
        assert publisher.fleet.wait_until_served("echo", 1, timeout=30) == []
        starting.join()
        assert replica.ready()
    finally:
        release.set()
        starting.join()
        replica.stop()


# ------------------------------------------------------------------------------------------- locks

HOLD = """
import os, sys
from pathlib import Path
from runner import locks
from runner.store import Repository
locks.use_ofd = sys.argv[4] == "ofd"
repo, inside, rounds = Repository(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for _ in range(rounds):
    with repo.lock("m"):
        fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if another holder is inside
        counter = Path(sys.argv[1]) / "counter"
        counter.write_text(str(int(counter.read_text() or 0) + 1))
        os.close(fd)
        os.unlink(inside)
"""


@pytest.fixture(params=["ofd", "posix"])
def lock_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """OFD locks (Linux), or the POSIX record locks + in-process locks that stand in elsewhere."""
    if request.param == "posix":
        monkeypatch.setattr(locks, "use_ofd", False)
    yield request.param


def test_the_model_lock_excludes_threads_and_processes(root: Path, lock_kind: str) -> None:
    repo = Repository(root)
    inside = root / "inside"
    (root / "counter").write_text("0")
    rounds = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, str(root), str(inside), str(rounds), lock_kind], cwd=ROOT
        )
        for _ in range(2)
    ]
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            for _ in range(rounds):
                with repo.lock("m"):
                    fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    counter = root / "counter"
                    counter.write_text(str(int(counter.read_text() or 0) + 1))
                    os.close(fd)
                    os.unlink(inside)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    assert errors == []
    assert int((root / "counter").read_text()) == 5 * rounds


def test_the_lock_is_an_fcntl_lock_that_survives_closing_another_descriptor(root: Path) -> None:
    repo = Repository(root)
    lock_file = root / "models" / "m" / ".lock"
    with repo.lock("m"):
        inode = os.stat(lock_file).st_ino
        kinds = [
            line.split()[1]
            for line in Path("/proc/locks").read_text().splitlines()
            if line.split()[5].endswith(f":{inode}") and "->" not in line
        ]
        assert kinds == (["OFDLCK"] if locks.use_ofd else ["POSIX"])  # what NFS arbitrates; not FLOCK
        os.close(os.open(lock_file, os.O_RDONLY))  # a POSIX lock would be dropped here; this one is not
        assert try_lock(lock_file) is None  # another open in this process: refused
        probe = "from runner.store.files import try_lock; import sys; sys.exit(try_lock(sys.argv[1]) is None)"
        assert subprocess.run([sys.executable, "-c", probe, str(lock_file)], cwd=ROOT).returncode == 1
    held = try_lock(lock_file)
    assert held is not None
    held.release()


def test_posix_fallback_refuses_a_second_holder_in_the_process(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "use_ofd", False)
    path = root / "f.lock"
    root.mkdir(parents=True)
    first = locks.acquire(path)
    assert first is not None
    assert locks.acquire(path, blocking=False) is None  # the in-process lock, before any open/close
    probe = "from runner import locks; import sys; locks.use_ofd = False; "
    probe += "sys.exit(locks.acquire(sys.argv[1], blocking=False) is None)"
    assert subprocess.run([sys.executable, "-c", probe, str(path)], cwd=ROOT).returncode == 1
    first.release()
    again = locks.acquire(path, blocking=False)
    assert again is not None
    again.release()
    assert locks._path_locks.locks == {}  # nothing left behind per path
