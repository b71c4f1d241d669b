"""NumPy ``.npy`` and ``.npz`` files: headers only, values on request through a memory map.

The header is a Python dict literal read with ``ast.literal_eval`` (no code runs). Arrays of dtype
object (``|O``) are pickles: they are never loaded; their embedded pickle is walked by the symbolic
interpreter so that the globals it would import are reported.
"""

from __future__ import annotations

import ast
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ckptdoctor.dtypes import ITEMSIZE
from ckptdoctor.errors import InputError
from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.zip_errors import ZIP_READ_ERRORS
from ckptdoctor.readers.zip_index import BadZip, local_payload_offset
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot, TensorInfo, numel

if TYPE_CHECKING:
    import numpy as np

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20
MAX_OBJECT_PICKLE = 256 << 20  # object-array pickles larger than this are not walked


@dataclass
class NpyHeader:
    descr: Any
    fortran: bool
    shape: tuple[int, ...]
    header_len: int  # bytes before the data (magic + version + length field + header)
    version: tuple[int, int]
    python2: bool = False  # the header needed numpy's Python 2 clean-up (``2L`` integer literals)

    @property
    def is_object(self) -> bool:
        # "|O" today; Python 2 era files say "|O8" (or "|O4" from 32-bit builds), which numpy reads as object
        return isinstance(self.descr, str) and self.descr.lstrip("|<>=") in ("O", "O4", "O8")

    @property
    def dtype(self) -> str | None:
        if not isinstance(self.descr, str):
            return None
        return pickle_vm.numpy_dtype_name(pickle_vm.NumpyDtype(self.descr))

    @property
    def numel(self) -> int:
        return numel(self.shape)


def parse_header(head: bytes, where: str, path: str) -> NpyHeader:
    """Parse a .npy header from its first bytes; raises InputError on anything malformed."""
    if len(head) < 10 or not head.startswith(MAGIC):
        raise InputError(F.CORRUPT_HEADER.code, f"{where}: not a .npy header", path)
    major, minor = head[6], head[7]
    if major == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        start = 10
    elif major in (2, 3):
        if len(head) < 12:
            raise InputError(F.TRUNCATED_FILE.code, f"{where}: the .npy header is cut short", path)
        (hlen,) = struct.unpack("<I", head[8:12])
        start = 12
    else:
        raise InputError(F.CORRUPT_HEADER.code, f"{where}: unknown .npy format version {major}.{minor}", path)
    if hlen > MAX_HEADER:
        raise InputError(F.CORRUPT_HEADER.code, f"{where}: header length {hlen:,} is absurd", path)
    if start + hlen > len(head):
        raise InputError(F.TRUNCATED_FILE.code, f"{where}: the file ends inside the .npy header", path,
                         "download or save it again")
    text = head[start:start + hlen].decode("utf-8" if major == 3 else "latin1", "replace")
    python2 = False
    try:
        d = ast.literal_eval(text)
    except SyntaxError:
        if (major, minor) > (2, 0):
            raise _not_a_dict(where, path) from None
        d = _python2_literal(text, where, path)  # what np.load does for these versions
        python2 = True
    except (ValueError, MemoryError, RecursionError):
        raise _not_a_dict(where, path) from None
    if not isinstance(d, dict) or not {"descr", "fortran_order", "shape"} <= set(d):
        raise InputError(F.CORRUPT_HEADER.code, f"{where}: the .npy header lacks descr/fortran_order/shape", path)
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise InputError(F.CORRUPT_HEADER.code, f"{where}: bad shape {shape!r}", path)
    return NpyHeader(d["descr"], bool(d["fortran_order"]), shape, start + hlen, (major, minor), python2)


def _not_a_dict(where: str, path: str) -> InputError:
    return InputError(F.CORRUPT_HEADER.code, f"{where}: the .npy header is not a dict literal", path)


def _python2_literal(text: str, where: str, path: str) -> Any:
    """numpy's ``_filter_header``: Python 2 wrote ``'shape': (2L,)``; drop each ``L`` after a number."""
    import io
    import tokenize

    tokens = []
    after_number = False
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if not (after_number and token.type == tokenize.NAME and token.string == "L"):
                tokens.append(token)
            after_number = token.type == tokenize.NUMBER
        return ast.literal_eval(tokenize.untokenize(tokens))
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError, MemoryError, RecursionError):
        raise _not_a_dict(where, path) from None


def read(path: str, fmt: str) -> Snapshot:
    size = os.path.getsize(path)
    snap = Snapshot(path=path, format=fmt, framework="numpy", file_size=size)
    if fmt == "npy":
        with open(path, "rb") as fh:
            head = fh.read(MAX_HEADER + 12)
        header = parse_header(head, "header", path)
        _add_array(snap, "array", header, path, size, 0, None)
    else:
        _read_npz(snap, path, size)
    _finish(snap)
    return snap


def _read_npz(snap: Snapshot, path: str, size: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (*ZIP_READ_ERRORS, ValueError) as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"the zip archive is damaged or truncated ({exc})", path) from None
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            try:
                with zf.open(info) as fh:
                    head = _read_head(fh)
            except (*ZIP_READ_ERRORS, ValueError) as exc:
                raise InputError(F.TRUNCATED_FILE.code, f"cannot read {info.filename} ({exc})", path) from None
            header = parse_header(head, info.filename, path)
            if info.compress_type == zipfile.ZIP_STORED:
                try:
                    base = local_payload_offset(path, info.header_offset, info.filename)
                except BadZip:
                    raise InputError(F.CORRUPT_HEADER.code, f"bad local header for {info.filename}", path) from None
                _add_array(snap, name, header, path, min(size, base + info.file_size), base, None)
            else:  # the member's declared size bounds the data, as it does for a stored member
                _add_array(snap, name, header, path, info.file_size, 0, info.filename)
    snap.metadata["compressed"] = any(i.compress_type != zipfile.ZIP_STORED for i in zf.infolist())


def _read_head(fh: IO[bytes]) -> bytes:
    head = fh.read(12)
    if len(head) >= 10 and head[6] == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
    elif len(head) >= 12:
        (hlen,) = struct.unpack("<I", head[8:12])
    else:
        return head
    return head + fh.read(min(hlen, MAX_HEADER))


def _add_array(snap: Snapshot, name: str, header: NpyHeader, path: str, end: int | None, base: int,
               member: str | None) -> None:
    """One array: a TensorInfo for numeric dtypes, an object-array report (with its pickle walked) else."""
    if header.python2:
        snap.metadata.setdefault("python2_headers", []).append(name)
    if header.is_object:
        report: dict[str, Any] = {"name": name, "shape": list(header.shape)}
        _scan_object_pickle(snap, report, path, base + header.header_len, end, member, header.header_len)
        snap.metadata.setdefault("object_arrays", []).append(report)
        return
    dtype = header.dtype
    if dtype is None:
        snap.metadata.setdefault("unsupported_arrays", []).append(
            {"name": name, "shape": list(header.shape), "descr": str(header.descr)})
        return
    nbytes = header.numel * ITEMSIZE[dtype]
    if end is not None and base + header.header_len + nbytes > end:
        raise InputError(F.TRUNCATED_FILE.code,
                         f"{name}: the header promises {nbytes:,} bytes of data but the file holds "
                         f"{max(0, end - base - header.header_len):,}", path, "download or save it again")
    info = TensorInfo(name=name, shape=header.shape, dtype=dtype, nbytes=nbytes,
                      attrs={"descr": header.descr, **({"fortran_order": True} if header.fortran else {})})
    info.loader = _loader(path, header, base + header.header_len, nbytes, member)
    snap.tensors.append(info)


def _loader(path: str, header: NpyHeader, offset: int, nbytes: int, member: str | None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import numpy as np

        npd = np.dtype(header.descr)
        order = "F" if header.fortran else "C"
        if member is None:
            if nbytes == 0:
                return np.zeros(header.shape, dtype=npd.newbyteorder("="))
            mm = np.memmap(path, dtype=npd, mode="r", offset=offset, shape=header.shape, order=order)
            return np.array(mm, dtype=npd.newbyteorder("="))
        try:
            with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
                fh.read(header.header_len)
                data = fh.read(nbytes)  # bounded by what the header promises
        except ZIP_READ_ERRORS as exc:
            raise ValueError(f"{member} cannot be decompressed ({exc})") from None
        if len(data) != nbytes:
            raise ValueError(f"{member} holds {len(data)} bytes, expected {nbytes}")
        arr = np.frombuffer(data, dtype=npd).reshape(header.shape, order=order)
        return np.array(arr, dtype=npd.newbyteorder("="))

    return load


def _scan_object_pickle(snap: Snapshot, report: dict[str, Any], path: str, offset: int, end: int | None,
                        member: str | None, header_len: int) -> None:
    """Walk the pickle that an object array is stored as; record its globals (never unpickle)."""
    try:
        if member is None:
            size = os.path.getsize(path) if end is None else end
            length = size - offset
            if length > MAX_OBJECT_PICKLE:
                report["pickle"] = "not scanned (too large)"
                return
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(length)
        else:
            with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
                fh.read(header_len)
                data = fh.read(MAX_OBJECT_PICKLE)
        result = pickle_vm.load(data)
    except pickle_vm.PickleError as exc:
        report["pickle"] = f"unreadable ({exc})"
        return
    except ZIP_READ_ERRORS as exc:
        report["pickle"] = f"unreadable ({exc})"
        return
    report["pickle"] = f"protocol {result.protocol}"
    report["globals"] = sorted(g.qualname for g in result.globals)
    uses = snap.metadata.setdefault("pickle_globals", {})
    for g, use in result.globals.items():
        entry = uses.setdefault(g.qualname, {"count": 0, "uses": []})
        entry["count"] += use.count
        entry["uses"] = sorted(set(entry["uses"]) | use.uses)
        if g not in snap.globals:
            snap.globals.append(g)


def _finish(snap: Snapshot) -> None:
    names = snap.metadata.get("python2_headers")
    if names:
        snap.diagnostics.append(F.PYTHON2_NPY_HEADER.diag(
            f"{len(names)} array header(s) written by Python 2 ({', '.join(map(repr, names[:5]))}"
            f"{', ...' if len(names) > 5 else ''}): numpy reads them after an extra clean-up",
            subject=names[0], path=snap.path, found="integer literals such as 2L",
            framework_behavior="np.load warns: UserWarning: Reading `.npy` or `.npz` file required additional "
                               "header parsing as it was created on Python 2. Save the file again to speed up "
                               "loading and avoid this warning.",
            fix="load it once and save it again with np.save / np.savez"))
    if snap.metadata.get("object_arrays"):
        snap.metadata["note"] = ("object arrays are pickles: np.load refuses them unless allow_pickle=True, "
                                 "which runs whatever the pickle asks for")


__all__ = ["NpyHeader", "parse_header", "read"]
