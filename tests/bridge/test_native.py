"""JNI models: the JVM binds a native library file to one class loader, so every model version loads its
own copy of the bundle's lib/native/<os>-<arch>/ libraries (System.loadLibrary, resolved by the version's
loader), and libraries that extract their native half from their JAR work when each load uses a new
path. v1 -> v2 -> v1 in one JVM, directly and through the registry under load. The native library is
built in the test from C source with gcc (tests/bridge/java/jni/scorer.c)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.errors import JavaLoadError
from bridge.model import JavaModel
from runner.contract import Contract
from runner.serving.dataplane import DataPlane
from runner.serving.registry import Registry
from runner.store import Repository
from tests.bridge.artifacts import JAVA, build_jar, build_native, java_bundle, native_platform
from tests.runner.repo_helpers import TrackingLoader
from tests.waiting import wait_for

PKG = "org.modelrunner.tests.jni"
PROTO = """syntax = "proto3";
package jni;
message ScoreRequest { double x = 1; }
message ScoreReply { double value = 1; }
message WhereRequest {}
message WhereReply { string path = 1; }
service Scorer {
  rpc Score (ScoreRequest) returns (ScoreReply);
  rpc Where (WhereRequest) returns (WhereReply);
}
"""
# each version's native library answers x + its version
VALUE = {"v1": 1.0, "v2": 2.0}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


@pytest.fixture(scope="module")
def natives() -> dict[str, Path]:
    source = JAVA / "jni" / "scorer.c"
    return {v: build_native(source, "scorer", {"SCORER_VALUE": str(value)}) for v, value in VALUE.items()}


@pytest.fixture(scope="module")
def bundles(natives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """load-v1/v2: JniScorer + lib/native/<platform>/libscorer.so; root-v1: the library in lib/native/;
    extract-v1/v2 and fixed-v1: models over a lib/ JAR that carries the library and extracts it itself."""
    platform = native_platform()
    acme = {
        v: build_jar("acme-native", resources={f"com/acme/nat/native/{platform}/libacmescorer.so": so})
        for v, so in natives.items()
    }
    model_jar = build_jar("jni", classpath=[acme["v1"]])
    root = tmp_path_factory.mktemp("jni")

    def bundle(name: str, cls: str, files: dict[str, Path]) -> Path:
        return java_bundle(
            root / name,
            name="scorer",
            entry_point=f"{PKG}.{cls}",
            proto=PROTO,
            model_jar=model_jar,
            files=files,
        )

    out = {}
    for v, so in natives.items():
        out[f"load-{v}"] = bundle(f"load-{v}", "JniScorer", {f"lib/native/{platform}/libscorer.so": so})
        out[f"extract-{v}"] = bundle(f"extract-{v}", "ExtractScorer", {"lib/acme-native.jar": acme[v]})
    out["root-v1"] = bundle("root-v1", "JniScorer", {"lib/native/libscorer.so": natives["v1"]})
    out["fixed-v1"] = bundle("fixed-v1", "FixedPathScorer", {"lib/acme-native.jar": acme["v1"]})
    return out


def score(model: JavaModel, contract: Contract, x: float = 0.5) -> float:
    request = contract.input_class("Score")(x=x).SerializeToString()
    return float(contract.output_class("Score").FromString(model.call("Score", request)).value)


def where(model: JavaModel, contract: Contract) -> Path:
    return Path(contract.output_class("Where").FromString(model.call("Where", b"")).path)


@pytest.fixture
def load(contract: Contract, jvm_started: None) -> Callable[[Path, str], JavaModel]:
    def load(bundle: Path, cls: str = "JniScorer") -> JavaModel:
        return JavaModel.load(artifact_dir=bundle, class_name=f"{PKG}.{cls}", service=contract.service)

    return load


def test_load_library_v1_v2_v1_in_one_jvm(
    bundles: dict[str, Path], contract: Contract, load: Callable[[Path], JavaModel]
) -> None:
    v1 = load(bundles["load-v1"])
    first = where(v1, contract)
    assert score(v1, contract) == 1.5
    assert "model-runner-native-" in str(first) and first.is_file()  # a copy, not the bundle's file
    assert not first.is_relative_to(bundles["load-v1"])
    v2 = load(bundles["load-v2"])  # side by side, as during a swap
    assert score(v2, contract) == 2.5 and score(v1, contract) == 1.5
    v1.close()
    assert not first.exists()  # the copies go with the version (the JVM still maps the loaded library)
    # Back to v1: the same bundle file again while the first v1's loader still holds its library (it is
    # closed, not collected): without a copy per version, "already loaded in another classloader".
    again = load(bundles["load-v1"])
    assert score(again, contract) == 1.5 and score(v2, contract) == 2.5
    assert where(again, contract) not in (first, where(v2, contract))
    paths = [where(again, contract), where(v2, contract)]
    again.close()
    v2.close()
    assert not any(p.exists() for p in paths)


def test_library_in_lib_native_itself(
    bundles: dict[str, Path], contract: Contract, load: Callable[[Path], JavaModel]
) -> None:
    with load(bundles["root-v1"]) as model:
        assert score(model, contract, 2.0) == 3.0


def test_library_extracted_from_its_jar_loads_per_version(
    bundles: dict[str, Path], contract: Contract, load: Callable[[Path, str], JavaModel]
) -> None:
    # Libraries that copy their native half out of their JAR to a new temporary file and System.load it:
    # each version's loader loads its own file.
    models = [load(bundles[f"extract-{v}"], "ExtractScorer") for v in ("v1", "v2", "v1")]
    try:
        assert [score(m, contract) for m in models] == [1.5, 2.5, 1.5]
        assert len({where(m, contract) for m in models}) == 3
    finally:
        for m in models:
            m.close()


def test_library_extracted_to_one_fixed_path_cannot_load_twice(
    bundles: dict[str, Path], contract: Contract, load: Callable[[Path, str], JavaModel]
) -> None:
    # The documented limit: one path per process binds the library to the first loader; a second version
    # loaded beside it (every swap does) fails to load, and the first keeps serving.
    first = load(bundles["fixed-v1"], "FixedPathScorer")
    fixed = where(first, contract)
    try:
        with pytest.raises(JavaLoadError) as info:
            load(bundles["fixed-v1"], "FixedPathScorer")
        assert "already loaded in another classloader" in info.value.detail["java_message"]
        assert score(first, contract) == 1.5
    finally:
        first.close()
        shutil.rmtree(fixed.parent, ignore_errors=True)


def test_jni_model_swapped_v1_v2_v1_under_load(
    bundles: dict[str, Path], tmp_path: Path, jvm_started: None
) -> None:
    repo = Repository(tmp_path / "repo")
    repo.publish("scorer", bundles["load-v1"], expected_version=None, caller="test")
    closed: list[int] = []
    registry = Registry(repo, TrackingLoader(closed), poll_interval=0.01)
    registry.start()
    plane = DataPlane(registry)
    stop = threading.Event()
    calls = [0] * 4
    failures: list[BaseException] = []
    expected = {1: 1.5, 2: 2.5, 3: 1.5}  # version -> answer (3 is v1 published again)

    def client(i: int) -> None:
        while not stop.is_set():
            try:
                result = plane.predict("scorer", "Score", b'{"x": 0.5}', "application/json")
                assert json.loads(result.body)["value"] == expected[result.version], result.version
                calls[i] += 1
            except BaseException as err:  # noqa: BLE001 - collected and asserted below
                failures.append(err)

    def answer() -> float:
        return float(
            json.loads(plane.predict("scorer", "Score", b'{"x": 0.5}', "application/json").body)["value"]
        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: min(calls) > 20, what="every client to be served by v1")
        steps = [
            lambda: repo.publish("scorer", bundles["load-v2"], expected_version=1, caller="test"),
            lambda: repo.rollback("scorer", version=1, expected_version=2, caller="test"),
            lambda: repo.rollback("scorer", version=2, expected_version=1, caller="test"),
            lambda: repo.publish("scorer", bundles["load-v1"], expected_version=2, caller="test"),
        ]
        for step, value in zip(steps, (2.5, 1.5, 2.5, 1.5), strict=True):
            version = step()
            assert repo.fleet.wait_until_served("scorer", version, timeout=60) == []
            assert answer() == value
            done = sum(calls)
            wait_for(lambda done=done: sum(calls) > done + 40, what="calls on the new version")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        registry.stop()
    assert failures == []
    assert closed == [1, 2, 1, 2, 3]  # every version closed once drained (and at stop)
