"""safetensors reader: ``<u64 LE header length><JSON header><raw data>``, parsed by hand.

No ``safetensors`` import: the header is eight bytes plus a JSON object, and reading it ourselves keeps
``inspect`` as fast as ``safetensors.safe_open`` and lets us say *why* a file is bad. Every size taken
from the header is checked against the file size before anything is allocated from it.
"""

from __future__ import annotations

import json
import os
import re
import struct
from functools import partial

from ckptdoctor.dtypes import ITEMSIZE, SAFETENSORS_DTYPES
from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot, TensorInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

# safetensors itself refuses headers above 100 MB (MAX_HEADER_SIZE); so do we, before reading them.
MAX_HEADER_SIZE = 100_000_000
# what the ``format`` metadata key says about the library that wrote the file
SAVED_BY = {"pt": "pytorch", "tf": "tensorflow", "flax": "flax", "mlx": "mlx", "np": "numpy",
            "numpy": "numpy", "paddle": "paddle"}


def read(path: str, fmt: str = "safetensors") -> Snapshot:
    size = os.path.getsize(path)
    header, data_start = read_header(path, size)
    snap = Snapshot(path=path, format="safetensors", framework="safetensors", file_size=size)
    snap.tensors, diags = parse_header(header, path, data_start, size)
    snap.diagnostics.extend(diags)
    meta = header.get("__metadata__")
    if meta is not None:
        if not isinstance(meta, dict):
            raise InputError(F.CORRUPT_HEADER.code, "`__metadata__` in the safetensors header is not an object",
                             path, "download or save the file again")
        snap.metadata.update({str(k): v for k, v in meta.items()})
        _derive_metadata(snap, meta)
    return snap


def read_header(path: str, size: int) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and the offset where the data area starts. Raises InputError (F103/F107)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise InputError(F.TRUNCATED_FILE.code,
                             f"only {len(head)} bytes: too short for a safetensors header length", path)
        (n,) = struct.unpack("<Q", head)
        # check the untrusted length against the file BEFORE reading (= allocating) that many bytes
        if n > size - 8:
            raise InputError(F.CORRUPT_HEADER.code,
                             f"safetensors header length {n:,} is larger than the file ({size:,} bytes)", path,
                             "the file is truncated or is not a safetensors file: download or save it again")
        if n > MAX_HEADER_SIZE:
            raise InputError(F.CORRUPT_HEADER.code,
                             f"safetensors header length {n:,} exceeds the 100 MB limit safetensors enforces",
                             path, "the file is not a valid safetensors file")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"the safetensors header is not valid JSON ({exc})", path,
                         "download or save the file again") from None
    if not isinstance(header, dict):
        raise InputError(F.CORRUPT_HEADER.code, "the safetensors header is not a JSON object", path)
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(header):
        # Python's json accepts "\udc80"; safetensors' serde_json refuses the whole file
        raise InputError(F.CORRUPT_HEADER.code, "the safetensors header is not valid JSON (a lone surrogate "
                         "escape such as \\udc80; safetensors refuses the file)", path,
                         "download or save the file again")
    return header, 8 + n


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_header(header: dict[str, Any], path: str, data_start: int, size: int
                 ) -> tuple[list[TensorInfo], list[Any]]:
    """Validate every entry and build TensorInfos. Fatal problems raise InputError; a layout that
    safetensors would refuse but that we can still show (gaps, trailing bytes) becomes a diagnostic."""
    data_size = size - data_start
    tensors: list[TensorInfo] = []
    spans: list[tuple[int, int, str]] = []
    # one tight loop: this runs once per tensor and dominates `inspect` time for large files
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            st_dtype = entry["dtype"]
            shape = entry["shape"]
            start, end = entry["data_offsets"]
            dtype = SAFETENSORS_DTYPES.get(st_dtype)
        except (TypeError, KeyError, ValueError):
            raise _corrupt(path, f"entry {name!r} lacks a valid dtype, shape or data_offsets") from None
        if dtype is None:
            raise _corrupt(path, f"tensor {name!r} has an unknown dtype {st_dtype!r}")
        if type(start) is not int or type(end) is not int or start < 0 or end < start:
            raise _corrupt(path, f"tensor {name!r} has invalid data_offsets {entry['data_offsets']!r}")
        if type(shape) is not list:
            raise _corrupt(path, f"tensor {name!r} has an invalid shape {shape!r}")
        numel = 1
        for d in shape:
            if type(d) is not int or d < 0:
                raise _corrupt(path, f"tensor {name!r} has an invalid shape {shape!r}")
            numel *= d
        nbytes = numel * ITEMSIZE[dtype]
        if nbytes != end - start:
            raise _corrupt(path, f"tensor {name!r}: shape {tuple(shape)} x {dtype} is {nbytes:,} bytes but "
                                 f"data_offsets span {end - start:,} bytes")
        spans.append((start, end, name))
        dims = tuple(shape)
        tensors.append(TensorInfo(name, dims, dtype, nbytes,
                                  loader=partial(_load, path, dtype, dims, data_start + start)))
    diags = _check_layout(spans, data_size, path)
    return tensors, diags


def _check_layout(spans: list[tuple[int, int, str]], data_size: int, path: str) -> list[Any]:
    spans.sort()
    needed = max((e for _, e, _ in spans), default=0)
    if needed > data_size:
        raise InputError(F.TRUNCATED_FILE.code,
                         f"the header describes {needed:,} bytes of tensor data but the file holds only "
                         f"{data_size:,}: it is truncated", path, "download or save it again")
    diags = []
    prev_end, prev_name = 0, ""
    for start, end, name in spans:
        if start < prev_end and end > start:
            raise _corrupt(path, f"tensors {prev_name!r} and {name!r} overlap in the data area")
        if start > prev_end:
            diags.append(F.CORRUPT_HEADER.diag(
                f"{start - prev_end:,} unused bytes before tensor {name!r}: safetensors refuses this file",
                subject=name, framework_behavior="safetensors raises `InvalidOffset` when loading",
                fix="re-save the tensors with safetensors.save_file"))
        if end >= prev_end:
            prev_end, prev_name = end, name
    if prev_end < data_size:
        diags.append(F.CORRUPT_HEADER.diag(
            f"{data_size - prev_end:,} bytes after the last tensor: safetensors refuses this file",
            framework_behavior="safetensors raises `incomplete metadata, file not fully covered`",
            fix="re-save the tensors with safetensors.save_file, or truncate the trailing bytes"))
    return diags


def _load(path: str, dtype: str, shape: tuple[int, ...], offset: int) -> Any:
    import numpy as np

    from ckptdoctor.dtypes import to_numpy

    np_dtype = to_numpy(dtype).newbyteorder("<")  # safetensors data is little-endian
    numel = 1
    for d in shape:
        numel *= d
    if numel == 0:
        return np.empty(shape, dtype=np_dtype)
    # read-only memory map of the tensor's own span: bounded memory, the file is never written
    return np.memmap(path, dtype=np_dtype, mode="r", offset=offset, shape=(numel,)).reshape(shape)


def _derive_metadata(snap: Snapshot, meta: dict[str, Any]) -> None:
    """Add what the raw ``__metadata__`` implies: the saving library, and torch ``save_model`` aliases.

    ``safetensors.torch.save_model`` drops tied tensors and records each dropped name as metadata
    ``{"out.weight": "emb.weight"}`` (dropped -> kept). We keep ``metadata`` verbatim, add
    ``aliases`` (only if that key is free) and mark each kept tensor with ``attrs["aliases"]`` so shared
    weights are visible.
    """
    fmt = meta.get("format")
    if isinstance(fmt, str) and fmt in SAVED_BY and "saved_by" not in meta:
        snap.metadata["saved_by"] = SAVED_BY[fmt]
    by_name = {t.name: t for t in snap.tensors}
    aliases = {k: v for k, v in meta.items()
               if isinstance(v, str) and k not in by_name and v in by_name}
    if not aliases:
        return
    if "aliases" not in meta:
        snap.metadata["aliases"] = aliases
    for alias, target in aliases.items():
        by_name[target].attrs.setdefault("aliases", []).append(alias)


def _corrupt(path: str, message: str) -> InputError:
    return InputError(F.CORRUPT_HEADER.code, f"invalid safetensors header: {message}", path,
                      "download or save the file again")
