"""Validation before publish: the bundle is loaded and exercised in this process, then closed.

Steps: the contract compiles; metadata's method overrides and examples name rpcs of the contract;
the model loads (a fresh class loader for Java) and every rpc binds; each rpc runs on the bundle's
examples, or on the default (empty) input message when it has none; each output decodes as the
rpc's output message. The first failure raises InvalidBundle / InvalidContract saying which rpc,
which example and what the model said; the model is closed whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.bundle import Bundle
from runner.contract import Contract
from runner.errors import BadInput, InvalidBundle, ModelRunnerError, NotReady
from runner.runtimes import load_model
from runner.settings import Settings

DEFAULT_TIMEOUT = 30.0


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


def validate_bundle(bundle: Bundle, *, settings: Settings, timeout: float | None = None) -> ValidationReport:
    """Compile, load, bind and exercise a bundle; InvalidBundle/InvalidContract on the first failure.
    ``settings`` start the JVM if this is the first Java model of the process."""

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
    inputs: dict[str, list[tuple[str, Any]]] = {}
    generated: list[str] = []
    for rpc in rpcs:
        cls = contract.input_class(rpc)
        examples = meta.examples.get(rpc)
        if examples:
            items = []
            for i, ex in enumerate(examples, 1):
                try:
                    items.append((f"example {i}", contract.from_json(cls, ex)))
                except BadInput as err:
                    raise InvalidBundle(
                        f"examples.{rpc}[{i - 1}] is not a valid {cls.DESCRIPTOR.full_name}: {err.message}",
                        detail={"rpc": rpc, "example": i - 1, **err.detail},
                    ) from err
            inputs[rpc] = items
        else:
            generated.append(rpc)
            inputs[rpc] = [("default input", cls())]

    limits = [t for t in (timeout, meta.timeout_seconds) if t is not None]
    call_timeout = min(limits) if limits else DEFAULT_TIMEOUT
    model = load_model(bundle.root, meta, contract, settings)
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
                try:
                    raw = model.invoke(rpc, msg.SerializeToString(), call_timeout)
                    out = contract.decode(out_cls, raw, "application/x-protobuf")
                except NotReady:
                    raise
                except ModelRunnerError as err:
                    hint = (
                        " (no example in metadata.json: it ran on the empty input; add examples)"
                        if label == "default input"
                        else ""
                    )
                    raise InvalidBundle(
                        f"{rpc} failed on its {label}{hint}: {err.message}",
                        detail={
                            "rpc": rpc,
                            "input": label,
                            "input_json": contract.to_dict(msg),
                            "error_kind": err.kind.value,
                            "error": err.detail,
                        },
                    ) from err
                outs.append(contract.to_dict(out))
            report.outputs[rpc] = outs
        for key in meta.extra:
            report.warnings.append(f"metadata.json: unknown field {key!r} ignored")
        return report
    finally:
        model.close()
