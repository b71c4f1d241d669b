"""``convert``: any checkpoint ckptdoctor reads -> safetensors, without unpickling, tensor by tensor.

PyTorch zip and legacy files, a training checkpoint's model part (``key="model"``), Keras ``.keras``,
``.weights.h5`` and legacy ``.h5``: the reader gives names, shapes, dtypes and where each storage's bytes
are; the header is computed from that alone, then each tensor's bytes are copied in bounded chunks. Tied
or viewed tensors follow ``safetensors.torch.save_model``: one copy of each shared storage is stored and
``__metadata__`` maps every dropped name to the kept one, so ``safetensors.torch.load_model`` restores
them. The output is written atomically and read back before it gets its name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor import dtypes
from ckptdoctor.diagnostics import Diagnostic
from ckptdoctor.errors import InputError
from ckptdoctor.fixing import safetensors_writer as stw
from ckptdoctor.fixing.atomic import atomic_output, check_output_path
from ckptdoctor.fixing.tensor_bytes import (
    ByteLocator,
    checked_tensor_bytes,
    has_lazy_bits,
    iter_tensor_bytes,
    refuse_damaged_storages,
)
from ckptdoctor.fixing.torch_zip_writer import contiguous_strides
from ckptdoctor.rules import diff_rules as R
from ckptdoctor.snapshot import Snapshot, TensorInfo

# the safetensors ``format`` metadata value per source framework (transformers checks it is "pt")
FORMAT_TAG = {"pytorch": "pt", "keras": "keras", "numpy": "np", "safetensors": "pt"}
KERAS_PATHS_KEY = "ckptdoctor.keras_paths"
H5_PATHS_KEY = "ckptdoctor.h5_paths"
MODEL_KEYS = ("model", "state_dict", "model_state_dict", "module", "net", "network", "ema")


class ConvertError(InputError):
    """The file cannot be written as safetensors as it is (exit 2, one line)."""


@dataclass
class ConvertReport:
    source: str
    output: str
    source_format: str
    key: str | None
    tensors: list[dict[str, Any]] = field(default_factory=list)  # name, source_name, dtype, shape, nbytes
    aliases: dict[str, str] = field(default_factory=dict)  # dropped name -> kept name
    metadata: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # tensors outside --key
    made_contiguous: list[str] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0
    verified: bool = False
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "output": self.output, "source_format": self.source_format, "key": self.key,
            "tensor_count": len(self.tensors), "tensors": self.tensors, "aliases": self.aliases,
            "metadata": self.metadata, "skipped": self.skipped, "made_contiguous": self.made_contiguous,
            "bytes_written": self.bytes_written, "seconds": round(self.seconds, 3), "verified": self.verified,
        }


def convert(src: str | os.PathLike[str], out: str | os.PathLike[str], key: str | None = None,
            force: bool = False) -> ConvertReport:
    """Write the tensors of ``src`` (or of its part ``key``) to the safetensors file ``out``.

    Nothing from ``src`` is executed and ``src`` is never modified. Raises ``InputError`` (exit 2) when
    the file cannot be read or cannot be expressed in safetensors, ``UsageError`` when ``out`` exists and
    ``force`` is false or ``out`` is the input.
    """
    from ckptdoctor.readers import read

    src, out = os.fspath(src), os.fspath(out)
    check_output_path(out, force=force, inputs=[src])  # fail before reading a large file
    started = time.perf_counter()
    snap = read(src)
    report = ConvertReport(source=src, output=out, source_format=snap.format, key=key)
    selected = select_tensors(snap, key, report)
    _check_dtypes(selected, src)
    kept, aliases = resolve_shared(selected, src)
    report.aliases = aliases

    locator = ByteLocator(snap)
    # storages copied whole are CRC-checked while copied; the others (views, aliases) are checked first
    inline = {t.storage for _, t in kept if locator.member_crc(t) is not None}
    refuse_damaged_storages(snap, {t.name for _, t in selected if t.storage not in inline})
    entries: list[stw.Entry] = []
    for out_name, t in kept:
        entries.append(stw.Entry(out_name, t.dtype, tuple(t.shape), _chunks(locator, t)))
        report.tensors.append({"name": out_name, "source_name": t.name, "dtype": t.dtype,
                               "shape": list(t.shape), "nbytes": t.nbytes})
        if not t.is_contiguous:
            report.made_contiguous.append(out_name)

    report.metadata = build_metadata(snap, selected, aliases)
    plan = stw.layout(entries, report.metadata)
    with atomic_output(out, force=force, inputs=[src], verify=lambda p: stw.verify(p, plan)) as fh:
        report.bytes_written = stw.write(fh, plan)
    report.verified = True
    report.seconds = time.perf_counter() - started
    return report


def _chunks(locator: ByteLocator, t: TensorInfo) -> stw.ChunkSource:
    """The tensor's bytes: CRC-checked on the first pass (the write), plain on the second (the verify)."""
    passes = []

    def source() -> Iterator[memoryview]:
        passes.append(1)
        return checked_tensor_bytes(locator, t) if len(passes) == 1 else iter_tensor_bytes(locator, t)

    return source


def select_tensors(snap: Snapshot, key: str | None, report: ConvertReport) -> list[tuple[str, TensorInfo]]:
    """(output name, tensor) pairs: every tensor, or those under ``key`` with the ``key.`` prefix removed."""
    if key is None:
        _refuse_training_checkpoint(snap)
    selected, report.skipped = tensors_under(snap, key)
    return selected


def tensors_under(snap: Snapshot, key: str | None) -> tuple[list[tuple[str, TensorInfo]], list[str]]:
    """(selected (name without the ``key.`` prefix, tensor) pairs, names left out)."""
    if key is None:
        return [(t.name, t) for t in snap.tensors], []
    key = key.strip(".")
    prefix = key + "."
    out, skipped = [], []
    for t in snap.tensors:
        if t.name.startswith(prefix):
            out.append((t.name[len(prefix):], t))
        elif t.name == key:
            out.append((t.name, t))
        else:
            skipped.append(t.name)
    if not out:
        keys = ", ".join(top_level_keys(snap)) or "none"
        raise InputError(R.NOT_A_STATE_DICT.code, f"no tensor under key {key!r} (keys holding tensors: {keys})",
                         snap.path, "pass one of those keys")
    return out, skipped


def top_level_keys(snap: Snapshot) -> list[str]:
    """First name components that hold tensors, in file order."""
    seen: dict[str, None] = {}
    for t in snap.tensors:
        if "." in t.name:
            seen.setdefault(t.name.split(".", 1)[0], None)
    return list(seen)


def _refuse_training_checkpoint(snap: Snapshot) -> None:
    """A ``{"model": sd, "optimizer": ..., "epoch": 3}`` is not a state dict: make the user pick a part
    rather than silently writing optimizer moments next to the weights."""
    structure = snap.structure
    if not isinstance(structure, dict) or not structure:
        return
    nested = [k for k, v in structure.items() if isinstance(v, (dict, list, tuple)) and _holds_tensor(v)]
    if not nested:
        return
    plain = [k for k, v in structure.items() if k not in nested]
    if len(nested) == 1 and not plain and str(nested[0]) not in MODEL_KEYS:
        return  # a single wrapper key of unknown meaning: convert everything, names keep the prefix
    keys = ", ".join(str(k) for k in nested)
    suggestion = next((str(k) for k in nested if str(k) in MODEL_KEYS), str(nested[0]))
    raise InputError(R.NOT_A_STATE_DICT.code,
                     f"this is a training checkpoint, not a state dict (parts holding tensors: {keys})",
                     snap.path, f"pass --key {suggestion}")


def _holds_tensor(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if isinstance(value, dict):
        return any(_holds_tensor(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v, depth + 1) for v in value)
    return _is_tensor_marker(value)


def _is_tensor_marker(value: Any) -> bool:
    if isinstance(value, TensorInfo):
        return True
    return isinstance(value, str) and value.startswith("<tensor")


def _check_dtypes(selected: list[tuple[str, TensorInfo]], path: str) -> None:
    bad = [(n, t.dtype) for n, t in selected if t.dtype not in dtypes.SAFETENSORS_NAMES]
    if bad:
        shown = ", ".join(f"{n} ({d})" for n, d in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ConvertError(R.DTYPE_NOT_SAFETENSORS.code, f"safetensors cannot store the dtype of: {shown}", path,
                           "dequantize or cast these tensors in PyTorch first")


def _byte_span(t: TensorInfo) -> tuple[int, int]:
    """[first, last+1) bytes of the storage this tensor touches."""
    size = dtypes.ITEMSIZE[t.dtype]
    if t.numel == 0:
        return t.offset * size, t.offset * size
    strides = t.strides if t.strides is not None else contiguous_strides(t.shape)
    last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, strides, strict=True))
    return t.offset * size, (last + 1) * size


def resolve_shared(selected: list[tuple[str, TensorInfo]], path: str
                   ) -> tuple[list[tuple[str, TensorInfo]], dict[str, str]]:
    """Apply ``save_model``'s rule: among tensors overlapping in one storage, keep the first (sorted) name
    that covers the whole storage, drop the others and map each dropped name to it. Tensors in the same
    storage that do not overlap are written separately, as safetensors does."""
    by_storage: dict[str, list[tuple[str, TensorInfo]]] = {}
    for name, t in selected:
        # a conj/neg view holds other values than the storage it shares: written out, never an alias
        if t.storage is not None and t.numel > 0 and not has_lazy_bits(t):
            by_storage.setdefault(str(t.storage), []).append((name, t))
    aliases: dict[str, str] = {}
    for group in by_storage.values():
        if len(group) < 2:
            continue
        for cluster in _overlapping_clusters(group):
            if len(cluster) < 2:
                continue
            complete = sorted(n for n, t in cluster if _is_complete(t, group))
            if not complete:
                names = sorted(n for n, _ in cluster)
                raise ConvertError(R.SHARED_WITHOUT_OWNER.code,
                                   f"tensors {names} overlap in one storage and none covers it all", path,
                                   "clone the views before saving, or save the full tensor too")
            keep = complete[0]
            for n, _ in sorted(cluster, key=lambda p: p[0]):
                if n != keep:
                    aliases[n] = keep
    kept = [(n, t) for n, t in selected if n not in aliases]
    return kept, aliases


def _overlapping_clusters(group: list[tuple[str, TensorInfo]]) -> list[list[tuple[str, TensorInfo]]]:
    from ckptdoctor.overlaps import overlap_clusters

    return overlap_clusters([(*_byte_span(t), (n, t)) for n, t in group], reach="max")


def _is_complete(t: TensorInfo, group: list[tuple[str, TensorInfo]]) -> bool:
    """The tensor starts at the storage's first byte and spans all of it (safetensors' ``_is_complete``)."""
    if t.offset != 0 or not t.is_contiguous:
        return False
    storage_bytes = t.storage_nbytes
    if storage_bytes is None:  # reader did not say: the storage is at least what its tensors touch
        storage_bytes = max(_byte_span(u)[1] for _, u in group)
    return t.nbytes == storage_bytes


def build_metadata(snap: Snapshot, selected: list[tuple[str, TensorInfo]], aliases: dict[str, str]
                   ) -> dict[str, str]:
    meta: dict[str, str] = {}
    tag = FORMAT_TAG.get(snap.framework)
    if snap.format == "safetensors":  # keep the file's own metadata verbatim (not what the reader derived)
        from ckptdoctor.fixing.tensor_bytes import read_safetensors_header

        src_meta = read_safetensors_header(snap.path)[0].get("__metadata__") or {}
        meta.update({k: v for k, v in src_meta.items() if isinstance(k, str) and isinstance(v, str)})
    elif tag:
        meta["format"] = tag
    if snap.framework == "keras":
        # names stay the reader's; these map each to the Keras variable path (``variable.path``) and to
        # the HDF5 dataset it came from, so the user can build a mapping to their own names
        for meta_key, attr in ((KERAS_PATHS_KEY, "keras_path"), (H5_PATHS_KEY, "h5_path")):
            paths = {name: _attr(t, attr, name) for name, t in selected}
            if any(p != n for n, p in paths.items()):
                meta[meta_key] = json.dumps(paths, separators=(",", ":"))
    for dropped, kept in aliases.items():
        meta.setdefault(dropped, kept)  # like save_model: never override other metadata
    return meta


def _attr(t: TensorInfo, attr: str, default: str) -> str:
    value = t.attrs.get(attr) if t.attrs else None
    return value if isinstance(value, str) else default
