"""``fix``: apply what ``check`` found, write a corrected file, and prove it loads.

    >>> report = ckptdoctor.fix("net.py:Net", "ckpt.pt", "fixed.safetensors")
    >>> report.ok, report.plan.steps(), report.load

1. read FILE (no code from it runs), build the model from TARGET (torch on the meta device), ``check``;
2. turn the findings into one plan (``plan.py``); refuse (exit 2, one line) what is not mechanical;
3. stream the tensors, one at a time, into a temporary file beside OUT: ``.safetensors`` through
   ``safetensors_writer``, ``.pt``/``.pth``/``.bin``/``.ckpt`` as a torch zip checkpoint
   (``torch_zip_writer``, no torch import); for a Keras model, ``.weights.h5`` through
   ``keras_h5_writer`` (planned by ``keras_plan``: legacy ``.h5``, ``.keras``/``.weights.h5``, or a
   torch state_dict ported to Keras' layout);
4. before OUT gets its name: read the bytes back, ``check`` the temporary file against the model (any
   error-level finding fails), then load it with the real framework in a subprocess
   (``model.load_state_dict(..., strict=True)``; recurrent Keras ports are also compared with Keras;
   for Keras, ``model.load_weights(OUT)`` with no warning and every variable equal to the file's).
   Only a file that passes all of this is renamed to OUT.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptdoctor.diagnostics import Diagnostic, Severity, has_errors
from ckptdoctor.errors import UsageError
from ckptdoctor.fixing.atomic import VerificationError, atomic_output, check_output_path
from ckptdoctor.fixing.plan import FixPlan, OutTensor, build_plan
from ckptdoctor.rules import fix_rules as R

if TYPE_CHECKING:
    from ckptdoctor.fixing.tensor_bytes import ByteLocator
    from ckptdoctor.snapshot import Snapshot

# OUT's extension -> what is written (documented in ``ckptdoctor fix --help``)
OUTPUT_FORMATS = {".safetensors": "safetensors", ".pt": "torch-zip", ".pth": "torch-zip", ".bin": "torch-zip",
                  ".ckpt": "torch-zip", ".weights.h5": "keras-weights"}


class FixVerificationError(VerificationError):
    """The temporary file did not pass ``check`` or the framework's strict load."""


@dataclass
class FixReport:
    source: str
    output: str | None
    target: str | None
    plan: FixPlan
    dry_run: bool = False
    written: bool = False
    check_after: list[Diagnostic] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.dry_run or (self.written and not has_errors(self.diagnostics))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "output": self.output, "target": self.target, "dry_run": self.dry_run,
            "written": self.written, "ok": self.ok, "plan": self.plan.to_json(),
            "check_after": [d.to_json() for d in self.check_after], "load": self.load, "notes": self.notes,
            "bytes_written": self.bytes_written, "seconds": round(self.seconds, 3),
        }


def output_format(out: str) -> str:
    name = out.lower()
    for ext, fmt in OUTPUT_FORMATS.items():
        if name.endswith(ext):
            return fmt
    if name.endswith((".h5", ".keras")):
        raise UsageError(f"{out}: for a Keras model fix writes a Keras 3 weights file: end the name with .weights.h5 "
                         "(what model.load_weights reads); .keras and legacy .h5 output are not supported")
    raise UsageError(f"{out}: unknown output format; end the name with .safetensors, .pt, .pth, .bin, .ckpt "
                     "(PyTorch) or .weights.h5 (Keras)")


def fix(model: Any, path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
        model_args: str | None = None, key: str | None = None, dry_run: bool = False, allow_lossy: bool = False,
        force: bool = False, verify_load: bool = True) -> FixReport:
    """Fix the checkpoint at ``path`` for ``model`` and write ``out`` (nothing is written with ``dry_run``).

    ``model`` is a TARGET string (``pkg.mod:Net`` / ``net.py:make``, with ``model_args`` as JSON) or a
    live ``nn.Module`` (then the strict load is tried in this process, on a deep copy). Raises
    ``InputError`` (exit 2) when the fix is not mechanical or a cast is lossy without ``allow_lossy``,
    ``UsageError`` when ``out`` exists without ``force``. A written file that fails verification is
    never published: the report's ``ok`` is False and its diagnostics say why (A403).
    """
    from ckptdoctor.checking import check
    from ckptdoctor.checking.hf import read_for_check

    started = time.perf_counter()
    path = os.fspath(path)
    out = os.fspath(out) if out is not None else None
    if out is None and not dry_run:
        raise UsageError("give the output file (-o OUT), or use --dry-run")
    fmt = output_format(out) if out else "safetensors"
    if out is not None and not dry_run:
        check_output_path(out, force=force, inputs=[path])  # fail before any expensive work
    snap, notes = read_for_check(path)  # a model folder: the weights from_pretrained would load
    target: str | None = model if isinstance(model, str) else None
    if target is not None:
        from ckptdoctor.frameworks import build_from_target

        model, build_notes = build_from_target(target, model_args, snap)
        notes.extend(build_notes)
    report = check(model, path, key=key, snapshot=snap)
    if report.spec.framework == "keras":
        if out is not None and fmt != "keras-weights":
            raise UsageError(f"{out}: the model is a Keras model: write a Keras 3 weights file (OUT.weights.h5)")
        from ckptdoctor.fixing.keras_plan import build_keras_plan

        plan = build_keras_plan(report, key=key, allow_lossy=allow_lossy)
    elif fmt == "keras-weights":
        raise UsageError(f"{out}: a .weights.h5 is written for a Keras model; the model is a PyTorch model "
                         "(write .safetensors or .pt)")
    else:
        plan = build_plan(report, fmt, allow_lossy=allow_lossy)
    result = FixReport(source=path, output=out, target=target, plan=plan, dry_run=dry_run, notes=notes)
    if dry_run:
        result.seconds = time.perf_counter() - started
        return result
    assert out is not None

    from ckptdoctor.fixing.tensor_bytes import ByteLocator, refuse_damaged_storages

    refuse_damaged_storages(snap)
    writer: _Writer | _KerasWriter = (_KerasWriter(plan, snap, model) if plan.output_format == "keras-weights"
                                      else _Writer(plan, snap, ByteLocator(snap)))

    def verify(tmp: str) -> None:
        writer.verify_bytes(tmp)
        after = check(report.spec, tmp)
        result.check_after = after.diagnostics
        errors = [d for d in after.diagnostics if d.severity >= Severity.ERROR]
        if errors:
            raise FixVerificationError("check on the fixed file still reports: "
                                       + "; ".join(f"{d.code} {d.subject}: {d.message}" for d in errors[:3]))
        if verify_load:
            result.load = _probe(model, target, model_args, tmp, plan)
            if not result.load.get("ok"):
                raise FixVerificationError(f"the framework refused the fixed file: {result.load.get('error')}")

    try:
        with atomic_output(out, force=force, inputs=[path], verify=verify) as fh:
            result.bytes_written = writer.write(fh)
        result.written = True
    except FixVerificationError as exc:
        result.diagnostics.append(R.FIX_NOT_VERIFIED.diag(
            f"the fixed file did not verify, so {out} was not written: {exc}", subject=out,
            framework_behavior="the temporary file was removed; OUT does not exist", path=path,
            fix="see the finding; `ckptdoctor fix --dry-run` shows the plan"))
    result.seconds = time.perf_counter() - started
    return result


def _probe(model: Any, target: str | None, model_args: str | None, tmp: str, plan: FixPlan) -> dict[str, Any]:
    from ckptdoctor.frameworks import load_probe

    recurrent = _keras_recurrent_checks(plan) if plan.output_format == "keras-weights" else _recurrent_checks(plan)
    if target is not None:
        return load_probe.probe_in_subprocess(target, model_args, tmp, plan.output_format, recurrent)
    return load_probe.probe_object(model, tmp, plan.output_format, recurrent)


def _recurrent_checks(plan: FixPlan) -> list[dict[str, Any]]:
    """For ported LSTM/GRU layers: the torch module and the Keras variables to compare numerically."""
    if not plan.ported:
        return []
    by_module: dict[str, dict[str, Any]] = {}
    for t in plan.tensors:
        if not t.name.endswith(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0")) or t.source is None:
            continue
        module = t.name.rpartition(".")[0]
        entry = by_module.setdefault(module, {"module": module, "file": plan.source, "kind": "LSTM", "sources": {}})
        if "gates" in t.op:
            entry["kind"] = "GRU"
        entry["sources"][t.name.rpartition(".")[2]] = t.source
    return [e for e in by_module.values() if len(e["sources"]) == 3]


def _keras_recurrent_checks(plan: FixPlan) -> list[dict[str, Any]]:
    """For torch LSTM/GRU modules ported into a Keras model: the Keras group and the torch tensors."""
    out = []
    for t in plan.tensors:
        extra = getattr(t, "extra", [])
        if t.op in ("add", "stack-reorder-gates") and t.source and extra:
            module = t.source.rpartition(".")[0]
            out.append({"group": t.name.rpartition("/vars/")[0], "kind": "LSTM" if t.op == "add" else "GRU",
                        "module": module, "file": plan.source,
                        "sources": {k: f"{module}.{k}" for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                                 "bias_hh_l0")}})
    return out


class _KerasWriter:
    """A Keras 3 ``.weights.h5``: the layout Keras' own saving walk gives for the live model."""

    def __init__(self, plan: FixPlan, snap: Snapshot, model: Any) -> None:
        from ckptdoctor.frameworks.keras_layout import save_layout

        self.plan, self.snap = plan, snap
        self.layout = save_layout(model)

    def write(self, fh: Any) -> int:
        from ckptdoctor.fixing import keras_h5_writer

        planned = {t.name for t in self.plan.tensors}
        expected = {name for name, _, _ in self.layout.variables}
        if planned != expected:  # the spec and Keras' walk must agree, or the file would not load
            raise FixVerificationError("the plan and Keras' save layout differ: "
                                       + ", ".join(sorted(planned ^ expected)[:4]))
        return keras_h5_writer.write(fh, self.plan, self.snap, self.layout)

    def verify_bytes(self, tmp: str) -> None:
        from ckptdoctor.fixing import keras_h5_writer

        try:
            keras_h5_writer.verify(tmp, self.plan, self.snap, self.layout)
        except VerificationError as exc:
            raise FixVerificationError(str(exc)) from None


# ---- producing each output tensor's bytes, one tensor at a time ----------------------------------------
class _Writer:
    def __init__(self, plan: FixPlan, snap: Snapshot, locator: ByteLocator) -> None:
        self.plan, self.snap, self.locator = plan, snap, locator
        self._st_layout: Any = None
        self._torch: list[Any] = []

    def chunks(self, t: OutTensor) -> Any:
        return lambda: _tensor_chunks(t, self.snap, self.locator)

    def write(self, fh: Any) -> int:
        if self.plan.output_format == "safetensors":
            from ckptdoctor.fixing import safetensors_writer as stw

            # safetensors has no sharing that load_state_dict understands: a tied alias is a copy
            entries = [stw.Entry(t.name, t.dtype, t.shape, self.chunks(t)) for t in self.plan.tensors]
            self._st_layout = stw.layout(entries, {"format": "pt"})
            return stw.write(fh, self._st_layout)
        from ckptdoctor.fixing import torch_zip_writer as tzw

        self._torch = [tzw.TorchTensor(t.name, t.dtype, t.shape, self._storage_key(t), self.chunks(t))
                       for t in self.plan.tensors]
        return tzw.write(fh, self._torch)

    def _storage_key(self, t: OutTensor) -> str:
        """Tensors that are the same bytes share one storage in a .pt (tied weights stay tied)."""
        if t.alias_of:
            src = next(o for o in self.plan.tensors if o.name == t.alias_of)
            return self._storage_key(src)
        if t.op == "copy" and t.source is not None:
            s = self.snap.tensor(t.source)
            if s.storage is not None:
                return f"{s.storage}|{s.offset}|{s.shape}|{s.strides}|{t.dtype}"
        return t.name

    def verify_bytes(self, tmp: str) -> None:
        if self.plan.output_format == "safetensors":
            from ckptdoctor.fixing import safetensors_writer as stw

            stw.verify(tmp, self._st_layout)
        else:
            from ckptdoctor.fixing import torch_zip_writer as tzw

            tzw.verify(tmp, self._torch)


def _tensor_chunks(t: OutTensor, snap: Snapshot, locator: ByteLocator) -> Iterator[memoryview | bytes]:
    import numpy as np

    from ckptdoctor import dtypes
    from ckptdoctor.fixing.tensor_bytes import CHUNK_BYTES, contiguous_le, iter_tensor_bytes

    dst = dtypes.to_numpy(t.dtype).newbyteorder("<")
    if t.op == "zeros":
        n = dtypes.itemsize(t.dtype) * int(np.prod(t.shape, dtype=np.int64))
        for pos in range(0, n, CHUNK_BYTES):
            yield bytes(min(CHUNK_BYTES, n - pos))
        return
    src = snap.tensor(str(t.source))
    if t.op == "copy":
        if src.dtype == t.dtype:
            yield from iter_tensor_bytes(locator, src)
            return
        # a cast streams too: every chunk holds whole elements (CHUNK_BYTES is a multiple of any item size)
        src_np = dtypes.to_numpy(src.dtype).newbyteorder("<")
        carry = b""  # a short read may split an element: keep its bytes for the next chunk
        for chunk in iter_tensor_bytes(locator, src):
            data = carry + bytes(chunk) if carry else chunk
            whole = len(data) - len(data) % src_np.itemsize
            carry = bytes(data[whole:])
            yield np.frombuffer(data[:whole], dtype=src_np).astype(dst).tobytes()
        return
    arr = contiguous_le(src)  # layout changes need the whole tensor: memory is this one tensor
    arr = _port(t.op, arr)
    raw = memoryview(np.ascontiguousarray(arr.astype(dst, copy=False)).reshape(-1).view(np.uint8))
    for pos in range(0, len(raw), CHUNK_BYTES):
        yield raw[pos:pos + CHUNK_BYTES]


_GRU_TO_TORCH = (1, 0, 2)  # Keras gates z, r, h -> torch r, z, n


def _reorder(arr: Any, axis: int) -> Any:
    import numpy as np

    blocks = np.split(arr, 3, axis=axis)
    return np.concatenate([blocks[i] for i in _GRU_TO_TORCH], axis=axis)


def _port(op: str, arr: Any) -> Any:
    if op == "transpose":
        return arr.T
    if op == "reorder-gates-transpose":
        return _reorder(arr, 1).T
    if op == "row-0-reorder-gates":
        return _reorder(arr[0], 0)
    if op == "row-1-reorder-gates":
        return _reorder(arr[1], 0)
    raise ValueError(f"unknown conversion {op!r}")
