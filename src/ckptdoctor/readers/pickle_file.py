"""Plain pickles (``pickle.dump``): vocabularies, label lists, training checkpoints, numpy arrays.

Read by the symbolic interpreter: nothing is imported or called. Tensors pickled with plain pickle
(``torch.storage._load_from_bytes``) and numpy arrays (``_reconstruct`` / ``_frombuffer``) are rebuilt
symbolically, with their bytes left in the file and read only on request.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Any

from ckptdoctor.errors import InputError
from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.pickle_objects import (
    Walker,
    array_info,
    note_truncation,
    storage_nbytes_of,
    tensor_info,
)
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot

if TYPE_CHECKING:
    import numpy as np


def read(path: str, fmt: str = "pickle") -> Snapshot:
    size = os.path.getsize(path)
    with open(path, "rb") as fh, closing(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)) as buf:
        try:
            result = pickle_vm.load(buf)
        except pickle_vm.PickleError as exc:
            code = {"F103": F.TRUNCATED_FILE.code, "F104": F.NOT_A_MODEL.code}.get(exc.code, F.CORRUPT_HEADER.code)
            hint = ("download or save it again" if code == F.TRUNCATED_FILE.code
                    else "the file starts like a pickle but is not one")
            raise InputError(code, f"not a readable pickle: {exc}", path, hint) from None
    return snapshot_from_result(path, result, size)


def snapshot_from_result(path: str, result: pickle_vm.PickleResult, size: int) -> Snapshot:
    walked = Walker().walk(result.value)
    snap = Snapshot(path=path, format="pickle", framework="python", file_size=size)
    for name, t, meta in walked.tensors:
        storage = t.storage
        loader = None
        nbytes = None
        if storage is not None and storage.payload is not None:
            loader = _payload_loader(path, storage.payload)
            nbytes = storage_nbytes_of(storage)
        snap.tensors.append(tensor_info(name, t, meta, loader, nbytes))
    for name, arr in walked.arrays:
        snap.tensors.append(array_info(name, arr, lambda raw: _payload_loader(path, raw)()))
    if walked.tensors:
        snap.framework = "pytorch"
    elif walked.arrays:
        snap.framework = "numpy"
    snap.structure = walked.structure
    snap.classes = list(walked.classes.values())
    snap.globals = list(result.globals)
    snap.metadata.update({
        "pickle_protocol": result.protocol,
        "pickle_globals": {g.qualname: {"count": u.count, "uses": sorted(u.uses)} for g, u in result.globals.items()},
        "pickle_opcodes": sorted(result.opcodes),
        "saved_by": f"pickle.dump ({describe(result.value)})",
        "object": describe(result.value),
    })
    if result.end < size:
        snap.metadata["trailing_bytes"] = size - result.end
    note_truncation(snap, walked)
    if walked.model_class:
        snap.metadata["model_class"] = walked.model_class
    return snap


def describe(value: Any) -> str:
    """One line saying what the pickled object is ("list of 88 str", "dict with 3 keys")."""
    if isinstance(value, pickle_vm.Opaque):
        return f"an object of {value.qualname}"
    if isinstance(value, dict):
        kind = getattr(value, "cls", "dict")
        return f"{kind} with {len(value):,} keys"
    if isinstance(value, (list, tuple, set, frozenset)):
        kinds = sorted({type(v).__name__ for v in list(value)[:1000]})
        what = "/".join(kinds) if kinds else "items"
        return f"{type(value).__name__} of {len(value):,} {what}"
    if isinstance(value, pickle_vm.TensorRef):
        return f"a tensor {value.dtype} {list(value.shape)}"
    return type(value).__name__


def _payload_loader(path: str, payload: Any) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import numpy as np

        if isinstance(payload, pickle_vm.RawBytes):
            if payload.length == 0:
                return np.zeros(0, dtype=np.uint8)
            return np.memmap(path, dtype=np.uint8, mode="r", offset=payload.offset, shape=(payload.length,))
        return np.frombuffer(bytes(payload), dtype=np.uint8)

    return load
