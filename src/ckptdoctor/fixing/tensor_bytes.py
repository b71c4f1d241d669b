"""A tensor's raw bytes (C-contiguous, little-endian), streamed in bounded chunks.

Both ``convert`` and ``diff`` need every tensor's bytes once, in order, without holding the file (or even
a whole tensor) in memory. When the bytes of a tensor lie contiguously in the file (a torch zip member
stored without compression, a safetensors data range, a legacy storage the reader located) they are read
with ``pread`` into one reused buffer, so peak memory is the chunk size whatever the tensor size. Any
other tensor (a strided view, a big-endian file, a format we cannot locate) goes through the reader's
``TensorInfo.read()`` and is then sliced: memory is that one tensor.

Nothing here unpickles: zip member offsets come from the zip directory, safetensors offsets from the JSON
header.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ckptdoctor import dtypes
from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F

if TYPE_CHECKING:
    from ckptdoctor.snapshot import Snapshot, TensorInfo

# 1 MiB: big enough to amortise the syscalls, small enough to stay in the CPU cache between the read
# and the write (8 MiB chunks made convert ~1.7x slower, bench/bench_convert.py)
CHUNK_BYTES = 1 << 20
# pre-fault a window's pages in one call instead of one page fault per 4 KiB (Linux only)
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_ZIP_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


@dataclass(frozen=True)
class FileRange:
    """``length`` bytes at ``offset`` in ``path``: a tensor's contiguous little-endian bytes."""

    path: str
    offset: int
    length: int


class ByteLocator:
    """Finds where each tensor's bytes lie in its file. One per snapshot (caches the zip directory)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._zip: dict[str, int] | None = None
        self._index: Any = None  # the zip index, for member CRCs
        self._st: dict[str, tuple[int, int]] | None = None
        self._size = snapshot.file_size or _file_size(snapshot.path)

    def locate(self, t: TensorInfo) -> FileRange | None:
        if not t.is_contiguous or _big_endian(self.snapshot) or has_lazy_bits(t):
            return None
        size = dtypes.ITEMSIZE.get(t.dtype)
        if size is None:
            return None
        start = self._storage_start(t)
        if start is None:
            return None
        begin = start + t.offset * size
        if begin < 0 or begin + t.nbytes > self._size:
            raise InputError(F.CORRUPT_HEADER.code,
                             f"tensor {t.name!r} lies outside the file (bytes {begin}..{begin + t.nbytes} of "
                             f"{self._size})", self.snapshot.path)
        return FileRange(self.snapshot.path, begin, t.nbytes)

    def _storage_start(self, t: TensorInfo) -> int | None:
        # A reader may record where the storage's first byte is; otherwise we find it for the
        # formats whose layout is simple and documented.
        offset = t.attrs.get("file_offset") if t.attrs else None
        if isinstance(offset, int):
            return offset
        fmt = self.snapshot.format
        if fmt in ("torch-zip",) and t.storage is not None:
            return self._zip_offsets().get(str(t.storage))
        if fmt == "safetensors":
            entry = self._safetensors_offsets().get(t.name)
            if entry is None:
                return None
            begin, end = entry
            if end - begin != t.nbytes:
                return None
            # TensorInfo.offset is 0 for safetensors tensors: the range is the tensor itself
            return begin - t.offset * dtypes.ITEMSIZE[t.dtype]
        return None

    def _zip_offsets(self) -> dict[str, int]:
        if self._zip is None:
            self._zip = zip_storage_offsets(self.snapshot.path)
        return self._zip

    def member_crc(self, t: TensorInfo) -> int | None:
        """The zip CRC-32 of ``t``'s storage when ``t`` is exactly that whole stored member (the usual
        state_dict tensor): then the bytes copied for ``t`` can be checked against it on the way through."""
        if (self.snapshot.format != "torch-zip" or t.storage is None or t.offset != 0 or not t.is_contiguous
                or has_lazy_bits(t) or _big_endian(self.snapshot)):
            return None
        from ckptdoctor.readers.torch_zip import storage_member
        from ckptdoctor.readers.zip_index import STORED, read_index

        if self._index is None:
            self._index = read_index(self.snapshot.path)
        entry = self._index.entries.get(storage_member(self.snapshot.metadata.get("archive"), str(t.storage)))
        return entry.crc if entry is not None and entry.compress_type == STORED and entry.file_size == t.nbytes \
            else None

    def _safetensors_offsets(self) -> dict[str, tuple[int, int]]:
        if self._st is None:
            header, data_start = read_safetensors_header(self.snapshot.path)
            self._st = {}
            for name, info in header.items():
                if name == "__metadata__" or not isinstance(info, dict):
                    continue
                begin, end = info["data_offsets"]
                self._st[name] = (data_start + int(begin), data_start + int(end))
        return self._st


def refuse_damaged_storages(snap: Snapshot, names: set[str] | None = None) -> None:
    """Raise InputError (F107) when a torch storage holding one of ``names`` (all when None) fails its zip
    CRC-32. torch.load never checks it, so a damaged weight would otherwise be copied into a new file (and
    then 'verified' against the damaged source) without a word."""
    from ckptdoctor.readers.torch_zip import CRC_HINT, crc_failure, storage_crc_errors

    damaged = [(member, found if names is None else sorted(names.intersection(found)))
               for member, found in storage_crc_errors(snap)]
    damaged = [(member, found) for member, found in damaged if found]
    if damaged:
        member, found = damaged[0]
        more = f"; {len(damaged) - 1} more storage(s) too" if len(damaged) > 1 else ""
        raise InputError(F.CORRUPT_HEADER.code, crc_failure(member, found) + more, snap.path, CRC_HINT)


def has_lazy_bits(t: TensorInfo) -> bool:
    """A conjugate or negative view: the file holds the plain values and torch.load applies the bit, so the
    stored bytes are not the tensor's bytes (read it through ``t.read()``, which applies it)."""
    return bool(t.attrs) and bool(t.attrs.get("conj") or t.attrs.get("neg"))


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _big_endian(snapshot: Snapshot) -> bool:
    order = snapshot.metadata.get("byteorder") if snapshot.metadata else None
    return isinstance(order, str) and order.lower().startswith("big")


def zip_storage_offsets(path: str) -> dict[str, int]:
    """Storage key -> absolute offset of its bytes, for every uncompressed ``*/data/<key>`` zip member.

    torch writes storages as STORED members (aligned to 64 bytes), so their bytes sit in the file as is.
    The data offset is found from each member's local header, as the zip specification defines it.
    """
    out: dict[str, int] = {}
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) < 3 or parts[-2] != "data" or info.compress_type != zipfile.ZIP_STORED:
                continue
            fh.seek(info.header_offset)
            raw = fh.read(_ZIP_LOCAL_HEADER.size)
            if len(raw) != _ZIP_LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
                continue
            fields = _ZIP_LOCAL_HEADER.unpack(raw)
            name_len, extra_len = fields[-2], fields[-1]
            out[parts[-1]] = info.header_offset + _ZIP_LOCAL_HEADER.size + name_len + extra_len
    return out


MAX_HEADER = 100 << 20


def read_safetensors_header(path: str) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the offset where its data starts."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise InputError(F.TRUNCATED_FILE.code, "shorter than a safetensors header", path)
        (n,) = struct.unpack("<Q", head)
        size = os.fstat(fh.fileno()).st_size
        if n > MAX_HEADER or 8 + n > size:
            raise InputError(F.CORRUPT_HEADER.code, f"safetensors header length {n} is impossible", path)
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(F.CORRUPT_HEADER.code, f"safetensors header is not JSON: {exc}", path) from None
    if not isinstance(header, dict):
        raise InputError(F.CORRUPT_HEADER.code, "safetensors header is not a JSON object", path)
    return header, 8 + n


def iter_file_range(rng: FileRange, chunk_bytes: int | None = None) -> Iterator[memoryview]:
    """The range's bytes in chunks. The same buffer is reused: use each chunk before asking for the next."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    buf = bytearray(min(chunk_bytes, max(rng.length, 1)))
    view = memoryview(buf)
    fd = os.open(rng.path, os.O_RDONLY)
    try:
        pos, end = rng.offset, rng.offset + rng.length
        while pos < end:
            want = min(len(buf), end - pos)
            got = os.preadv(fd, [view[:want]], pos)
            if got <= 0:
                raise InputError(F.TRUNCATED_FILE.code, f"file ends at byte {pos}, expected {end}", rng.path)
            yield view[:got]
            pos += got
    finally:
        os.close(fd)


def value_dtype(t: TensorInfo) -> str:
    """The dtype of the values ``t.read()`` gives: float32 for a block-quantized tensor (GGUF Q8_0,
    Q4_K, ...: decoded by its reader), the stored dtype otherwise."""
    return "float32" if t.attrs.get("quantized") and t.dtype not in dtypes.ITEMSIZE else t.dtype


def contiguous_le(t: TensorInfo) -> Any:
    """The tensor's values as a C-contiguous, little-endian numpy array (through the reader)."""
    import numpy as np

    try:
        arr = np.asarray(t.read())
    except (TypeError, ValueError, OSError) as exc:  # a reader that cannot decode this tensor: one line, exit 2
        raise InputError(F.UNREADABLE.code, f"cannot read the values of tensor {t.name!r}: {exc}") from None
    if tuple(arr.shape) != tuple(t.shape):
        raise InputError(F.CORRUPT_HEADER.code,
                         f"tensor {t.name!r}: the reader gave shape {tuple(arr.shape)}, the header says {t.shape}")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr)


def checked_tensor_bytes(locator: ByteLocator, t: TensorInfo) -> Iterator[memoryview]:
    """``iter_tensor_bytes``, and when ``t`` is a whole stored torch storage, its zip CRC-32 checked on the
    way (no second read): InputError (F107) at the end if the bytes changed after saving."""
    expected = locator.member_crc(t)
    if expected is None:
        yield from iter_tensor_bytes(locator, t)
        return
    from binascii import crc32  # the same CRC-32 as zlib's, about 1.5x faster here

    crc = 0
    for chunk in iter_tensor_bytes(locator, t):
        crc = crc32(chunk, crc)
        yield chunk
    if crc != expected:
        from ckptdoctor.readers.torch_zip import CRC_HINT, crc_failure, storage_member

        member = storage_member(locator.snapshot.metadata.get("archive"), str(t.storage))
        raise InputError(F.CORRUPT_HEADER.code, crc_failure(member, [t.name]), locator.snapshot.path, CRC_HINT)


def iter_tensor_bytes(locator: ByteLocator, t: TensorInfo, chunk_bytes: int | None = None) -> Iterator[memoryview]:
    """Every byte of ``t`` (C order, little-endian), in chunks of at most ``chunk_bytes``."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    rng = locator.locate(t)
    if rng is not None:
        yield from iter_file_range(rng, chunk_bytes)
        return
    arr = contiguous_le(t)
    raw = memoryview(arr.reshape(-1).view("uint8"))
    if len(raw) != t.nbytes:
        raise InputError(F.CORRUPT_HEADER.code,
                         f"tensor {t.name!r}: the reader gave {len(raw)} bytes, expected {t.nbytes}")
    for pos in range(0, len(raw), chunk_bytes):
        yield raw[pos:pos + chunk_bytes]


class ElementWindows:
    """A tensor's elements as flat little-endian numpy arrays, one window of ``count`` elements at a time.

    File-addressable tensors are memory-mapped window by window (read-only, ``MAP_POPULATE``): the array
    is the page cache itself, so nothing is copied, and only the mapped window counts towards memory (the
    mapping is released when the last array using it is dropped). Others are decoded once by the reader
    and sliced.
    """

    def __init__(self, locator: ByteLocator, t: TensorInfo) -> None:
        self.tensor = t
        self.np_dtype = dtypes.to_numpy(value_dtype(t)).newbyteorder("<")
        self.itemsize = self.np_dtype.itemsize
        self.size = t.numel
        self._fd: int | None = None
        self._arr: Any = None
        rng = locator.locate(t)
        if rng is not None and self.itemsize == dtypes.ITEMSIZE.get(t.dtype):
            self._rng = rng
            self._fd = os.open(rng.path, os.O_RDONLY)
        else:
            arr = contiguous_le(t).reshape(-1)
            if arr.dtype.itemsize != self.itemsize:
                arr = arr.view(self.np_dtype)
            self._arr = arr

    def window(self, start: int, count: int) -> Any:
        """Elements ``start .. start + count`` as a read-only contiguous 1-D array."""
        import numpy as np

        if self._fd is None:
            return self._arr[start:start + count]
        n = count * self.itemsize
        if n == 0:
            return np.empty(0, dtype=self.np_dtype)
        begin = self._rng.offset + start * self.itemsize
        base = begin - begin % mmap.ALLOCATIONGRANULARITY
        try:
            mapped = mmap.mmap(self._fd, begin - base + n, flags=mmap.MAP_SHARED | _POPULATE,
                               prot=mmap.PROT_READ, offset=base)
        except (OSError, ValueError) as exc:  # e.g. the file shrank since its header was read
            raise InputError(F.TRUNCATED_FILE.code, f"cannot map bytes {begin}..{begin + n}: {exc}",
                             self._rng.path) from None
        if len(mapped) < begin - base + n:
            raise InputError(F.TRUNCATED_FILE.code, f"file ends before byte {begin + n}", self._rng.path)
        return np.frombuffer(mapped, dtype=self.np_dtype, count=count, offset=begin - base)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ElementWindows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
