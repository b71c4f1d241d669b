"""A PyTorch zip checkpoint (what ``torch.save(state_dict, f)`` writes), written WITHOUT importing torch.

Layout, as torch 2.x writes it (``torch/serialization.py``), inside one top folder (``archive/``):
``data.pkl`` (a protocol-2 pickle), ``.format_version`` (``1``), ``.storage_alignment`` (``64``),
``byteorder`` (``little``), ``data/<key>`` (each storage's raw bytes, STORED, aligned to 64 bytes)
and ``version`` (``3``). The pickle is an ``OrderedDict`` whose values are reductions
``torch._utils._rebuild_tensor_v2(<persistent id>, offset, size, stride, False, OrderedDict())``; the
persistent id ``("storage", torch.FloatStorage, "<key>", "cpu", numel)`` names the ``data/<key>``
member. dtypes without a legacy storage class (float8, uint16/32/64) use ``_rebuild_tensor_v3`` with
an ``UntypedStorage`` and the dtype as the last argument, as torch does. Every global used is on
``torch.load(weights_only=True)``'s allow-list.

Two names with the same storage key share the storage after ``torch.load`` (tied weights).
The pickle is emitted opcode by opcode: ``pickle.dumps`` would import ``torch`` to check the globals.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from ckptdoctor import dtypes
from ckptdoctor.fixing.atomic import VerificationError
from ckptdoctor.fixing.safetensors_writer import ChunkSource, same_bytes
from ckptdoctor.snapshot import numel

ALIGNMENT = 64
ARCHIVE = "archive"
LEGACY_STORAGE = {dtype: name for name, dtype in dtypes.TORCH_STORAGE_DTYPES.items()
                  if not name.startswith(("Q", "QU"))}


@dataclass
class TorchTensor:
    """One state_dict entry. Entries with the same ``storage`` share one ``data/<key>`` member."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    storage: str  # a key naming the storage; equal keys are written once
    chunks: ChunkSource

    @property
    def nbytes(self) -> int:
        return dtypes.itemsize(self.dtype) * numel(self.shape)


# ---- a minimal protocol-2 pickle emitter ---------------------------------------------------------------
class _Pickle:
    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")

    def glob(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def text(self, s: str) -> None:
        raw = s.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(raw)) + raw

    def int(self, n: int) -> None:
        if 0 <= n < 256:
            self.out += b"K" + bytes([n])
        elif -(2 ** 31) <= n < 2 ** 31:
            self.out += b"J" + struct.pack("<i", n)
        else:
            raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(raw)]) + raw

    def ints_tuple(self, values: tuple[int, ...]) -> None:
        if not values:
            self.out += b")"
            return
        self.out += b"("
        for v in values:
            self.int(v)
        self.out += b"t"

    def op(self, code: bytes) -> None:
        self.out += code


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides (in elements, torch convention) of a C-contiguous tensor of this shape."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def state_dict_pickle(tensors: list[TorchTensor], keys: dict[str, str]) -> bytes:
    """The ``data.pkl`` of an OrderedDict state_dict; ``keys`` maps storage -> member key."""
    p = _Pickle()
    p.glob("collections", "OrderedDict")
    p.op(b")R")  # OrderedDict()
    p.op(b"(")  # MARK for SETITEMS
    for t in tensors:
        p.text(t.name)
        legacy = LEGACY_STORAGE.get(t.dtype)
        p.glob("torch._utils", "_rebuild_tensor_v2" if legacy else "_rebuild_tensor_v3")
        p.op(b"(")  # args
        p.op(b"(")  # persistent id tuple
        p.text("storage")
        if legacy:
            p.glob("torch", legacy)
        else:
            p.glob("torch.storage", "UntypedStorage")
        p.text(keys[t.storage])
        p.text("cpu")
        p.int(numel(t.shape) if legacy else t.nbytes)
        p.op(b"tQ")  # TUPLE, BINPERSID
        p.int(0)  # storage offset
        p.ints_tuple(t.shape)
        p.ints_tuple(contiguous_strides(t.shape))
        p.op(b"\x89")  # requires_grad False
        p.glob("collections", "OrderedDict")
        p.op(b")R")  # backward hooks: OrderedDict()
        if not legacy:
            p.glob("torch", t.dtype)
        p.op(b"tR")  # args TUPLE, REDUCE
    p.op(b"u.")  # SETITEMS, STOP
    return bytes(p.out)


# ---- the zip container ---------------------------------------------------------------------------------
def _storages(tensors: list[TorchTensor]) -> tuple[dict[str, str], list[TorchTensor]]:
    """storage -> member key ("0", "1", ...) in first-use order, and the tensor that writes each."""
    keys: dict[str, str] = {}
    writers: list[TorchTensor] = []
    sizes: dict[str, int] = {}
    for t in tensors:
        if t.storage in keys:
            if sizes[t.storage] != t.nbytes or t.dtype != writers[int(keys[t.storage])].dtype:
                raise ValueError(f"{t.name!r} shares storage {t.storage!r} with another dtype or size")
            continue
        keys[t.storage] = str(len(keys))
        sizes[t.storage] = t.nbytes
        writers.append(t)
    return keys, writers


def _member(zf: zipfile.ZipFile, fh: BinaryIO, name: str, size: int, write: Callable[[BinaryIO], None]) -> None:
    """Add a STORED member whose data starts on a 64-byte boundary (torch's ``.storage_alignment``):
    the local header's extra field is padded, as torch's writer does."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # the rule zipfile itself applies when opening for write
    start = fh.tell()
    base = start + 30 + len(name.encode("utf-8")) + (20 if zip64 else 0)
    pad = -base % ALIGNMENT
    if pad and pad < 4:  # an extra record needs at least its 4-byte id and length
        pad += ALIGNMENT
    if pad:
        info.extra = b"FB" + struct.pack("<H", pad - 4) + b"Z" * (pad - 4)
    with zf.open(info, "w", force_zip64=zip64) as dest:
        write(dest)


def write(fh: BinaryIO, tensors: list[TorchTensor], archive: str = ARCHIVE) -> int:
    """Write the checkpoint to ``fh`` (seekable); returns the number of bytes written."""
    keys, writers = _storages(tensors)
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate tensor names: {sorted({n for n in names if names.count(n) > 1})}")
    start = fh.tell()
    pkl = state_dict_pickle(tensors, keys)
    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        small = [("data.pkl", pkl), (".format_version", b"1"), (".storage_alignment", b"64"),
                 ("byteorder", b"little")]
        for name, data in small:
            _member(zf, fh, f"{archive}/{name}", len(data), lambda d, data=data: d.write(data))
        for t in writers:
            def copy(dest: BinaryIO, t: TorchTensor = t) -> None:
                got = 0
                for chunk in t.chunks():
                    dest.write(chunk)
                    got += len(chunk)
                if got != t.nbytes:
                    raise VerificationError(f"tensor {t.name!r}: got {got} bytes, expected {t.nbytes}")
            _member(zf, fh, f"{archive}/data/{keys[t.storage]}", t.nbytes, copy)
        _member(zf, fh, f"{archive}/version", 2, lambda d: d.write(b"3\n"))
    return fh.tell() - start


def verify(path: str, tensors: list[TorchTensor], archive: str = ARCHIVE) -> None:
    """Read ``path`` back: the zip must list every member with a valid CRC for the small ones, and every
    storage's bytes must equal its source's (compared chunk by chunk at the member's file offset)."""
    import os

    from ckptdoctor.fixing.tensor_bytes import zip_storage_offsets

    keys, writers = _storages(tensors)
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.read(f"{archive}/data.pkl") != state_dict_pickle(tensors, keys):
                raise VerificationError(f"{path}: data.pkl read back differs from the one written")
            members = {i.filename: i for i in zf.infolist()}
    except (zipfile.BadZipFile, KeyError) as exc:
        raise VerificationError(f"{path}: not a valid zip after writing ({exc})") from None
    offsets = zip_storage_offsets(path)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        for t in writers:
            key = keys[t.storage]
            info = members.get(f"{archive}/data/{key}")
            if info is None or info.file_size != t.nbytes or key not in offsets:
                raise VerificationError(f"{path}: storage of {t.name!r} is missing or has the wrong size")
            pos = offsets[key]
            if pos % ALIGNMENT:
                raise VerificationError(f"{path}: storage of {t.name!r} is not {ALIGNMENT}-byte aligned")
            for chunk in t.chunks():
                back = os.pread(fd, len(chunk), pos)
                if not same_bytes(back, chunk):
                    raise VerificationError(f"{path}: tensor {t.name!r} differs from its source at byte {pos}")
                pos += len(chunk)
