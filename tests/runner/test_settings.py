"""Settings: defaults < TOML file < MODEL_RUNNER_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import BadInput
from runner.settings import Settings


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "model-runner.toml"
    config.write_text(
        'repo = "/srv/models"\nworkers = 4\nthreads = 3\npoll_interval = 0.25\n'
        'jvm_options = ["-Xss2m", "-Dmode=prod"]\n'
    )
    settings = Settings.from_env({"MODEL_RUNNER_CONFIG": str(config), "MODEL_RUNNER_THREADS": "6"}, workers=5)
    assert settings.repo == Path("/srv/models")
    assert settings.poll_interval == 0.25 and settings.jvm_options == ("-Xss2m", "-Dmode=prod")
    assert settings.threads == 6  # the environment overrides the file
    assert settings.workers == 5  # a flag overrides both
    assert Settings.from_env({}, config_file=config).workers == 4  # --config FILE
    # a child process gets every resolved value through its environment
    child = Settings.from_env(settings.to_env())
    assert (child.repo, child.workers, child.threads, child.jvm_options) == (
        settings.repo,
        5,
        6,
        ("-Xss2m", "-Dmode=prod"),
    )


def test_a_bad_settings_file_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("wokers = 4\n")
    with pytest.raises(BadInput) as info:
        Settings.from_env({}, config_file=config)
    assert "wokers" in info.value.message and "workers" in info.value.detail["known"]
    config.write_text("workers = 'many'\n")
    with pytest.raises(BadInput, match="workers"):
        Settings.from_env({}, config_file=config)
    config.write_text("workers = \n")
    with pytest.raises(BadInput, match="TOML"):
        Settings.from_env({}, config_file=config)
    with pytest.raises(BadInput, match="cannot read"):
        Settings.from_env({}, config_file=tmp_path / "missing.toml")
