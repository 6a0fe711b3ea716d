"""Issue 15's HTTP targets, side by side in one run: model-runner against the floor (the same iris JAR
behind the JDK's own HTTP server, built and run here), the bare-app ceilings of its HTTP servers and
MLServer. Load from `hey` (keep-alive, --concurrency connections).

    python bench/speed_bench.py [--duration 8] [--rounds 3] [--concurrency 16] [--only ROW,...]

Rows (--only takes these keys):
  floor          bench/floor/IrisFloor.java: com.sun.net.httpserver, 16 threads, TCP_NODELAY, the iris
                 sample JAR called directly, JSON by hand (compiled with javac into a temporary folder)
  granian-json   `serve --http-server granian`, --workers, Java iris, JSON
  granian-proto  the same server, Java iris, protobuf
  inline-json    `serve --http-server granian --calls inline` (timed calls on the request's thread)
  inline-proto   the same server, protobuf
  gunicorn-json  `serve` (gunicorn, the default), --workers, Java iris, JSON
  gunicorn-inline-json  the same with --calls inline
  gunicorn-bare  a fixed-answer WSGI app under serve's gunicorn config (bench/bare_servers.py)
  granian-bare   the same app under granian, --workers (bench/http_servers_bench.py's launcher)
  python-json    `serve --http-server granian`, Python iris (iris-python), JSON
  python-inline-json  the --calls inline server, Python iris, JSON
  mlserver       MLServer defaults (parallel_workers 0), sklearn iris, V2 JSON (bench/mlserver_peer.py)

Every server runs for the whole run and the rows take turns, round after round (after one warm-up
turn each), so that load from elsewhere hits all alike; the median round is reported. Before measuring,
the floor's answers are checked against model-runner's for the sample flowers. Prints one table
(req/s, p50, p99, non-2xx, ratios to the floor and to MLServer), the issue's targets (met or not, with
the figures) and the 1-minute load average before and after.

The floor speaks JSON only: the iris sample's API takes and returns plain Java objects (IrisInput,
IrisPrediction), and its bundle has no protobuf-java, so a protobuf floor would mean a hand-written
wire codec or an extra library; the protobuf target is measured against the JSON floor, as the issue
states it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import requests
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import http_bench  # noqa: E402
import http_servers_bench  # noqa: E402
from mlserver_peer import start_mlserver, v2_iris_request  # noqa: E402

from runner.contract import Contract  # noqa: E402
from runner.samples import build_sample_bundles  # noqa: E402
from runner.samples.build import IRIS_EXAMPLES  # noqa: E402

FLOWER = http_bench.FLOWER
PREDICT = "/models/iris/methods/Classify"
FLOOR_SOURCE = BENCH / "floor" / "IrisFloor.java"
FLOOR_MODEL_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
"""The class IrisFloor.java imports; the iris bundle's metadata.json must name it as its entry point."""
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    server: str
    """Key of the server answering it (see Servers)."""
    path: str
    body: bytes
    media: str


def rows(workers: int, threads: int) -> list[Row]:
    contract = Contract.compile((ROOT / "protos" / "iris.proto").read_text())
    pb = contract.input_class("Classify")(**FLOWER).SerializeToString()
    js = json.dumps(FLOWER).encode()
    mr = f"{workers} workers x {threads} threads"
    return [
        Row("floor", "floor: JDK HttpServer, 16 threads, iris JAR, JSON", "floor", PREDICT, js, JSON),
        Row("granian-json", f"model-runner granian {mr}, Java iris JSON", "granian", PREDICT, js, JSON),
        Row(
            "granian-proto",
            f"model-runner granian {mr}, Java iris protobuf",
            "granian",
            PREDICT,
            pb,
            PROTOBUF,
        ),
        Row(
            "inline-json",
            f"model-runner granian {mr} --calls inline, Java iris JSON",
            "granian-inline",
            PREDICT,
            js,
            JSON,
        ),
        Row(
            "inline-proto",
            f"model-runner granian {mr} --calls inline, Java iris protobuf",
            "granian-inline",
            PREDICT,
            pb,
            PROTOBUF,
        ),
        Row("gunicorn-json", f"model-runner gunicorn {mr}, Java iris JSON", "gunicorn", PREDICT, js, JSON),
        Row(
            "gunicorn-inline-json",
            f"model-runner gunicorn {mr} --calls inline, Java iris JSON",
            "gunicorn-inline",
            PREDICT,
            js,
            JSON,
        ),
        Row(
            "gunicorn-bare",
            f"ceiling: bare app, serve's gunicorn config {mr}",
            "gunicorn-bare",
            PREDICT,
            js,
            JSON,
        ),
        Row("granian-bare", f"ceiling: bare app, granian {mr}", "granian-bare", PREDICT, js, JSON),
        Row(
            "python-json",
            f"model-runner granian {mr}, Python iris JSON",
            "granian",
            "/models/iris-python/methods/Classify",
            js,
            JSON,
        ),
        Row(
            "python-inline-json",
            f"model-runner granian {mr} --calls inline, Python iris JSON",
            "granian-inline",
            "/models/iris-python/methods/Classify",
            js,
            JSON,
        ),
        Row(
            "mlserver",
            "MLServer defaults (parallel_workers 0), sklearn iris",
            "mlserver",
            "",  # the peer's own URL
            json.dumps(v2_iris_request()).encode(),
            JSON,
        ),
    ]


# ------------------------------------------------------------------------------ the servers


@contextmanager
def floor_server(bundle: Path, tmp: Path) -> Iterator[str]:
    """Compile bench/floor/IrisFloor.java against the bundle's JAR and run it; yields its base URL."""
    entry_point = json.loads((bundle / "metadata.json").read_text()).get("entry_point")
    if entry_point != FLOOR_MODEL_CLASS:
        raise SystemExit(
            f"{bundle / 'metadata.json'}: entry_point is {entry_point!r}, but {FLOOR_SOURCE} calls "
            f"{FLOOR_MODEL_CLASS}: update the floor with the sample"
        )
    classpath = os.pathsep.join(
        [str(bundle / "model.jar"), *map(str, sorted((bundle / "lib").glob("*.jar")))]
    )
    classes = tmp / "floor-classes"
    classes.mkdir()
    subprocess.run(["javac", "-d", str(classes), "-cp", classpath, str(FLOOR_SOURCE)], check=True)
    proc = subprocess.Popen(
        [
            "java",
            "-Dsun.net.httpserver.nodelay=true",
            "-cp",
            os.pathsep.join([str(classes), classpath]),
            "IrisFloor",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.fullmatch(r"port=(\d+)\s*", proc.stdout.readline())
        if not match:
            raise SystemExit(f"the floor did not start (exit code {proc.poll()})")
        base = f"http://127.0.0.1:{match.group(1)}"
        http_servers_bench.wait_answering(base + PREDICT, proc)
        yield base
    finally:
        http_bench.stop(proc)


@contextmanager
def runner_server(
    bundles: list[Path], workers: int, threads: int, tmp: Path, http_server: str, *flags: str
) -> Iterator[str]:
    """`model-runner serve BUNDLES --http-server NAME [FLAGS]` (python -m runner serve); yields its base URL."""
    tmp.mkdir()
    proc, info = http_bench.start_runner(
        bundles, workers, threads, tmp, extra_args=["--http-server", http_server, *flags]
    )
    try:
        yield f"http://127.0.0.1:{info['http_port']}"
    finally:
        http_bench.stop(proc)


@contextmanager
def gunicorn_bare(workers: int, threads: int) -> Iterator[str]:
    proc, port = http_bench.start_bare_wsgi(workers, threads)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        http_bench.stop(proc)


@contextmanager
def granian_bare(workers: int, threads: int, tmp: Path) -> Iterator[str]:
    """bench/http_servers_bench.py's launcher: the bare app under granian's WSGI interface."""
    port = http_servers_bench.free_port()
    log = open(tmp / "granian-bare.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            http_servers_bench.__file__,
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--serve",
            "granian",
            "bare",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=BENCH,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        http_servers_bench.wait_answering(base + PREDICT, proc)
        yield base
    finally:
        http_bench.stop(proc)


@contextmanager
def mlserver(tmp: Path) -> Iterator[str]:
    peer = start_mlserver(tmp / "mlserver")
    try:
        yield peer.infer_url
    finally:
        peer.stop()


# ------------------------------------------------------------------------------ checking and measuring


def check_answers(servers: dict[str, str]) -> list[str]:
    """The floor's answers equal model-runner's (JSON, and protobuf decoded) for the sample flowers."""
    contract = Contract.compile((ROOT / "protos" / "iris.proto").read_text())
    output = contract.output_class("Classify")
    checked = []
    for flower in IRIS_EXAMPLES["Classify"]:
        floor = requests.post(servers["floor"] + PREDICT, json=flower, timeout=10)
        floor.raise_for_status()
        expected = floor.json()
        for server in ("granian", "gunicorn"):
            if server not in servers:
                continue
            answer = requests.post(servers[server] + PREDICT, json=flower, timeout=10)
            answer.raise_for_status()
            if answer.json() != expected:
                raise SystemExit(f"{server} answers {answer.json()} for {flower}, the floor {expected}")
            pb = requests.post(
                servers[server] + PREDICT,
                data=contract.input_class("Classify")(**flower).SerializeToString(),
                headers={"Content-Type": PROTOBUF, "Accept": PROTOBUF},
                timeout=10,
            )
            pb.raise_for_status()
            decoded = json_format.MessageToDict(
                output.FromString(pb.content), preserving_proto_field_name=True
            )
            if decoded != expected:
                raise SystemExit(f"{server} answers (protobuf) {decoded} for {flower}, the floor {expected}")
            checked.append(server)
        print(f"answers equal for {flower}: {expected}", flush=True)
    return sorted(set(checked))


def median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = dict(sorted(results, key=lambda r: r["rps"])[len(results) // 2])
    chosen["rounds_rps"] = [round(r["rps"]) for r in results]
    return chosen


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    return out.splitlines()[0] if out else "?"


def _mlserver_version() -> str:
    from mlserver_peer import venv_python

    out = subprocess.run(
        [str(venv_python()), "-c", "from importlib.metadata import version; print(version('mlserver'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def fastest_of(results: dict[str, dict[str, Any]], *keys: str) -> str:
    """The key of the fastest row run among ``keys`` (the first key when none ran)."""
    run = [k for k in keys if k in results]
    return max(run, key=lambda k: results[k]["rps"]) if run else keys[0]


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """The issue's HTTP targets: (target, met or None when a row is missing, the figures)."""
    r = results
    out: list[tuple[str, bool | None, str]] = []

    def target(name: str, needs: list[str], test: Callable[[], tuple[bool, str]]) -> None:
        missing = [k for k in needs if k not in r]
        if missing:
            out.append((name, None, f"rows not run: {', '.join(missing)}"))
        else:
            met, figures = test()
            out.append((name, met, figures))

    fastest = fastest_of(r, "granian-json", "inline-json", "gunicorn-json")
    target(
        f"Java JSON, fastest server ({fastest}) >= 50% of the floor",
        [fastest, "floor"],
        lambda: (
            r[fastest]["rps"] >= 0.5 * r["floor"]["rps"],
            f"{r[fastest]['rps']:,.0f} / {r['floor']['rps']:,.0f} = {r[fastest]['rps'] / r['floor']['rps']:.0%}",
        ),
    )
    target(
        f"Java JSON, fastest server ({fastest}) >= 5x MLServer",
        [fastest, "mlserver"],
        lambda: (
            r[fastest]["rps"] >= 5 * r["mlserver"]["rps"],
            f"{r[fastest]['rps']:,.0f} / {r['mlserver']['rps']:,.0f} = "
            f"{r[fastest]['rps'] / r['mlserver']['rps']:.2f}x",
        ),
    )
    target(
        f"Java JSON, fastest server ({fastest}): p99 no worse than the floor's and MLServer's",
        [fastest, "floor", "mlserver"],
        lambda: (
            r[fastest]["p99_ms"] <= min(r["floor"]["p99_ms"], r["mlserver"]["p99_ms"]),
            f"p99 {r[fastest]['p99_ms']:.2f} ms; floor {r['floor']['p99_ms']:.2f} ms, "
            f"MLServer {r['mlserver']['p99_ms']:.2f} ms",
        ),
    )
    gunicorn = fastest_of(r, "gunicorn-json", "gunicorn-inline-json")
    target(
        f"gunicorn, Java JSON ({gunicorn}) >= 90% of gunicorn's bare-app ceiling",
        [gunicorn, "gunicorn-bare"],
        lambda: (
            r[gunicorn]["rps"] >= 0.9 * r["gunicorn-bare"]["rps"],
            f"{r[gunicorn]['rps']:,.0f} / {r['gunicorn-bare']['rps']:,.0f} = "
            f"{r[gunicorn]['rps'] / r['gunicorn-bare']['rps']:.0%}",
        ),
    )
    proto = fastest_of(r, "granian-proto", "inline-proto")
    target(
        f"Java protobuf ({proto}) >= 60% of the floor (JSON)",
        [proto, "floor"],
        lambda: (
            r[proto]["rps"] >= 0.6 * r["floor"]["rps"],
            f"{r[proto]['rps']:,.0f} / {r['floor']['rps']:,.0f} = {r[proto]['rps'] / r['floor']['rps']:.0%}",
        ),
    )
    python = fastest_of(r, "python-json", "python-inline-json")
    target(
        f"Python iris JSON ({python}) >= 3x MLServer",
        [python, "mlserver"],
        lambda: (
            r[python]["rps"] >= 3 * r["mlserver"]["rps"],
            f"{r[python]['rps']:,.0f} / {r['mlserver']['rps']:,.0f} = "
            f"{r[python]['rps'] / r['mlserver']['rps']:.2f}x",
        ),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per target per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns per target (median reported)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of one warm-up turn per target")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="model-runner's and the ceilings' workers")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (serve's default 8)")
    parser.add_argument("--only", default="", help="comma-separated row keys (default: all; see above)")
    args = parser.parse_args()

    all_rows = rows(args.workers, args.threads)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {row.key for row in all_rows}
    if unknown:
        parser.error(f"--only: unknown rows {sorted(unknown)}; rows: {', '.join(r.key for r in all_rows)}")
    chosen = [row for row in all_rows if not only or row.key in only]
    needed = {row.server for row in chosen}

    load_start = os.getloadavg()[0]
    bundles = build_sample_bundles()
    rounds: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="speed-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        servers: dict[str, str] = {}
        starters: dict[str, Callable[[], Any]] = {
            "floor": lambda: floor_server(bundles["iris"], tmp),
            "granian": lambda: runner_server(
                [bundles["iris"], bundles["iris-python"]],
                args.workers,
                args.threads,
                tmp / "granian",
                "granian",
            ),
            "granian-inline": lambda: runner_server(
                [bundles["iris"], bundles["iris-python"]],
                args.workers,
                args.threads,
                tmp / "granian-inline",
                "granian",
                "--calls",
                "inline",
            ),
            "gunicorn": lambda: runner_server(
                [bundles["iris"]], args.workers, args.threads, tmp / "gunicorn", "gunicorn"
            ),
            "gunicorn-inline": lambda: runner_server(
                [bundles["iris"]],
                args.workers,
                args.threads,
                tmp / "gunicorn-inline",
                "gunicorn",
                "--calls",
                "inline",
            ),
            "gunicorn-bare": lambda: gunicorn_bare(args.workers, args.threads),
            "granian-bare": lambda: granian_bare(args.workers, args.threads, tmp),
            "mlserver": lambda: mlserver(tmp),
        }
        for server, start in starters.items():
            if server in needed:
                print(f"starting {server}", flush=True)
                servers[server] = stack.enter_context(start())
        checked: list[str] = []
        if "floor" in servers:
            checked = check_answers(servers)

        def url(row: Row) -> str:
            return servers[row.server] + row.path

        for row in chosen:  # warm-up: JIT, connection pools, lazy imports
            http_bench.hey(url(row), row.body, row.media, args.warmup, args.concurrency, tmp)
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for row in chosen:
                result = http_bench.hey(url(row), row.body, row.media, args.duration, args.concurrency, tmp)
                rounds.setdefault(row.key, []).append(result)
                print(f"  {row.key}: {result['rps']:,.0f} req/s, p99 {result['p99_ms']:.2f} ms", flush=True)
        load_after = os.getloadavg()[0]

    results = {key: median_round(rs) for key, rs in rounds.items()}
    floor = results.get("floor", {}).get("rps")
    ml = results.get("mlserver", {}).get("rps")
    print(
        f"\n# speed_bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {os.cpu_count()} cores, "
        f"hey -c {args.concurrency} (keep-alive), {args.duration:g} s x {args.rounds} rounds, median round; "
        f"granian {_version('granian')}, gunicorn {_version('gunicorn')}, "
        f"MLServer {_mlserver_version() if 'mlserver' in needed else '-'}, {_java_version()}"
    )
    print(
        f"load average (1 min): {load_start:.2f} at start, {load_before:.2f} before the rounds, "
        f"{load_after:.2f} after them"
    )
    if checked:
        print(f"answers checked equal to the floor's: {', '.join(checked)} (JSON and protobuf)")
    else:
        print("answers not checked: the run has no floor or no Java iris row of model-runner")
    print("\n| row | req/s | p50 ms | p99 ms | non-2xx | × floor | × MLServer | rounds req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in chosen:
        r = results[row.key]
        to_floor = f"{r['rps'] / floor:.2f}" if floor else ""
        to_ml = f"{r['rps'] / ml:.2f}" if ml else ""
        print(
            f"| {row.label} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} | "
            f"{to_floor} | {to_ml} | {', '.join(f'{x:,}' for x in r['rounds_rps'])} |"
        )
    print("\ntargets (issue 15, HTTP):")
    for name, met, figures in targets(results):
        verdict = "n/a" if met is None else "met" if met else "not met"
        print(f"  [{verdict}] {name}: {figures}")
    failed = {key: r["non_2xx"] for key, r in results.items() if r["non_2xx"]}
    if failed:
        print(f"  non-2xx answers (the figures of these rows are suspect): {failed}")
    spread = {
        key: max(r["rounds_rps"]) / min(r["rounds_rps"]) - 1
        for key, r in results.items()
        if min(r["rounds_rps"])
    }
    noisy = {k: f"{v:.0%}" for k, v in spread.items() if v > 0.15}
    if noisy:
        print(f"  rounds differ by more than 15% (a busy machine?): {noisy}")
    print("\n" + json.dumps({"results": results}, default=str))


if __name__ == "__main__":
    main()
