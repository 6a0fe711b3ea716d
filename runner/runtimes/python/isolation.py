"""Isolated module namespaces: each loaded Python model version imports its bundle's modules apart.

The bundle's modules are imported as ``_model_runner_models.<name>_<n>.<module>`` (never under their
plain names in ``sys.modules``), so two versions of ``iris_model.py`` live side by side. Inside the
model's code a plain ``import helper`` of a sibling module still works: the model's modules get their
own ``__import__`` that maps the bundle's top-level module names into the version's namespace; every
other import (numpy, the standard library) is the normal, shared one. Known limits:
``importlib.import_module("helper")`` and pickles that name a class of the bundle's own modules do not
go through that mapping (while a version loads, :meth:`Namespace.plain_names_while_loading` covers the
pickles). Bytecode is never written into the (immutable) version folder.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import itertools
import re
import sys
import threading
import traceback
import types
from collections.abc import Iterator, Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path

from runner.errors import InvalidBundle

ROOT_PACKAGE = "_model_runner_models"

_real_import = builtins.__import__
_counter = itertools.count(1)
_namespaces: dict[str, Namespace] = {}
_ns_lock = threading.Lock()


class _IsolatedLoader(importlib.machinery.SourceFileLoader):
    """Loads a bundle module with the version's own ``__import__``; never writes bytecode."""

    def __init__(self, fullname: str, path: str, ns: Namespace):
        super().__init__(fullname, path)
        self.ns = ns

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = self.ns.builtins
        super().exec_module(module)

    def set_data(self, path: str, data: object, *, _mode: int = 0o666) -> None:
        return None  # version folders are immutable (and their sha256 must not change)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds modules under ``_model_runner_models.<version>.`` in that version's folder only."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
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
# While a version loads, its bundle's top-level module names are importable by their plain names
# (see Namespace.plain_names_while_loading). Two loads whose bundles share such a name would shadow each
# other, so they take turns; loads of bundles with disjoint names run side by side.
_plain_owners: dict[str, tuple[Namespace, int]] = {}  # plain name -> (loading namespace, its thread)
_plain_changed = threading.Condition()


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, module: types.ModuleType):
        self.module = module

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _PlainAliasFinder(importlib.abc.MetaPathFinder):
    """Resolves a bundle's top-level module names to the version's modules (only while loading)."""

    def __init__(self, ns: Namespace):
        self.ns = ns
        self.added: dict[str, types.ModuleType] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top not in self.ns.local_names:
            return None
        if fullname == top and importlib.machinery.PathFinder.find_spec(top) is not None:
            return None  # a real module of that name exists: never shadow it for the rest of the process
        module = importlib.import_module(f"{self.ns.prefix}.{fullname}")
        self.added[fullname] = module
        spec = ModuleSpec(fullname, _AliasLoader(module))
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


class Namespace:
    """One loaded version's module namespace (``label`` names it in ``sys.modules``)."""

    def __init__(self, root: Path, label: str):
        _ensure_root()
        self.root = Path(root).resolve()
        safe = re.sub(r"\W", "_", label) or "model"
        self.prefix = f"{ROOT_PACKAGE}.{safe}_{next(_counter)}"
        self.local_names = _local_names(self.root)
        self.aliasing = False  # while loading, plain names resolve through _PlainAliasFinder
        self.builtins: dict[str, object] = dict(builtins.__dict__)
        self.builtins["__import__"] = self._import
        pkg = types.ModuleType(self.prefix)
        pkg.__path__ = [str(self.root)]
        pkg.__package__ = self.prefix
        pkg.__spec__ = ModuleSpec(self.prefix, None, is_package=True)
        pkg.__spec__.submodule_search_locations = [str(self.root)]
        with _ns_lock:
            _namespaces[self.prefix] = self
            sys.modules[self.prefix] = pkg

    def _import(
        self,
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
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
        except (Exception, SystemExit) as err:  # any import-time failure is the bundle's
            raise InvalidBundle(
                f"cannot import {module_name}: {type(err).__name__}: {err}", detail=exception_detail(err)
            ) from err
        obj: object = module
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
        Loads whose bundles share a top-level module name take turns; the others load side by side.
        The plain names are removed afterwards."""
        me = threading.get_ident()

        def free() -> bool:
            # a nested load on this thread (the old lock was reentrant) does not wait for itself
            return all(_plain_owners.get(n, (self, me))[1] == me for n in self.local_names)

        with _plain_changed:
            _plain_changed.wait_for(free)
            taken = [n for n in self.local_names if n not in _plain_owners]
            for name in taken:
                _plain_owners[name] = (self, me)
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
            with _plain_changed:
                for name in taken:
                    del _plain_owners[name]
                _plain_changed.notify_all()

    def close(self) -> None:
        with _ns_lock:
            _namespaces.pop(self.prefix, None)
            # list() copies the keys in one step; iterating sys.modules itself races other threads' imports
            for key in [k for k in list(sys.modules) if k == self.prefix or k.startswith(self.prefix + ".")]:
                del sys.modules[key]


@contextlib.contextmanager
def load_entry_class(folder: Path, entry_point: str) -> Iterator[type]:
    """The class of ``module:Class`` in ``folder``, loaded isolated and unloaded afterwards."""
    ns = Namespace(folder, "inspect")
    try:
        yield ns.load_class(entry_point)
    finally:
        ns.close()


def exception_detail(err: BaseException, skip: int = 0) -> dict[str, str]:
    """What the bundle's code raised, for an error's detail (``skip``: traceback levels to drop)."""
    tb = err.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return {
        "exception_class": f"{type(err).__module__}.{type(err).__qualname__}".removeprefix("builtins."),
        "exception_message": str(err),
        "traceback": "".join(traceback.format_exception(type(err), err, tb))[-8000:],
    }


__all__ = ["ROOT_PACKAGE", "Namespace", "exception_detail", "load_entry_class"]
