"""torch.distributed.checkpoint (DCP) folders, read without torch and without unpickling.

Layout (``torch/distributed/checkpoint/filesystem.py``): a folder with ``.metadata`` (a plain
``pickle.dump`` of ``Metadata``; ``__{rank}.metadata`` when saved without collectives) and data files
``__{rank}_{n}.distcp``. ``Metadata.state_dict_metadata`` maps each flattened key (fqn) to
``TensorStorageMetadata(properties, size, chunks)`` or ``BytesStorageMetadata()``; ``storage_data``
maps ``MetadataIndex(fqn, chunk offsets, index)`` to ``_StorageInfo(relative_path, offset, length)``.
Each item's bytes are a complete ``torch.save`` zip blob at ``[offset, offset + length)``.

``.metadata`` is read with the symbolic pickle interpreter: the DCP classes stay inert objects whose
BUILD state we read. Tensors are listed from ``.metadata`` alone (global shape, dtype, chunks) and their
byte ranges are checked against the data files (F501/F502/F503). Values are read lazily: each chunk's
blob is parsed with the torch zip reader from its slice of the file and the chunks are assembled into
the global tensor. Non-tensor items (``BYTE_IO``: loaded by DCP with ``torch.load(weights_only=False)``)
are small torch.save blobs: their pickles are walked to show their values and to record their globals.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

from ckptdoctor.errors import InputError
from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.sniff import check_regular_file, is_dcp_metadata_name
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import GlobalRef, Snapshot, TensorInfo, numel

if TYPE_CHECKING:
    import numpy as np

METADATA_NAME = ".metadata"
DATA_SUFFIX = ".distcp"
MAX_METADATA_BYTES = 1 << 30
MAX_BYTES_ITEM = 16 << 20  # non-tensor items larger than this are not scanned (their size is reported)
MAX_BYTES_TOTAL = 256 << 20
_DCP_MODULE = "torch.distributed.checkpoint."


def metadata_file(folder: str) -> str | None:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    found = [n for n in names if is_dcp_metadata_name(n)]
    if METADATA_NAME in found:
        return os.path.join(folder, METADATA_NAME)
    return os.path.join(folder, found[0]) if found else None


def read(path: str, fmt: str) -> Snapshot:
    if os.path.isdir(path):
        meta_path = metadata_file(path)
        if meta_path is None:
            raise InputError(F.NOT_A_MODEL.code, "no .metadata file: not a torch.distributed.checkpoint folder",
                             path)
        folder = path
    else:
        meta_path, folder = path, os.path.dirname(path) or "."
    size = check_regular_file(meta_path)
    if size > MAX_METADATA_BYTES:
        raise InputError(F.CORRUPT_HEADER.code, f".metadata is {size:,} bytes: too large for a DCP index",
                         meta_path)
    with open(meta_path, "rb") as fh:
        data = fh.read(size)
    try:
        result = pickle_vm.load(data)
    except pickle_vm.PickleError as exc:
        code = F.TRUNCATED_FILE.code if exc.code == "F103" else F.CORRUPT_HEADER.code
        raise InputError(code, f".metadata: {exc}", meta_path,
                         "the DCP index is damaged: copy the checkpoint folder again") from None
    snap = Snapshot(path=folder, format=fmt, framework="pytorch")
    try:
        _DcpFolder(folder, meta_path, size, snap).fill(result)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # a valid pickle of the wrong shape: a damaged byte turned a field into something else
        raise InputError(F.CORRUPT_HEADER.code, f".metadata does not hold a DCP Metadata structure ({exc})",
                         meta_path, "the DCP index is damaged: copy the checkpoint folder again") from None
    return snap


class _DcpFolder:
    def __init__(self, folder: str, meta_path: str, meta_size: int, snap: Snapshot) -> None:
        self.folder = folder
        self.meta_path = meta_path
        self.snap = snap
        self.file_sizes: dict[str, int | None] = {}
        self.total_size = meta_size
        self.globals: dict[GlobalRef, pickle_vm.GlobalUse] = {}

    # ---- data files ------------------------------------------------------------------------------
    def data_size(self, rel: str) -> int | None:
        """The data file's size, or None when it is missing (or escapes the folder)."""
        if rel in self.file_sizes:
            return self.file_sizes[rel]
        size: int | None = None
        full = self.data_path(rel)
        if full is not None:
            try:
                size = os.path.getsize(full) if os.path.isfile(full) else None
            except OSError:
                size = None
        self.file_sizes[rel] = size
        if size is not None:
            self.total_size += size
        return size

    def data_path(self, rel: str) -> str | None:
        if not rel or os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            return None  # a crafted relative_path must not make us read outside the checkpoint
        return os.path.join(self.folder, rel)

    # ---- the snapshot ----------------------------------------------------------------------------
    def fill(self, result: pickle_vm.PickleResult) -> None:
        snap = self.snap
        for g, use in result.globals.items():
            self.globals.setdefault(g, pickle_vm.GlobalUse()).merge(use)
        meta: dict[str, Any] = {"saved_by": "torch.distributed.checkpoint.save",
                                "metadata_file": os.path.basename(self.meta_path),
                                "pickle_protocol": result.protocol,
                                "pickle_opcodes": sorted(result.opcodes)}
        root = result.value
        state = _state(root)
        if not _is_class(root, "metadata.Metadata") or not isinstance(state, dict):
            from ckptdoctor.rules import dcp_files as R

            what = root.qualname if isinstance(root, pickle_vm.Opaque) else type(root).__name__
            snap.diagnostics.append(R.NOT_DCP_METADATA.diag(
                f"{os.path.basename(self.meta_path)} builds {what}, not a torch.distributed.checkpoint Metadata",
                subject=os.path.basename(self.meta_path), path=self.meta_path, found=what,
                framework_behavior="torch.distributed.checkpoint.load unpickles it with pickle.load (running "
                                   "whatever it names), then fails",
                fix="do not load it; get the checkpoint folder again from its source"))
            self.finish(meta)
            return
        version = state.get("version")
        if isinstance(version, str):
            meta["dcp_version"] = version
        storage_meta = _state(state.get("storage_meta"))
        if isinstance(storage_meta, dict):
            cid = storage_meta.get("checkpoint_id")
            if isinstance(cid, pickle_vm.Opaque) and isinstance(cid.args, tuple):
                cid = "/".join(str(a) for a in cid.args).replace("//", "/")
            if isinstance(cid, str):
                meta["checkpoint_id"] = cid
            if isinstance(storage_meta.get("save_id"), str):
                meta["save_id"] = storage_meta["save_id"]
        storage = self.storage_index(state.get("storage_data"))
        items = state.get("state_dict_metadata")
        if not isinstance(items, dict):
            items = {}
        structure: dict[str, Any] = {}
        bytes_budget = [MAX_BYTES_TOTAL]
        for fqn, item in items.items():
            fqn = str(fqn)
            if _is_class(item, "metadata.TensorStorageMetadata"):
                info = self.tensor(fqn, _state(item), storage)
                if info is not None:
                    snap.tensors.append(info)
                    structure[fqn] = f"<tensor {info.dtype} {list(info.shape)}>"
            elif _is_class(item, "metadata.BytesStorageMetadata"):
                structure[fqn] = self.bytes_item(fqn, storage.get((fqn, None)), bytes_budget)
            else:
                structure[fqn] = f"<{item.qualname if isinstance(item, pickle_vm.Opaque) else type(item).__name__}>"
        snap.structure = structure
        meta["items"] = len(items)
        meta["data_files"] = sorted(self.file_sizes)
        planner = state.get("planner_data")
        if isinstance(planner, dict) and planner:
            tops = sorted({str(p[0]) for p in planner.values() if isinstance(p, tuple) and p})
            meta["top_level_keys"] = tops[:50]
        self.finish(meta)

    def finish(self, meta: dict[str, Any]) -> None:
        snap = self.snap
        snap.globals = list(self.globals)
        meta["pickle_globals"] = {g.qualname: {"count": u.count, "uses": sorted(u.uses)}
                                  for g, u in self.globals.items()}
        snap.metadata.update(meta)
        snap.file_size = self.total_size

    def storage_index(self, storage_data: Any) -> dict[tuple[str, tuple[int, ...] | None], dict[str, Any]]:
        """``(fqn, chunk offsets)`` -> ``{"file", "offset", "length"}`` (offsets None for bytes items)."""
        out: dict[tuple[str, tuple[int, ...] | None], dict[str, Any]] = {}
        if not isinstance(storage_data, dict):
            return out
        for key, value in storage_data.items():
            k, v = _state(key), _state(value)
            if not isinstance(k, dict) or not isinstance(v, dict):
                continue
            offsets = k.get("offset")
            out[(str(k.get("fqn")), tuple(offsets) if isinstance(offsets, (tuple, list)) else None)] = {
                "file": str(v.get("relative_path")), "offset": v.get("offset"), "length": v.get("length")}
        return out

    def locate(self, fqn: str, where: dict[str, Any] | None, what: str) -> tuple[str, int, int] | None:
        """The checked (path, offset, length) of one item, or None with an F5xx diagnostic."""
        from ckptdoctor.rules import dcp_files as R

        snap = self.snap
        if where is None:
            snap.diagnostics.append(R.CHUNK_WITHOUT_STORAGE.diag(
                f"{what} of {fqn!r} has no storage_data entry: no file holds it", subject=fqn, path=self.meta_path,
                framework_behavior="torch.distributed.checkpoint.load raises KeyError for its MetadataIndex",
                fix="save the checkpoint again"))
            return None
        rel, offset, length = where["file"], where["offset"], where["length"]
        size = self.data_size(rel)
        if size is None:
            snap.diagnostics.append(R.DATA_FILE_MISSING.diag(
                f"{what} of {fqn!r} is stored in {rel}, which is not in the folder", subject=fqn,
                path=self.meta_path, expected=rel, found=None, framework_behavior=R.LOAD_BEHAVIOR,
                fix="copy the missing .distcp file(s) from the machine that wrote them, or save again"))
            return None
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or length < 0 \
                or offset + length > size:
            snap.diagnostics.append(R.DATA_OUT_OF_RANGE.diag(
                f"{what} of {fqn!r} is bytes [{offset}, {offset}+{length}) of {rel}, which holds {size:,} bytes",
                subject=fqn, path=os.path.join(self.folder, rel), expected=f">= {offset}+{length} bytes",
                found=size, framework_behavior=R.LOAD_BEHAVIOR,
                fix="the data file is truncated or from another save: copy the checkpoint folder again"))
            return None
        full = self.data_path(rel)
        assert full is not None  # data_size returned a size
        return full, offset, length

    def tensor(self, fqn: str, state: Any, storage: dict[Any, dict[str, Any]]) -> TensorInfo | None:
        if not isinstance(state, dict):
            return None
        size = state.get("size")
        shape = tuple(int(d) for d in size) if isinstance(size, (tuple, list)) else ()
        props = _state(state.get("properties"))
        dtype_ref = props[0] if isinstance(props, tuple) and props else (
            props.get("dtype") if isinstance(props, dict) else None)
        dtype = pickle_vm.torch_dtype_name(dtype_ref) or "unknown"
        requires_grad = props[2] if isinstance(props, tuple) and len(props) > 2 else None
        from ckptdoctor.dtypes import ITEMSIZE

        chunks: list[dict[str, Any]] = []
        located: list[tuple[tuple[int, ...], tuple[int, ...], tuple[str, int, int]]] = []
        covered = 0
        raw_chunks = state.get("chunks")
        for chunk in raw_chunks if isinstance(raw_chunks, list) else []:
            c = _state(chunk)
            if not isinstance(c, dict):
                continue
            offsets = tuple(int(x) for x in c.get("offsets") or ())
            sizes = tuple(int(x) for x in c.get("sizes") or ())
            where = storage.get((fqn, offsets))
            entry: dict[str, Any] = {"offsets": list(offsets), "sizes": list(sizes)}
            if where is not None:
                entry.update(where)
            chunks.append(entry)
            covered += numel(sizes)
            loc = self.locate(fqn, where, f"chunk at {list(offsets)}")
            if loc is not None:
                located.append((offsets, sizes, loc))
        if covered < numel(shape):
            from ckptdoctor.rules import dcp_files as R

            self.snap.diagnostics.append(R.CHUNK_WITHOUT_STORAGE.diag(
                f"the chunks of {fqn!r} cover {covered:,} of its {numel(shape):,} elements", subject=fqn,
                path=self.meta_path, expected=numel(shape), found=covered,
                framework_behavior="the uncovered part is never read: loading leaves it as it was in the model",
                fix="save the checkpoint again"))
        info = TensorInfo(name=fqn, shape=shape, dtype=dtype, nbytes=numel(shape) * ITEMSIZE.get(dtype, 0),
                          location="cpu", requires_grad=requires_grad if isinstance(requires_grad, bool) else None,
                          attrs={"chunks": chunks} if len(chunks) != 1 else {
                              k: chunks[0][k] for k in ("file", "offset", "length") if k in chunks[0]})
        if len(located) == len(chunks) and covered == numel(shape) and dtype != "unknown":
            info.loader = _assembler(fqn, shape, dtype, located)
        return info

    def bytes_item(self, fqn: str, where: dict[str, Any] | None, budget: list[int]) -> Any:
        """A non-tensor item: its value (walked symbolically) and globals, when it is small enough."""
        loc = self.locate(fqn, where, "the item")
        if loc is None:
            return "<missing>"
        path, offset, length = loc
        if length > MAX_BYTES_ITEM or length > budget[0]:
            self.snap.metadata.setdefault("bytes_items_not_scanned", []).append(fqn)
            return f"<bytes item {length:,} bytes: not scanned>"
        budget[0] -= length
        try:
            sub = read_blob(path, offset, length)
        except InputError as exc:
            return f"<unreadable torch.save blob: {exc.message}>"
        for g in sub.globals:
            use = sub.metadata.get("pickle_globals", {}).get(g.qualname, {})
            self.globals.setdefault(g, pickle_vm.GlobalUse()).merge(
                pickle_vm.GlobalUse(references=int(use.get("count", 1)),
                                    calls=int(use.get("count", 1)) if "call" in use.get("uses", ()) else 0,
                                    uses=set(use.get("uses", ()))))
        for c in sub.classes:
            c.path = fqn
            self.snap.classes.append(c)
        for t in sub.tensors:  # a tensor inside a non-tensor item (rare): listed under the item's name
            t.name = f"{fqn}.{t.name}" if t.name != "<root>" else fqn
            self.snap.tensors.append(t)
        return sub.structure


# ---- chunk blobs: torch.save zips inside a slice of a .distcp file ---------------------------------

class _Slice:
    """A read-only file view of ``[start, start + length)``: what a zip directory parser needs."""

    def __init__(self, fh: BinaryIO, start: int, length: int) -> None:
        self.fh, self.start, self.length, self.pos = fh, start, length, 0

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, min(self.length, base + pos))
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.length - self.pos if n < 0 else min(n, self.length - self.pos)
        self.fh.seek(self.start + self.pos)
        data = self.fh.read(n)
        self.pos += len(data)
        return data


def read_blob(path: str, offset: int, length: int) -> Snapshot:
    """The ``torch.save`` zip blob at ``[offset, offset + length)`` of ``path``, read by the torch zip reader.

    The zip directory is parsed from the slice; member offsets are then made absolute so that the
    reader's storage loaders map the bytes straight from the data file (no copy of the blob).
    """
    from ckptdoctor.readers import zip_index
    from ckptdoctor.readers.torch_zip import ZipArchive

    # wanted API: zip_index.read_index(path, start=offset, length=length) returning absolute offsets
    parse = zip_index._parse  # the only entry point that takes a file object and a size
    try:
        with open(path, "rb") as fh:
            rel = parse(path, _Slice(fh, offset, length), length)  # type: ignore[arg-type]
    except (zip_index.BadZip, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"the torch.save blob at byte {offset:,} is damaged ({exc})",
                         path) from None
    file_size = os.path.getsize(path)
    entries = {name: e._replace(header_offset=e.header_offset + offset) for name, e in rel.entries.items()}
    index = zip_index.ZipIndex(path, file_size, rel.names, entries)
    snap = Snapshot(path=path, format="torch-zip", framework="pytorch", file_size=length)
    ZipArchive(path, index).fill(snap)
    return snap


def _assembler(fqn: str, shape: tuple[int, ...], dtype: str,
               chunks: list[tuple[tuple[int, ...], tuple[int, ...], tuple[str, int, int]]]) -> Any:
    def load() -> np.ndarray:
        import numpy as np

        from ckptdoctor.dtypes import to_numpy

        if len(chunks) == 1 and chunks[0][1] == shape:
            return _chunk_values(fqn, chunks[0][1], dtype, chunks[0][2])
        out = np.zeros(shape, dtype=to_numpy(dtype))
        for offsets, sizes, loc in chunks:
            values = _chunk_values(fqn, sizes, dtype, loc)
            out[tuple(slice(o, o + s) for o, s in zip(offsets, sizes, strict=True))] = values
        return out

    return load


def _chunk_values(fqn: str, sizes: tuple[int, ...], dtype: str, loc: tuple[str, int, int]) -> np.ndarray:
    try:
        blob = read_blob(*loc)
    except InputError as exc:  # e.g. a safetensors-format DCP save: its items are not torch.save blobs
        raise ValueError(f"{fqn}: {exc.message}") from None
    if len(blob.tensors) != 1:
        raise ValueError(f"{fqn}: the chunk blob holds {len(blob.tensors)} tensors, expected 1")
    t = blob.tensors[0]
    if t.shape != sizes or t.dtype != dtype:
        raise ValueError(f"{fqn}: the chunk blob holds {t.dtype} {list(t.shape)}, .metadata says "
                         f"{dtype} {list(sizes)}")
    return t.read()


# ---- reading the inert objects ------------------------------------------------------------------------

def _is_class(obj: Any, suffix: str) -> bool:
    return (isinstance(obj, pickle_vm.Opaque) and isinstance(obj.callable, GlobalRef)
            and obj.callable.module.startswith(_DCP_MODULE) and obj.qualname.endswith(suffix))


def _state(obj: Any) -> Any:
    """The BUILD state of an inert object (its ``__dict__``; slotted dataclasses pickle ``(None, slots)``)."""
    if not isinstance(obj, pickle_vm.Opaque):
        return None
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict) and state[0] is None:
        return state[1]
    return state

