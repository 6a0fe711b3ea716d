"""HTTP servers side by side: the same Flask app (Java iris, JSON) under gunicorn as `serve` runs it,
under tuned gunicorn settings, under granian's WSGI interface, under bjoern and uWSGI (when installed),
each with its bare-app ceiling (a fixed answer, bench/bare_servers.py's app). Load from `hey`.

    python bench/http_servers_bench.py [--duration 8] [--concurrency 16] [--workers 2] [--only NAME,...]

Every server serves the same repository (filled by a first `serve` run) with `--workers` processes,
each building the app after the fork (runner.http.gunicorn_app.build_worker_app: its own registry and
JVM). Prints a table (requests/s, p50, p99, non-2xx, ratio to gunicorn as `serve` runs it) and the load
average; results go to bench/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import http_bench  # noqa: E402
from bare_servers import bare_app  # noqa: E402

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PREDICT = "/models/iris/methods/Classify"


# ------------------------------------------------------------------------------ the apps (in a worker)


def _settings() -> Any:
    from runner.settings import Settings

    return Settings(
        repo=Path(os.environ["BENCH_REPO"]),
        workers=int(os.environ.get("BENCH_WORKERS", "2")),
        threads=int(os.environ.get("BENCH_THREADS", "8")),
        jvm_options=_jvm_options(),
    )


def _jvm_options() -> tuple[str, ...]:
    return tuple(os.environ.get("BENCH_JVM_OPTIONS", "").split())


def model_app() -> Any:
    """The Flask app of one worker (its own registry and JVM), as `serve` builds it."""
    from runner.http.gunicorn_app import build_worker_app

    return build_worker_app(_settings())


def bare() -> Any:
    return bare_app


APPS: dict[str, Callable[[], Any]] = {"model": model_app, "bare": bare}


# ------------------------------------------------------------------------------ the servers (launcher)


def run_gunicorn(app: str, port: int, workers: int, threads: int, tuning: dict[str, Any]) -> None:
    from runner.http.gunicorn_app import HttpServer
    from runner.settings import Settings

    class Tuned(HttpServer):
        def load_config(self) -> None:
            super().load_config()
            for key, value in tuning.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return bare_app if app == "bare" else super().load()  # super: build_worker_app

    settings = Settings(
        repo=Path(os.environ.get("BENCH_REPO", ".")),
        http_port=port,
        workers=workers,
        threads=threads,
        jvm_options=_jvm_options(),
    )
    Tuned(settings, on_ready=lambda p: print(f"port={p}", flush=True), log_level="warning").run()


def run_granian(app: str, port: int, workers: int, threads: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    if app == "model":  # as `serve --http-server granian` runs it
        from runner.http.granian_app import GranianHttpServer
        from runner.settings import Settings

        settings = Settings(
            repo=Path(os.environ["BENCH_REPO"]),
            http_port=port,
            workers=workers,
            threads=threads,
            jvm_options=_jvm_options(),
        )
        GranianHttpServer(settings, log_level="warning").run()
        return
    Server(
        f"http_servers_bench:{APPS[app].__name__}",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        factory=True,
        log_level="warning",  # type: ignore[arg-type]
        working_dir=BENCH,
    ).serve()


def run_bjoern(app: str, port: int, workers: int) -> None:
    import bjoern  # type: ignore[import-untyped]

    from runner.serving.lifecycle import die_with_parent

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # for sigwait below
    children = []
    parent = os.getpid()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the app (and its JVM) after the fork; one thread per process
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            die_with_parent(parent)
            wsgi = APPS[app]()
            bjoern.run(wsgi, "127.0.0.1", port, reuse_port=True)
            os._exit(0)
        children.append(pid)
    signal.sigwait(stop_signals)
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


def uwsgi_command(app: str, port: int, workers: int, threads: int, tmp: Path) -> list[str]:
    wsgi_file = tmp / f"uwsgi_{app}.py"
    wsgi_file.write_text(
        f"import sys\nsys.path[:0] = [{str(ROOT)!r}, {str(BENCH)!r}]\n"
        f"from http_servers_bench import {APPS[app].__name__}\napplication = {APPS[app].__name__}()\n"
    )
    return [
        "uwsgi",
        "--http-socket",
        f"127.0.0.1:{port}",
        "--master",
        "--processes",
        str(workers),
        "--threads",
        str(threads),
        "--lazy-apps",  # the app (and its JVM) in each worker, after the fork
        "--wsgi-file",
        str(wsgi_file),
        "--http-keepalive",
        "--add-header",
        "Connection: Keep-Alive",
        "--die-on-term",
        "--disable-logging",
        "--listen",
        "1024",
    ]


# ------------------------------------------------------------------------------ measuring


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answering(url: str, proc: subprocess.Popen[Any], timeout: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = requests.post(url, json=FLOWER, timeout=5)
            if r.status_code == 200:
                # every worker: a few more answers in a row (each worker loads its own JVM)
                if all(requests.post(url, json=FLOWER, timeout=5).status_code == 200 for _ in range(20)):
                    return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not answer")


def hey(url: str, duration: float, concurrency: int, tmp: Path) -> dict[str, Any]:
    """hey posting FLOWER as JSON (bench/http_bench.py's runner)."""
    return http_bench.hey(url, json.dumps(FLOWER).encode(), "application/json", duration, concurrency, tmp)


def fill_repository(repo: Path, tmp: Path) -> None:
    """Publish the sample iris bundle with a short `serve` run (it validates and publishes, then stops)."""
    from http_bench import start_runner

    from runner.samples import build_sample_bundles

    bundles = build_sample_bundles()
    proc, _info = start_runner([bundles["iris"]], 1, 8, tmp)
    http_bench.stop(proc)
    assert (repo / "models" / "iris").exists() or any(repo.rglob("iris")), "iris not published"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated row names (default: all)")
    parser.add_argument(
        "--jvm-options", default="", help="JVM options of the model workers (space-separated)"
    )
    parser.add_argument("--serve", nargs="*", help=argparse.SUPPRESS)  # launcher: SERVER APP PORT
    args = parser.parse_args()
    if args.serve:
        launch(args.serve, args.workers, args.threads)
        return

    tmp = Path(tempfile.mkdtemp(prefix="http-servers-bench-"))
    repo = tmp / "repo"
    fill_repository(repo, tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    env.update(
        BENCH_REPO=str(repo),
        BENCH_WORKERS=str(args.workers),
        BENCH_THREADS=str(args.threads),
        BENCH_JVM_OPTIONS=args.jvm_options,
    )

    # name -> (launcher arguments or a command, apps measured)
    gunicorn_rows = {
        "gunicorn (serve's config: buffering gthread 2x8, keepalive 5)": "serve",
        "gunicorn tuned: buffering gthread 2x4": "t4",
        "gunicorn tuned: buffering gthread 2x16, keepalive 75, backlog 4096": "t16",
        "gunicorn tuned: plain gthread 2x8": "plain",
    }
    rows: list[tuple[str, str, list[str] | None]] = []
    for label, tuning in gunicorn_rows.items():
        rows.append((label, f"gunicorn:{tuning}", None))
    rows.append(
        (
            f"granian {_version('granian')} WSGI (`serve --http-server granian`), 2 workers x {args.threads} blocking threads",
            "granian",
            None,
        )
    )
    rows.append((f"bjoern {_version('bjoern')}, 2 processes (1 thread each, SO_REUSEPORT)", "bjoern", None))
    rows.append(
        (f"uWSGI {_version('pyuwsgi')} (pyuwsgi), 2 processes x {args.threads} threads", "uwsgi", None)
    )
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    results: list[tuple[str, str, dict[str, Any]]] = []
    loads = [os.getloadavg()[0]]
    for label, server, _ in rows:
        if only and server.split(":")[0] not in only and server not in only:
            continue
        if server in ("bjoern", "uwsgi") and _version("bjoern" if server == "bjoern" else "pyuwsgi") == "?":
            print(f"skipped (not installed): {label}", flush=True)
            continue
        for app in ("model", "bare"):
            port = free_port()
            if server == "uwsgi":
                cmd = uwsgi_command(app, port, args.workers, args.threads, tmp)
            else:
                cmd = [
                    sys.executable,
                    __file__,
                    "--workers",
                    str(args.workers),
                    "--threads",
                    str(args.threads),
                ]
                cmd += ["--serve", server, app, str(port)]
            log = open(tmp / f"{server.replace(':', '-')}-{app}.log", "wb")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH)
            try:
                url = f"http://127.0.0.1:{port}{PREDICT}"
                wait_answering(url, proc)
                hey(url, 1.0, args.concurrency, tmp)  # warm-up
                result = hey(url, args.duration, args.concurrency, tmp)
                loads.append(os.getloadavg()[0])
            except Exception as err:  # noqa: BLE001 - a server that does not run here is reported
                print(f"{label} [{app}]: failed: {err}; log {log.name}", flush=True)
                continue
            finally:
                http_bench.stop(proc)
            results.append((label, app, result))
            print(
                f"{label} [{app}]: {result['rps']:,.0f} req/s p50 {result['p50_ms']:.2f} ms "
                f"p99 {result['p99_ms']:.2f} ms non-2xx {result['non_2xx']}",
                flush=True,
            )

    base = next((r["rps"] for lbl, app, r in results if app == "model" and "serve's config" in lbl), None)
    print(
        f"\nload average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    )
    print("| server | app | req/s | p50 ms | p99 ms | non-2xx | × serve's gunicorn |")
    print("|---|---|---|---|---|---|---|")
    for label, app, r in results:
        ratio = f"{r['rps'] / base:.2f}" if base and app == "model" else ""
        print(
            f"| {label} | {'Java iris JSON' if app == 'model' else 'bare app'} | {r['rps']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} | {ratio} |"
        )


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def launch(spec: list[str], workers: int, threads: int) -> None:
    server, app, port = spec[0], spec[1], int(spec[2])
    if server.startswith("gunicorn:"):
        tunings: dict[str, dict[str, Any]] = {
            "serve": {},
            "t4": {"threads": 4},
            "t16": {"threads": 16, "keepalive": 75, "backlog": 4096},
            "plain": {"worker_class": "gthread"},
        }
        run_gunicorn(app, port, workers, threads, tunings[server.split(":", 1)[1]])
    elif server == "granian":
        run_granian(app, port, workers, threads)
    elif server == "bjoern":
        run_bjoern(app, port, workers)
    else:
        raise SystemExit(f"unknown server {server}")


if __name__ == "__main__":
    main()
