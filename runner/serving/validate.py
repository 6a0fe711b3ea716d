"""Validation before publish: the bundle is loaded and exercised in this process, then closed.

Steps: the contract compiles; metadata's method overrides and examples name rpcs of the contract;
its required fields exist and have presence, and every example sets them; the model loads (a fresh
class loader for Java) and every rpc binds; each rpc runs on the bundle's examples, or on the default
input message when it has none (empty but for its required fields, set to 0); each output decodes as
the rpc's output message. The first failure raises InvalidBundle / InvalidContract saying which rpc,
which example and what the model said; the model is closed whatever happens.

The load and the examples together have ``Settings.load_timeout``: a model still loading at the limit
is refused (InvalidBundle naming the limit) and its load abandoned on its own thread (closed if it
ever ends; runner.serving.loading.run_within), so an upload never waits on a model longer than that.
A Python bundle's own environment (requirements.txt, ``python``: runner.runtimes.environments) is
built before that, once per distinct environment, within ``Settings.environment_build_timeout``.
InvalidBundle (422) rather than a deadline kind (504): the refusal is final for this bundle on this
service (nothing was published, the same upload would be refused again), while a 504 says
"published, not served everywhere yet" or invites a retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runner.bundle import Bundle
from runner.contract import Contract, RequiredFields
from runner.errors import BadInput, DeadlineExceeded, InvalidBundle, ModelRunnerError, NotReady
from runner.runtimes import Model, load_model, prepare_runtimes, process_facts
from runner.runtimes.deadline import call_timeout
from runner.runtimes.environments import ensure_environment
from runner.serving.batching import batched_methods
from runner.serving.loading import Overran, run_within
from runner.settings import Settings


@dataclass
class ValidationReport:
    """What validation saw: rpc names, how each bound, and each example's output (proto3 JSON)."""

    name: str
    methods: list[str]
    bindings: dict[str, dict[str, Any]]
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    generated_inputs: list[str] = field(default_factory=list)
    """rpcs that had no example and ran on the default input message."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "methods": self.methods,
            "bindings": self.bindings,
            "outputs": self.outputs,
            "generated_inputs": self.generated_inputs,
            "warnings": self.warnings,
        }


def validate_bundle(
    bundle: Bundle, *, settings: Settings, timeout: float | None = None, load_timeout: float | None = None
) -> ValidationReport:
    """Compile, load, bind and exercise a bundle; InvalidBundle/InvalidContract on the first failure.
    ``settings`` start the JVM if this is the first Java model of the process; ``timeout`` bounds each
    example call, ``load_timeout`` (default: the setting) the load and the examples together."""

    meta = bundle.metadata
    contract = Contract.compile(bundle.proto_text, include_dir=bundle.root)
    rpcs = contract.method_names()
    problems = [
        f"methods.{rpc}: the contract has no rpc {rpc} (it has {', '.join(rpcs)})"
        for rpc in meta.methods
        if rpc not in rpcs
    ] + [
        f"examples.{rpc}: the contract has no rpc {rpc} (it has {', '.join(rpcs)})"
        for rpc in meta.examples
        if rpc not in rpcs
    ]
    if problems:
        raise InvalidBundle("metadata.json: " + "; ".join(problems), detail={"problems": problems})
    required = RequiredFields.build(contract, meta.required)  # InvalidBundle: a field that cannot be required
    batched_methods(meta, contract)  # InvalidBundle: a bad `batching`, or an rpc without the batch shape
    inputs: dict[str, list[tuple[str, Any]]] = {}
    generated: list[str] = []
    for rpc in rpcs:
        cls = contract.input_class(rpc)
        examples = meta.examples.get(rpc)
        if examples:
            items = []
            for i, ex in enumerate(examples, 1):
                try:
                    msg = contract.from_json(cls, ex)
                    required.check(rpc, msg)  # a served request like this one would be refused
                    items.append((f"example {i}", msg))
                except BadInput as err:
                    raise InvalidBundle(
                        f"examples.{rpc}[{i - 1}] is not a valid {cls.DESCRIPTOR.full_name}: {err.message}",
                        detail={"rpc": rpc, "example": i - 1, **err.detail},
                    ) from err
            inputs[rpc] = items
        else:
            generated.append(rpc)
            inputs[rpc] = [("default input", required.fill(rpc, cls()))]  # required fields set, to 0

    # the one deadline rule (a served call's limits: predict_timeout, the bundle's timeout_seconds)
    per_call = call_timeout(timeout, setting=settings.predict_timeout, bundle=meta.timeout_seconds)
    limit = settings.predict_timeout if per_call is None else per_call
    budget = settings.load_timeout if load_timeout is None else load_timeout
    if meta.runtime == "java" and process_facts().get("jvm_options") is None:
        prepare_runtimes([meta], settings)  # starting this process's JVM is not the model's load time
    # a Python bundle's own environment (requirements.txt, python) is built first, once per distinct
    # environment: it has its own limit (environment_build_timeout), not the model's load time
    ensure_environment(bundle.root, meta, settings)
    deadline = time.monotonic() + budget
    model = _load_within(bundle, contract, settings, budget)
    try:
        report = ValidationReport(
            name=meta.name,
            methods=rpcs,
            bindings=dict(model.bindings),
            generated_inputs=generated,
        )
        for rpc in rpcs:
            out_cls = contract.output_class(rpc)
            outs: list[dict[str, Any]] = []
            for label, msg in inputs[rpc]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _over_budget(meta.name, budget, f"{rpc} on its {label}")
                try:
                    raw = model.invoke(rpc, msg.SerializeToString(), min(limit, left))
                    out = contract.decode(out_cls, raw, "application/x-protobuf")
                except NotReady:
                    raise
                except DeadlineExceeded as err:
                    if left < limit:  # the validation's budget ran out, not the call's own limit
                        raise _over_budget(meta.name, budget, f"{rpc} on its {label}") from err
                    raise _example_failed(contract, rpc, label, msg, err) from err
                except ModelRunnerError as err:
                    raise _example_failed(contract, rpc, label, msg, err) from err
                outs.append(contract.to_dict(out))
            report.outputs[rpc] = outs
        for key in meta.extra:
            report.warnings.append(f"metadata.json: unknown field {key!r} ignored")
        for message in required.unchecked:
            report.warnings.append(
                f"metadata.json: required lists {message}, which no rpc takes as (part of) its input: "
                "nothing checks it"
            )
        return report
    finally:
        model.close()


def _load_within(bundle: Bundle, contract: Contract, settings: Settings, budget: float) -> Model:
    """The bundle's model loaded on its own thread within ``budget`` seconds, else InvalidBundle (the
    load is abandoned: it goes on on its thread, and the model is closed if it ever loads)."""
    meta = bundle.metadata
    try:
        return run_within(
            lambda: load_model(bundle.root, meta, contract, settings),
            budget,
            what=f"validation of model {meta.name!r}",
            thread_name=f"validate-{meta.name}",
            close_late=lambda model: model.close(),
            facts={"model": meta.name, "version": None},
        )
    except Overran as err:
        refusal = _over_budget(meta.name, budget, "load", what=err.what)
        if err.earlier:
            refusal.message += err.note()
            refusal.args = (refusal.message,)
            refusal.detail["earlier_abandoned_loads"] = err.earlier
        raise refusal from None


def _over_budget(name: str, budget: float, phase: str, *, what: str | None = None) -> InvalidBundle:
    detail: dict[str, Any] = {
        "load_timeout": budget,
        "phase": "load" if phase == "load" else "examples",
        "hint": "make the model load faster (or its examples run faster), or raise the service's "
        "load_timeout setting (MODEL_RUNNER_LOAD_TIMEOUT)",
    }
    if what is not None:
        detail["what"] = what
    if phase == "load":
        message = (
            f"{name}: the model did not load within load_timeout={budget:g}s; refused before publishing "
            "(its load was abandoned)"
        )
    else:
        detail["example"] = phase
        message = (
            f"{name}: validation (the load and the examples) did not finish within load_timeout={budget:g}s: "
            f"still running {phase}; refused before publishing"
        )
    return InvalidBundle(message, detail)


def _example_failed(
    contract: Contract, rpc: str, label: str, msg: Any, err: ModelRunnerError
) -> InvalidBundle:
    hint = (
        " (no example in metadata.json: it ran on the empty input; add examples)"
        if label == "default input"
        else ""
    )
    return InvalidBundle(
        f"{rpc} failed on its {label}{hint}: {err.message}",
        detail={
            "rpc": rpc,
            "input": label,
            "input_json": contract.to_dict(msg),
            "error_kind": err.kind.value,
            "error": err.detail,
        },
    )
