"""Models dumped by the Acumos Python client (``AcumosSession().dump``), served as they were dumped.

Such a bundle (made by runner.serving.acumos from a dump) keeps the dump's files under ``acumos/``:
``model.zip`` holds the dill pickle of the model's functions (``model.pkl``), the protobuf module Acumos
generated for them (``scripts/acumos_gen/<package>/model_pb2.py``), the user's own modules
(``scripts/user_provided``) and ``context.json``. The pickle loads only under the Python version that
dumped it, with the ``acumos`` package: the bundle names both (metadata ``python``, requirements.txt),
so it runs in an environment of its own, in a child process (runner.runtimes.child builds this class
there). This module imports nothing of model-runner beyond runner.errors, runner.bundle and the
exception formatting of runner.runtimes.python.isolation.

Loading: ``acumos.wrapped.load_model`` writes into the folder it loads (it saves ``context.json``), and a
version folder is never written, so ``model.zip`` is unpacked (checked like any untrusted zip) into a
private temporary folder, removed at close; one left behind by a killed process is removed by the next
load in a later process.

Calls: the request bytes are parsed with Acumos' own generated message class (not a valid message:
BadInput), the wrapped function runs on them (Acumos turns the message into the function's NamedTuple),
and its result is packed into the output message (``as_pb_bytes``). Whatever the model raises becomes a
ModelError with the exception's class, message and traceback; the model keeps serving. Deadlines are
the parent's (runner.runtimes.process): ``timeout`` is not used here.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from runner.bundle import ACUMOS_DIR, BundleLimits, Metadata
from runner.bundle.files import path_problem
from runner.bundle.metadata import ACUMOS_MODEL_ZIP
from runner.errors import BadInput, InvalidBundle, MethodNotFound, ModelError
from runner.runtimes.python.isolation import exception_detail

if TYPE_CHECKING:
    from runner.contract import Contract

SCRATCH_PREFIX = "model-runner-acumos-"
"""Name prefix of the temporary folders models are unpacked into: ``<prefix><pid>-<random>``."""
_SCRATCH_RE = re.compile(re.escape(SCRATCH_PREFIX) + r"(\d+)-")


@dataclass
class _Binding:
    rpc: str
    function_name: str
    function: Any
    """acumos.wrapped.WrappedFunction."""
    input_type: Any
    """The message class Acumos generated for the function's input (model_pb2)."""
    output_name: str


class AcumosModel:
    """A dump of the Acumos Python client serving its own contract (implements runner.runtimes.Model)."""

    def __init__(self, version_dir: Path, metadata: Metadata, contract: Contract):
        self.version_dir = Path(version_dir)
        self.metadata = metadata
        self.contract = contract
        self._closed = False
        remove_abandoned_scratch()
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        try:
            unpack_model_zip(self.version_dir / ACUMOS_DIR / ACUMOS_MODEL_ZIP, self._scratch)
            wrapped = self._load()
            self._bindings = self._bind(wrapped)
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        self.bindings: dict[str, dict[str, Any]] = {
            rpc: {"python_method": b.function_name, "convention": "acumos"}
            for rpc, b in self._bindings.items()
        }

    def _load(self) -> Any:
        try:
            # only in the model's own environment (acumos installs on Python < 3.10 only)
            load_model = importlib.import_module("acumos.wrapped").load_model
        except ImportError as err:
            raise InvalidBundle(
                f"{self.metadata.name}: the acumos package is not installed in the model's environment "
                f"({err}); its requirements.txt must name it (acumos==1.0.1)",
                detail={"file": "requirements.txt", **exception_detail(err)},
            ) from err
        try:
            return load_model(str(self._scratch))
        except (Exception, SystemExit) as err:  # unpickling runs the dump's code: any failure is the bundle's
            raise InvalidBundle(
                f"{self.metadata.name}: acumos.wrapped.load_model failed: {type(err).__name__}: {err} (an "
                "Acumos dump loads only under the Python version and the packages it was dumped with)",
                detail=exception_detail(err),
            ) from err

    def _bind(self, wrapped: Any) -> dict[str, _Binding]:
        functions: dict[str, Any] = dict(wrapped.methods)
        problems: list[dict[str, str]] = []
        out: dict[str, _Binding] = {}
        for rpc in self.contract.method_names():
            name = (self.metadata.methods.get(rpc) or {}).get("python_method") or rpc
            function = functions.get(name)
            if function is None:
                problems.append(
                    {
                        "rpc": rpc,
                        "reason": f"the Acumos model has no method {name!r} (it has {sorted(functions)})",
                    }
                )
                continue
            method = self.contract.method(rpc)
            in_type, out_type = function.pb_input_type, function.pb_output_type
            if in_type is None or out_type is None:
                problems.append(
                    {"rpc": rpc, "reason": f"{name} takes or returns raw data, not a protobuf message"}
                )
                continue
            for role, ours, theirs in (
                ("input", method.input_type.full_name, in_type.DESCRIPTOR.full_name),
                ("output", method.output_type.full_name, out_type.DESCRIPTOR.full_name),
            ):
                if ours != theirs:
                    problems.append(
                        {
                            "rpc": rpc,
                            "reason": f"the contract's {role} is {ours}; the Acumos model's is {theirs}",
                        }
                    )
            out[rpc] = _Binding(rpc, name, function, in_type, method.output_type.full_name)
        if problems:
            raise InvalidBundle(
                f"the Acumos model {self.metadata.name} does not serve the contract: "
                + "; ".join(f"{p['rpc']}: {p['reason']}" for p in problems),
                detail={"problems": problems},
            )
        return out

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        """Binary request in, binary response out (``timeout``: kept by the parent process)."""
        if self._closed:
            raise ModelError(f"model {self.metadata.name} is closed")
        binding = self._bindings.get(method)
        if binding is None:
            raise MethodNotFound(
                f"method {method!r} is not in the contract",
                detail={"method": method, "methods": list(self._bindings)},
            )
        try:
            message = binding.input_type.FromString(bytes(request))
        except (DecodeError, RuntimeError, ValueError) as err:
            raise BadInput(
                f"not a valid binary {binding.input_type.DESCRIPTOR.full_name}: {err}",
                detail={"rpc": method},
            ) from err
        try:
            response = binding.function.from_pb_msg(message)
        except (Exception, SystemExit) as err:
            detail = {"rpc": method, **exception_detail(err, skip=1)}
            raise ModelError(
                f"{self.metadata.name}.{method} raised {detail['exception_class']}: {err}", detail=detail
            ) from err
        try:
            return bytes(response.as_pb_bytes())
        except (Exception, SystemExit) as err:
            detail = {"rpc": method, "output": binding.output_name, **exception_detail(err, skip=1)}
            raise ModelError(
                f"{self.metadata.name}.{method} returned a value that does not fit {binding.output_name}: "
                f"{type(err).__name__}: {err}",
                detail=detail,
            ) from err

    def close(self) -> None:
        """Remove the unpacked model (the loaded functions stay with this process, which ends next)."""
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<AcumosModel {self.metadata.name} from {self.version_dir}>"


def unpack_model_zip(archive: Path, dest: Path, limits: BundleLimits | None = None) -> None:
    """Unpack an Acumos ``model.zip`` into the empty folder ``dest``, checked like an uploaded bundle
    (no absolute paths, ``..``, links or devices; entry count, sizes and compression ratios within
    ``limits``): the archive comes from whoever uploaded the bundle."""
    limits = limits or BundleLimits()
    where = f"{ACUMOS_DIR}/{ACUMOS_MODEL_ZIP}"
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise InvalidBundle(f"{where} is not a zip archive: {err}", detail={"file": where}) from err
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise InvalidBundle(
                f"{where} has {len(infos)} entries; the limit is {limits.max_entries}", detail={"file": where}
            )
        total = 0
        for info in infos:
            why = path_problem(info.filename) or _kind_problem(info)
            if why:
                raise InvalidBundle(
                    f"{where}: entry {info.filename!r} rejected: {why}",
                    detail={"file": where, "entry": info.filename, "reason": why},
                )
            total += info.file_size
            big = info.file_size > limits.ratio_min_bytes
            if (
                info.file_size > limits.max_file_bytes
                or total > limits.max_total_bytes
                or (big and info.file_size / max(info.compress_size, 1) > limits.max_ratio)
            ):
                raise InvalidBundle(
                    f"{where}: entry {info.filename!r} is too large or compressed too well (a likely zip bomb)",
                    detail={"file": where, "entry": info.filename, "size": info.file_size},
                )
        if "model.pkl" not in zf.namelist():
            raise InvalidBundle(f"{where} holds no model.pkl: not an Acumos model", detail={"file": where})
        for info in infos:
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(1024 * 1024):
                    written += len(chunk)
                    if written > info.file_size:  # headers can lie
                        raise InvalidBundle(
                            f"{where}: entry {info.filename!r} unpacks to more than its header says",
                            detail={"file": where, "entry": info.filename},
                        )
                    out.write(chunk)


def _kind_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):  # no type bits: a plain file (zipfile's own)
        return "not a regular file or folder (a link, device, pipe or socket)"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def remove_abandoned_scratch() -> None:
    """Remove the unpacked models of processes that ended without closing them (killed)."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{SCRATCH_PREFIX}*"):
        match = _SCRATCH_RE.match(folder.name)
        if match is None or not folder.is_dir():
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
