"""In-process cost of one prediction at each edge, this tree against another revision, no network.

    python bench/edge_cost_bench.py REV [--calls 20000] [--rounds 5]

The same Java iris model (the sample bundle, a ~1 us model) answers through the HTTP predict path (the
WSGI callable `create_app` returns, called with a WSGI environ: what gunicorn's worker calls) and
through the gRPC generic handler (its per-call method, with a stand-in for grpc's servicer context),
in one process per revision (REV checked out in a temporary git worktree), rounds alternating between
the revisions. Reports the Python bytecodes one call executes (``sys.settrace`` opcode events: exact,
whatever else runs on the machine) and CPU microseconds per call, the least disturbed round (minimum; as
timeit advises: others running on the machine only ever add) and the median: the cost of our code
between the wire and the model, which load generators on a shared 2-core machine cannot resolve to a few
percent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.samples import build_sample_bundles, find_repo_root

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

# Run inside the tree under test (cwd = that tree, so `runner` is its own).
CHILD = r"""
import io, json, sys, tempfile, time
from pathlib import Path

from runner.contract import Contract
from runner.http.app import create_app
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository
import runner.grpc.server as grpc_server

bundle, calls, proto = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
flower = json.loads(sys.argv[4])
tmp = Path(tempfile.mkdtemp())
settings = Settings(repo=tmp / "repo", admin_token="b" * 32)
repo = Repository(tmp / "repo")
repo.publish("iris", bundle, expected_version=None, caller="bench")
registry = Registry(repo, BundleLoader(settings))
registry.start()
while "iris" not in registry.snapshot():
    time.sleep(0.05)
app = create_app(settings, registry, repo)
wsgi = app.wsgi_app
contract = Contract.compile(proto.read_text())
pb = contract.input_class("Classify")(**flower).SerializeToString()
js = json.dumps(flower).encode()

def http(body, media):
    def call():
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/models/iris/methods/Classify", "CONTENT_TYPE": media,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "SERVER_NAME": "b",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1",
        }
        status = []
        out = wsgi(environ, lambda s, h, *a: status.append(s))
        assert status[0].startswith("200"), (status, b"".join(out))
    return call

class Context:
    def invocation_metadata(self): return ()
    def send_initial_metadata(self, md): pass
    def time_remaining(self): return 30.0
    def set_trailing_metadata(self, md): pass
    def abort(self, code, message): raise RuntimeError(f"{code}: {message}")

try:
    from runner.serving.dataplane import DataPlane
    handler = grpc_server._ModelHandler(DataPlane(registry, max_json_depth=64, predict_timeout=settings.predict_timeout))
except TypeError:
    handler = grpc_server._ModelHandler(registry, settings)
ctx = Context()
def grpc_call():
    handler._call("iris.IrisClassifier", "Classify", pb, ctx)

targets = {"HTTP, JSON": http(js, "application/json"), "HTTP, protobuf": http(pb, "application/x-protobuf"), "gRPC": grpc_call}
for fn in targets.values():
    for _ in range(2000):
        fn()
def opcodes(fn):
    count = [0]
    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            count[0] += 1
        return tracer
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count[0]

result = {}
for name, fn in targets.items():
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    result[name] = {"cpu_us": (time.process_time() - cpu) / calls * 1e6, "wall_us": (time.perf_counter() - wall) / calls * 1e6, "opcodes": opcodes(fn)}
registry.stop()
print(json.dumps(result))
"""


def measure(tree: Path, bundle: Path, calls: int, proto: Path) -> dict[str, dict[str, float]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle), str(calls), str(proto), json.dumps(FLOWER)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {out.stderr[-3000:]}")
    result: dict[str, dict[str, float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare this work tree with")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    root = find_repo_root()
    bundle = build_sample_bundles()["iris"]
    proto = root / "protos" / "iris.proto"
    runs: dict[str, list[dict[str, dict[str, float]]]] = {args.rev: [], "this tree": []}
    with tempfile.TemporaryDirectory(prefix="edge-cost-") as tmp_name:
        old = Path(tmp_name) / "old"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(old), args.rev], check=True
        )
        try:
            for _ in range(args.rounds):
                runs[args.rev].append(measure(old, bundle, args.calls, proto))
                runs["this tree"].append(measure(root, bundle, args.calls, proto))
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(old)], check=False)

    print(
        f"| edge | {args.rev} bytecodes/call | this tree bytecodes/call | {args.rev} CPU us/call, min (median) "
        "| this tree CPU us/call, min (median) | ratio of min |"
    )
    print("|---|---|---|---|---|---|")
    for target in runs["this tree"][0]:
        before = [r[target]["cpu_us"] for r in runs[args.rev]]
        after = [r[target]["cpu_us"] for r in runs["this tree"]]
        print(
            f"| {target} | {runs[args.rev][0][target]['opcodes']} | {runs['this tree'][0][target]['opcodes']} | "
            f"{min(before):.1f} ({statistics.median(before):.1f}) | "
            f"{min(after):.1f} ({statistics.median(after):.1f}) | {min(after) / min(before):.2f} |"
        )


if __name__ == "__main__":
    main()
