"""Settings: defaults < TOML file < MODEL_RUNNER_* environment < flags, every value checked by its rule."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from runner.cli import build_parser, main
from runner.cli.serve import settings_from_args
from runner.errors import BadInput
from runner.settings import Flag, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("MODEL_RUNNER_"):
            monkeypatch.delenv(var)


def refused(environ: dict[str, str] | None = None, **kwargs: object) -> str:
    with pytest.raises(BadInput) as info:
        Settings.from_env(environ or {}, **kwargs)  # type: ignore[arg-type]
    assert info.value.detail["hint"]
    return info.value.message


def serve_flags(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


# -------------------------------------------------------------------------------------------- precedence


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "model-runner.toml"
    config.write_text(
        'repo = "/srv/models"\nworkers = 4\nthreads = 3\ngrpc_port = 7000\npoll_interval = 0.25\n'
        'swap_timeout = 5\njvm_max_heap = "2g"\njvm_options = ["-Xss2m", "-Dmode=prod"]\n'
    )
    environ = {
        "MODEL_RUNNER_CONFIG": str(config),
        "MODEL_RUNNER_THREADS": "6",
        "MODEL_RUNNER_WORKERS": "3",
        "MODEL_RUNNER_HTTP_HOST": "",  # empty: not set
    }
    flags = [Flag("workers", "--workers", "5"), Flag("jvm_options", "--jvm-option", "-Dextra=1")]
    settings = Settings.from_env(environ, flags=flags)
    assert settings.repo == Path("/srv/models") and settings.grpc_port == 7000  # from the file only
    assert settings.poll_interval == 0.25 and settings.swap_timeout == 5.0  # a TOML integer is a number
    assert isinstance(settings.swap_timeout, float) and settings.jvm_max_heap == "2g"
    assert settings.http_host == "127.0.0.1"  # the default
    assert settings.threads == 6  # the environment overrides the file
    assert settings.workers == 5  # a flag overrides both
    assert settings.jvm_options == ("-Xss2m", "-Dmode=prod", "-Dextra=1")  # --jvm-option adds
    assert Settings.from_env({}, config_file=config).workers == 4  # --config FILE
    # --config wins over MODEL_RUNNER_CONFIG
    other = tmp_path / "other.toml"
    other.write_text("workers = 7\n")
    assert Settings.from_env({"MODEL_RUNNER_CONFIG": str(config)}, config_file=other).workers == 7


def test_serve_flags_go_through_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "s.toml"
    config.write_text("workers = 4\nthreads = 3\n")
    monkeypatch.setenv("MODEL_RUNNER_THREADS", "6")
    settings = serve_flags(
        "--config", str(config), "--workers", "5", "--grpc-port", "-1", "--repo", str(tmp_path / "r")
    )
    assert (settings.workers, settings.threads, settings.grpc_port) == (5, 6, -1)
    assert settings.repo == (tmp_path / "r").resolve()
    assert serve_flags("--jvm-option=-Xss2m", "--jvm-option=-Da=b").jvm_options == ("-Xss2m", "-Da=b")


def test_accepted_edges() -> None:
    settings = Settings.from_env(
        {
            "MODEL_RUNNER_POLL_INTERVAL": "0.01",
            "MODEL_RUNNER_GRPC_PORT": "-1",
            "MODEL_RUNNER_HTTP_PORT": " 0 ",
            "MODEL_RUNNER_JVM_MAX_HEAP": "8M",
            "MODEL_RUNNER_HTTP_HOST": "::",
            "MODEL_RUNNER_ADMIN_TOKEN": "s3cr3t-t0ken\n",
            "MODEL_RUNNER_WORKERS": "64",
            "MODEL_RUNNER_SWAP_TIMEOUT": "1e-1",
        }
    )
    assert (settings.poll_interval, settings.grpc_port, settings.http_port) == (0.01, -1, 0)
    assert (settings.jvm_max_heap, settings.http_host, settings.admin_token) == ("8M", "::", "s3cr3t-t0ken")
    assert (settings.workers, settings.swap_timeout) == (64, 0.1)


# ------------------------------------------------------------------------------------ environment refusals


@pytest.mark.parametrize(
    ("var", "raw", "accepted"),
    [
        ("WORKERS", "abc", "an integer from 1 to 64"),  # not a number
        ("WORKERS", "2.5", "an integer from 1 to 64"),  # not an integer
        ("WORKERS", "0", "an integer from 1 to 64"),  # below the range
        ("THREADS", "100000", "an integer from 1 to 256"),  # above the range
        ("HTTP_PORT", "65536", "an integer from 0 to 65535"),
        ("GRPC_PORT", "-2", "an integer from -1 to 65535"),
        ("MAX_BODY_BYTES", "0", "an integer of at least 1"),
        ("MAX_MESSAGE_BYTES", str(2**31), "an integer from 1 to 2147483647"),
        ("KEEP_VERSIONS", "0", "an integer of at least 1"),
        ("POLL_INTERVAL", "0", "a number of seconds from 0.01 to 60"),  # would busy-loop
        ("POLL_INTERVAL", "nan", "a number of seconds from 0.01 to 60"),
        ("PREDICT_TIMEOUT", "0", "a number of seconds above 0 and at most 86400"),
        ("SWAP_TIMEOUT", "inf", "a number of seconds above 0 and at most 86400"),
        ("HTTP_HOST", "local host", "a host name or IP address"),
        ("ADMIN_TOKEN", "   ", "a non-empty token of printable ASCII without spaces"),
        ("JVM_MAX_HEAP", "2gb", "a JVM heap size like 512m or 2g"),
        ("JVM_MAX_HEAP", "1m", "at least 8m"),
        ("JVM_OPTIONS", "-Xss2m Xmx1g", "JVM options, each starting with '-' and without spaces"),
    ],
)
def test_a_bad_environment_variable_is_refused_by_name(var: str, raw: str, accepted: str) -> None:
    message = refused({"MODEL_RUNNER_" + var: raw})
    name = var.lower()
    assert message.startswith(f"environment variable MODEL_RUNNER_{var}={raw!r}: {name} must be ")
    assert accepted in message


def test_every_refused_value_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text("workers = 0\n")
    with pytest.raises(BadInput) as info:
        Settings.from_env(
            {"MODEL_RUNNER_CONFIG": str(config), "MODEL_RUNNER_THREADS": "x", "MODEL_RUNNER_WORKERS": "2"},
            flags=[Flag("http_port", "--http-port", "-5")],
        )
    message = info.value.message
    assert message.startswith("3 settings refused:")  # the file's bad value counts even when overridden
    assert [p["setting"] for p in info.value.detail["problems"]] == ["workers", "threads", "http_port"]
    assert f"settings file {config} key workers = 0" in message
    assert "environment variable MODEL_RUNNER_THREADS='x'" in message and "flag --http-port='-5'" in message


# ------------------------------------------------------------------------------------ settings file refusals


@pytest.mark.parametrize(
    ("line", "shown", "accepted"),
    [
        # right TOML type, out of range
        ("workers = -3", "workers = -3", "workers must be an integer from 1 to 64"),
        ("poll_interval = 0.001", "poll_interval = 0.001", "a number of seconds from 0.01 to 60"),
        ('jvm_max_heap = "lots"', 'jvm_max_heap = "lots"', "a JVM heap size like 512m or 2g"),
        ('jvm_options = ["Xss2m"]', 'jvm_options = ["Xss2m"]', "each starting with '-'"),
        ('admin_token = ""', 'admin_token = ""', "a non-empty token"),
        ('repo = ""', 'repo = ""', "repo must be a non-empty path"),
    ],
)
def test_a_bad_value_in_the_settings_file_is_refused_by_key(
    tmp_path: Path, line: str, shown: str, accepted: str
) -> None:
    config = tmp_path / "model-runner.toml"
    config.write_text(line + "\n")
    message = refused(config_file=config)
    assert message.startswith(f"settings file {config} key {shown}: ")
    assert accepted in message and "TOML" not in message


@pytest.mark.parametrize(
    ("line", "name", "wanted", "given"),
    [
        ("http_host = 5", "http_host", "string", "an integer"),
        ("repo = 7", "repo", "string", "an integer"),
        ('poll_interval = "0"', "poll_interval", "number", "a string"),  # no silent str -> float
        ('workers = "4"', "workers", "integer", "a string"),
        ("threads = 4.0", "threads", "integer", "a float"),
        ("workers = true", "workers", "integer", "a boolean"),
        ('jvm_options = "-Xss2m"', "jvm_options", "array of strings", "a string"),
        ("jvm_options = [1, 2]", "jvm_options", "array of strings", "an array of other values"),
        ('http_host = ["a", "b"]', "http_host", "string", "an array"),  # lists only for jvm_options
        ("admin_token_file = {path = 'x'}", "admin_token_file", "string", "a table"),
    ],
)
def test_a_value_of_the_wrong_toml_type_is_refused(
    tmp_path: Path, line: str, name: str, wanted: str, given: str
) -> None:
    config = tmp_path / "model-runner.toml"
    config.write_text(line + "\n")
    message = refused(config_file=config)
    assert message.startswith(f"settings file {config} key {name} = ")
    assert f"{name} must be {Settings.accepted(name)} (a TOML {wanted}, not {given})" in message


def test_a_bad_settings_file_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("wokers = 4\n")
    with pytest.raises(BadInput) as info:
        Settings.from_env({}, config_file=config)
    assert "wokers (did you mean workers?)" in info.value.message
    assert "workers" in info.value.detail["known"] and str(config) in info.value.message
    config.write_text("workers = \n")
    assert "not valid TOML" in refused(config_file=config)
    assert "cannot read the settings file" in refused(config_file=tmp_path / "missing.toml")
    message = refused({"MODEL_RUNNER_CONFIG": str(tmp_path / "missing.toml")})
    assert "(from MODEL_RUNNER_CONFIG)" in message


# ------------------------------------------------------------------------------------------- flag refusals


@pytest.mark.parametrize(
    ("argv", "shown", "accepted"),
    [
        (["--workers", "0"], "flag --workers='0'", "workers must be an integer from 1 to 64"),
        (["--workers", "many"], "flag --workers='many'", "workers must be an integer from 1 to 64"),
        (
            ["--http-port", "99999"],
            "flag --http-port='99999'",
            "http_port must be an integer from 0 to 65535",
        ),
        (["--grpc-port", "-7"], "flag --grpc-port='-7'", "grpc_port must be an integer from -1 to 65535"),
        (["--max-body-bytes", "0"], "flag --max-body-bytes='0'", "max_body_bytes must be an integer of at"),
        (["--host", ""], "flag --host=''", "http_host must be a host name or IP address"),
        (["--repo", ""], "flag --repo=''", "repo must be a non-empty path"),
        (["--jvm-option=Xss2m"], "flag --jvm-option='Xss2m'", "jvm_options must be JVM options"),
    ],
)
def test_a_bad_flag_is_refused_by_name(argv: list[str], shown: str, accepted: str) -> None:
    with pytest.raises(BadInput) as info:
        serve_flags(*argv)
    assert info.value.message.startswith(f"{shown}: ") and accepted in info.value.message


def test_serve_stops_at_a_bad_setting_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_RUNNER_WORKERS", "abc")
    assert main(["serve", "--repo", str(tmp_path / "repo")]) == 1
    err = capsys.readouterr().err
    assert (
        "error: environment variable MODEL_RUNNER_WORKERS='abc': workers must be an integer from 1 to 64"
        in err
    )
    assert "hint:" in err and not (tmp_path / "repo").exists()


# ------------------------------------------------------------------------------------- children, clients


def test_to_env_round_trips_through_from_env(tmp_path: Path) -> None:
    settings = Settings(
        repo=tmp_path / "repo",
        http_host="0.0.0.0",
        http_port=0,
        grpc_port=-1,
        workers=3,
        admin_token="tok",
        admin_token_file=tmp_path / "token",
        max_message_bytes=2**31 - 1,
        poll_interval=0.05,
        swap_timeout=12.5,
        predict_timeout=0.3,
        jvm_max_heap="512m",
        jvm_options=("-Xss2m", "-Dmode=prod"),
        keep_versions=1,
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()
    # what the child inherits cannot change them: unset settings are passed empty, and no file is read
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = 0\n")
    inherited = {"MODEL_RUNNER_JVM_MAX_HEAP": "4g", "MODEL_RUNNER_CONFIG": str(bad)}
    plain = Settings(repo=tmp_path / "repo")
    assert Settings.from_env({**inherited, **plain.to_env()}) == plain


def test_to_env_refuses_what_a_child_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=re.escape("Settings.jvm_options=('-Dname=a b',)")):
        Settings(repo=tmp_path, jvm_options=("-Dname=a b",)).to_env()  # would split in two
    with pytest.raises(BadInput, match="poll_interval must be a number of seconds from 0.01"):
        Settings(repo=tmp_path, poll_interval=0).to_env()


def test_only_reads_the_settings_asked_for(tmp_path: Path) -> None:
    environ = {"MODEL_RUNNER_WORKERS": "abc", "MODEL_RUNNER_REPO": str(tmp_path)}
    settings = Settings.from_env(environ, only=("repo", "admin_token_file"))
    assert settings.repo == tmp_path and settings.workers == 2
    assert refused(environ, only=("workers",)).startswith("environment variable MODEL_RUNNER_WORKERS=")


def test_the_documentation_states_each_accepted_range() -> None:
    rows = {
        m.group(1): line
        for line in DOCS.read_text("utf-8").splitlines()
        if (m := re.match(r"\| `([a-z_]+)` \| `MODEL_RUNNER_", line))
    }
    for f in dataclasses.fields(Settings):
        assert f.name in rows, f"docs/configuration.md has no row for {f.name}"
        assert Settings.accepted(f.name) in rows[f.name], f"docs/configuration.md: range of {f.name}"
