"""Write a Keras 3 ``.weights.h5`` as ``model.save_weights`` does, one variable at a time (h5py).

Layout (``keras/src/saving/saving_lib.py``, H5IOStore and ``_save_state``): for every saveable Keras
visits, a group ``<path>/vars`` (root: ``vars``) with the attribute ``name`` = the saveable's name,
created even when it holds nothing (Dropout, the LSTM layer around its cell); its variables are the
contiguous, uncompressed datasets ``vars/0``, ``vars/1`` ... in ``trainable + non_trainable`` order. A
bfloat16 variable is stored as opaque 2-byte data with the attribute ``dtype="bfloat16"``.

Memory: one variable at a time (a layout change needs the whole tensor; a copy reads the source's
dataset whole, as Keras itself would when loading).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from ckptdoctor.fixing.atomic import VerificationError

if TYPE_CHECKING:
    from ckptdoctor.fixing.plan import FixPlan
    from ckptdoctor.frameworks.keras_layout import KerasLayout
    from ckptdoctor.snapshot import Snapshot

_GATES = (1, 0, 2)  # torch GRU r, z, n <-> Keras z, r, h (swapping the first two blocks is its own inverse)


def _reorder(arr: Any, axis: int) -> Any:
    import numpy as np

    blocks = np.split(arr, 3, axis=axis)
    return np.concatenate([blocks[i] for i in _GATES], axis=axis)


def value(t: Any, snap: Snapshot, layout: KerasLayout) -> Any:
    """The output variable's values as a numpy array in the planned dtype and shape."""
    import numpy as np

    from ckptdoctor import dtypes

    if t.op == "fresh":
        arr = np.asarray(layout.fresh[t.name])
    else:
        arr = np.asarray(snap.tensor(str(t.source)).read())
        extra = [np.asarray(snap.tensor(x).read()) for x in getattr(t, "extra", [])]
        if t.op == "transpose":
            arr = arr.T
        elif t.op == "add":  # torch LSTM: two biases, Keras one; the cell adds them anyway
            arr = arr.astype(np.float64) + extra[0].astype(np.float64)
        elif t.op == "reorder-gates-transpose":
            arr = _reorder(arr, 0).T
        elif t.op == "stack-reorder-gates":  # GRU reset_after=True: bias [2, 3u] = input, recurrent
            arr = np.stack([_reorder(arr, 0), _reorder(extra[0], 0)])
        elif t.op != "copy":
            raise ValueError(f"unknown conversion {t.op!r}")
    arr = arr.reshape(t.shape) if arr.shape != tuple(t.shape) and arr.size == int(np.prod(t.shape)) else arr
    arr = arr.astype(dtypes.to_numpy(t.dtype), copy=False)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes a scalar 1-d)


def write(fh: BinaryIO, plan: FixPlan, snap: Snapshot, layout: KerasLayout,
          progress: Callable[[int], None] | None = None) -> int:
    """Write the planned variables into ``fh`` (a file opened for writing); returns the bytes of values."""
    import h5py
    import numpy as np

    written = 0
    with h5py.File(fh, "w") as f:
        for group, name in layout.groups:
            g = f.require_group(group)
            if name is not None:
                g.attrs["name"] = name
        for t in plan.tensors:
            arr = value(t, snap, layout)
            group, _, key = t.name.rpartition("/")
            g = f.require_group(group)
            if t.dtype == "bfloat16":  # h5py has no bfloat16: Keras stores the bytes and says so
                ds = g.create_dataset(key, data=arr.view(np.dtype("V2")))
                ds.attrs["dtype"] = "bfloat16"
            else:
                g.create_dataset(key, data=arr)
            written += arr.nbytes
            if progress is not None:
                progress(written)
            del arr
    return written


def verify(path: str, plan: FixPlan, snap: Snapshot, layout: KerasLayout) -> None:
    """Read the file back: every group and name attribute, every variable's shape, dtype and bytes."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        for group, name in layout.groups:
            g = f.get(group)
            if not isinstance(g, h5py.Group):
                raise VerificationError(f"{path}: group {group!r} is missing")
            if name is not None and g.attrs.get("name") != name:
                raise VerificationError(f"{path}: group {group!r} has name {g.attrs.get('name')!r}, not {name!r}")
        seen = 0
        for t in plan.tensors:
            ds = f.get(t.name)
            if not isinstance(ds, h5py.Dataset) or tuple(ds.shape) != tuple(t.shape):
                raise VerificationError(f"{path}: {t.name} is missing or has another shape")
            back = np.asarray(ds[()])
            want = value(t, snap, layout)
            if back.tobytes() != want.tobytes():
                raise VerificationError(f"{path}: {t.name} differs from the planned values")
            seen += 1

        def count(_name: str, obj: Any) -> None:
            nonlocal seen
            if isinstance(obj, h5py.Dataset):
                seen -= 1

        f.visititems(count)
        if seen != 0:
            raise VerificationError(f"{path}: holds datasets the plan does not")
