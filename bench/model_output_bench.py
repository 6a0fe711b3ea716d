"""Cost of tagging a Java model's output (bridge/output.py, host ModelOutput), per call.

    python bench/model_output_bench.py            # 20,000 calls a round, 5 rounds
    python bench/model_output_bench.py --quick

A model compiled here with javac has two methods: ``quiet`` (returns its input) and ``say`` (prints it
with System.out.println, then returns it). Each is called in a loop through JavaModel.call in a fresh
process, with the output machinery on (as served: lines tagged, queued and logged by the drainer thread
through a logging.StreamHandler writing serve's format to /dev/null; the time includes waiting until every
line is logged) and off (the JVM's own System.out, writing to /dev/null). Rounds alternate on and off
(the machine is shared); the best round of each is reported, in microseconds per call and calls/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = """syntax = "proto3";
package bench;
message Text { string text = 1; }
service Printer { rpc Quiet (Text) returns (Text); rpc Say (Text) returns (Text); }
"""
SOURCE = """package bench;

public class Printer {
    public static class Text { public String text; }

    public Text quiet(Text t) { return t; }

    public Text say(Text t) {
        System.out.println(t.text);
        return t;
    }
}
"""


def build(folder: Path) -> Path:
    """A bundle folder (model.jar compiled with javac, model.proto) in ``folder``."""
    from bridge.jvm import _javac, find_jvm

    src = folder / "src" / "bench" / "Printer.java"
    src.parent.mkdir(parents=True)
    src.write_text(SOURCE)
    classes = folder / "classes"
    javac = _javac(find_jvm()[1]) or "javac"
    subprocess.run([javac, "--release", "17", "-d", str(classes), str(src)], check=True)
    with zipfile.ZipFile(folder / "model.jar", "w") as z:
        for p in sorted(classes.rglob("*.class")):
            z.write(p, p.relative_to(classes).as_posix())
    (folder / "model.proto").write_text(PROTO)
    return folder


def child(bundle: Path, rpc: str, tagging: bool, calls: int, out: Path) -> None:
    import logging
    import time

    from bridge import jvm, output
    from bridge.model import JavaModel
    from runner.contract import Contract

    counted = [0]

    class Count(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            counted[0] += record.name == "model.printer"
            return True

    handler = logging.StreamHandler(open(os.devnull, "w"))  # open for the process's lifetime
    handler.setFormatter(
        logging.Formatter("%(asctime)s http[%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(Count())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if not tagging:
        output.install = lambda: None  # type: ignore[assignment]
    jvm.start_jvm()
    contract = Contract.compile(PROTO)
    model = JavaModel.load(
        artifact_dir=bundle, class_name="bench.Printer", service=contract.service, name="printer", version=1
    )
    request = contract.input_class(rpc)(
        text="a line of a model's output, about sixty characters"
    ).SerializeToString()
    for _ in range(min(calls, 5000)):  # warm-up
        model.call(rpc, request)
    output.flush(60)
    before = counted[0]
    started = time.perf_counter()
    for _ in range(calls):
        model.call(rpc, request)
    flushed = output.flush(120)
    seconds = time.perf_counter() - started
    out.write_text(
        json.dumps({"us": seconds / calls * 1e6, "logged": counted[0] - before, "flushed": flushed})
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--child", nargs=4, metavar=("BUNDLE", "RPC", "ON", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    calls = args.calls or (5000 if args.quick else 20000)
    if args.child:
        bundle, rpc, on, out = args.child
        child(Path(bundle), rpc, on == "on", calls, Path(out))
        return 0
    rounds = args.rounds or (3 if args.quick else 5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    best: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build(Path(tmp) / "bundle")
        for _ in range(rounds):
            for rpc in ("Quiet", "Say"):
                for on in ("on", "off"):
                    out = Path(tmp) / "result.json"
                    cmd = [
                        sys.executable,
                        __file__,
                        "--calls",
                        str(calls),
                        "--child",
                        str(bundle),
                        rpc,
                        on,
                        str(out),
                    ]
                    subprocess.run(
                        cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                    r = json.loads(out.read_text())
                    if (rpc, on) not in best or r["us"] < best[(rpc, on)]["us"]:
                        best[(rpc, on)] = r
    print(f"{calls} calls a round, best of {rounds} rounds, {os.cpu_count()} cores")
    print(f"{'method':8} {'output':12} {'us/call':>8} {'calls/s':>9}  lines logged")
    for (rpc, on), r in best.items():
        logged = f"{r['logged']}/{calls}" if rpc == "Say" and on == "on" else "-"
        label = "tagged" if on == "on" else "JVM's own"
        print(f"{rpc:8} {label:12} {r['us']:8.2f} {1e6 / r['us']:9.0f}  {logged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
