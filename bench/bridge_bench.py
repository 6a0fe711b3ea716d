"""Java bridge benchmark: per-call cost, batch throughput, and class/Metaspace flatness over swaps.

    python bench/bridge_bench.py            # full run (about two minutes)
    python bench/bridge_bench.py --quick    # fewer iterations and cycles

Rows (all in this one process / run, after warm-up):
  * iris Classify through the bridge (JavaModel.call: request bytes in, response bytes out), and with the
    Python-side protobuf serialize/parse included;
  * the floor: a direct JPype call of the same Java method on a pre-built IrisInput (and, for equal work,
    building the IrisInput from Python floats and reading the species back);
  * Py4J calling the same method of the same JAR in a GatewayServer JVM subprocess;
  * the context class loader switch the host makes around every call (issue 10), alone: a Java loop of
    the same get/set/restore, compiled here with javac, against the same loop without it;
  * ClassifyMatrix with 1,000 rows per call (rows/s);
  * load-call-close cycles of iris and weka with loaded classes and Metaspace before/after (after a full GC).
Targets (issue 2): overhead over direct <= 5 us/call; >= 1,000,000 rows/s; <= 20 classes and <= 2 MB
Metaspace growth over 1,000 cycles; >= 10x faster than Py4J per call.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROW = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}


def per_call(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` mean seconds per call of ``fn`` over ``n`` calls (after a warm-up)."""
    for _ in range(min(n, 20000)):
        fn()
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t) / n)
    return min(best)


def interleaved(fns: dict[str, Callable[[], object]], n: int, rounds: int = 7) -> dict[str, float]:
    """Best mean seconds per call of each fn, measured in alternating rounds (the machine is shared:
    alternating spreads load drift over every candidate instead of biasing the first)."""
    for fn in fns.values():
        for _ in range(min(n, 30000)):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / n)
    return best


# The host's switch (Slot.enter and its restore) in a loop, and the same loop without it. Each round reads
# the context loader, as model code looking something up would (and so the JIT cannot drop the stores).
SWITCH_LOOP = """
public final class SwitchLoop {
    static long sink;

    public static long plain(int n) {
        Thread th = Thread.currentThread();
        long s = 0, t0 = System.nanoTime();
        for (int i = 0; i < n; i++) s += System.identityHashCode(th.getContextClassLoader());
        sink += s;
        return System.nanoTime() - t0;
    }

    public static long switched(int n, ClassLoader model) {
        Thread th = Thread.currentThread();
        long s = 0, t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
            ClassLoader prev = th.getContextClassLoader();
            if (prev == model) prev = null;
            th.setContextClassLoader(model);
            try { s += System.identityHashCode(th.getContextClassLoader()); } finally { th.setContextClassLoader(prev); }
        }
        sink += s;
        return System.nanoTime() - t0;
    }
}
"""


def context_switch_ns(n: int, rounds: int = 7) -> float:
    """Extra nanoseconds per call that the context class loader switch costs: best of ``rounds`` of the loop
    with it minus best of ``rounds`` of the loop without it (alternating, as ``interleaved`` does)."""
    import jpype

    from bridge import jvm

    javac = jvm.find_jvm()[1] / "bin" / "javac"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "SwitchLoop.java").write_text(SWITCH_LOOP)
        subprocess.run([str(javac), "-d", tmp, str(Path(tmp) / "SwitchLoop.java")], check=True)
        url = jpype.JClass("java.net.URL")
        loader_cls = jpype.JClass("java.net.URLClassLoader")
        loop = jpype.JClass("SwitchLoop", loader=loader_cls([url(Path(tmp).as_uri() + "/")]))
        model_loader = loader_cls([url(Path(tmp).as_uri() + "/")])
        loop.plain(n), loop.switched(n, model_loader)  # warm-up (JIT)
        plain, switched = float("inf"), float("inf")
        for _ in range(rounds):
            plain = min(plain, int(loop.plain(n)) / n)
            switched = min(switched, int(loop.switched(n, model_loader)) / n)
        return switched - plain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--cycles", type=int, default=None)
    ap.add_argument("--no-py4j", action="store_true")
    args = ap.parse_args()
    calls = args.calls or (20000 if args.quick else 100000)
    cycles = args.cycles or (100 if args.quick else 1000)

    from google.protobuf import json_format

    from bridge import jvm
    from bridge.model import JavaModel
    from runner.contract import Contract
    from runner.samples import build_sample_bundles

    bundles = build_sample_bundles()
    iris_dir = bundles["iris"]
    contract = Contract.compile((ROOT / "protos" / "iris.proto").read_text())
    jvm.start_jvm()
    import jpype
    import numpy as np

    rows: list[tuple[str, str, str]] = []  # (measure, value, note)

    # -- single calls ---------------------------------------------------------------------------------
    model = JavaModel.load(artifact_dir=iris_dir, class_name=IRIS_CLASS, service=contract.service)
    In, Out = contract.input_class("Classify"), contract.output_class("Classify")
    req = In(**ROW).SerializeToString()
    assert Out.FromString(model.call("Classify", req)).species == "virginica"
    # The floor: the same method called directly through JPype (classes loaded straight into Python:
    # fine in a benchmark, never in the server, where it would pin the model's class loader).
    URL = jpype.JClass("java.net.URL")
    loader = jpype.JClass("java.net.URLClassLoader")([URL((iris_dir / "model.jar").resolve().as_uri())])
    Direct = jpype.JClass(IRIS_CLASS, loader=loader)
    DirectInput = jpype.JClass("org.modelrunner.samples.iris.IrisInput", loader=loader)
    clf = Direct()
    inp = DirectInput(6.3, 3.3, 6.0, 2.5)
    assert str(clf.classify(inp).species) == "virginica"

    def direct_full() -> object:
        r = clf.classify(
            DirectInput(ROW["sepal_length"], ROW["sepal_width"], ROW["petal_length"], ROW["petal_width"])
        )
        return str(r.species), np.asarray(r.probabilities)

    t = interleaved(
        {
            "bridge": lambda: model.call("Classify", req),
            "bridge_timed": lambda: model.call("Classify", req, 30.0),
            "bridge_msg": lambda: Out.FromString(model.call("Classify", In(**ROW).SerializeToString())),
            "direct": lambda: clf.classify(inp),
            "direct_full": direct_full,
        },
        calls // 5,
    )
    t_bridge, t_bridge_timed, t_bridge_msg = t["bridge"], t["bridge_timed"], t["bridge_msg"]
    t_direct, t_direct_full = t["direct"], t["direct_full"]

    # Py4J: the same JAR in a GatewayServer JVM.
    t_py4j = None
    if not args.no_py4j:
        try:
            from py4j.java_gateway import GatewayParameters, JavaGateway, get_field, launch_gateway

            port = launch_gateway(classpath=str(iris_dir / "model.jar"), die_on_exit=True)
            gw = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_convert=True))
            p_clf = gw.jvm.org.modelrunner.samples.iris.IrisClassifier()
            p_inp = gw.jvm.org.modelrunner.samples.iris.IrisInput(6.3, 3.3, 6.0, 2.5)
            assert get_field(p_clf.classify(p_inp), "species") == "virginica"
            t_py4j = per_call(lambda: p_clf.classify(p_inp), max(2000, calls // 20), repeats=3)
            gw.shutdown()
        except Exception as e:  # noqa: BLE001 - report and continue
            print(f"py4j: {e!r}", file=sys.stderr)

    us = 1e6
    rows.append(
        (
            "iris Classify via bridge (bytes in/out)",
            f"{t_bridge * us:.2f} µs/call",
            "JavaModel.call, no deadline",
        )
    )
    rows.append(
        ("  same, with a 30 s deadline", f"{t_bridge_timed * us:.2f} µs/call", "on a host call thread")
    )
    rows.append(
        ("  same, incl. Python protobuf build+serialize+parse", f"{t_bridge_msg * us:.2f} µs/call", "")
    )
    rows.append(
        ("direct JPype call (floor)", f"{t_direct * us:.2f} µs/call", "clf.classify(prebuilt IrisInput)")
    )
    rows.append(
        (
            "direct JPype, equal work",
            f"{t_direct_full * us:.2f} µs/call",
            "new IrisInput(4 floats) + classify + species + probabilities",
        )
    )
    rows.append(("bridge overhead over direct", f"{(t_bridge - t_direct) * us:.2f} µs/call", "target ≤ 5 µs"))
    rows.append(
        (
            "  of which the context class loader switch",
            f"{context_switch_ns(calls * 50):.1f} ns/call",
            "set + restore around each call (Java loop, best of 7 each)",
        )
    )
    if t_py4j is not None:
        rows.append(("Py4J call (same method, same JAR)", f"{t_py4j * us:.1f} µs/call", "prebuilt input"))
        rows.append(("bridge speed-up over Py4J", f"{t_py4j / t_bridge:.0f}×", "target ≥ 10×"))

    # -- batch ----------------------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    feats = rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(1000, 4))
    fm = contract.input_class("ClassifyMatrix")()
    for r in feats.tolist():
        fm.rows.add().values.extend(r)
    fm_bytes = fm.SerializeToString()
    CI = contract.output_class("ClassifyMatrix")
    assert len(CI.FromString(model.call("ClassifyMatrix", fm_bytes)).indices) == 1000
    tb = interleaved(
        {
            "batch": lambda: model.call("ClassifyMatrix", fm_bytes),
            "batch_parse": lambda: np.asarray(CI.FromString(model.call("ClassifyMatrix", fm_bytes)).indices),
        },
        max(100, calls // 200),
    )
    t_batch, t_batch_parse = tb["batch"], tb["batch_parse"]
    rows.append(
        (
            "ClassifyMatrix, 1,000 rows/call",
            f"{1000 / t_batch:,.0f} rows/s",
            f"{t_batch * us:.0f} µs/call; target ≥ 1,000,000 rows/s",
        )
    )
    rows.append(("  same, incl. parsing the indices", f"{1000 / t_batch_parse:,.0f} rows/s", ""))
    model.close()

    # -- swap cycles ----------------------------------------------------------------------------------
    def cycle_stats(bundle: Path, cls: str, rpc: str, example: dict, n: int) -> tuple[dict, dict, float]:
        c = Contract.compile((bundle / "model.proto").read_text())
        r = json_format.ParseDict(example, c.input_class(rpc)()).SerializeToString()

        def one() -> None:
            m = JavaModel.load(artifact_dir=bundle, class_name=cls, service=c.service)
            m.call(rpc, r)
            m.close()

        for _ in range(10):
            one()
        jvm.full_gc()
        before = jvm.jvm_stats()
        t = time.perf_counter()
        for _ in range(n):
            one()
        dt = (time.perf_counter() - t) / n
        jvm.full_gc()
        return before, jvm.jvm_stats(), dt

    for name, cls in (("iris", IRIS_CLASS), ("weka", "org.modelrunner.samples.weka.WekaIrisClassifier")):
        if name not in bundles:
            rows.append((f"{name}: load-call-close cycles", "skipped", "bundle not built"))
            continue
        before, after, dt = cycle_stats(bundles[name], cls, "Classify", ROW, cycles)
        dc = after["loaded_classes"] - before["loaded_classes"]
        dm = (after["metaspace_used"] - before["metaspace_used"]) / 2**20
        rows.append(
            (
                f"{name}: {cycles:,} load-call-close cycles",
                f"{dc:+d} classes, {dm:+.2f} MB Metaspace",
                (
                    f"loaded {before['loaded_classes']}→{after['loaded_classes']}, "
                    f"unloaded +{after['unloaded_classes'] - before['unloaded_classes']}, "
                    f"{dt * 1e3:.2f} ms/cycle; target ≤ 20 classes, ≤ 2 MB"
                ),
            )
        )

    print(f"\n## bridge_bench ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(
        f"`python bench/bridge_bench.py{' --quick' if args.quick else ''}` — {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, JPype {jpype.__version__}, "
        f"{jpype.JClass('java.lang.System').getProperty('java.vm.name')} "
        f"{jpype.JClass('java.lang.System').getProperty('java.version')}\n"
    )
    print("| measure | result | note |")
    print("|---|---|---|")
    for m, v, note in rows:
        print(f"| {m} | {v} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
