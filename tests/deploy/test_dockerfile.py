"""The Dockerfile, read statically: its stages, the non-root user, the entry point, the health check, and
that everything it copies from the build context exists in the repository and is not ignored."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

from runner.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages() -> list[tuple[str | None, list[tuple[str, str]]]]:
    """[(stage name or None, its instructions)]; ARGs before the first FROM are left out."""
    found: list[tuple[str | None, list[tuple[str, str]]]] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            named = re.search(r"\s+AS\s+(\S+)$", args, re.I)
            found.append((named.group(1) if named else None, []))
        elif found:
            found[-1][1].append((keyword, args))
    return found


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(Path(prefix).name, bare):
                return True
    return False


def test_two_stages_build_with_a_jdk_and_run_with_a_jre() -> None:
    found = stages()
    assert [name for name, _ in found] == ["build", None], "a named build stage, then the image"
    build, runtime = (" ".join(args for k, args in stage if k == "RUN") for _, stage in found)
    assert "openjdk-17-jdk-headless" in build and "gradle" in build
    assert "openjdk-17-jre-headless" in runtime and "-jdk" not in runtime
    assert "python3" in runtime
    # the build stage compiles the host library and the sample bundles, so the image never needs javac
    assert "host_classes" in build and "runner.samples" in build


def test_the_image_runs_as_a_non_root_user() -> None:
    _, runtime = stages()[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "no USER in the final stage: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")
    assert re.search(rf"useradd\b.*--uid {re.escape(user)}\b", DOCKERFILE.read_text()), "USER is not created"


def test_entry_point_is_serve_configured_by_environment() -> None:
    _, runtime = stages()[-1]
    entry = json.loads(next(args for keyword, args in runtime if keyword == "ENTRYPOINT"))
    assert entry[-2:] == ["model-runner", "serve"], entry
    env = env_of(runtime)
    known = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    # read outside Settings: the host library's cache (bridge.build) and the samples' tree (runner.samples)
    known_elsewhere = {ENV_PREFIX + "CACHE_DIR", ENV_PREFIX + "SOURCE_ROOT"}
    settings_env = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and k not in known_elsewhere}
    assert set(settings_env) <= known, f"unknown settings: {set(settings_env) - known}"
    settings = Settings.from_env(settings_env)
    assert settings.http_host == "0.0.0.0"
    exposed = {int(p) for keyword, args in runtime if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {settings.http_port, settings.grpc_port}
    volumes = [json.loads(args) for keyword, args in runtime if keyword == "VOLUME"]
    assert volumes == [[str(settings.repo)]], "the repository is the image's volume"


def test_health_check_asks_healthz_on_the_http_port() -> None:
    _, runtime = stages()[-1]
    check = next(args for keyword, args in runtime if keyword == "HEALTHCHECK")
    assert "/healthz" in check and "MODEL_RUNNER_HTTP_PORT" in check
    assert re.search(r"--start-period=\d+s", check)


@pytest.mark.parametrize("stage_index", [0, 1])
def test_every_copy_source_exists_and_is_not_ignored(stage_index: int) -> None:
    names = [name for name, _ in stages()]
    _, stage = stages()[stage_index]
    for keyword, args in stage:
        if keyword not in ("COPY", "ADD"):
            continue
        words = args.split()
        options = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        sources = paths[:-1]
        assert sources, f"{keyword} {args}: no source"
        source_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        if source_stage is not None:
            assert source_stage in names[:stage_index], f"{keyword} {args}: no earlier stage {source_stage}"
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"{keyword} {args}: {source} is not in the repository"
            assert not dockerignored(source), f"{keyword} {args}: .dockerignore excludes {source}"


def test_dockerignore_keeps_build_outputs_out() -> None:
    for path in ("build/samples", "java-samples/iris/build/libs", ".git", "runner/__pycache__"):
        assert dockerignored(path), path
    for path in ("runner/samples/build.py", "bridge/build.py", "java-samples/iris/build.gradle"):
        assert not dockerignored(path), path
