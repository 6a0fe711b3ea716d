"""A real `serve` configured as the production Deployment's container is: its rendered environment (the
token file where the Secret is mounted, the pod's name as host id, the drain), probed as the kubelet
would probe it, and stopped with SIGTERM within the grace period the manifest gives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy import kube
from tests.e2e.serve_process import start_serve
from tests.waiting import wait_for

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
POD_NAME = "model-runner-7d4b9c6f5-x2x9z"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(kube.KUBECTL is None, reason="kubectl not installed (.ci/setup installs it)"),
]


@pytest.fixture(scope="module")
def pod_spec() -> dict[str, Any]:
    version = kube.kustomize_version()
    if version is None or version < kube.MIN_KUSTOMIZE:
        pytest.skip("kubectl's kustomize is older than 4: deploy/k8s needs kubectl >= 1.21")
    docs = [d for d in yaml.safe_load_all(kube.kustomize(K8S / "overlays" / "production")) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return dict(deployment["spec"]["template"]["spec"])


def test_serve_configured_as_the_pod_answers_its_probes_and_stops_within_the_grace(
    pod_spec: dict[str, Any], tmp_path: Path
) -> None:
    container = pod_spec["containers"][0]
    token_mount = next(m for m in container["volumeMounts"] if m["name"] == "admin-token")["mountPath"]
    token = "token-from-the-secret"
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    env: dict[str, str] = {}
    for var in container["env"]:
        if "valueFrom" in var:  # the downward API: the pod's name
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            env[var["name"]] = POD_NAME
        else:
            value = str(var["value"])
            if value.startswith(token_mount + "/"):  # the Secret's file, mounted here instead
                (secret_dir / Path(value).name).write_text(token + "\n")
                value = str(secret_dir / Path(value).name)
            env[var["name"]] = value
    # This machine's ports and memory: ports free ones, repo tmp, processes 1+1 (start_serve's flags
    # override those); the rest, drain and token included, as rendered.
    env.pop("MODEL_RUNNER_JVM_MAX_HEAP", None)
    serve = start_serve([], tmp_path, workers=1, grpc_processes=1, env_extra=env)
    try:
        base = serve.base
        # startup probe: the gRPC health service's overall status, retried as the kubelet does (serve's
        # ready file can come a moment before the gRPC processes accept connections)
        wait_for(
            lambda: _grpc_serving(f"127.0.0.1:{serve.info['grpc_port']}"),
            timeout=60,
            what="gRPC health SERVING",
            interval=0.2,
        )
        assert (
            requests.get(base + container["livenessProbe"]["httpGet"]["path"], timeout=5).status_code == 200
        )
        assert (
            requests.get(base + container["readinessProbe"]["httpGet"]["path"], timeout=5).status_code == 200
        )

        # the token is the Secret file's, and the records name the pod
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.delete(f"{base}/models/no-such-model", headers=auth, timeout=10).status_code == 404
        served_by = requests.get(f"{base}/models/iris", timeout=10).json()["served_by"]
        assert served_by and all(POD_NAME in str(process) for process in served_by), served_by
    finally:
        started = time.monotonic()
        code = serve.stop(timeout=pod_spec["terminationGracePeriodSeconds"])
        took = time.monotonic() - started
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert code == 0, serve.log_text()[-4000:]
    assert pre_stop + took < pod_spec["terminationGracePeriodSeconds"]


def _grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
