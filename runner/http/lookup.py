"""Which model a URL means: a named model that must exist, or the one model of the Acumos paths."""

from __future__ import annotations

from runner.errors import BadInput, NotFound
from runner.store import Repository


def current_or_404(repository: Repository, name: str) -> int:
    """The current version of model ``name``; NotFound when there is no such model."""
    version = repository.current_version(name)
    if version is None:
        raise NotFound(f"no model named {name!r}", {"model": name, "models": repository.models()})
    return version


def single_model(repository: Repository) -> str:
    """The one model of a single-model service (the Acumos paths)."""
    names = repository.models()
    if len(names) == 1:
        return names[0]
    if not names:
        raise NotFound("this service has no model yet", {"hint": "PUT /model or PUT /models/{name}"})
    raise BadInput(
        f"this service serves {len(names)} models; use /models/{{name}}/... with one of them",
        {"models": names},
    )
