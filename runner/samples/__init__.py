"""Tooling, not runtime: builds the sample models from source into bundles (runner.samples.build) and
seeds an empty repository with them. Only the CLI imports it (the embedded default of ``serve``)."""

from runner.samples.build import (
    DEFAULT_SAMPLES,
    SampleBuildError,
    build_sample_bundles,
    ensure_default_repository,
    find_repo_root,
    find_weka_jar,
)

__all__ = [
    "DEFAULT_SAMPLES",
    "SampleBuildError",
    "build_sample_bundles",
    "ensure_default_repository",
    "find_repo_root",
    "find_weka_jar",
]
