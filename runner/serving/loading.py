"""The registry's hooks for serving: a stored version folder becomes a live model.

This is where the bundle's files and the runtimes meet the registry: open the bundle, compile its
contract, load its model in the runtime it names; close it when drained; start the JVM once with the
options every current Java bundle declares; report the JVM's options in the serving record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from runner.bundle import Metadata, open_bundle, read_metadata
from runner.contract import Contract
from runner.errors import ModelRunnerError
from runner.runtimes import load_model, prepare_runtimes, process_facts
from runner.serving.registry import LoadedVersion
from runner.settings import Settings

log = logging.getLogger(__name__)


class BundleLoader:
    """RegistryHooks over the repository's bundle folders (settings: JVM options and heap)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def prepare(self, current: Mapping[str, Path]) -> None:
        metadata: list[Metadata] = []
        for name, folder in current.items():
            try:
                metadata.append(read_metadata(folder))
            except ModelRunnerError as err:
                log.debug("%s: unreadable metadata, left to its load to report: %s", name, err.message)
        prepare_runtimes(metadata, self.settings)

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        bundle = open_bundle(version_dir)
        contract = Contract.compile(bundle.proto_text, include_dir=version_dir)
        model = load_model(version_dir, bundle.metadata, contract, self.settings)
        return LoadedVersion(name, version, bundle.metadata, contract, model)

    def unload(self, loaded: LoadedVersion) -> None:
        loaded.model.close()

    def facts(self) -> dict[str, object]:
        return process_facts()
