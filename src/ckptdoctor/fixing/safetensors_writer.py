"""A streaming safetensors writer: the header first, computed from shapes and dtypes alone, then each
tensor's bytes in turn, so peak memory is one chunk (or one tensor when the reader must decode it).

Layout (as the reference implementation writes it): ``<u64 little-endian N><N bytes of JSON header,
padded with spaces to a multiple of 8><data>``. The header maps each name to ``{"dtype", "shape",
"data_offsets": [begin, end]}`` (offsets relative to the data) plus an optional ``__metadata__`` of
str -> str. Tensors are laid out by decreasing item size, then by name, like the reference, so that every
tensor starts aligned to its item size.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ckptdoctor import dtypes
from ckptdoctor.fixing.atomic import VerificationError
from ckptdoctor.snapshot import numel

# Test hook: seconds to sleep after each tensor, so a test can kill the writer part-way deterministically.
THROTTLE_ENV = "CKPTDOCTOR_TEST_WRITE_DELAY"

ChunkSource = Callable[[], Iterable[memoryview | bytes]]


@dataclass
class Entry:
    """One tensor to write. ``chunks()`` yields its C-contiguous little-endian bytes (may be called twice:
    once to write, once to verify)."""

    name: str
    dtype: str  # canonical name (see dtypes.py)
    shape: tuple[int, ...]
    chunks: ChunkSource

    @property
    def nbytes(self) -> int:
        return dtypes.itemsize(self.dtype) * numel(self.shape)


@dataclass(frozen=True)
class Layout:
    header: bytes  # the 8-byte length and the padded JSON
    order: list[tuple[Entry, int, int]]  # (entry, begin, end) relative to the data start
    total_size: int


def safetensors_dtype(dtype: str) -> str:
    try:
        return dtypes.SAFETENSORS_NAMES[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype} has no safetensors equivalent") from None


def layout(entries: list[Entry], metadata: dict[str, str] | None = None) -> Layout:
    """The header and every tensor's position, before a single tensor byte is read."""
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate tensor names: {dupes}")
    if "__metadata__" in names:
        raise ValueError("a tensor cannot be named __metadata__")
    ordered = sorted(entries, key=lambda e: (-dtypes.itemsize(e.dtype), e.name))
    header: dict[str, object] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"safetensors metadata must map str to str, got {k!r}: {v!r}")
        header["__metadata__"] = dict(metadata)
    order = []
    pos = 0
    for e in ordered:
        end = pos + e.nbytes
        header[e.name] = {"dtype": safetensors_dtype(e.dtype), "shape": list(e.shape), "data_offsets": [pos, end]}
        order.append((e, pos, end))
        pos = end
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    head = struct.pack("<Q", len(text)) + text
    return Layout(head, order, len(head) + pos)


def write(fh: BinaryIO, plan: Layout, progress: Callable[[int], None] | None = None) -> int:
    """Write the file described by ``plan``; returns the number of bytes written."""
    delay = float(os.environ.get(THROTTLE_ENV, "0") or 0)
    fh.write(plan.header)
    written = len(plan.header)
    for entry, begin, end in plan.order:
        got = 0
        for chunk in entry.chunks():
            fh.write(chunk)
            got += len(chunk)
        if got != end - begin:
            raise VerificationError(f"tensor {entry.name!r}: got {got} bytes, expected {end - begin}")
        written += got
        if progress is not None:
            progress(written)
        if delay:
            fh.flush()
            time.sleep(delay)
    return written


def verify(path: str, plan: Layout, *, values: bool = True) -> None:
    """Read ``path`` back: the header must be exactly the one planned and, with ``values``, every tensor's
    bytes must equal its source's, compared chunk by chunk (stronger than a hash, and cheaper)."""
    size = os.path.getsize(path)
    if size != plan.total_size:
        raise VerificationError(f"{path}: {size} bytes on disk, expected {plan.total_size}")
    with open(path, "rb") as fh:
        head = fh.read(len(plan.header))
        if head != plan.header:
            raise VerificationError(f"{path}: the header read back differs from the one written")
        json.loads(head[8:])  # must parse as the reference reader would
        if not values:
            return
        data_start = len(plan.header)
        fd = fh.fileno()
        for entry, begin, _end in plan.order:
            pos = data_start + begin
            for chunk in entry.chunks():
                n = len(chunk)
                back = os.pread(fd, n, pos)
                if not same_bytes(back, chunk):
                    raise VerificationError(f"{path}: tensor {entry.name!r} differs from its source at byte {pos}")
                pos += n


def same_bytes(a: bytes | memoryview, b: bytes | memoryview) -> bool:
    """memcmp-speed equality (comparing memoryviews in Python goes element by element)."""
    import numpy as np

    return len(a) == len(b) and np.array_equal(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8))
