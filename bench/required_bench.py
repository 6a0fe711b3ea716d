"""What required fields cost on the predict path (issue 10, item 6).

    python bench/required_bench.py [--n 2000] [--rounds 40]

One process: a repository holding the Java iris sample twice, as shipped (plain ``double`` fields, no
``required``) and with its four IrisInput fields ``optional`` and required; a registry and a DataPlane
over it. Rows, best mean per call over many short alternating rounds (the machine is shared: the
best of 40 short rounds is steadier than the mean of a few long ones):

  * DataPlane.predict, JSON in/out and protobuf in/out, each model: the whole core path minus HTTP;
  * the Java call alone (model.invoke on the same bytes), each model;
  * the check alone: RequiredFields.check on a parsed message, check_wire on request bytes (parse +
    check), and check_wire for an rpc without required fields (the dict lookup every request pays);
  * the JSON parse of the request with and without ``optional`` fields (the flat-message shortcut
    takes both; json_format is what ``optional`` fields cost before it did).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from google.protobuf import json_format  # noqa: E402

from runner.samples import build_sample_bundles  # noqa: E402
from runner.serving.dataplane import DataPlane  # noqa: E402
from runner.serving.loading import BundleLoader  # noqa: E402
from runner.serving.registry import Registry  # noqa: E402
from runner.settings import Settings  # noqa: E402
from runner.store import Repository  # noqa: E402

FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}
PROTOBUF = "application/x-protobuf"


def interleaved(fns: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    """Best mean seconds per call of each fn over alternating rounds."""
    for fn in fns.values():
        for _ in range(min(n, 5000)):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / n)
    return best


def required_copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    proto = (dest / "model.proto").read_text()
    for number, name in enumerate(FIELDS, 1):
        proto = proto.replace(f"  double {name} = {number};", f"  optional double {name} = {number};")
    (dest / "model.proto").write_text(proto)
    meta = json.loads((dest / "metadata.json").read_text())
    meta.update(name="iris-required", required={"IrisInput": FIELDS})
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    iris = build_sample_bundles()["iris"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(Path(tmp) / "repo")
        repo.publish("iris", iris, expected_version=None, caller="bench")
        repo.publish(
            "iris-required", required_copy(iris, Path(tmp) / "req"), expected_version=None, caller="bench"
        )
        registry = Registry(repo, BundleLoader(Settings()), poll_interval=0.05)
        registry.start()
        try:
            deadline = time.monotonic() + 60
            while len(registry.snapshot()) < 2:
                if time.monotonic() > deadline:
                    sys.exit(f"models did not load: {registry.load_errors()}")
                time.sleep(0.05)
            plane = DataPlane(registry)
            plain, required = registry.snapshot()["iris"], registry.snapshot()["iris-required"]
            body = json.dumps(ROW).encode()
            req_cls = required.contract.input_class("Classify")
            plain_cls = plain.contract.input_class("Classify")
            wire = req_cls(**ROW).SerializeToString()
            message = req_cls(**ROW)
            for name in ("iris", "iris-required"):  # both answer alike
                assert json.loads(plane.predict(name, "Classify", body, "application/json").body)["species"]

            def predict(name: str, payload: bytes, media: str) -> Callable[[], object]:
                return lambda: plane.predict(name, "Classify", payload, media)

            def json_format_parse() -> object:
                msg = req_cls()
                json_format.ParseDict(ROW, msg, descriptor_pool=required.contract.pool)
                return msg

            rows = interleaved(
                {
                    "predict JSON, iris (no required fields)": predict("iris", body, "application/json"),
                    "predict JSON, iris-required (4 required)": predict(
                        "iris-required", body, "application/json"
                    ),
                    "predict protobuf, iris": predict("iris", wire, PROTOBUF),
                    "predict protobuf, iris-required (parsed to check)": predict(
                        "iris-required", wire, PROTOBUF
                    ),
                    "model.invoke, iris": lambda: plain.model.invoke("Classify", wire),
                    "model.invoke, iris-required": lambda: required.model.invoke("Classify", wire),
                    "check on a parsed message (4 HasField)": lambda: required.required.check(
                        "Classify", message
                    ),
                    "check_wire on request bytes (parse + check)": lambda: required.required.check_wire(
                        "Classify", wire
                    ),
                    "check_wire, rpc without required fields": lambda: required.required.check_wire(
                        "ClassifyMatrix", wire
                    ),
                    "JSON parse, plain doubles (shortcut)": lambda: plain.contract.from_json(plain_cls, body),
                    "JSON parse, optional doubles (shortcut)": lambda: required.contract.from_json(
                        req_cls, body
                    ),
                    "JSON parse, optional doubles via json_format": json_format_parse,
                },
                args.n,
                args.rounds,
            )
        finally:
            registry.stop()
    print(f"{'measure':<52} µs/call")
    for k, v in rows.items():
        print(f"{k:<52} {v * 1e6:7.2f}")


if __name__ == "__main__":
    main()
