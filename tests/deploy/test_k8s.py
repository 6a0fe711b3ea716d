"""deploy/k8s: every file parses, each kustomization renders, kubectl's client-side apply accepts every
rendered manifest, and what the manifests promise matches what `serve` does (ports, probe paths, the
drain, the shared volume, the token file, a non-root user)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from flask import Flask

from runner.http.health import HealthRoutes
from runner.http.oip import OipRoutes
from runner.serving.lifecycle import CLOSE_GRACE
from runner.settings import ENV_PREFIX, Settings
from tests.deploy import kube

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production", "kserve")
APP_LABELS = {"app.kubernetes.io/name": "model-runner"}

needs_kubectl = pytest.mark.skipif(
    kube.KUBECTL is None, reason="kubectl not installed (.ci/setup installs it)"
)


def documents(text: str, where: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for i, doc in enumerate(docs):
        assert isinstance(doc, dict) and doc.get("kind") and doc.get("apiVersion"), f"{where} #{i}: {doc!r}"
    return docs


def yaml_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container_settings(container: dict[str, Any]) -> Settings:
    """The settings `serve` reads from the container's literal environment (checked by its own rules)."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return Settings.from_env(env)


def flask_routes(blueprint: Any) -> set[str]:
    app = Flask("routes")
    app.register_blueprint(blueprint)
    return {rule.rule for rule in app.url_map.iter_rules()}


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in named, f"probe port {port!r} is not a port of container {container['name']}"
    return int(named[port])


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    if kube.KUBECTL is None:
        pytest.skip("kubectl not installed (.ci/setup installs it)")
    version = kube.kustomize_version()
    if version is None or version < kube.MIN_KUSTOMIZE:
        pytest.skip(
            f"kubectl {kube.kubectl_version()['clientVersion']['gitVersion']} embeds kustomize "
            f"{version or '< 4'}: deploy/k8s needs kustomize >= 4 (kubectl >= 1.21)"
        )
    return {name: documents(kube.kustomize(K8S / name), name) for name in KUSTOMIZATIONS}


# ------------------------------------------------------------------------------------------- syntax


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) for d in docs), f"{path}: not a mapping per document"
    # YAML 1.1 reads unquoted yes/no/on/off/true as booleans: a name or value meant as text must be quoted
    for doc in docs:
        metadata = doc.get("metadata") or {}
        assert isinstance(metadata.get("name", ""), str), f"{path}: metadata.name is not a string"


@needs_kubectl
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomization_renders(name: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert rendered[name], f"{name} renders nothing"


@needs_kubectl
def test_kubectl_client_dry_run_accepts_every_rendered_manifest(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    with kube.discovery_server() as server:
        for name in KUSTOMIZATIONS:
            lines = kube.dry_run_apply(server, yaml.safe_dump_all(rendered[name]), tmp_path / "cache")
            expected = {
                f"{d['kind'].lower()}{_group_suffix(d)}/{d['metadata']['name']} created (dry run)"
                for d in rendered[name]
            }
            assert set(lines) == expected, f"{name}: kubectl said {lines}"


def _group_suffix(doc: dict[str, Any]) -> str:
    group = doc["apiVersion"].rpartition("/")[0]
    return f".{group}" if group else ""


@needs_kubectl
def test_kubectl_dry_run_accepts_the_base_files_as_they_are(tmp_path: Path) -> None:
    """The plain files too (any kubectl, even one whose kustomize is too old for the overlays)."""
    files = [p for p in sorted((K8S / "base").glob("*.yaml")) if p.name != "kustomization.yaml"]
    with kube.discovery_server() as server:
        lines = kube.dry_run_apply(server, "\n---\n".join(p.read_text() for p in files), tmp_path / "c")
    assert len(lines) == sum(len(documents(p.read_text(), str(p))) for p in files), lines


# ---------------------------------------------------------------------------------------- semantics


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_ports_are_the_ones_serve_uses(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = rendered[f"overlays/{overlay}"]
    pod = one(docs, "Deployment", "model-runner")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    container = pod["containers"][0]
    settings = container_settings(container)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.http_port, "grpc": settings.grpc_port}
    assert settings.http_host == "0.0.0.0"  # reachable from the Service, not only from the pod

    health = flask_routes(HealthRoutes(cast(Any, None)).blueprint())
    live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and live["path"] in health
    assert ready["path"] == "/readyz" and ready["path"] in health
    assert port_number(container, live["port"]) == settings.http_port
    assert port_number(container, ready["port"]) == settings.http_port
    # the gRPC health service's overall status ("") is SERVING once every current version is loaded
    grpc_probe = container["startupProbe"]["grpc"]
    assert grpc_probe["port"] == settings.grpc_port and grpc_probe.get("service", "") == ""

    service = one(docs, "Service", "model-runner")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"http": "http", "grpc": "grpc"}
    for doc in docs:
        selector = (doc.get("spec") or {}).get("selector")
        if doc["kind"] == "Service":
            assert selector == APP_LABELS
        elif doc["kind"] in ("Deployment", "PodDisruptionBudget"):
            assert selector == {"matchLabels": APP_LABELS}
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert APP_LABELS.items() <= labels.items()


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_environment_names_known_settings(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    container = one(rendered[f"overlays/{overlay}"], "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    known = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    known.add(ENV_PREFIX + "HOST_ID")  # the fleet's host identity (runner/settings.py `host_id`)
    names = [e["name"] for e in container["env"]]
    assert not [n for n in names if n.startswith(ENV_PREFIX) and n not in known]
    host_id = next(e for e in container["env"] if e["name"] == ENV_PREFIX + "HOST_ID")
    assert host_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_covers_prestop_and_drain(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    pod = one(rendered[f"overlays/{overlay}"], "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = container_settings(container)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    pre_stop = float(command[1])
    # serve's own bound on a stopping worker (runner/http/gunicorn_app.py graceful_timeout)
    drain = math.ceil(settings.stop_timeout + CLOSE_GRACE + 2)
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain
    assert settings.stop_timeout >= settings.predict_timeout  # calls in flight get their whole deadline


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shared_repository_volume(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[f"overlays/{overlay}"]
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    settings = container_settings(pod["containers"][0])
    claim = one(docs, "PersistentVolumeClaim")
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert Path(mount["mountPath"]) == settings.repo and not mount.get("readOnly")
    scales = deployment["spec"]["replicas"] > 1 or any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)
    if scales:  # every replica mounts the one repository read-write
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_base_and_production_claim_is_read_write_many(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("base", "overlays/production"):
        assert one(rendered[name], "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_admin_token_comes_from_the_secret(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered[f"overlays/{overlay}"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    token_file = container_settings(container).admin_token_file
    assert token_file is not None
    secret_volume = next(v for v in pod["volumes"] if "secret" in v)
    mount = next(m for m in container["volumeMounts"] if m["name"] == secret_volume["name"])
    assert mount.get("readOnly") and Path(mount["mountPath"]) == token_file.parent
    items = secret_volume["secret"]["items"]
    assert [i["path"] for i in items] == [token_file.name]
    name, key = secret_volume["secret"]["secretName"], items[0]["key"]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if overlay == "dev":  # generated with a throw-away token
        assert key in one(secrets, "Secret", name)["data"]
    else:  # created by the operator (docs/deploy.md): applying the manifests never replaces it
        assert not secrets
        assert f"kubectl create secret generic {name}" in (ROOT / "docs" / "deploy.md").read_text()


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runs_as_the_image_user_not_root(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    pod = one(rendered[f"overlays/{overlay}"], "Deployment")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert user and int(user.group(1)) == security["runAsUser"]
    container_security = pod["containers"][0]["securityContext"]
    assert container_security["allowPrivilegeEscalation"] is False
    assert container_security["capabilities"]["drop"] == ["ALL"]


@needs_kubectl
def test_replicas_disruption_budget_and_autoscaler(rendered: dict[str, list[dict[str, Any]]]) -> None:
    dev, production = rendered["overlays/dev"], rendered["overlays/production"]
    assert one(dev, "Deployment")["spec"]["replicas"] == 1
    assert not [d for d in dev if d["kind"] == "HorizontalPodAutoscaler"]
    deployment = one(production, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(production, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model-runner"}
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] < hpa["maxReplicas"]
    assert one(production, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert not image.endswith(":latest"), image
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]


@needs_kubectl
def test_kserve_runtime_serves_the_open_inference_protocol(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["kserve"]
    runtime = one(docs, "ServingRuntime", "model-runner")["spec"]
    assert set(runtime["protocolVersions"]) == {"v2", "grpc-v2"}
    container = runtime["containers"][0]
    settings = container_settings(container)
    assert container["ports"][0]["containerPort"] == settings.http_port
    ready = container["readinessProbe"]["httpGet"]
    oip_routes = flask_routes(OipRoutes(cast(Any, None), cast(Any, None), 1.0).blueprint())
    assert ready["path"] in oip_routes and ready["port"] == settings.http_port
    formats = {f["name"] for f in runtime["supportedModelFormats"]}
    services = {
        d["metadata"]["name"]: d["spec"]["predictor"]["model"]
        for d in docs
        if d["kind"] == "InferenceService"
    }
    assert set(services) == {"iris", "iris-grpc"}
    for model in services.values():
        assert model["runtime"] == "model-runner" and model["modelFormat"]["name"] in formats
    assert services["iris"]["protocolVersion"] == "v2"
    grpc = services["iris-grpc"]
    assert grpc["protocolVersion"] == "grpc-v2"
    assert grpc["ports"] == [{"name": "h2c", "containerPort": settings.grpc_port, "protocol": "TCP"}]
    assert grpc["readinessProbe"]["grpc"]["port"] == settings.grpc_port
