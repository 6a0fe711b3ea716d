"""Python models: a class whose methods are named like the contract's rpcs.

Isolation: each loaded version gets its own module namespace. The bundle's modules are imported as
``_model_runner_models.<name>_<n>.<module>`` (never under their plain names in ``sys.modules``), so two
versions of ``iris_model.py`` live side by side. Inside the model's code a plain ``import helper`` of
a sibling module still works: the model's modules get their own ``__import__`` that maps the bundle's
top-level module names into the version's namespace; every other import (numpy, the standard library)
is the normal, shared one. Known limits: ``importlib.import_module("helper")`` and pickles that name
a class of the bundle's own modules do not go through that mapping. Bytecode is never written into the
(immutable) version folder.

Calls: the method receives the request message (unannotated parameter), a dataclass/TypedDict/
NamedTuple (one annotated structured parameter), or keyword arguments (annotated plain parameters:
see runner.runtimes.python.hints). It returns the response message, a dict, a dataclass/NamedTuple, or - when the
response has a single field - that field's value. A call with a deadline runs on a worker thread;
a Python thread cannot be killed, so an overrunning call is abandoned (the client gets
DeadlineExceeded) and keeps its thread until it returns.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import inspect
import itertools
import queue
import re
import sys
import threading
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from runner.bundle import Metadata
from runner.contract import Contract
from runner.errors import BadInput, DeadlineExceeded, InvalidBundle, MethodNotFound, ModelError
from runner.runtimes.python.hints import (
    CallConvention,
    call_convention,
    fit_to_message,
    snake,
    struct_fields,
    to_plain,
    to_python,
)

ROOT_PACKAGE = "_model_runner_models"
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

_real_import = builtins.__import__
_counter = itertools.count(1)
_namespaces: dict[str, _Namespace] = {}
_ns_lock = threading.Lock()


# ---- isolated module namespaces -------------------------------------------------------------------------


class _IsolatedLoader(importlib.machinery.SourceFileLoader):
    """Loads a bundle module with the version's own ``__import__``; never writes bytecode."""

    def __init__(self, fullname: str, path: str, ns: _Namespace):
        super().__init__(fullname, path)
        self.ns = ns

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = self.ns.builtins
        super().exec_module(module)

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:  # noqa: ARG002
        return None  # version folders are immutable (and their sha256 must not change)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds modules under ``_model_runner_models.<version>.`` in that version's folder only."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not fullname.startswith(ROOT_PACKAGE + "."):
            return None
        parts = fullname.split(".")
        if len(parts) < 3:
            return None
        ns = _namespaces.get(".".join(parts[:2]))
        if ns is None:
            return None
        search = list(path) if path is not None else [str(ns.root)]
        spec = importlib.machinery.PathFinder.find_spec(fullname, search)
        if spec is None:
            return None
        if spec.origin and not Path(spec.origin).resolve().is_relative_to(ns.root):
            return None
        if isinstance(spec.loader, importlib.machinery.SourceFileLoader) and spec.origin:
            spec.loader = _IsolatedLoader(fullname, spec.origin, ns)
        return spec


_finder = _Finder()
_load_lock = threading.RLock()


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, module: types.ModuleType):
        self.module = module

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _PlainAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves a bundle's top-level module names to the version's modules (only while loading)."""

    def __init__(self, ns: _Namespace):
        self.ns = ns
        self.added: dict[str, types.ModuleType] = {}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        top = fullname.partition(".")[0]
        if top not in self.ns.local_names:
            return None
        if fullname == top and importlib.machinery.PathFinder.find_spec(top) is not None:
            return None  # a real module of that name exists: never shadow it for the rest of the process
        module = importlib.import_module(f"{self.ns.prefix}.{fullname}")
        self.added[fullname] = module
        spec = importlib.machinery.ModuleSpec(fullname, _AliasLoader(module))
        spec.submodule_search_locations = getattr(module, "__path__", None)
        return spec


def _ensure_root() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    if ROOT_PACKAGE not in sys.modules:
        root = types.ModuleType(ROOT_PACKAGE, "Namespaces of loaded Python model versions.")
        root.__path__ = []
        sys.modules[ROOT_PACKAGE] = root


def _local_names(root: Path) -> set[str]:
    names: set[str] = set()
    for p in root.iterdir():
        if p.is_file() and p.suffix == ".py" and p.stem.isidentifier():
            names.add(p.stem)
        elif p.is_dir() and p.name.isidentifier() and (p / "__init__.py").is_file():
            names.add(p.name)
    return names


class _Namespace:
    """One loaded version's module namespace."""

    def __init__(self, root: Path, label: str):
        _ensure_root()
        self.root = Path(root).resolve()
        safe = re.sub(r"\W", "_", label) or "model"
        self.prefix = f"{ROOT_PACKAGE}.{safe}_{next(_counter)}"
        self.local_names = _local_names(self.root)
        self.aliasing = False  # while loading, plain names resolve through _PlainAliasFinder
        self.builtins = dict(builtins.__dict__)
        self.builtins["__import__"] = self._import
        pkg = types.ModuleType(self.prefix)
        pkg.__path__ = [str(self.root)]
        pkg.__package__ = self.prefix
        pkg.__spec__ = importlib.machinery.ModuleSpec(self.prefix, None, is_package=True)
        pkg.__spec__.submodule_search_locations = [str(self.root)]
        with _ns_lock:
            _namespaces[self.prefix] = self
            sys.modules[self.prefix] = pkg

    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        top = name.partition(".")[0]
        if level == 0 and top in self.local_names and not self._plain_ok(top):
            full = f"{self.prefix}.{name}"
            if fromlist:
                return _real_import(full, globals, locals, fromlist, 0)
            importlib.import_module(full)
            return sys.modules[f"{self.prefix}.{top}"]
        return _real_import(name, globals, locals, fromlist, level)

    def _plain_ok(self, top: str) -> bool:
        """While loading, a plain name may go through the normal import (and the alias finder)
        unless another module of that name is already loaded."""
        if not self.aliasing:
            return False
        existing = sys.modules.get(top)
        return existing is None or getattr(existing, "__name__", "").startswith(self.prefix + ".")

    def import_module(self, module: str) -> types.ModuleType:
        return importlib.import_module(f"{self.prefix}.{module}")

    def load_class(self, entry_point: str) -> type:
        module_name, _, class_path = entry_point.partition(":")
        try:
            module = self.import_module(module_name)
        except (Exception, SystemExit) as err:  # noqa: BLE001 (any import-time failure is the bundle's)
            raise InvalidBundle(
                f"cannot import {module_name}: {type(err).__name__}: {err}", detail=_exc_detail(err)
            ) from err
        obj: Any = module
        for part in class_path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise InvalidBundle(
                    f"entry_point {entry_point!r}: {module_name} has no {class_path}",
                    detail={"entry_point": entry_point},
                )
        if not isinstance(obj, type):
            raise InvalidBundle(
                f"entry_point {entry_point!r} is not a class", detail={"entry_point": entry_point}
            )
        return obj

    @contextlib.contextmanager
    def plain_names_while_loading(self) -> Iterator[None]:
        """While the model loads, its modules are also importable by their plain names from anywhere,
        so pickles/joblib files naming classes of the bundle's modules (``features.Scaler``) load.
        One version loads at a time; the plain names are removed afterwards."""
        with _load_lock:
            alias = _PlainAliasFinder(self)
            sys.meta_path.insert(0, alias)
            self.aliasing = True
            try:
                yield
            finally:
                self.aliasing = False
                sys.meta_path.remove(alias)
                for name in alias.added:
                    if sys.modules.get(name) is alias.added[name]:
                        del sys.modules[name]

    def close(self) -> None:
        with _ns_lock:
            _namespaces.pop(self.prefix, None)
            for key in [k for k in sys.modules if k == self.prefix or k.startswith(self.prefix + ".")]:
                del sys.modules[key]


@contextlib.contextmanager
def load_entry_class(folder: Path, entry_point: str) -> Iterator[type]:
    """The class of ``module:Class`` in ``folder``, loaded isolated and unloaded afterwards."""
    ns = _Namespace(folder, "inspect")
    try:
        yield ns.load_class(entry_point)
    finally:
        ns.close()


def _exc_detail(err: BaseException, skip: int = 0) -> dict[str, Any]:
    tb = err.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return {
        "exception_class": f"{type(err).__module__}.{type(err).__qualname__}".removeprefix("builtins."),
        "exception_message": str(err),
        "traceback": "".join(traceback.format_exception(type(err), err, tb))[-8000:],
    }


def _instantiate(cls: type, folder: Path) -> Any:
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


_QUEUED, _RUNNING, _CANCELLED = 0, 1, 2


class _WaitTimeout(Exception):
    """The pool call did not end in time (never anything the model raised)."""


class _Call:
    """One call handed to a pool thread. ``done`` is held from the start and released by the thread
    once ``result`` or ``error`` is set: the caller waits on it with its deadline (a bare lock is
    the cheapest hand-off; a Future's condition variable costs several times more)."""

    __slots__ = ("fn", "args", "done", "result", "error", "state")

    def __init__(self, fn: Any, args: tuple[Any, ...]):
        self.fn = fn
        self.args = args
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.state = _QUEUED


class _DaemonPool:
    """A small thread pool of daemon threads: an abandoned (overrunning) call must not keep the
    process from exiting, which concurrent.futures' joined workers would."""

    def __init__(self, name: str, max_workers: int):
        self._name = name
        self._max = max_workers
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _count, _idle and every call's state
        self._count = 0
        self._idle = 0

    def submit(self, fn: Any, *args: Any) -> _Call:
        call = _Call(fn, args)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = False
            elif self._count < self._max:
                self._count += 1
                spawn = True
            else:
                spawn = False  # every thread is busy: the call waits for one
        self._queue.put(call)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()
        return call

    def wait(self, call: _Call, timeout: float) -> Any:
        """The call's result (or its exception raised) if it ends within ``timeout`` seconds; else
        _WaitTimeout, and a call that has not started yet never will."""
        if call.done.acquire(True, timeout) if timeout > 0 else call.done.acquire(False):
            if call.error is not None:
                try:
                    raise call.error
                finally:
                    call = None  # type: ignore[assignment]  # no reference cycle through the traceback
            return call.result
        with self._lock:
            if call.state == _QUEUED:
                call.state = _CANCELLED
        raise _WaitTimeout

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            with self._lock:
                run = call.state != _CANCELLED
                call.state = _RUNNING
            if run:
                try:
                    call.result = call.fn(*call.args)
                except BaseException as err:  # noqa: BLE001 (handed to the caller)
                    call.error = err
                call.done.release()
            del call
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            for _ in range(self._count):
                self._queue.put(None)


# ---- the model -------------------------------------------------------------------------------------------


@dataclass
class _Binding:
    rpc: str
    method_name: str
    func: Any
    convention: CallConvention


class PythonModel:
    """A Python class serving a contract (implements runner.runtimes.Model)."""

    def __init__(self, version_dir: Path, metadata: Metadata, contract: Contract):
        self.version_dir = Path(version_dir)
        self.metadata = metadata
        self.contract = contract
        self._ns = _Namespace(self.version_dir, metadata.name)
        self._executor: _DaemonPool | None = None
        self._closed = False
        try:
            with self._ns.plain_names_while_loading():
                cls = self._ns.load_class(metadata.entry_point)
                try:
                    self.instance = _instantiate(cls, self.version_dir)
                except (Exception, SystemExit) as err:  # noqa: BLE001
                    raise InvalidBundle(
                        f"{metadata.entry_point}: the constructor raised {type(err).__name__}: {err}",
                        detail=_exc_detail(err),
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
        problems: list[dict[str, Any]] = []
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
                missing = [p for p in conv.param_types if p not in fields]
                if missing:
                    problems.append(
                        {
                            "rpc": rpc,
                            "reason": f"{name}() parameters {missing} are not fields of {in_desc.full_name}",
                        }
                    )
                    continue
            elif conv.kind == "struct":
                missing = [n for n, _h, _o in struct_fields(conv.struct_type) if n not in fields]
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
        limits = [t for t in (timeout, self.metadata.timeout_seconds) if t is not None]
        deadline = min(limits) if limits else None
        if deadline is None:
            return self._call(binding, req)
        executor = self._pool()
        call = executor.submit(self._call, binding, req)
        try:
            return executor.wait(call, deadline)
        except _WaitTimeout as err:
            raise DeadlineExceeded(
                f"{self.metadata.name}.{method} did not answer within {deadline:g}s",
                detail={"rpc": method, "timeout": deadline},
            ) from err

    def _pool(self) -> _DaemonPool:
        if self._executor is None:
            with _ns_lock:
                if self._executor is None:
                    self._executor = _DaemonPool(f"model-{self.metadata.name}", MAX_CALL_THREADS)
        return self._executor

    def _call(self, b: _Binding, req: Message) -> bytes:
        conv = b.convention
        try:
            if conv.kind == "message":
                arg_value: Any = req
                result = b.func(arg_value)
            elif conv.kind == "struct":
                result = b.func(to_python(self.contract.to_dict(req), conv.struct_type))
            else:
                d = self.contract.to_dict(req)
                kwargs = {p: to_python(d[p], hint) for p, hint in conv.param_types.items() if p in d}
                result = b.func(**kwargs)
        except (Exception, SystemExit) as err:  # noqa: BLE001 (the model raised: report it, the service carries on;
            # a sys.exit() escaping here would end the whole gunicorn worker)
            detail = {"rpc": b.rpc, **_exc_detail(err, skip=1)}
            raise ModelError(
                f"{self.metadata.name}.{b.rpc} raised {detail['exception_class']}: {err}", detail=detail
            ) from err
        return self._to_bytes(b, result)

    def _to_bytes(self, b: _Binding, result: Any) -> bytes:
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
        plain = to_plain(result)
        if not isinstance(plain, dict):  # a bare value: the single field of the response
            fields = out_cls.DESCRIPTOR.fields
            if len(fields) != 1:
                raise ModelError(
                    f"{self.metadata.name}.{b.rpc} returned {type(result).__name__}; expected a {out_name} "
                    "message, a dict or a dataclass",
                    detail={"rpc": b.rpc},
                )
            plain = {fields[0].name: plain}
        plain = fit_to_message(plain, out_cls.DESCRIPTOR)
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
