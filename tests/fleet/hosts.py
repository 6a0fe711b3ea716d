"""A fleet on one machine with real parts: each host a network namespace of its own (its own address,
joined to the root namespace by a veth pair), each running `model-runner serve` on one shared
repository folder, and nginx in the root namespace in front of them for HTTP (proxy_pass, keep-alive
upstream) and gRPC (grpc_pass over HTTP/2).

Network namespaces share the hostname and the PID space, so each host gets its identity from
``MODEL_RUNNER_HOST_ID``. Everything made here (namespaces, veths, processes, nginx) is removed by
:meth:`Fleet.close`, also when a test fails; namespaces a crashed run left behind are removed by the next
one (their names carry the pid of the process that made them).

Used by tests/fleet (the fleet tests) and bench/fleet_bench.py; needs root, iproute2 and nginx:
:func:`check_prerequisites` says what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.store.files import pid_alive
from tests.waiting import wait_for

NETNS_PREFIX = "mrfleet"
"""Names of the namespaces this harness makes: ``mrfleet<owner pid>-<fleet>-<host>``."""

_fleets_made = itertools.count()

HTTP_PORT = 8080
GRPC_PORT = 50051

FLEET_SETTINGS = {
    "MODEL_RUNNER_POLL_INTERVAL": "0.1",
    "MODEL_RUNNER_SWAP_TIMEOUT": "60",
    "MODEL_RUNNER_HEARTBEAT_EXPIRY": "5",
}
"""Every host's settings (the defaults but the swap timeout, stated: the killed-host test waits for the
heartbeat expiry)."""


class FleetUnavailable(Exception):
    """This machine cannot run the fleet (not root, no network namespaces, no nginx): the reason."""


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def check_prerequisites() -> None:
    """Raise FleetUnavailable naming what this machine lacks for the fleet."""
    if os.geteuid() != 0:
        raise FleetUnavailable("the fleet tests make network namespaces: they need root")
    if shutil.which("ip") is None:
        raise FleetUnavailable("`ip` (iproute2) is not installed")
    if shutil.which("nginx") is None:
        raise FleetUnavailable("nginx is not installed (Debian package nginx; .ci/setup installs it)")
    probe = f"{NETNS_PREFIX}{os.getpid()}-probe"
    added = _run("ip", "netns", "add", probe, check=False)
    if added.returncode != 0:
        raise FleetUnavailable(f"`ip netns add` fails here: {added.stderr.strip()}")
    _run("ip", "netns", "delete", probe, check=False)


def netns_pids(netns: str) -> list[int]:
    """The processes running in namespace ``netns`` now."""
    done = _run("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def _killed_all(netns: str) -> bool:
    """SIGKILL every process in ``netns``; True once none was left (one forked meanwhile is caught by
    the next call)."""
    pids = netns_pids(netns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return not pids


def _remove_netns(netns: str, veth: str | None = None) -> None:
    """SIGKILL whatever runs in ``netns``, then delete it (its end of the veth goes with it) and the
    root end ``veth``, even when something would not die."""
    try:
        wait_for(lambda: _killed_all(netns), 30, f"every process in {netns} to die", interval=0.05)
    finally:
        _run("ip", "netns", "delete", netns, check=False)
        if veth is not None:
            _run("ip", "link", "delete", veth, check=False)


def remove_stale_namespaces() -> None:
    """Remove the namespaces of earlier runs whose owner process is gone (a run killed outright)."""
    listed = _run("ip", "netns", "list", check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        found = re.fullmatch(rf"{NETNS_PREFIX}(\d+)-[\d-]+|{NETNS_PREFIX}(\d+)-probe", name)
        if found and not pid_alive(int(found.group(1) or found.group(2))):
            _remove_netns(name, veth_name(name))


def veth_name(netns: str) -> str:
    """The root end of ``netns``'s veth (interface names have at most 15 characters)."""
    return "mrv" + hashlib.sha1(netns.encode()).hexdigest()[:10]


def _free_subnet() -> int:
    """A second octet N such that 10.N.0.0/16 is used by no address or route here."""
    used = _run("ip", "-4", "route", "show", "table", "all").stdout + _run("ip", "-4", "addr").stdout
    start = os.getpid() % 55  # two runs starting at once most likely look at different subnets first
    for n in range(55):
        octet = 200 + (start + n) % 55
        if f"10.{octet}." not in used:
            return octet
    raise FleetUnavailable("no free 10.N.0.0/16 subnet for the fleet's hosts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------ the model

GEN_PROTO = textwrap.dedent("""
    syntax = "proto3";
    package fleet;
    message AskRequest { string text = 1; }
    message AskReply { string generation = 1; string host = 2; }
    service Gen {
      rpc Ask (AskRequest) returns (AskReply);
    }
""")

# A Python model whose answer names its generation (a file of the bundle) and the host serving it. A load
# on a host whose hang file exists signals that it started and waits until the file is removed (a swap
# caught mid-way on that host, for as long as a test needs).
GEN_MODEL = textwrap.dedent("""
    import os
    import time

    HANG_DIR = {hang_dir!r}


    class Gen:
        def __init__(self, artifact_dir):
            self.generation = (artifact_dir / "generation.txt").read_text().strip()
            self.host = os.environ.get("MODEL_RUNNER_HOST_ID", "")
            hang = os.path.join(HANG_DIR, "hang-" + self.host)
            if self.host and os.path.exists(hang):
                marker = "loading-%s-%s-%d" % (self.host, self.generation, os.getpid())
                open(os.path.join(HANG_DIR, marker), "w").close()
                give_up = time.monotonic() + 600
                while os.path.exists(hang) and time.monotonic() < give_up:
                    time.sleep(0.05)

        def Ask(self, request):
            return {{"generation": self.generation, "host": self.host}}
""")


def write_gen_bundle(dest: Path, generation: int, hang_dir: Path) -> Path:
    """The bundle folder of model "gen" answering ``generation``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "gen_model.py").write_text(GEN_MODEL.format(hang_dir=str(hang_dir)))
    (dest / "model.proto").write_text(GEN_PROTO)
    (dest / "generation.txt").write_text(f"{generation}\n")
    (dest / "metadata.json").write_text(
        json.dumps(
            {
                "name": "gen",
                "runtime": "python",
                "entry_point": "gen_model:Gen",
                "description": "fleet test model: answers its generation and its host",
                "examples": {"Ask": [{"text": "hi"}]},
            }
        )
    )
    return dest


# ------------------------------------------------------------------------------------------ hosts


class Host:
    """One host: a network namespace with its own address, and the `serve` running in it."""

    def __init__(self, fleet: Fleet, index: int, address: str, gateway: str) -> None:
        self.fleet = fleet
        self.index = index
        self.host_id = f"fleet-{fleet.tag}-h{index}"
        self.netns = f"{NETNS_PREFIX}{fleet.owner}-{fleet.serial}-{index}"
        self.veth = veth_name(self.netns)
        self.address = address
        self.gateway = gateway
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = fleet.workdir / f"{self.host_id}.log"
        self.ready_file = fleet.workdir / f"{self.host_id}.ready.json"

    @property
    def base(self) -> str:
        return f"http://{self.address}:{HTTP_PORT}"

    @property
    def grpc_target(self) -> str:
        return f"{self.address}:{GRPC_PORT}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *args: str, wait: bool = True, timeout: float = 300) -> None:
        """Run `serve ARGS` in this host's namespace on the fleet's repository (appending to its log);
        with ``wait``, until it wrote its ready file (every process serves every current model)."""
        assert not self.running(), f"{self.host_id} already runs"
        self.ready_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
        env.update(self.fleet.env)
        env["MODEL_RUNNER_HOST_ID"] = self.host_id
        env["MODEL_RUNNER_ADMIN_TOKEN_FILE"] = str(self.fleet.token_file)
        flags = {
            "--repo": self.fleet.repo,
            "--host": self.address,
            "--http-port": HTTP_PORT,
            "--grpc-port": GRPC_PORT,
            "--grpc-processes": self.fleet.grpc_processes,
            "--workers": self.fleet.workers,
            "--threads": self.fleet.threads,
            "--ready-file": self.ready_file,
        }
        cmd = ["ip", "netns", "exec", self.netns, sys.executable, "-m", "runner", "serve", *args]
        for flag, value in flags.items():
            cmd += [flag, str(value)]
        self.starts += 1
        with open(self.log, "ab") as out:
            out.write(f"\n===== start {self.starts} of {self.host_id} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.fleet.workdir
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 300) -> None:
        proc = self.proc
        assert proc is not None
        wait_for(
            lambda: self.ready_file.exists() or proc.poll() is not None,
            timeout,
            f"{self.host_id} to write its ready file",
            interval=0.05,
            describe=lambda: self.log_text()[-6000:],
        )
        if not self.ready_file.exists():
            raise RuntimeError(
                f"{self.host_id}: serve exited with {proc.returncode}:\n{self.log_text()[-6000:]}"
            )
        # serve's ready file can come a moment before its gRPC port accepts (tested apart in
        # test_fleet.py, test_ready_means_grpc_accepts): wait for the port too, for a fleet that is ready
        wait_for(lambda: self.accepts(GRPC_PORT), 30, f"{self.host_id}'s gRPC port", interval=0.02)

    def accepts(self, port: int) -> bool:
        """Whether this host accepts a TCP connection on ``port`` now."""
        try:
            socket.create_connection((self.address, port), timeout=2).close()
        except OSError:
            return False
        return True

    def terminate(self, timeout: float = 90) -> int:
        """SIGTERM serve (it drains and exits); its exit status."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"{self.host_id}: serve ran on {timeout:g} s after SIGTERM") from None
        wait_for(lambda: not netns_pids(self.netns), 30, f"every process of {self.host_id} to exit")
        return int(proc.returncode)

    def kill(self) -> None:
        """The host dies: SIGKILL every process in its namespace at once."""
        wait_for(
            lambda: _killed_all(self.netns), 30, f"every process of {self.host_id} to die", interval=0.02
        )
        if self.proc is not None:
            self.proc.wait(timeout=30)


class Fleet:
    """Hosts on one shared repository folder under ``workdir``, and nginx in front of them."""

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 1,
        threads: int = 4,
        grpc_processes: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        check_prerequisites()
        remove_stale_namespaces()
        self.workdir = workdir
        self.owner = os.getpid()
        self.serial = next(_fleets_made)
        self.tag = os.urandom(3).hex()
        self.repo = workdir / "repo"
        self.repo.mkdir(parents=True, exist_ok=True)
        self.token_file = workdir / "admin-token"
        self.token_file.write_text(os.urandom(16).hex() + "\n")
        self.token_file.chmod(0o600)
        self.hang_dir = workdir / "hang"
        self.hang_dir.mkdir(exist_ok=True)
        self.workers = workers
        self.threads = threads
        self.grpc_processes = grpc_processes
        self.env = dict(env or {})
        self.octet = _free_subnet()
        self.hosts: list[Host] = []
        self.nginx: Nginx | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}

    def add_host(self) -> Host:
        """A new namespace with its own address (10.N.<index>.2, the root end 10.N.<index>.1)."""
        index = len(self.hosts)
        host = Host(self, index, f"10.{self.octet}.{index}.2", f"10.{self.octet}.{index}.1")
        self.hosts.append(host)  # before it exists: close() removes a half-made one too
        _run("ip", "netns", "add", host.netns)
        _run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _run("ip", "addr", "add", f"{host.gateway}/30", "dev", host.veth)
        _run("ip", "link", "set", host.veth, "up")
        inside = ("ip", "netns", "exec", host.netns, "ip")
        _run(*inside, "addr", "add", f"{host.address}/30", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "route", "add", "default", "via", host.gateway)
        return host

    def start_nginx(self, hosts: Sequence[Host] | None = None) -> Nginx:
        self.nginx = Nginx(self.workdir / "nginx", hosts if hosts is not None else self.hosts)
        self.nginx.start()
        return self.nginx

    def hang(self, host: Host) -> None:
        """Loads of a new version on ``host`` wait (signalling ``loading-*`` files) until :meth:`unhang`."""
        (self.hang_dir / f"hang-{host.host_id}").touch()

    def unhang(self, host: Host) -> None:
        (self.hang_dir / f"hang-{host.host_id}").unlink(missing_ok=True)

    def loads_waiting(self, host: Host) -> list[str]:
        return sorted(p.name for p in self.hang_dir.glob(f"loading-{host.host_id}-*"))

    def serving_records(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in (self.repo / "serving").glob("*.json"):
            try:
                out[path.stem] = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                continue
        return out

    def close(self) -> None:
        """Stop nginx, kill every host's processes, remove the namespaces and veths; every host is
        cleaned up even if one fails (the first failure is raised at the end). Something already gone
        is fine."""
        failures: list[BaseException] = []
        if self.nginx is not None:
            self.nginx.stop()
        for host in self.hosts:
            (self.hang_dir / f"hang-{host.host_id}").unlink(missing_ok=True)
            try:
                _remove_netns(host.netns, host.veth)
            except BaseException as err:  # noqa: BLE001 - pytest.fail of a wait: clean up the others first
                failures.append(err)
            if host.proc is not None and host.proc.poll() is None:
                host.proc.kill()
            if host.proc is not None:
                host.proc.wait(timeout=30)
        if failures:
            raise failures[0]


# ------------------------------------------------------------------------------------------ nginx

NGINX_CONF = """\
# the fleet's front: {hosts}
worker_processes 1;
user root;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 4096; }}

http {{
    log_format fleet '$msec $request_method $uri $status up=$upstream_addr ups=$upstream_status rt=$request_time';
    access_log {dir}/access.log fleet;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    client_max_body_size 256m;
    client_body_buffer_size 1m;

    # a host that failed a request (refused, cut) is left out for 2 s, then tried again
    upstream fleet_http {{
{http_servers}
        keepalive 32;
    }}
    upstream fleet_grpc {{
{grpc_servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{http_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 120s;
        proxy_send_timeout 120s;

        # predictions have no side effect: one that failed on a host (refused, reset by a host that died
        # or is draining, a 502/503 of a host starting or stopping) is sent to another host, POST too
        location ~ ^/(models/[^/]+/methods/|model/methods/|v2/models/[^/]+/infer$) {{
            proxy_pass http://fleet_http;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 0;
            proxy_next_upstream_timeout 60s;
        }}
        # admin calls and reads: retried only on another host when the connection failed (nginx never
        # resends a POST; a PUT upload resent after a host died mid-way may publish it twice)
        location / {{
            proxy_pass http://fleet_http;
            proxy_next_upstream error timeout;
        }}
    }}

    server {{
        listen 127.0.0.1:{grpc_port} http2;
        grpc_read_timeout 120s;
        grpc_send_timeout 120s;
        # a call is sent to another host when it could not be sent (refused); one already sent cannot be
        # (grpc_pass streams request bodies, it keeps no copy): if its host dies or closes the
        # connection, the client gets UNAVAILABLE as a trailers-only gRPC answer, which gRPC clients'
        # retry policies send again (an HTML 502 page would not be retried)
        location / {{
            grpc_pass grpc://fleet_grpc;
            grpc_next_upstream error timeout http_502 http_503 non_idempotent;
            grpc_next_upstream_tries 0;
            grpc_next_upstream_timeout 60s;
            error_page 502 503 504 = @grpc_unavailable;
        }}
        location @grpc_unavailable {{
            default_type application/grpc;
            add_header grpc-status 14 always;
            add_header grpc-message "the host serving the call failed" always;
            return 204;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the root namespace, its own config file and folders under ``folder``, in the foreground
    as a child of this process."""

    def __init__(self, folder: Path, hosts: Sequence[Host]) -> None:
        self.folder = folder
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "nginx.conf"
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_conf(hosts)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def write_conf(self, hosts: Sequence[Host]) -> None:
        servers = "\n".join(
            f"        server {h.address}:{{port}} max_fails=1 fail_timeout=2s;" for h in hosts
        )
        self.conf.write_text(
            NGINX_CONF.format(
                hosts=", ".join(f"{h.host_id} {h.address}" for h in hosts),
                dir=self.folder,
                http_port=self.http_port,
                grpc_port=self.grpc_port,
                http_servers=servers.format(port=HTTP_PORT),
                grpc_servers=servers.format(port=GRPC_PORT),
            )
        )
        checked = _run("nginx", "-t", "-q", "-p", str(self.folder), "-c", str(self.conf), check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused {self.conf}: {checked.stderr.strip()}")

    def start(self) -> None:
        with open(self.folder / "nginx.out", "ab") as log:
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.folder), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(self._listens, 30, "nginx to listen on its ports", interval=0.02)

    def _listens(self) -> bool:
        return self._accepts(self.http_port) and self._accepts(self.grpc_port)

    def _accepts(self, port: int) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"nginx exited: {(self.folder / 'error.log').read_text(errors='replace')[-3000:]}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    def reload(self, hosts: Sequence[Host]) -> None:
        """Send traffic to ``hosts`` from now on (new config, SIGHUP; waits until nginx read it)."""
        assert self.proc is not None
        marker = self.folder / "error.log"
        before = marker.read_text(errors="replace").count("reconfiguring")
        self.write_conf(hosts)
        self.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: marker.read_text(errors="replace").count("reconfiguring") > before,
            30,
            "nginx to read its new configuration",
        )

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
