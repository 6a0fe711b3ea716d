"""The Dockerfile built with podman and the image run: it starts as its non-root user, fills its empty
repository with the sample models, answers predictions over HTTP and gRPC health, takes its admin token
from a mounted file, reports healthy, and stops cleanly (drained) on SIGTERM.

No registry is reachable from the tests, so the base image is built here: a minimal Debian 12 root file
system from Debian's own mirror (debootstrap --variant=minbase), imported into podman. It trusts the
extra certificate authorities this machine trusts (/usr/local/share/ca-certificates), so the image's
pip install works behind the same TLS-inspecting proxy as this machine's. Podman builds with
`--isolation=chroot` (no OCI runtime needed for RUN steps) and runs the container with runc when it is
installed (crun refuses a cgroup v1/v2 hybrid host). The base image stays in podman's storage between
runs as MODEL_RUNNER_TEST_BASE, and the build's layer cache with it: a rerun with unchanged sources
builds in seconds.

Opt-in (MODEL_RUNNER_IMAGE_TEST=1): a cold build takes about 10 minutes on a 2-core machine (most of it
dpkg installing the JDK and Gradle, then pip and Gradle), a rebuild after a change under runner/ or
bridge/ about 4, too long for every run of the suite.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runner.cli.serve import free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PODMAN = shutil.which("podman")
DEBOOTSTRAP = shutil.which("debootstrap")
BASE_IMAGE = os.environ.get("MODEL_RUNNER_TEST_BASE", "localhost/model-runner-test-base:bookworm")
IMAGE = "localhost/model-runner:test"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
BUILD_TIMEOUT = 1500
START_TIMEOUT = 300

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.timeout(BUILD_TIMEOUT + START_TIMEOUT + 300),
    pytest.mark.skipif(
        os.environ.get("MODEL_RUNNER_IMAGE_TEST") != "1",
        reason="builds the image (about 10 minutes cold): set MODEL_RUNNER_IMAGE_TEST=1 to run it",
    ),
    pytest.mark.skipif(
        PODMAN is None, reason="podman not installed (apt-get install podman runc debootstrap)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="building and running images here needs root"),
]


def podman(*args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None) -> str:
    assert PODMAN is not None
    proc = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Podman's environment: its default ulimits (a million open files) are above what this machine
    lets a process set without CAP_SYS_RESOURCE, so containers get this process's own limits."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    processes = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={min(files, 65536)}:{min(files, 65536)}", '
        f'"nproc={min(processes, 4096)}:{min(processes, 4096)}"]\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def base_image(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    if _exists(podman_env):
        return BASE_IMAGE
    if DEBOOTSTRAP is None:
        pytest.skip("no base image and no debootstrap to make one (apt-get install debootstrap)")
    rootfs = tmp_path_factory.mktemp("rootfs") / "bookworm"
    proc = subprocess.run(
        [DEBOOTSTRAP, "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"debootstrap failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    anchors = rootfs / "usr" / "local" / "share" / "ca-certificates"
    anchors.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, anchors / cert.name)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert PODMAN is not None
    imported = subprocess.run(
        [PODMAN, "import", "-", BASE_IMAGE],
        stdin=tar.stdout,
        capture_output=True,
        env=podman_env,
        timeout=600,
    )
    tar.wait()
    assert imported.returncode == 0, imported.stderr.decode(errors="replace")
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def _exists(env: dict[str, str]) -> bool:
    assert PODMAN is not None
    return subprocess.run([PODMAN, "image", "exists", BASE_IMAGE], env=env, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def image(base_image: str, podman_env: dict[str, str]) -> str:
    podman(
        "build",
        "--isolation=chroot",
        "--format=docker",  # keeps HEALTHCHECK (the OCI format has none)
        "--build-arg",
        f"DEBIAN_IMAGE={base_image}",
        "-t",
        IMAGE,
        str(ROOT),
        timeout=BUILD_TIMEOUT,
        env=podman_env,
    )
    return IMAGE


@pytest.fixture
def container(image: str, podman_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, object]]:
    token = uuid.uuid4().hex
    token_file = tmp_path / "admin-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)  # the container's user is not this one
    http_port, grpc_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    name = f"model-runner-test-{uuid.uuid4().hex[:8]}"
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    podman(
        *runtime,
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",  # no bridge networking needed: the ports are chosen free here
        "--volume",
        f"{token_file}:/var/run/secrets/model-runner/admin-token:ro",
        "--env",
        "MODEL_RUNNER_ADMIN_TOKEN_FILE=/var/run/secrets/model-runner/admin-token",
        "--env",
        f"MODEL_RUNNER_HTTP_PORT={http_port}",
        "--env",
        f"MODEL_RUNNER_GRPC_PORT={grpc_port}",
        "--env",
        "MODEL_RUNNER_WORKERS=1",
        "--env",
        "MODEL_RUNNER_GRPC_PROCESSES=1",
        image,
        env=podman_env,
    )
    info: dict[str, object] = {
        "name": name,
        "runtime": runtime,
        "token": token,
        "http": f"http://127.0.0.1:{http_port}",
        "grpc": f"127.0.0.1:{grpc_port}",
    }
    try:
        yield info
    finally:
        podman(*runtime, "rm", "--force", "--time", "0", name, check=False, env=podman_env)


def _logs(name: str, env: dict[str, str]) -> str:
    assert PODMAN is not None
    proc = subprocess.run([PODMAN, "logs", name], capture_output=True, text=True, env=env, timeout=60)
    return (proc.stdout + proc.stderr)[-6000:]


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_image_serves_as_non_root_and_drains_on_sigterm(
    container: dict[str, object], podman_env: dict[str, str]
) -> None:
    name, base = str(container["name"]), str(container["http"])
    runtime = list(container["runtime"])  # type: ignore[call-overload]
    wait_for(
        lambda: _ready(base),
        timeout=START_TIMEOUT,
        what="the container's /readyz",
        interval=0.5,
        describe=lambda: _logs(name, podman_env),
    )

    # the sample models, filled into the empty repository volume from the image's prebuilt bundles
    answer = requests.post(
        f"{base}/models/iris/methods/Classify",
        json={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model-Name"] == "iris"
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "alive"}

    # the admin token is the mounted file's: a wrong one is refused, the right one gets through to 404
    wrong = requests.delete(f"{base}/models/no-such-model", headers={"Authorization": "Bearer x"}, timeout=10)
    assert wrong.status_code == 403
    right = requests.delete(
        f"{base}/models/no-such-model", headers={"Authorization": f"Bearer {container['token']}"}, timeout=10
    )
    assert right.status_code == 404, right.text

    with grpc.insecure_channel(str(container["grpc"])) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    # every process of the container runs as the image's user, none as root
    users = podman(*runtime, "top", name, "user", "args", env=podman_env).splitlines()[1:]
    assert users and all(line.split()[0] != "root" for line in users), users
    inspected = json.loads(podman("image", "inspect", IMAGE, env=podman_env))[0]
    assert inspected["Config"]["User"].split(":")[0] == "10001"
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])

    # HEALTHCHECK, run as the runtime would
    podman(*runtime, "healthcheck", "run", name, env=podman_env)

    # SIGTERM: tini hands it to serve, which drains and exits 0 well within stop_timeout
    podman(*runtime, "stop", "--time", "60", name, timeout=120, env=podman_env)
    state = json.loads(podman("inspect", name, env=podman_env))[0]["State"]
    assert state["ExitCode"] == 0, _logs(name, podman_env)
