"""Python models: a class whose methods are named like the contract's rpcs.

Isolation: each loaded version gets its own module namespace (runner.runtimes.python.isolation), so
two versions of ``iris_model.py`` live side by side and a model's plain ``import helper`` of a sibling
module still works.

Calls: the method receives the request message (unannotated parameter), a dataclass/TypedDict/
NamedTuple (one annotated structured parameter), or keyword arguments (annotated plain parameters:
see runner.runtimes.python.hints). It returns the response message, a dict, a dataclass/NamedTuple,
or - when the response has a single field - that field's value (a dict too, when its keys are not the
response's field names: a ``dict[K, V]`` result; ``None`` for an empty response). A call with a deadline runs on a
worker thread (runner.runtimes.python.calls); a Python thread cannot be killed, so an overrunning
call is abandoned (the client gets DeadlineExceeded) and keeps its thread until it returns.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from runner.bundle import Metadata
from runner.contract import Contract, descriptor_of
from runner.errors import (
    BadInput,
    DeadlineExceeded,
    InvalidBundle,
    MethodNotFound,
    ModelError,
    current_request_id,
)
from runner.runtimes import stuck
from runner.runtimes.deadline import call_timeout
from runner.runtimes.java import version_label
from runner.runtimes.python import exit_guard
from runner.runtimes.python.calls import DaemonPool, WaitTimeout
from runner.runtimes.python.hints import (
    CallConvention,
    call_convention,
    fit_to_message,
    proto_keys,
    snake,
    struct_fields,
    to_plain,
    to_python,
)
from runner.runtimes.python.isolation import Namespace, exception_detail
from runner.runtimes.stuck import CallOwner

MAX_CALL_THREADS = 32
_FOLDER_PARAM_NAMES = {
    "artifact_dir",
    "artifacts",
    "artifacts_dir",
    "model_dir",
    "folder",
    "path",
    "root",
    "bundle_dir",
}

_pool_lock = threading.Lock()  # creates each model's call pool once


def _instantiate(cls: type, folder: Path) -> object:
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return cls()
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if params:
        first = params[0]
        ann = first.annotation
        wants_path = (
            first.default is inspect.Parameter.empty
            or first.name in _FOLDER_PARAM_NAMES
            or ann is Path
            or (isinstance(ann, str) and ann in ("Path", "pathlib.Path"))
        )
        if wants_path:
            return cls(folder)
    return cls()


@dataclass
class _Binding:
    rpc: str
    method_name: str
    func: Callable[..., object]
    convention: CallConvention


def _fits(plain: dict[Any, Any], desc: Descriptor) -> bool:
    """Every key names a field of ``desc`` (by .proto or JSON name), or ``desc`` has not exactly one field."""
    if len(desc.fields) != 1:
        return True
    names = {f.name for f in desc.fields} | {f.json_name for f in desc.fields}
    return all(k in names for k in plain)


class PythonModel:
    """A Python class serving a contract (implements runner.runtimes.Model)."""

    def __init__(
        self, version_dir: Path, metadata: Metadata, contract: Contract, *, inline_calls: bool = False
    ):
        """``inline_calls``: timed calls run on the caller's thread, checked against their deadline when
        they return (a Python call cannot be interrupted), instead of on a pool thread the caller waits on
        until the deadline at most (the bundle's ``calls``, docs/bundle.md)."""
        self.version_dir = Path(version_dir)
        self.inline_calls = inline_calls
        self.metadata = metadata
        self.contract = contract
        self.version = version_label(self.version_dir)
        self._ns = Namespace(self.version_dir, metadata.name)
        self._executor: DaemonPool | None = None
        self._closed = False
        exit_guard.install()  # before the model's code runs: os._exit & co. cannot end this process
        try:
            with self._ns.plain_names_while_loading():
                cls = self._ns.load_class(metadata.entry_point)
                try:
                    self.instance = _instantiate(cls, self.version_dir)
                except (Exception, SystemExit) as err:  # any constructor failure is the bundle's
                    raise InvalidBundle(
                        f"{metadata.entry_point}: the constructor raised {type(err).__name__}: {err}",
                        detail=exception_detail(err),
                    ) from err
            self._bindings = self._bind()
        except BaseException:
            self._ns.close()
            raise
        self.bindings: dict[str, dict[str, Any]] = {
            rpc: {"python_method": b.method_name, "convention": b.convention.kind}
            for rpc, b in self._bindings.items()
        }

    def _bind(self) -> dict[str, _Binding]:
        public = [
            n for n in dir(self.instance) if not n.startswith("_") and callable(getattr(self.instance, n))
        ]
        loose = {n.replace("_", "").lower(): n for n in public}
        problems: list[dict[str, str]] = []
        out: dict[str, _Binding] = {}
        for rpc in self.contract.method_names():
            override = (self.metadata.methods.get(rpc) or {}).get("python_method")
            candidates = [override] if override else [rpc, snake(rpc), loose.get(rpc.lower())]
            name = next((c for c in candidates if c and c in public), None)
            if name is None:
                problems.append(
                    {
                        "rpc": rpc,
                        "reason": f"no method {override!r}"
                        if override
                        else f"no method named {rpc} or {snake(rpc)}",
                    }
                )
                continue
            func = getattr(self.instance, name)
            conv = call_convention(func)
            in_desc = self.contract.method(rpc).input_type
            fields = {f.name for f in in_desc.fields}
            if conv.kind == "params":
                keys = proto_keys(conv.param_types.items())
                missing = [p for p in conv.param_types if p not in fields and keys[p] not in fields]
                if missing:
                    problems.append(
                        {
                            "rpc": rpc,
                            "reason": f"{name}() parameters {missing} are not fields of {in_desc.full_name}",
                        }
                    )
                    continue
            elif conv.kind == "struct":
                keys = proto_keys((n, h) for n, h, _o in struct_fields(conv.struct_type))
                missing = [n for n in keys if n not in fields and keys[n] not in fields]
                if missing:
                    problems.append(
                        {
                            "rpc": rpc,
                            "reason": f"{conv.struct_type.__name__} fields {missing} are not fields of "
                            f"{in_desc.full_name}",
                        }
                    )
                    continue
            out[rpc] = _Binding(rpc, name, func, conv)
        if problems:
            cls_name = type(self.instance).__name__
            raise InvalidBundle(
                f"{cls_name} does not serve the contract: "
                + "; ".join(f"{p['rpc']}: {p['reason']}" for p in problems),
                detail={"problems": problems},
            )
        return out

    # ---- calls ----------------------------------------------------------------------------------------

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        """Binary request in, binary response out."""
        if self._closed:
            raise ModelError(f"model {self.metadata.name} is closed")
        binding = self._bindings.get(method)
        if binding is None:
            raise MethodNotFound(
                f"method {method!r} is not in the contract",
                detail={"method": method, "methods": list(self._bindings)},
            )
        in_cls = self.contract.input_class(method)
        try:
            req = in_cls.FromString(bytes(request))
        except (DecodeError, RuntimeError, ValueError) as err:
            raise BadInput(f"not a valid binary {in_cls.DESCRIPTOR.full_name}: {err}") from err
        deadline = call_timeout(timeout, bundle=self.metadata.timeout_seconds)
        if deadline is None:
            return self._call(binding, req)
        if self.inline_calls:
            started = time.monotonic()
            token = stuck.inline_call(
                self.metadata.name, self.version, method, current_request_id(), started + deadline
            )
            try:
                answer = self._call(binding, req)
            finally:
                stuck.inline_ended(token)
            if time.monotonic() - started > deadline:
                raise DeadlineExceeded(
                    f"{self.metadata.name}.{method} answered after its deadline of {deadline:g}s",
                    detail={"rpc": method, "timeout": deadline, "calls": "inline"},
                )
            return answer
        executor = self._pool()
        # named, so that a call still running past its deadline is seen (runner.runtimes.stuck)
        owner = CallOwner(self.metadata.name, self.version, method, current_request_id())
        call = executor.submit(self._call, binding, req, owner=owner)
        try:
            return executor.wait(call, deadline)
        except WaitTimeout as err:
            raise DeadlineExceeded(
                f"{self.metadata.name}.{method} did not answer within {deadline:g}s",
                detail={"rpc": method, "timeout": deadline},
            ) from err

    def _pool(self) -> DaemonPool:
        if self._executor is None:
            with _pool_lock:
                if self._executor is None:
                    self._executor = DaemonPool(f"model-{self.metadata.name}", MAX_CALL_THREADS)
        return self._executor

    @exit_guard.runs_model_code
    def _call(self, b: _Binding, req: Message) -> bytes:
        conv = b.convention
        try:
            if conv.kind == "message":
                result = b.func(req)
            elif conv.kind == "struct":
                result = b.func(to_python(self.contract.to_dict(req), conv.struct_type))
            else:
                d = self.contract.to_dict(req)
                keys = proto_keys(conv.param_types.items())  # a renamed field: hints.proto_field_names
                kwargs = {
                    p: to_python(d[p if p in d else keys[p]], hint)
                    for p, hint in conv.param_types.items()
                    if p in d or keys[p] in d
                }
                result = b.func(**kwargs)
        except SystemExit as err:
            # sys.exit()/exit() escaping here would end the whole gunicorn worker; os._exit & co. are
            # stopped by the exit guard: all answer a ModelError and the service carries on
            exit_call, exit_detail = exit_guard.describe_exit(err)
            detail = {"rpc": b.rpc, **exception_detail(err, skip=1), **exit_detail}
            raise ModelError(
                f"{self.metadata.name}.{b.rpc}: the model called {exit_call}; the process keeps serving",
                detail=detail,
            ) from err
        except Exception as err:
            # The model raised: report it, the service carries on.
            detail = {"rpc": b.rpc, **exception_detail(err, skip=1)}
            raise ModelError(
                f"{self.metadata.name}.{b.rpc} raised {detail['exception_class']}: {err}", detail=detail
            ) from err
        return self._to_bytes(b, result)

    def _to_bytes(self, b: _Binding, result: object) -> bytes:
        out_cls = self.contract.output_class(b.rpc)
        out_name = out_cls.DESCRIPTOR.full_name
        if isinstance(result, Message):
            if result.DESCRIPTOR.full_name != out_name:
                raise ModelError(
                    f"{self.metadata.name}.{b.rpc} returned a {result.DESCRIPTOR.full_name}; "
                    f"the contract says {out_name}",
                    detail={"rpc": b.rpc},
                )
            return result.SerializeToString()
        if result is None and not out_cls.DESCRIPTOR.fields:
            return b""  # a method returning None (-> None): the empty response generate_proto gives it
        plain = to_plain(result)
        # a bare value is the single field of the response; so is a dict (a map, a dataclass returned
        # as Optional[...]) whose keys are not the response's fields
        if not isinstance(plain, dict) or not _fits(plain, descriptor_of(out_cls)):
            fields = out_cls.DESCRIPTOR.fields
            if len(fields) != 1:
                raise ModelError(
                    f"{self.metadata.name}.{b.rpc} returned {type(result).__name__}; expected a {out_name} "
                    "message, a dict or a dataclass",
                    detail={"rpc": b.rpc},
                )
            plain = {fields[0].name: plain}
        plain = fit_to_message(plain, descriptor_of(out_cls))
        try:
            msg = self.contract.parse_dict(out_cls, plain)
        except (json_format.ParseError, TypeError, ValueError) as err:
            raise ModelError(
                f"{self.metadata.name}.{b.rpc} returned a value that does not fit {out_name}: {err}",
                detail={"rpc": b.rpc, "output": out_name},
            ) from err
        return msg.SerializeToString()

    def close(self) -> None:
        """Call the model's own ``close()`` if it has one, then drop its modules."""
        if self._closed:
            return
        self._closed = True
        closer = getattr(self.instance, "close", None)
        try:
            if callable(closer):
                closer()
        finally:
            if self._executor is not None:
                self._executor.shutdown()
            self._ns.close()

    def __repr__(self) -> str:
        return f"<PythonModel {self.metadata.name} {self.metadata.entry_point} from {self.version_dir}>"
