"""Property test: contracts generated from the type hints of random Python class shapes always compile,
and bind and round-trip through the Python runtime (tests/runner/runtimes/python_shapes.py makes them).

Each shape is a bundle folder (main.py, other.py); its contract comes from generate_proto_for_entry (the
module loaded isolated, as onboarding does), all contracts compile in one protoc run
(tests/many_contracts.py), and every shape is then loaded with runner.runtimes.load_model (metadata.json's
``methods`` from the generated ``// python_method`` notes) and each rpc called with a filled request.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from runner.bundle import Metadata
from runner.contract import Contract
from runner.runtimes import load_model
from runner.runtimes.python.hints import generate_proto_for_entry
from runner.serving.onboarding import generated_method_overrides
from runner.settings import Settings
from tests.many_contracts import compile_many
from tests.runner.runtimes import python_shapes

SEED = 20240611
COUNT = 120


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_random_python_shapes_compile_bind_and_round_trip(tmp_path: Path) -> None:
    t0 = time.monotonic()
    shapes = python_shapes.make_shapes(SEED, COUNT)
    folders = []
    for shape in shapes:
        folder = tmp_path / f"s{shape.index:03d}"
        folder.mkdir()
        for name, text in python_shapes.sources(shape).items():
            (folder / name).write_text(text, "utf-8")
        folders.append(folder)
    texts = [
        generate_proto_for_entry(folder, f"main:{shape.model}", package=f"pshapes.s{shape.index:03d}")
        for shape, folder in zip(shapes, folders, strict=True)
    ]
    t_gen = time.monotonic()
    compile_many(texts)  # every generated contract compiles
    t_compile = time.monotonic()
    rpcs = json_names = notes = 0
    for shape, folder, text in zip(shapes, folders, texts, strict=True):
        json_names += text.count("[json_name")
        contract = Contract.compile(text)
        assert len(contract.method_names()) == len(shape.methods), text
        overrides = generated_method_overrides(text)
        notes += len(overrides)
        meta = Metadata.from_dict(
            {
                "name": f"shape-{shape.index}",
                "runtime": "python",
                "entry_point": f"main:{shape.model}",
                "methods": overrides,
            }
        )
        model = load_model(folder, meta, contract, Settings())
        try:
            by_method = {b["python_method"]: rpc for rpc, b in model.bindings.items()}
            rnd = random.Random(shape.index)
            for m in shape.methods:
                rpc = by_method[m.name]
                req = python_shapes.request(m, contract.input_class(rpc), rnd)
                out = contract.output_class(rpc).FromString(model.invoke(rpc, req.SerializeToString()))
                try:
                    python_shapes.check(m, req, out)
                except AssertionError as err:
                    raise AssertionError(f"shape {shape.index} {m.name} ({rpc}): {err}\n{text}") from None
                rpcs += 1
        finally:
            model.close()
    t_end = time.monotonic()
    print(
        f"\n{COUNT} python shapes: generate {t_gen - t0:.1f}s, protoc {t_compile - t_gen:.1f}s, {rpcs} rpcs served"
        f" and checked in {t_end - t_compile:.1f}s; {json_names} renamed fields, {notes} python_method notes"
    )
    assert json_names > 20 and rpcs > 250
