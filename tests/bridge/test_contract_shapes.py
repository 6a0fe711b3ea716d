"""Property test: contracts generated from random Java class shapes always compile, and bind and round-trip
through the real runtime (tests/bridge/java_shapes.py makes the shapes; the named cases are in
test_contract_names.py).

One javac run compiles every shape; one protoc run compiles every generated contract (tests/many_contracts.py);
a sample of the shapes is then onboarded the way a bundle is served: the contract compiled with
Contract.compile, metadata.json's ``methods`` from the generated ``// java_method`` notes, the model loaded
with runner.runtimes.load_model, and every rpc called with a filled request and a default one.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from bridge.inspect import generate_proto
from runner.bundle import Metadata
from runner.contract import Contract
from runner.runtimes import load_model
from runner.serving.onboarding import generated_method_overrides
from runner.settings import Settings
from tests.bridge import java_shapes
from tests.bridge.conftest import BUILD, javac
from tests.many_contracts import compile_many

SEED = 20240610
COUNT = 300  # shapes
SERVED_EVERY = 3  # every third shape is also loaded and called


def _build_jar(shapes: list[java_shapes.Shape]) -> Path:
    """model.jar of every shape (one javac run), cached under build/test-bridge by source hash."""
    tmp = BUILD / f".shapes-src-{SEED}"
    shutil.rmtree(tmp, ignore_errors=True)
    sources = java_shapes.write_sources(shapes, tmp / "src")
    h = hashlib.sha256()
    for p in sources:
        h.update(p.relative_to(tmp).as_posix().encode() + b"\0" + p.read_bytes())
    out = BUILD / f"shapes-{h.hexdigest()[:12]}"
    if not (out / "model.jar").is_file():
        (tmp / "classes").mkdir()
        proc = subprocess.run(
            [
                javac(),
                "-parameters",
                "--release",
                "17",
                "-encoding",
                "UTF-8",
                "-nowarn",
                "-d",
                str(tmp / "classes"),
            ]
            + [str(p) for p in sources],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with zipfile.ZipFile(tmp / "model.jar", "w") as z:
            for p in sorted((tmp / "classes").rglob("*.class")):
                z.write(p, p.relative_to(tmp / "classes").as_posix())
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp / "model.jar"), str(out / "model.jar"))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_random_java_shapes_compile_bind_and_round_trip(jvm_started: None) -> None:
    t0 = time.monotonic()
    shapes = java_shapes.make_shapes(SEED, COUNT)
    folder = _build_jar(shapes)
    t_javac = time.monotonic()
    texts = [generate_proto(folder / "model.jar", s.fqcn) for s in shapes]
    t_gen = time.monotonic()
    contracts = compile_many(texts)  # every generated contract compiles
    t_compile = time.monotonic()
    rpcs = 0
    renamed_methods = 0
    json_names = 0
    for shape, text, contract in zip(shapes, texts, contracts, strict=True):
        # one rpc per method name (the model's methods are all distinct names)
        assert len(contract.method_names()) == len({m.name for m in shape.methods}), text
        json_names += text.count("[json_name")
        if shape.index % SERVED_EVERY:
            continue
        contract = Contract.compile(text)
        overrides = generated_method_overrides(text)
        renamed_methods += len(overrides)
        meta = Metadata.from_dict(
            {
                "name": f"shape-{shape.index}",
                "runtime": "java",
                "entry_point": shape.fqcn,
                "methods": overrides,
            }
        )
        model = load_model(folder, meta, contract, Settings())
        try:
            by_method = {b["java_method"]: rpc for rpc, b in model.bindings.items()}
            rnd = random.Random(shape.index)
            for m in shape.methods:
                rpc = by_method[m.name]
                in_cls, out_cls = contract.input_class(rpc), contract.output_class(rpc)
                out_cls.FromString(model.invoke(rpc, b""))  # a default input is served too
                req = java_shapes.request(shape, m, in_cls, rnd)
                out = out_cls.FromString(model.invoke(rpc, req.SerializeToString()))
                try:
                    java_shapes.check(m, req, out)
                except AssertionError as err:
                    raise AssertionError(f"{shape.fqcn}.{m.name} ({rpc}): {err}\n{text}") from None
                rpcs += 1
        finally:
            model.close()
    t_end = time.monotonic()
    print(
        f"\n{COUNT} shapes: javac {t_javac - t0:.1f}s, generate {t_gen - t_javac:.1f}s, protoc {t_compile - t_gen:.1f}s,"
        f" {rpcs} rpcs served and checked in {t_end - t_compile:.1f}s; {json_names} renamed fields,"
        f" {renamed_methods} rpcs with a java_method note"
    )
    # the generator does reach the clashes it is about
    assert json_names > 50 and renamed_methods > 5 and rpcs > 150
