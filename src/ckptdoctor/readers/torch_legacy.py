"""PyTorch legacy checkpoints, read without torch: the pre-1.6 stream and the old (<= 0.3) tar format.

Stream (``torch.save(..., _use_new_zipfile_serialization=False)``): five pickles back to back (magic
number, protocol 1001, sys_info, the object, the sorted storage keys), then for each key an 8-byte
little-endian element count and the raw bytes. Storage offsets are found by walking those records,
each count checked against the file size before it is trusted.

Tar (torch <= 0.3): members ``sys_info``, ``storages`` (count, then per storage a pickled
``(key, location, storage_type)`` and a raw record), ``tensors`` (count, then per tensor a pickled
``(key, storage_id, type)`` and ndim/sizes/strides/offset) and ``pickle`` (the object, with tensors
as persistent ids).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Any

from ckptdoctor.dtypes import ITEMSIZE, TORCH_STORAGE_DTYPES
from ckptdoctor.errors import InputError
from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.pickle_objects import Walker, note_truncation, tensor_info
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import GlobalRef, Snapshot

if TYPE_CHECKING:
    import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


def read(path: str, fmt: str) -> Snapshot:
    size = os.path.getsize(path)
    with open(path, "rb") as fh, closing(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)) as buf:
        if fmt == "torch-tar":
            return _read_tar(path, size)
        return read_stream(path, buf, 0, size, fmt)


class _Globals:
    """Globals of several pickles merged, with counts and uses."""

    def __init__(self) -> None:
        self.uses: dict[GlobalRef, pickle_vm.GlobalUse] = {}
        self.opcodes: set[str] = set()
        self.protocol = 0

    def add(self, result: pickle_vm.PickleResult) -> None:
        for g, use in result.globals.items():
            self.uses.setdefault(g, pickle_vm.GlobalUse()).merge(use)
        self.opcodes |= set(result.opcodes)
        self.protocol = max(self.protocol, result.protocol)

    def fill(self, snap: Snapshot) -> None:
        snap.globals = list(self.uses)
        snap.metadata["pickle_protocol"] = self.protocol
        snap.metadata["pickle_globals"] = {g.qualname: {"count": u.count, "uses": sorted(u.uses)}
                                           for g, u in self.uses.items()}
        snap.metadata["pickle_opcodes"] = sorted(self.opcodes)


def _run(buf: Any, start: int, path: str, what: str,
         persistent_load: Callable[[Any], Any] | None = None, end: int | None = None) -> pickle_vm.PickleResult:
    try:
        return pickle_vm.load(buf, start, end=end, persistent_load=persistent_load)
    except pickle_vm.PickleError as exc:
        code = F.TRUNCATED_FILE.code if exc.code == "F103" else F.CORRUPT_HEADER.code
        raise InputError(code, f"{what}: {exc}", path, "the file is damaged: save or download it again") from None


def legacy_persistent_load(sources: dict[str, str],
                           seen: dict[str, pickle_vm.StorageRef] | None = None) -> Callable[[Any], Any]:
    """Storages as StorageRef (each recorded in ``seen``); ``("module", cls, file, source)`` ids
    (whole-module saves) as the class."""

    def load(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "module" and len(pid) >= 2:
            cls = pid[1]
            if isinstance(cls, GlobalRef):
                sources[cls.qualname] = str(pid[2]) if len(pid) > 2 and pid[2] else "(source not saved)"
            return cls
        ref = pickle_vm.default_persistent_load(pid)
        if seen is not None and isinstance(ref, pickle_vm.StorageRef):
            seen.setdefault(ref.key, ref)
        return ref

    return load


def read_stream(path: str, buf: Any, start: int, end: int, fmt: str = "torch-legacy") -> Snapshot:
    snap = Snapshot(path=path, format=fmt, framework="pytorch", file_size=end - start)
    merged = _Globals()
    pos = start
    magic = _run(buf, pos, path, "magic number")
    if magic.value != MAGIC_NUMBER:
        raise InputError(F.NOT_A_MODEL.code, "Invalid magic number; corrupt file?", path)
    proto = _run(buf, magic.end, path, "protocol version")
    if proto.value != PROTOCOL_VERSION:
        raise InputError(F.CORRUPT_HEADER.code, f"Invalid protocol version: {proto.value!r}", path)
    sys_info = _run(buf, proto.end, path, "sys_info")
    sources: dict[str, str] = {}
    storages: dict[str, pickle_vm.StorageRef] = {}  # every storage the object pickle names
    obj = _run(buf, sys_info.end, path, "object pickle", legacy_persistent_load(sources, storages))
    merged.add(obj)
    keys_result = _run(buf, obj.end, path, "storage key list")
    keys = keys_result.value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InputError(F.CORRUPT_HEADER.code, "the storage key list is not a list of strings", path)

    walked = Walker().walk(obj.value)

    # the raw records: per key an int64 element count, then count * element_size bytes
    pos = keys_result.end
    records: dict[str, tuple[int, int]] = {}
    for key in keys:
        if pos + 8 > end:
            raise InputError(F.TRUNCATED_FILE.code, f"the file ends before storage {key}", path,
                             "download or save it again")
        (count,) = struct.unpack("<q", buf[pos:pos + 8])
        storage = storages.get(key)
        elsize = ITEMSIZE.get(storage.dtype, 1) if storage is not None and storage.dtype else 1
        nbytes = count * elsize
        if count < 0 or pos + 8 + nbytes > end:
            raise InputError(F.TRUNCATED_FILE.code,
                             f"storage {key} declares {nbytes:,} bytes but only {end - pos - 8:,} are left", path,
                             "download or save it again")
        records[key] = (pos + 8, nbytes)
        pos += 8 + nbytes

    byteorder = "little"
    if isinstance(sys_info.value, dict) and sys_info.value.get("little_endian") is False:
        byteorder = "big"  # legacy writers convert to little endian; the flag only describes the saver
    tensors = []
    for name, t, tmeta in walked.tensors:
        reader = None
        nbytes = None
        if t.storage is not None:
            if t.storage.key not in records:
                raise InputError(F.CORRUPT_HEADER.code, f"storage {t.storage.key} is missing from the file", path)
            offset, nbytes = records[t.storage.key]
            reader = _file_slice(path, offset, nbytes)
        tensors.append(tensor_info(name, t, tmeta, reader, nbytes, "little"))
    snap.tensors = tensors
    snap.structure = walked.structure
    note_truncation(snap, walked)
    snap.classes = list(walked.classes.values())
    merged.fill(snap)
    snap.metadata.update({
        "saved_by": "torch.save(_use_new_zipfile_serialization=False) (legacy, before torch 1.6)",
        "sys_info": sys_info.value if isinstance(sys_info.value, dict) else None,
        "saver_byteorder": byteorder,
        "storage_count": len(keys),
    })
    if sources:
        snap.metadata["module_sources"] = sources
    if walked.model_class:
        snap.metadata["model_class"] = walked.model_class
    return snap


def _file_slice(path: str, offset: int, nbytes: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import numpy as np

        if nbytes == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(nbytes,))

    return load


# ---- tar (torch <= 0.3) ------------------------------------------------------------------------------

def _read_tar(path: str, size: int) -> Snapshot:
    import tarfile

    try:
        with tarfile.open(path, mode="r:") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError) as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"the tar archive is damaged ({exc})", path) from None
    needed = ("storages", "tensors", "pickle")
    if not all(n in members for n in needed):
        raise InputError(F.NOT_A_MODEL.code,
                         f"a tar archive, but not a PyTorch <= 0.3 checkpoint (members: {sorted(members)[:6]})", path,
                         "extract it (tar xf FILE) and inspect the model files inside")
    snap = Snapshot(path=path, format="torch-tar", framework="pytorch", file_size=size)
    merged = _Globals()
    with open(path, "rb") as fh, closing(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)) as buf:
        storages = _tar_storages(path, buf, members["storages"], merged)
        tensor_refs = _tar_tensors(path, buf, members["tensors"], storages, merged)
        sources: dict[str, str] = {}
        ploader = legacy_persistent_load(sources)

        def persistent_load(pid: Any) -> Any:
            if isinstance(pid, str) and pid in tensor_refs:
                return tensor_refs[pid]
            if isinstance(pid, str) and pid.isdigit() and int(pid) in tensor_refs:
                return tensor_refs[int(pid)]  # type: ignore[index]
            return ploader(pid)

        member = members["pickle"]
        obj = _run(buf, member.offset_data, path, "pickle member", persistent_load,
                   end=member.offset_data + member.size)
    merged.add(obj)
    walked = Walker().walk(obj.value)
    infos = []
    for name, t, tmeta in walked.tensors:
        reader = None
        nbytes = None
        if t.storage is not None and t.storage.key in storages:
            offset, nbytes = storages[t.storage.key][1:]
            reader = _file_slice(path, offset, nbytes)
        infos.append(tensor_info(name, t, tmeta, reader, nbytes))
    snap.tensors = infos
    snap.structure = walked.structure
    note_truncation(snap, walked)
    snap.classes = list(walked.classes.values())
    merged.fill(snap)
    snap.metadata["saved_by"] = "torch.save in torch <= 0.3 (tar format)"
    snap.metadata["note"] = ("torch.load(weights_only=True) refuses this format: 'Cannot use weights_only=True "
                             "with files saved in the legacy .tar format'")
    if walked.model_class:
        snap.metadata["model_class"] = walked.model_class
    return snap


def _record_count(data: Any, member: Any, path: str, what: str) -> tuple[int, int, int]:
    """The pickled count that opens the ``storages`` / ``tensors`` member: (count, position after it,
    end of the member)."""
    end = member.offset_data + member.size
    count = _run(data, member.offset_data, path, f"{what}s count", end=end)
    if not isinstance(count.value, int) or count.value < 0 or count.value > member.size:
        raise InputError(F.CORRUPT_HEADER.code, f"bad {what} count", path)
    return count.value, count.end, end


def _record_head(data: Any, pos: int, end: int, path: str, what: str,
                 merged: _Globals) -> tuple[tuple[Any, Any, Any], int]:
    """One record's pickled 3-tuple head (its globals merged): (the tuple, position after it)."""
    head = _run(data, pos, path, f"{what} record", end=end)
    merged.add(head)
    if not (isinstance(head.value, tuple) and len(head.value) == 3):
        raise InputError(F.CORRUPT_HEADER.code, f"bad {what} record", path)
    return head.value, head.end


def _tar_storages(path: str, buf: Any, member: Any, merged: _Globals) -> dict[Any, tuple[pickle_vm.StorageRef, int, int]]:
    data = buf
    n, pos, end = _record_count(data, member, path, "storage")
    out: dict[Any, tuple[pickle_vm.StorageRef, int, int]] = {}
    for _ in range(n):
        (key, location, stype), pos = _record_head(data, pos, end, path, "storage", merged)
        tname = stype.name if isinstance(stype, GlobalRef) else str(stype)
        dtype = TORCH_STORAGE_DTYPES.get(tname)
        elsize = ITEMSIZE.get(dtype, 1) if dtype else 1
        if pos + 8 > end:
            raise InputError(F.TRUNCATED_FILE.code, "the storages member ends early", path)
        (numel,) = struct.unpack("<q", data[pos:pos + 8])
        nbytes = numel * elsize
        if numel < 0 or pos + 8 + nbytes > end:
            raise InputError(F.TRUNCATED_FILE.code, f"storage {key} runs past the end of its member", path)
        ref = pickle_vm.StorageRef(key=str(key), dtype=dtype, location=str(location), numel=numel,
                                   storage_type=stype.qualname if isinstance(stype, GlobalRef) else tname)
        out[key] = (ref, pos + 8, nbytes)
        out[str(key)] = out[key]
        pos += 8 + nbytes
    views = _run(data, pos, path, "storage views", end=end)
    if isinstance(views.value, list):
        for item in views.value:
            if isinstance(item, tuple) and len(item) == 4 and item[1] in out:
                target, root, offset, numel = item
                base, off, _n = out[root]
                elsize = ITEMSIZE.get(base.dtype, 1) if base.dtype else 1
                ref = pickle_vm.StorageRef(key=str(target), dtype=base.dtype, location=base.location, numel=numel,
                                           storage_type=base.storage_type)
                out[target] = (ref, off + offset * elsize, numel * elsize)
    return out


def _tar_tensors(path: str, buf: Any, member: Any, storages: dict[Any, Any], merged: _Globals) -> dict[Any, Any]:
    data = buf
    n, pos, end = _record_count(data, member, path, "tensor")
    out: dict[Any, Any] = {}
    for _ in range(n):
        (key, storage_id, _type), pos = _record_head(data, pos, end, path, "tensor", merged)
        if pos + 8 > end:
            raise InputError(F.TRUNCATED_FILE.code, "the tensors member ends early", path)
        (ndim,) = struct.unpack("<i", data[pos:pos + 4])
        pos += 8
        if ndim < 0 or pos + 16 * ndim + 8 > end:
            raise InputError(F.TRUNCATED_FILE.code, "the tensors member ends early", path)
        shape = struct.unpack(f"<{ndim}q", data[pos:pos + 8 * ndim])
        strides = struct.unpack(f"<{ndim}q", data[pos + 8 * ndim:pos + 16 * ndim])
        (offset,) = struct.unpack("<q", data[pos + 16 * ndim:pos + 16 * ndim + 8])
        pos += 16 * ndim + 8
        entry = storages.get(storage_id)
        if entry is None:
            raise InputError(F.CORRUPT_HEADER.code, f"tensor {key} names unknown storage {storage_id}", path)
        storage = entry[0]
        out[key] = pickle_vm.TensorRef(storage, offset, tuple(shape), tuple(strides), storage.dtype or "uint8",
                                       rebuild="tar")
    return out
