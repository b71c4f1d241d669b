"""Turn the value a symbolic pickle run produced into named tensors, a structure tree and classes.

Tensors are named by their path through the object (``model.fc.weight`` for ``{"model": sd}``,
``optimizer.state.0.exp_avg``). A pickled ``nn.Module`` (an object whose state has ``_parameters``,
``_buffers`` and ``_modules``) is named the way its ``state_dict()`` would be. Cycles, shared containers
and huge structures are bounded: the walk visits at most ``budget`` nodes and ``MAX_DEPTH`` levels.
"""

from __future__ import annotations

from collections.abc import Callable

from ckptdoctor.dtypes import ITEMSIZE
from ckptdoctor.readers.pickle_vm import (
    NumpyArray,
    NumpyDtype,
    NumpyScalar,
    ODict,
    Opaque,
    PersistentRef,
    RawBytes,
    StorageRef,
    TensorRef,
    Unhashable,
    numpy_dtype_name,
)
from ckptdoctor.snapshot import ClassRef, GlobalRef, Snapshot, TensorInfo, numel

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    import numpy as np

MAX_DEPTH = 64
MAX_LIST_SHOWN = 200
MAX_STR_SHOWN = 200
MODULE_KEYS = ("_parameters", "_buffers", "_modules")
# modules whose pickled classes ship with a framework (not user code that must be importable)
FRAMEWORK_MODULES = ("torch", "collections", "builtins", "__builtin__", "numpy", "copyreg", "_codecs",
                     "__torch__.torch.", "argparse", "datetime", "pathlib", "enum")


class Walked:
    """What a walk found (a plain class: a dataclass costs more at import than a whole small read)."""

    def __init__(self) -> None:
        self.tensors: list[tuple[str, TensorRef, dict[str, Any]]] = []
        self.arrays: list[tuple[str, NumpyArray]] = []
        self.classes: dict[str, ClassRef] = {}
        self.structure: Any = None
        self.truncated = False
        self.repeats_not_expanded = 0  # shared containers shown as "<same object as ...>", not walked again
        self.model_class: str | None = None


def note_truncation(snap: Snapshot, walked: Walked) -> None:
    """Say so when the walk stopped early (node budget, depth, shared containers not walked again)."""
    if not walked.truncated:
        return
    from ckptdoctor.rules.file_format import STRUCTURE_TRUNCATED

    snap.metadata["structure_truncated"] = True
    repeats = walked.repeats_not_expanded
    if repeats:
        snap.metadata["repeats_not_expanded"] = repeats
    why = (f"{repeats:,} shared container(s) reached again under other names are shown as '<same object as "
           "...>'" if repeats else "it is larger or deeper than ckptdoctor walks")
    snap.diagnostics.append(STRUCTURE_TRUNCATED.diag(
        f"the pickle's structure was summarised: {why}; the tensors listed are those reached before that",
        subject=snap.path, found=f"{len(walked.tensors):,} tensors listed",
        framework_behavior="torch.load / pickle.load rebuild the whole object (shared containers stay shared)",
        fix="nothing to fix if the file is yours; a small file that expands to millions of names is built "
            "to exhaust the tools that read it"))


def join(prefix: str, key: Any) -> str:
    k = key.text if isinstance(key, Unhashable) else str(key)
    return f"{prefix}.{k}" if prefix else k


class Walker:
    def __init__(self, budget: int = 500_000,
                 torchscript_members: Callable[[str], tuple[list[str], list[str]] | None] | None = None) -> None:
        self.out = Walked()
        self.budget = budget
        self.on_path: set[int] = set()
        # A container the pickle shares (memo) is walked again under each path that reaches it, as torch.load's
        # result has it under each key ({"model": sd, "ema": sd}), while the nodes walked again stay below
        # repeat_budget: a 2 KB pickle that nests {"k": d, "j": d} thirty times must not become 2**30 names.
        self.walked: dict[int, tuple[str, int]] = {}  # id -> (first path, nodes its walk took)
        self.repeat_budget = min(budget, 100_000)
        # TorchScript: class qualname -> (parameters, buffers) parsed from the archive's code
        self.torchscript_members = torchscript_members

    def walk(self, value: Any, root: str = "") -> Walked:
        self.out.structure = self.visit(value, root, 0, "")
        top = value
        if isinstance(top, Opaque) and isinstance(top.callable, GlobalRef):
            self.out.model_class = top.callable.qualname
        return self.out

    # ---- one node --------------------------------------------------------------------------------
    def visit(self, value: Any, path: str, depth: int, kind: str) -> Any:
        self.budget -= 1
        if self.budget < 0:
            self.out.truncated = True
            return "<…>"
        if isinstance(value, TensorRef):
            meta = {"kind": kind} if kind else {}
            self.out.tensors.append((path or "<root>", value, meta))
            return f"<tensor {value.dtype} {list(value.shape)}>"
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return value if len(value) <= MAX_STR_SHOWN else value[:MAX_STR_SHOWN] + f"… ({len(value):,} chars)"
        if isinstance(value, (bytes, bytearray)):
            return f"<bytes {len(value):,}>"
        if isinstance(value, RawBytes):
            return f"<bytes {value.length:,}>"
        if isinstance(value, complex):
            return str(value)
        if isinstance(value, GlobalRef):
            return f"<global {value.qualname}>"
        if isinstance(value, Unhashable):
            return value.text
        if isinstance(value, NumpyScalar):
            return value.value if value.value is not None else f"<numpy scalar {value.dtype.descr}>"
        if isinstance(value, NumpyArray):
            return self.visit_array(value, path)
        if isinstance(value, NumpyDtype):
            return f"<numpy dtype {value.descr}>"
        if isinstance(value, StorageRef):
            return f"<storage {value.key} {value.storage_type}>"
        if isinstance(value, PersistentRef):
            return f"<persistent id {value.pid!r}>"[:MAX_STR_SHOWN]
        if isinstance(value, slice):
            return f"<slice {value.start}:{value.stop}:{value.step}>"
        if depth >= MAX_DEPTH:
            self.out.truncated = True
            return "<too deep>"
        key = id(value)
        if key in self.on_path:
            return "<cycle>"
        seen = self.walked.get(key)
        if seen is not None:
            if seen[1] > self.repeat_budget:
                self.out.repeats_not_expanded += 1
                self.out.truncated = True
                return f"<same object as {seen[0] or '<root>'}>"
            self.repeat_budget -= seen[1]
        before = self.budget
        self.on_path.add(key)
        try:
            if isinstance(value, dict):
                return self.visit_dict(value, path, depth)
            if isinstance(value, (list, tuple)):
                return self.visit_seq(list(value), path, depth)
            if isinstance(value, (set, frozenset)):
                return self.visit_seq(list(value), path, depth)
            if isinstance(value, Opaque):
                return self.visit_opaque(value, path, depth)
        finally:
            self.on_path.discard(key)
            if seen is None:
                self.walked[key] = (path, before - self.budget)
        return f"<{type(value).__name__}>"

    def visit_dict(self, value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            shown = self.visit(v, join(path, k), depth + 1, "")
            if i < MAX_LIST_SHOWN or _holds_tensor(shown):
                out[k.text if isinstance(k, Unhashable) else str(k)] = shown
        if len(value) > len(out):
            out["…"] = f"{len(value) - len(out):,} more entries"
        return out

    def visit_seq(self, items: list[Any], path: str, depth: int) -> list[Any]:
        out: list[Any] = []
        for i, v in enumerate(items):
            shown = self.visit(v, join(path, i), depth + 1, "")
            if i < MAX_LIST_SHOWN:
                out.append(shown)
        if len(items) > MAX_LIST_SHOWN:
            out.append(f"… {len(items) - MAX_LIST_SHOWN:,} more items")
        return out

    def visit_array(self, arr: NumpyArray, path: str) -> str:
        name = numpy_dtype_name(arr.dtype)
        descr = arr.dtype.descr if arr.dtype else "?"
        if name is not None and isinstance(arr.data, (bytes, bytearray, RawBytes)):
            self.out.arrays.append((path or "<root>", arr))
            return f"<ndarray {name} {list(arr.shape)}>"
        return f"<ndarray {descr} {list(arr.shape)} (not rebuilt)>"

    def note_class(self, obj: Opaque, path: str) -> None:
        c = obj.callable
        if not isinstance(c, GlobalRef) or obj.kind == "reduce":
            return
        q = c.qualname
        if q in self.out.classes:
            return
        if c.module.startswith("__torch__"):
            role, builtin = "torchscript-class", True
        else:
            role = "pickled-class"
            builtin = c.module.startswith(FRAMEWORK_MODULES)
        self.out.classes[q] = ClassRef(name=c.name, module=c.module, role=role, path=path or "<root>",
                                       builtin=builtin)

    def visit_opaque(self, obj: Opaque, path: str, depth: int) -> Any:
        self.note_class(obj, path)
        shown: dict[str, Any] = {"__class__": obj.qualname}
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            # (__dict__, slot state) from objects with __slots__
            merged = dict(state[0]) if isinstance(state[0], dict) else {}
            merged.update(state[1])
            state = merged
        if isinstance(state, dict) and all(k in state for k in MODULE_KEYS):
            shown.update(self.visit_module(state, path, depth))
        elif isinstance(state, dict) and isinstance(obj.callable, GlobalRef) and obj.callable.module.startswith("__torch__"):
            shown.update(self.visit_script_object(obj.callable.qualname, state, path, depth))
        elif isinstance(state, dict):
            for k, v in state.items():
                shown[str(k)] = self.visit(v, join(path, k), depth + 1, "")
        elif state is not None:
            shown["__state__"] = self.visit(state, path, depth + 1, "")
        if obj.args not in ((), None) and obj.kind == "reduce":
            shown["__args__"] = self.visit(obj.args, path, depth + 1, "")
        if obj.items:
            shown["__items__"] = self.visit(obj.items, path, depth + 1, "")
        return shown

    def visit_module(self, state: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
        """An ``nn.Module``: named like ``state_dict()`` (parameters, persistent buffers, submodules)."""
        shown: dict[str, Any] = {}
        non_persistent = state.get("_non_persistent_buffers_set")
        skip = set(non_persistent) if isinstance(non_persistent, (set, frozenset, list)) else set()
        for group, kind in (("_parameters", "parameter"), ("_buffers", "buffer")):
            members = state.get(group)
            if not isinstance(members, dict):
                continue
            for k, v in members.items():
                if v is None:
                    continue
                if kind == "buffer" and k in skip:
                    shown[str(k)] = "<non-persistent buffer: not in state_dict>"
                    continue
                shown[str(k)] = self.visit(v, join(path, k), depth + 1, kind)
        modules = state.get("_modules")
        if isinstance(modules, dict):
            for k, v in modules.items():
                shown[str(k)] = self.visit(v, join(path, k), depth + 1, "")
        for k, v in state.items():
            if isinstance(v, TensorRef) and k not in MODULE_KEYS:
                # a tensor kept as a plain attribute: saved in this pickle but never in a state_dict
                shown[str(k)] = f"<tensor {v.dtype} {list(v.shape)}: plain attribute, not in state_dict>"
        return shown

    def visit_script_object(self, qualname: str, state: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
        members = self.torchscript_members(qualname) if self.torchscript_members else None
        params, buffers = members if members else ([], [])
        shown: dict[str, Any] = {}
        for k, v in state.items():
            kind = "parameter" if k in params else "buffer" if k in buffers else "attribute"
            shown[str(k)] = self.visit(v, join(path, k), depth + 1, kind if isinstance(v, TensorRef) else "")
        return shown


def _holds_tensor(shown: Any) -> bool:
    return isinstance(shown, str) and shown.startswith("<tensor")


# ---- TensorRef -> TensorInfo -----------------------------------------------------------------------

# How a reader reaches the bytes of one storage: a flat uint8 numpy array (memmap or bytes)
StorageBytes = Callable[[], "np.ndarray"]


def tensor_info(name: str, t: TensorRef, meta: dict[str, Any], storage_bytes: StorageBytes | None,
                storage_nbytes: int | None, byteorder: str = "little") -> TensorInfo:
    n = numel(t.shape)
    storage = t.storage
    attrs: dict[str, Any] = {}
    if meta and meta.get("kind"):
        attrs["kind"] = meta["kind"]
    if t.subclass:
        attrs["subclass"] = t.subclass
    if t.quantized:
        attrs["quantized"] = True
    for bit in t.math_bits:
        attrs[bit] = True  # values are read as torch.load gives them (resolve_conj / resolve_neg)
    if storage is not None and storage.view_of:
        attrs["storage_view_of"] = storage.view_of
    # positional: this runs once per tensor, and keyword arguments cost a third of the call
    info = TensorInfo(name, t.shape, t.dtype, n * ITEMSIZE.get(t.dtype, 1),
                      storage.key if storage is not None else None, t.offset, t.strides, storage_nbytes,
                      storage.location if storage is not None else "meta", t.requires_grad, t.is_parameter,
                      attrs)
    if storage is not None and storage_bytes is not None:
        info.loader = lambda: strided_view(storage_bytes(), t, byteorder)
    return info


def storage_nbytes_of(storage: StorageRef) -> int:
    return storage.numel * (ITEMSIZE.get(storage.dtype, 1) if storage.dtype else 1)


def strided_view(raw: np.ndarray, t: TensorRef, byteorder: str = "little") -> np.ndarray:
    """The tensor's values from its storage bytes (offset and strides in elements), as a new array."""
    import numpy as np

    from ckptdoctor.dtypes import to_numpy

    if t.dtype == "complex32":
        raise ValueError("complex32 values cannot be read with numpy")
    dtype = to_numpy(t.dtype)
    itemsize = dtype.itemsize
    start = 0
    if t.storage is not None and t.storage.view_offset:
        start = t.storage.view_offset * itemsize
    count = (raw.size - start) // itemsize
    strides = t.strides if t.strides is not None else _contiguous(t.shape)
    n = numel(t.shape)
    if n:
        last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, strides, strict=True))
        if t.offset < 0 or min(strides, default=0) < 0 or last >= count:
            raise ValueError(f"tensor reaches element {last} but its storage holds {count}")
    flat = raw[start:start + count * itemsize]
    if byteorder == "big" and itemsize > 1:
        part = itemsize // 2 if dtype.kind == "c" else itemsize
        flat = flat.view(f">u{part}").astype(f"<u{part}").view(np.uint8)
    # stride over raw integers of the same width: as_strided cannot build ml_dtypes (float8) views
    raw_dtype = np.dtype(f"u{itemsize}") if itemsize in (1, 2, 4, 8) else np.dtype((np.void, itemsize))
    base = flat.view(raw_dtype)
    view = np.lib.stride_tricks.as_strided(base[t.offset:] if n else base[:0], shape=t.shape,
                                           strides=tuple(s * itemsize for s in strides), writeable=False)
    values = np.array(view).view(dtype)
    if "conj" in t.math_bits:
        values = np.conj(values)
    if "neg" in t.math_bits:
        values = np.negative(values)
    return values


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    acc = 1
    for d in reversed(shape):
        out.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(out))


def array_info(name: str, arr: NumpyArray, buffer_bytes: Callable[[RawBytes], np.ndarray] | None) -> TensorInfo:
    """A numpy array pickled inline (``_reconstruct`` + BUILD, or protocol 5 ``_frombuffer``)."""
    dtype = numpy_dtype_name(arr.dtype) or "uint8"
    n = numel(arr.shape)
    info = TensorInfo(name=name, shape=arr.shape, dtype=dtype, nbytes=n * ITEMSIZE[dtype],
                      attrs={"numpy": True, **({"fortran_order": True} if arr.fortran else {})})
    data = arr.data

    def load() -> np.ndarray:
        import numpy as np

        raw = buffer_bytes(data) if isinstance(data, RawBytes) and buffer_bytes else data
        if isinstance(raw, RawBytes):
            raise ValueError("array bytes are not available")
        npd = np.dtype(arr.dtype.descr if arr.dtype else "u1")
        if arr.dtype is not None and arr.dtype.byteorder in ("<", ">"):
            npd = npd.newbyteorder(arr.dtype.byteorder)
        flat = np.frombuffer(raw, dtype=np.uint8)
        if flat.size != n * npd.itemsize:
            raise ValueError(f"array holds {flat.size} bytes, expected {n * npd.itemsize}")
        values = flat.view(npd).reshape(arr.shape, order="F" if arr.fortran else "C")
        return np.array(values.astype(npd.newbyteorder("=")))

    info.loader = load
    return info


def jsonable_keys(value: Any) -> Any:
    """ODict subclasses and tuples as plain JSON values (used for metadata snippets)."""
    if isinstance(value, ODict):
        return {str(k): jsonable_keys(v) for k, v in value.items()}
    return value
