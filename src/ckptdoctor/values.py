"""Value passes over tensors: statistics computed tensor by tensor, so peak memory is one tensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ckptdoctor.snapshot import TensorInfo

if TYPE_CHECKING:
    from ckptdoctor.fixing.tensor_bytes import ByteLocator


@dataclass
class TensorStats:
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    zeros: int

    def to_json(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": self.std,
                "nan": self.nan, "inf": self.inf, "zeros": self.zeros}


def as_float_array(values: Any) -> Any:
    """float64 view of any numeric array (bfloat16/float8 via ml_dtypes; complex as magnitude)."""
    import numpy as np

    if values.dtype.kind == "c":
        return np.abs(values).astype(np.float64)
    # bfloat16/float8 from ml_dtypes report kind "V" too, but they are numbers
    if values.dtype.kind == "V" and values.dtype.type.__module__ != "ml_dtypes":  # opaque bytes
        raise ValueError("opaque dtype")
    return values.astype(np.float64)


# elements per window when a tensor is read window by window: 4 Mi float64 values = 32 MiB at a time
WINDOW = 1 << 22


def tensor_stats(tensor: TensorInfo, locator: ByteLocator | None = None) -> TensorStats:
    """min/max/mean/std over the finite values, and NaN/Inf/zero counts. HDF5 datasets are read slab by
    slab, and with a ``locator`` (the tensor's file) file-addressable tensors window by window, so memory
    stays bounded whatever their size; anything else is read whole."""
    slabs = getattr(tensor.loader, "chunks", None)  # readers that can read a tensor in parts (HDF5)
    parts: list[tuple[TensorStats, int]] = []
    if callable(slabs):
        for slab in slabs(WINDOW):
            parts.append((array_stats(as_float_array(slab)), slab.size))
    elif locator is None:
        return array_stats(as_float_array(tensor.read()))
    else:
        from ckptdoctor.fixing.tensor_bytes import ElementWindows

        with ElementWindows(locator, tensor) as windows:
            for start in range(0, windows.size, WINDOW):
                window = windows.window(start, min(WINDOW, windows.size - start))
                parts.append((array_stats(as_float_array(window)), len(window)))
    if not parts:
        return TensorStats(None, None, None, None, 0, 0, 0)
    return parts[0][0] if len(parts) == 1 else combined_stats(parts)


def array_stats(arr: Any) -> TensorStats:
    import numpy as np

    if arr.size == 0:
        return TensorStats(None, None, None, None, 0, 0, 0)
    nan = int(np.isnan(arr).sum())
    inf = int(np.isinf(arr).sum())
    finite = arr[np.isfinite(arr)] if (nan or inf) else arr
    zeros = int((arr == 0).sum())
    if finite.size == 0:
        return TensorStats(None, None, None, None, nan, inf, zeros)
    return TensorStats(float(finite.min()), float(finite.max()), float(finite.mean()), float(finite.std()),
                       nan, inf, zeros)


def combined_stats(parts: list[tuple[TensorStats, int]]) -> TensorStats:
    """The statistics of several tensors taken together, from each one's stats and element count: exactly
    what ``tensor_stats`` gives for their concatenation (population std over the finite values)."""
    nan = sum(s.nan for s, _ in parts)
    inf = sum(s.inf for s, _ in parts)
    zeros = sum(s.zeros for s, _ in parts)
    finite = [(s, numel - s.nan - s.inf) for s, numel in parts if s.mean is not None]
    total = sum(n for _, n in finite)
    if not finite or total <= 0:
        return TensorStats(None, None, None, None, nan, inf, zeros)
    mean = sum(s.mean * n for s, n in finite) / total  # type: ignore[operator]
    var = sum(n * (s.std ** 2 + (s.mean - mean) ** 2) for s, n in finite) / total  # type: ignore[operator]
    return TensorStats(min(s.min for s, _ in finite), max(s.max for s, _ in finite),  # type: ignore[type-var]
                       mean, var ** 0.5, nan, inf, zeros)
