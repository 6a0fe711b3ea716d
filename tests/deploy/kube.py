"""kubectl for the deployment tests: rendering kustomizations, and `kubectl apply --dry-run=client` with
no cluster.

Client-side dry run still asks an API server which resource each kind is (discovery: /api, /apis) and
whether the object exists; with no server it stops at "connection refused", whatever `--validate` says.
So `discovery_server` answers exactly those questions, for the API groups and versions the manifests use
as Kubernetes >= 1.24 and KServe publish them, and reports every object as absent: kubectl then runs its
whole client-side apply (decoding each document into its typed object, mapping kind to resource,
namespacing, the last-applied annotation) and prints "<kind>/<name> created (dry run)". Schema
validation (`--validate=true`) needs the server's OpenAPI document, which is not available offline.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KUBECTL = shutil.which("kubectl")

MIN_KUSTOMIZE = (4, 0)
"""The overlays use `resources` for folders and `patches`: kustomize 4 (kubectl >= 1.21). Debian 12's
kubernetes-client is kubectl 1.20, which embeds kustomize 2.0.3."""

# (group, version) -> [(resource, kind, namespaced)], as the Kubernetes and KServe APIs serve them
API_RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [
        ("services", "Service", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("secrets", "Secret", True),
        ("configmaps", "ConfigMap", True),
        ("namespaces", "Namespace", False),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("autoscaling", "v2"): [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    ("serving.kserve.io", "v1beta1"): [("inferenceservices", "InferenceService", True)],
    ("serving.kserve.io", "v1alpha1"): [
        ("servingruntimes", "ServingRuntime", True),
        ("clusterservingruntimes", "ClusterServingRuntime", False),
    ],
}


def kubectl_version() -> dict[str, Any]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(out.stdout))


def kustomize_version() -> tuple[int, ...] | None:
    """The kustomize kubectl embeds (None: too old to say, as kubectl 1.20)."""
    found = re.match(r"v?(\d+)\.(\d+)", kubectl_version().get("kustomizeVersion") or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def kustomize(folder: Path) -> str:
    """`kubectl kustomize folder`: the rendered manifests (fails the test with kubectl's message)."""
    assert KUBECTL is not None
    proc = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {folder} failed:\n{proc.stderr}"
    return proc.stdout


def dry_run_apply(server: str, manifests: str, cache_dir: Path) -> list[str]:
    """`kubectl apply --dry-run=client --validate=false -f -` against ``server``: kubectl's output lines."""
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "--server", server, "--cache-dir", str(cache_dir), "--request-timeout", "20s"]
        + ["apply", "--dry-run=client", "--validate=false", "-f", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"kubectl apply --dry-run=client refused the manifests:\n{proc.stderr}"
    return proc.stdout.splitlines()


class _Discovery(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        elif path == "/apis":
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups()})
        elif (listed := _resource_list(path)) is not None:
            self._send(200, listed)
        else:  # an object (or anything else): absent, so apply creates it
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "message": f"{path} not found",
                    "code": 404,
                },
            )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        pass


def _groups() -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = {}
    for group, version in API_RESOURCES:
        if group:
            groups.setdefault(group, []).append(version)
    return [
        {
            "name": name,
            "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
        }
        for name, versions in groups.items()
    ]


def _resource_list(path: str) -> dict[str, Any] | None:
    for (group, version), resources in API_RESOURCES.items():
        if path == (f"/apis/{group}/{version}" if group else f"/api/{version}"):
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [
                    {
                        "name": name,
                        "singularName": kind.lower(),
                        "namespaced": namespaced,
                        "kind": kind,
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    }
                    for name, kind, namespaced in resources
                ],
            }
    return None


@contextmanager
def discovery_server() -> Iterator[str]:
    """An HTTP endpoint answering API discovery (see the module docstring); yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    thread = threading.Thread(target=server.serve_forever, name="fake-discovery", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
