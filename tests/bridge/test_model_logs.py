"""What a Java model prints reaches the serving process's log (bridge/output.py, host ModelOutput): each
complete line of System.out / System.err, every java.util.logging record, and the console output of the
logging libraries a model ships in lib/ (SLF4J with slf4j-simple or logback, Log4j 2), as one Python log
record on logger ``model.<name>`` tagged ``[model=<name> version=<N> pid=<pid>]``. Output of code that is
no model's passes through unchanged; a model printing faster than the log takes it is never held up (the
queue is bounded, drops are counted). A model's exception is logged once, with its stack trace, under the
request id its answer carries."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import output
from bridge.model import JavaModel
from runner.bundle import Metadata
from runner.contract import Contract
from runner.errors import ModelError, enter_request, leave_request
from runner.http.errors import public_error
from runner.runtimes import load_model
from runner.settings import Settings
from tests.bridge.artifacts import build_jar, java_bundle
from tests.bridge.conftest import run_python

CHATTY = "org.acme.logs.Chatty"
RPCS = ("Say", "Complain", "Pieces", "Jul", "Threads", "Pool", "Flood", "LongLine", "Fail", "Quiet", "Odd")
PROTO = (
    'syntax = "proto3";\npackage logs;\nmessage Req { string text = 1; int32 n = 2; }\n'
    "message Reply { string text = 1; }\nservice Chatty {\n"
    + "".join(f"  rpc {rpc} (Req) returns (Reply);\n" for rpc in RPCS)
    + "}\n"
)
LIB_PROTO = (
    'syntax = "proto3";\npackage logs;\nmessage Req { string text = 1; }\nmessage Reply { string text = 1; }\n'
    "service Libs { rpc Say (Req) returns (Reply); }\n"
)
# Debian's JARs: .ci/setup installs libslf4j-java, liblogback-java and liblog4j2-java
SHARE = Path("/usr/share/java")


def tag(name: str, version: object) -> str:
    return f"[model={name} version={version} pid={os.getpid()}] "


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    return java_bundle(
        root / "chatty", name="chatty", entry_point=CHATTY, proto=PROTO, model_jar=build_jar("logs")
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, jvm_started: None) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def load(bundle: Path, contract: Contract, name: str = "chatty", version: object = 1) -> JavaModel:
    return JavaModel.load(
        artifact_dir=bundle, class_name=CHATTY, service=contract.service, name=name, version=version
    )


@pytest.fixture
def chatty(bundle: Path, contract: Contract, logs: pytest.LogCaptureFixture) -> Iterator[JavaModel]:
    with load(bundle, contract) as model:
        yield model


def call(model: JavaModel, contract: Contract, rpc: str, text: str = "", n: int = 0) -> str:
    reply = model.call(rpc, contract.input_class(rpc)(text=text, n=n).SerializeToString())
    return str(contract.output_class(rpc).FromString(reply).text)


def logged(caplog: pytest.LogCaptureFixture, logger: str = "model.chatty") -> list[tuple[int, str]]:
    """(level, message) of every record of ``logger`` so far, once every line written is logged."""
    assert output.flush(30), "the model's lines were not logged within 30 s"
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger]


def test_out_and_err_lines_are_logged_tagged_from_the_first_class_initialiser_on(
    bundle: Path, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    with load(bundle, contract, version=3) as model:
        call(model, contract, "Say", "hello", 2)
        call(model, contract, "Complain", "too loud")
    t = tag("chatty", 3)
    assert logged(logs) == [
        (logging.INFO, t + "chatty: static initialiser"),
        (logging.WARNING, t + "chatty: constructed"),
        (logging.INFO, t + "hello 0"),
        (logging.INFO, t + "hello 1"),
        (logging.WARNING, t + "complaint: too loud"),
    ]


def test_a_line_written_in_pieces_is_one_record(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    call(chatty, contract, "Pieces", "été")
    t = tag("chatty", 1)
    assert logged(logs)[-2:] == [(logging.INFO, t + "pieces: été 42"), (logging.INFO, t + "bytes: été")]


def test_java_util_logging_records_keep_their_level_and_stack(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    call(chatty, contract, "Jul", "x")
    records = logged(logs)[-3:]
    t = tag("chatty", 1)
    assert records[0] == (logging.INFO, t + "org.acme.logs.Chatty: jul info x")
    assert records[1] == (logging.WARNING, t + "org.acme.logs.Chatty: jul warning x")
    level, text = records[2]
    assert level == logging.ERROR
    assert text.startswith(
        t + "org.acme.logs.Chatty: jul severe x\njava.lang.IllegalStateException: jul boom\n"
    )
    assert "org.acme.logs.Chatty.jul(Chatty.java:" in text  # the stack, in the same record
    assert not any("jul fine" in m for _, m in logged(logs))  # below the root logger's level


def test_text_python_cannot_decode_is_replaced_not_lost(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    call(chatty, contract, "Odd")
    call(chatty, contract, "Say", "after the odd ones")
    t = tag("chatty", 1)
    assert logged(logs)[-3:] == [
        (logging.INFO, t + "org.acme.logs.Chatty: lone \ufffd nul \ufffd pair \U0001f600"),
        (logging.INFO, t + "nul \ufffd in a line"),
        (logging.INFO, t + "after the odd ones 0"),
    ]


def test_lines_of_threads_printing_at_once_never_mix(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    threads = 8
    call(chatty, contract, "Threads", n=threads)
    line = re.compile(re.escape(tag("chatty", 1)) + r"t(\d+) line (\d+) (x+) end")
    seen: dict[int, list[int]] = {k: [] for k in range(threads)}
    for _, text in logged(logs):
        if " line " not in text:
            continue
        m = line.fullmatch(text)
        assert m, f"a mixed line: {text!r}"
        k, j = int(m.group(1)), int(m.group(2))
        assert len(m.group(3)) == 50 + (j % 7) * 30
        seen[k].append(j)
    # every line of every thread, each thread's in its order
    assert seen == {k: list(range(200)) for k in range(threads)}


def test_a_task_on_the_shared_pool_is_attributed_by_the_model_class_on_its_stack(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    call(chatty, contract, "Pool", "from the common pool")
    assert (logging.INFO, tag("chatty", 1) + "pool: from the common pool") in logged(logs)


def test_two_versions_side_by_side_are_tagged_apart(
    bundle: Path, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    with load(bundle, contract, version=1) as v1, load(bundle, contract, version=2) as v2:
        call(v2, contract, "Say", "from v2")
        call(v1, contract, "Say", "from v1")
    says = [m for _, m in logged(logs) if " from v" in m]
    assert says == [tag("chatty", 2) + "from v2 0", tag("chatty", 1) + "from v1 0"]


def test_output_of_code_that_is_no_models_passes_through(
    chatty: JavaModel, logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import jpype

    system = jpype.JClass("java.lang.System")
    system.out.println("host line on stdout")
    system.err.println("host line on stderr")
    assert not [m for _, m in logged(logs) if "host line" in m]
    captured = capfd.readouterr()
    assert "host line on stdout\n" in captured.out and "host line on stderr\n" in captured.err


def test_a_long_line_is_cut_into_records(
    chatty: JavaModel, contract: Contract, logs: pytest.LogCaptureFixture
) -> None:
    call(chatty, contract, "LongLine", n=40_000)
    parts = [m.removeprefix(tag("chatty", 1)) for _, m in logged(logs) if "LLL" in m]
    assert [len(p.removesuffix(" [line continues]")) for p in parts] == [16384, 16384, 40_000 - 2 * 16384]
    assert "".join(p.removesuffix(" [line continues]") for p in parts) == "L" * 40_000


class _Blocking(logging.Handler):
    """Holds the thread that logs (the drainer) in its first record until released; counts records."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.unblock = threading.Event()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.unblock.wait(60)
        self.records.append(record.getMessage())


def test_a_model_printing_faster_than_the_log_is_never_held_up_and_drops_are_counted(
    bundle: Path, contract: Contract, jvm_started: None
) -> None:
    lines = 20_000  # 20 MB: five times what the queue holds
    logger = logging.getLogger("model.floody")
    handler = _Blocking()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with load(bundle, contract, name="floody") as model:
            done = threading.Event()

            def flood() -> None:
                call(model, contract, "Flood", n=lines)
                done.set()

            threading.Thread(target=flood, daemon=True).start()
            assert handler.entered.wait(30)
            # the log is stuck in its first record; the model writes on regardless
            assert done.wait(60), "the model was held up by its log"
            handler.unblock.set()
            assert output.flush(60)
    finally:
        handler.unblock.set()
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    t = tag("floody", 1)
    flooded = [m for m in handler.records if m.startswith(t + "f" * 990)]
    notes = [m for m in handler.records if "of output dropped" in m]
    assert notes, "no record says lines were dropped"
    dropped = sum(int(re.findall(r"\] (\d+) lines? of output dropped", m)[0]) for m in notes)
    assert dropped > 0 and len(flooded) + dropped == lines
    # what was kept came in order
    numbers = [int(m.rsplit(" ", 1)[1]) for m in flooded]
    assert numbers == sorted(numbers)


def test_a_model_exception_is_logged_once_with_its_stack_under_the_request_id_of_the_answer(
    bundle: Path, contract: Contract, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    version_dir = tmp_path / "repo" / "models" / "chatty" / "versions" / "7"
    version_dir.parent.mkdir(parents=True)
    java_bundle(version_dir, name="chatty", entry_point=CHATTY, proto=PROTO, model_jar=bundle / "model.jar")
    metadata = Metadata.from_dict(json.loads((version_dir / "metadata.json").read_text()))
    model = load_model(version_dir, metadata, contract, Settings())

    def fail(text: str) -> ModelError:
        with pytest.raises(ModelError) as info:
            model.invoke("Fail", contract.input_class("Fail")(text=text).SerializeToString())
        return info.value

    try:
        token = enter_request("client-id-42")  # as an edge does for the request it serves
        try:
            served = fail("in a request")
        finally:
            leave_request(token)
        alone = fail("outside a request")
    finally:
        model.close()
    assert served.detail["request_id"] == "client-id-42"
    assert re.fullmatch(r"[0-9a-f]{16}", alone.detail["request_id"])
    t = tag("chatty", 7)
    for err, text in ((served, "in a request"), (alone, "outside a request")):
        request_id = err.detail["request_id"]
        failures = [(level, m) for level, m in logged(logs) if f"boom {text}" in m]
        assert len(failures) == 1
        level, logged_text = failures[0]
        assert level == logging.ERROR
        assert logged_text.startswith(
            f"{t}request {request_id}: chatty.Fail: fail threw java.lang.IllegalStateException: boom {text}\n"
        )
        assert re.search(r"\n\tat \S*org.acme.logs.Chatty.fail\(Chatty.java:\d+\)\n", logged_text)
        # the line the model printed before it threw carries the same tag
        assert (logging.WARNING, f"{t}about to fail: {text}") in logged(logs)
        # the HTTP answer names that id and leaves the stack out (it is in the log)
        body, answered = public_error(err)
        assert answered == request_id and body["error"]["detail"]["request_id"] == request_id
        assert "java_stack" not in body["error"]["detail"]
        assert body["error"]["detail"]["java_class"] == "java.lang.IllegalStateException"


def test_a_process_without_logging_prints_the_tagged_lines_on_stderr(bundle: Path) -> None:
    # a CLI command (onboard, validate) configures no logging: the lines still show, at exit included
    proc = run_python(
        "from pathlib import Path\n"
        "from bridge.model import JavaModel\n"
        "from runner.contract import Contract\n"
        f"c = Contract.compile({PROTO!r})\n"
        f"m = JavaModel.load(artifact_dir=Path({str(bundle)!r}), class_name={CHATTY!r}, service=c.service,"
        " name='chatty', version=5)\n"
        "m.call('Say', c.input_class('Say')(text='on the console', n=1).SerializeToString())\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\[model=chatty version=5 pid=\d+\] on the console 0$", proc.stderr, re.M), proc.stderr
    assert "on the console" not in proc.stdout


# ------------------------------------------------------------------ logging libraries shipped in lib/


def _jars(*names: str) -> dict[str, Path]:
    paths = {f"lib/{n}": SHARE / n for n in names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"not installed (.ci/setup installs them): {', '.join(missing)}")
    return paths


@pytest.fixture(scope="module")
def libs_jar() -> Path:
    _jars("slf4j-api.jar", "log4j-api.jar")
    return build_jar("logs-libs", classpath=[SHARE / "slf4j-api.jar", SHARE / "log4j-api.jar"])


@pytest.mark.parametrize(
    ("binding", "jars", "stream"),
    [
        ("slf4j-simple", ("slf4j-api.jar", "slf4j-simple.jar"), logging.WARNING),  # prints to System.err
        ("logback", ("slf4j-api.jar", "logback-classic.jar", "logback-core.jar"), logging.INFO),  # System.out
    ],
    ids=["slf4j-simple", "logback"],
)
def test_slf4j_with_the_binding_the_model_ships(
    binding: str,
    jars: tuple[str, ...],
    stream: int,
    libs_jar: Path,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = java_bundle(
        tmp_path / binding,
        name="slf",
        entry_point="org.acme.logs.libs.Slf4jModel",
        proto=LIB_PROTO,
        model_jar=libs_jar,
        files=_jars(*jars),
    )
    contract = Contract.compile(LIB_PROTO)
    with JavaModel.load(
        artifact_dir=bundle,
        class_name="org.acme.logs.libs.Slf4jModel",
        service=contract.service,
        name="slf",
        version=2,
    ) as model:
        model.call("Say", contract.input_class("Say")(text="via " + binding).SerializeToString())
    records = logged(logs, "model.slf")
    t = tag("slf", 2)
    for message in ("slf4j model constructed", f"slf4j info via {binding}", f"slf4j warn via {binding}"):
        found = [(level, m) for level, m in records if m.endswith(message)]
        assert len(found) == 1, (message, records)
        level, text = found[0]
        assert level == stream and text.startswith(t)
        assert "org.acme.logs.libs.Slf4jModel" in text  # the library's own format: the logger's name


def test_log4j2_with_log4j_core_the_model_ships(
    libs_jar: Path, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    bundle = java_bundle(
        tmp_path / "log4j2",
        name="l4j",
        entry_point="org.acme.logs.libs.Log4jModel",
        proto=LIB_PROTO,
        model_jar=libs_jar,
        files=_jars("log4j-api.jar", "log4j-core.jar"),
    )
    contract = Contract.compile(LIB_PROTO)
    with JavaModel.load(
        artifact_dir=bundle,
        class_name="org.acme.logs.libs.Log4jModel",
        service=contract.service,
        name="l4j",
        version=4,
    ) as model:
        model.call("Say", contract.input_class("Say")(text="via log4j").SerializeToString())
    found = [m for _, m in logged(logs, "model.l4j") if m.endswith("log4j error via log4j")]
    assert len(found) == 1 and found[0].startswith(tag("l4j", 4)), logged(logs, "model.l4j")
