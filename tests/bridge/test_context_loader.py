"""While model code runs (static initialiser, constructor, every call, close) the thread's context class
loader is that version's own loader, and it is restored afterwards: ServiceLoader, Class.forName with the
context loader and resources from lib/ JARs resolve inside the model, threads the model starts inherit it,
and two versions holding two releases of one library each see their own."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jpype
import pytest

from bridge.errors import BridgeError, JavaModelError
from bridge.model import JavaModel
from runner.contract import Contract
from tests.bridge.artifacts import build_jar, java_bundle
from tests.bridge.conftest import run_python

MODEL = "org.modelrunner.tests.context.ContextModel"
RPCS = ("Constructed", "Context", "Service", "Version", "Resource", "ForName", "Thread", "CommonPool")
PROTO = (
    'syntax = "proto3";\npackage context;\nmessage Empty {}\nmessage Text { string text = 1; }\n'
    "service ContextModel {\n" + "".join(f"  rpc {rpc} (Empty) returns (Text);\n" for rpc in RPCS) + "}\n"
)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two versions of the model: lib/ holds acme 1.0 or acme 2.0 (same class names, other answers), and
    the same plugin JAR, which provides com.acme.lib.Greeter through META-INF/services."""
    lib1, lib2 = build_jar("acme-lib-1"), build_jar("acme-lib-2")
    plugin = build_jar("acme-plugin", classpath=[lib1])
    model = build_jar("context", classpath=[lib1])
    root = tmp_path_factory.mktemp("context")
    return {
        version: java_bundle(
            root / version,
            name="context",
            entry_point=MODEL,
            proto=PROTO,
            model_jar=model,
            files={f"lib/acme-lib-{version}.jar": lib, "lib/acme-plugin.jar": plugin},
        )
        for version, lib in (("1.0", lib1), ("2.0", lib2))
    }


def load(bundle: Path, contract: Contract) -> JavaModel:
    return JavaModel.load(artifact_dir=bundle, class_name=MODEL, service=contract.service)


@pytest.fixture
def v1(bundles: dict[str, Path], contract: Contract, jvm_started: None) -> Iterator[JavaModel]:
    with load(bundles["1.0"], contract) as model:
        yield model


def ask(model: JavaModel, contract: Contract, rpc: str, timeout: float | None = None) -> str:
    reply = model.call(rpc, b"", timeout)
    return str(contract.output_class(rpc).FromString(reply).text)


def thread_context() -> Any:
    return jpype.JClass("java.lang.Thread").currentThread().getContextClassLoader()


def test_model_code_sees_its_own_loader_as_context(v1: JavaModel, contract: Contract) -> None:
    # the JAXB case: a library looks its implementation up in the constructor
    assert (
        ask(v1, contract, "Constructed")
        == "static=model constructor=model greeting=hello model from acme 1.0"
    )
    for timeout in (None, 30.0):  # untimed calls, and calls under the deadline watchdog
        assert ask(v1, contract, "Context", timeout) == "model"
        assert ask(v1, contract, "Service", timeout) == "hello model from acme 1.0"
    assert ask(v1, contract, "Resource") == "1.0 services=1"
    assert ask(v1, contract, "ForName") == "hello forName from acme 1.0"
    assert ask(v1, contract, "Thread") == "model hello model from acme 1.0"  # inherited by a model's thread


def test_the_callers_context_loader_is_restored(v1: JavaModel, contract: Contract) -> None:
    before = thread_context()
    assert ask(v1, contract, "Context") == "model"
    assert thread_context() == before
    with pytest.raises(JavaModelError):  # a failed call restores it too: bytes that are not a message
        v1.call("Context", b"\x0a\xff")
    assert thread_context() == before
    assert ask(v1, contract, "Context", 30.0) == "model"
    assert thread_context() == before


def test_every_calling_thread_gets_the_context(v1: JavaModel, contract: Contract) -> None:
    answers: list[str] = []
    failures: list[BaseException] = []

    def client() -> None:
        try:
            before = thread_context()
            for _ in range(50):
                answers.append(ask(v1, contract, "Context") + " " + ask(v1, contract, "Service"))
            assert thread_context() == before
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            failures.append(err)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert answers == ["model hello model from acme 1.0"] * 200


def test_two_releases_of_one_library_side_by_side(
    bundles: dict[str, Path], contract: Contract, jvm_started: None
) -> None:
    with load(bundles["1.0"], contract) as v1, load(bundles["2.0"], contract) as v2:
        failures: list[BaseException] = []

        def client(model: JavaModel, release: str) -> None:
            try:
                for _ in range(30):
                    assert ask(model, contract, "Version") == release
                    assert ask(model, contract, "Service") == f"hello model from acme {release}"
                    assert ask(model, contract, "Resource") == f"{release} services=1"
                    assert ask(model, contract, "ForName") == f"hello forName from acme {release}"
            except BaseException as err:  # noqa: BLE001 - collected and asserted below
                failures.append(err)

        threads = [threading.Thread(target=client, args=m) for m in [(v1, "1.0"), (v2, "2.0")] * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert failures == []
        assert ask(v2, contract, "Constructed").endswith("greeting=hello model from acme 2.0")


def test_close_runs_with_the_context_loader(
    bundles: dict[str, Path], contract: Contract, jvm_started: None
) -> None:
    system = jpype.JClass("java.lang.System")
    system.clearProperty("modelrunner.tests.context.closed")
    model = load(bundles["2.0"], contract)
    model.close()  # ContextModel is AutoCloseable: its close() records what it saw
    assert str(system.getProperty("modelrunner.tests.context.closed")) == "model 2.0"


def test_a_failing_close_is_logged_and_the_version_is_closed(
    bundles: dict[str, Path], contract: Contract, jvm_started: None, caplog: pytest.LogCaptureFixture
) -> None:
    system = jpype.JClass("java.lang.System")
    model = load(bundles["1.0"], contract)
    system.setProperty("modelrunner.tests.context.failClose", "true")
    try:
        model.close()
    finally:
        system.clearProperty("modelrunner.tests.context.failClose")
    assert "ContextModel.close() threw java.lang.IllegalStateException: cannot release acme" in caplog.text
    with pytest.raises(BridgeError, match="is closed"):
        model.call("Context", b"")


def test_shared_jvm_pool_threads_are_not_the_models(v1: JavaModel, contract: Contract) -> None:
    # As docs/java-conventions.md says: ForkJoinPool.commonPool (parallel streams, supplyAsync without an
    # executor) is the JVM's, shared by every model; its threads do not carry a model's context loader.
    assert ask(v1, contract, "CommonPool") != "model"


@pytest.mark.slow
def test_no_thread_keeps_a_closed_version(bundles: dict[str, Path]) -> None:
    # In a fresh JVM, so that the first timed call (made with the model's context loader set) is the one
    # that starts the deadline watchdog: the watchdog must not inherit, and pin, that loader. Then load,
    # call (timed, untimed, a model thread) and close 40 times: every version's classes are unloaded.
    code = textwrap.dedent(f"""
        import json
        from pathlib import Path
        import jpype
        from bridge import jvm
        from bridge.model import JavaModel
        from runner.contract import Contract

        contract = Contract.compile({PROTO!r})
        bundle = Path({str(bundles["1.0"])!r})

        def cycle():
            with JavaModel.load(artifact_dir=bundle, class_name={MODEL!r}, service=contract.service) as m:
                assert m.call("Context", b"", 30.0) and m.call("Thread", b"") and m.call("Service", b"")

        jvm.start_jvm()
        cycle()
        Thread = jpype.JClass("java.lang.Thread")
        watchdog = [t for t in Thread.getAllStackTraces().keySet() if str(t.getName()) == "model-runner-watchdog"]
        contexts = [str(t.getContextClassLoader().getClass().getName()) for t in watchdog]
        jvm.jvm_stats()  # its first call loads the JDK's management classes: not the models'
        for _ in range(5):
            cycle()
        jvm.full_gc()
        before = jvm.jvm_stats()
        for _ in range(40):
            cycle()
        jvm.full_gc()
        print(json.dumps({{"watchdog": contexts, "before": before, "after": jvm.jvm_stats()}}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(r["watchdog"]) == 1 and "ModelLoader" not in r["watchdog"][0], r
    before, after = r["before"], r["after"]
    assert after["loaded_classes"] - before["loaded_classes"] <= 20, r
    assert after["unloaded_classes"] - before["unloaded_classes"] >= 40 * 4, r  # model, 2 libs, lambda
