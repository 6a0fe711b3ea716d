"""MLServer as the peer of the benchmarks: an sklearn iris model served by MLServer.

MLServer lives in its own virtualenv (build/mlserver-venv) so its protobuf/grpcio pins never touch the
main environment. `start_mlserver()` creates the venv when missing, trains and saves the model (sklearn
ships the iris data), writes settings with `parallel_workers: 0`, starts `mlserver start` on free
ports and returns them. Used by bench/http_bench.py and bench/grpc_bench.py.

    python bench/mlserver_peer.py          # start it, print the ports, serve until Ctrl-C
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "mlserver-venv"
PACKAGES = ["mlserver", "mlserver-sklearn", "scikit-learn", "joblib"]

TRAIN = r"""
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
x, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(x, y)
joblib.dump(model, sys.argv[1])
"""


@dataclass
class MLServerPeer:
    """A running MLServer: its ports, model name and process."""

    http_port: int
    grpc_port: int
    model: str
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def infer_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v2/models/{self.model}/infer"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create build/mlserver-venv with MLServer + sklearn if missing; returns its python."""
    py = venv_python()
    if (
        py.exists()
        and subprocess.run(
            [str(py), "-c", "import mlserver, mlserver_sklearn, sklearn"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return py
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlserver(
    workdir: Path | None = None, model: str = "iris-sklearn", timeout: float = 180
) -> MLServerPeer:
    """Start MLServer serving an sklearn iris model on free HTTP and gRPC ports; waits until ready."""
    py = ensure_venv()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="mlserver-peer-"))
    model_dir = workdir / model
    model_dir.mkdir(parents=True, exist_ok=True)
    model_file = model_dir / "model.joblib"
    if not model_file.exists():
        subprocess.run([str(py), "-c", TRAIN, str(model_file)], check=True)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (workdir / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "parallel_workers": 0,
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "host": "127.0.0.1",
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": model,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    mlserver = VENV / "bin" / "mlserver"
    log = open(workdir / "mlserver.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.Popen(
        [str(mlserver), "start", str(workdir)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    peer = MLServerPeer(http_port, grpc_port, model, proc, workdir)
    deadline = time.monotonic() + timeout
    ready = f"http://127.0.0.1:{http_port}/v2/models/{model}/ready"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlserver exited ({proc.returncode}); see {workdir / 'mlserver.log'}")
        try:
            with urllib.request.urlopen(ready, timeout=2) as r:
                if r.status == 200:
                    return peer
        except OSError:
            pass
        time.sleep(0.3)
    peer.stop()
    raise RuntimeError(f"mlserver not ready after {timeout}s; see {workdir / 'mlserver.log'}")


def v2_iris_request(rows: int = 1) -> dict:
    """An Open Inference Protocol request with `rows` iris rows (the same flower as the other benches)."""
    data = [5.1, 3.5, 1.4, 0.2] * rows
    return {"inputs": [{"name": "input-0", "shape": [rows, 4], "datatype": "FP64", "data": data}]}


if __name__ == "__main__":
    peer = start_mlserver()
    print(
        json.dumps(
            {
                "http_port": peer.http_port,
                "grpc_port": peer.grpc_port,
                "model": peer.model,
                "infer_url": peer.infer_url,
                "workdir": str(peer.workdir),
            }
        ),
        flush=True,
    )
    try:
        peer.process.wait()
    except KeyboardInterrupt:
        peer.stop()
