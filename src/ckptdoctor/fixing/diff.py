"""``diff``: two checkpoints of any formats, compared by structure and by value, tensor by tensor.

Structure: tensors only in A (A301), only in B (A302), reshaped (A303), re-typed (D401), untied (A304).
safetensors alias metadata (``save_model``'s dropped name -> kept name) is resolved first, so a tied
weight stored once is not "removed". Values: for tensors of the same shape, both are streamed in chunks
of ``CHUNK_BYTES`` (bounded memory whatever the tensor size) and give the largest absolute
difference, the relative L2 distance ``||a-b|| / ||a||``, the cosine similarity, whether the raw bytes are
identical, and NaN/Inf counts on each side (D402, D403).

"Identical bytes" is decided by comparing the bytes themselves (memcmp, exact and ~10x faster than
hashing here); ``hashes=True`` adds each side's blake2b digest of the raw bytes to the report.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor import dtypes
from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.errors import InputError, UsageError
from ckptdoctor.fixing.tensor_bytes import ByteLocator, ElementWindows, value_dtype
from ckptdoctor.rules import diff_rules as R
from ckptdoctor.snapshot import Snapshot, TensorInfo

# Chunks small enough to stay in the CPU cache between the read and the arithmetic: with 1 MiB per side
# a diff runs several times faster than with 8 MiB, which spills to DRAM (bench/bench_diff.py).
CHUNK_BYTES = 1 << 20
CHUNK_ELEMS: int | None = None  # fixed element count (tests use it to force many chunks)
# Both sides are memory-mapped this much at a time (whole chunks): the page cache is used in place, no copy
WINDOW_BYTES = 16 << 20
# Windows of one tensor run on this many threads (numpy's arithmetic and memcmp release the GIL). Only
# with cores to spare: on a busy 2-core machine a second thread made the diff ~15% slower.
WORKERS = 2 if len(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()) >= 4 else 1


@dataclass
class TensorDiff:
    name: str
    status: str  # identical | equal | within-tolerance | differs | reshaped | retyped | removed | added | not-compared
    shape_a: tuple[int, ...] | None = None
    shape_b: tuple[int, ...] | None = None
    dtype_a: str | None = None
    dtype_b: str | None = None
    name_b: str | None = None  # the tensor compared in B when ``name`` is an alias there
    identical_bytes: bool | None = None
    max_abs_diff: float | None = None
    rel_l2: float | None = None
    cosine: float | None = None
    mismatched_nonfinite: int = 0  # positions where NaN/Inf differ between the two
    nan_a: int = 0
    inf_a: int = 0
    nan_b: int = 0
    inf_b: int = 0
    nonfinite_appeared: int = 0  # NaN/Inf in B where A is finite
    hash_a: str | None = None
    hash_b: str | None = None
    error: str | None = None

    @property
    def differs(self) -> bool:
        return self.status not in ("identical", "equal", "within-tolerance")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "differs": self.differs}
        for key in ("name_b", "shape_a", "shape_b", "dtype_a", "dtype_b", "identical_bytes", "max_abs_diff",
                    "rel_l2", "cosine", "hash_a", "hash_b", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else _finite_or_str(value)
        if self.max_abs_diff is not None and not self.identical_bytes:
            # counted where values were compared; identical bytes have the same NaN/Inf on both sides
            out.update(nan_a=self.nan_a, inf_a=self.inf_a, nan_b=self.nan_b, inf_b=self.inf_b,
                       mismatched_nonfinite=self.mismatched_nonfinite,
                       nonfinite_appeared=self.nonfinite_appeared)
        return out


def _finite_or_str(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class DiffReport:
    a: str
    b: str
    format_a: str
    format_b: str
    tolerance: float
    tensors: list[TensorDiff] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    bytes_compared: int = 0

    @property
    def differs(self) -> bool:
        return any(t.differs for t in self.tensors)

    @property
    def exit_code(self) -> int:
        return 1 if self.differs else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "format_a": self.format_a, "format_b": self.format_b,
                "tolerance": self.tolerance, "differs": self.differs, "counts": self.counts(),
                "bytes_compared": self.bytes_compared, "tensors": [t.to_json() for t in self.tensors]}


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str], tolerance: float = 0.0, *,
         hashes: bool = False, key_a: str | None = None, key_b: str | None = None) -> DiffReport:
    """Compare checkpoints ``a`` and ``b`` (any formats ckptdoctor reads), streaming tensor by tensor.

    ``tolerance`` is the largest absolute difference per element still counted as a match (default 0:
    any difference counts). Structural differences and NaN/Inf that appear always count. ``key_a`` /
    ``key_b`` compare only that part of a training checkpoint (``"model"``), without its prefix.
    ``report.exit_code`` is 1 when the files differ, 0 when they match.
    """
    from ckptdoctor.readers import read

    if tolerance < 0 or math.isnan(tolerance):
        raise UsageError(f"--tolerance must be a number >= 0, got {tolerance}")
    sa, sb = read(os.fspath(a)), read(os.fspath(b))
    report = DiffReport(os.fspath(a), os.fspath(b), sa.format, sb.format, tolerance)
    from ckptdoctor.fixing.convert import tensors_under

    la, lb = ByteLocator(sa), ByteLocator(sb)
    list_a, list_b = tensors_under(sa, key_a)[0], tensors_under(sb, key_b)[0]
    names_a, names_b = dict(list_a), dict(list_b)
    aliases_a, aliases_b = aliases_of(sa, key_a), aliases_of(sb, key_b)

    for name, ta in list_a:
        target = name if name in names_b else aliases_b.get(name)
        tb = names_b.get(target) if target is not None else None
        if tb is None:
            report.tensors.append(TensorDiff(name, "removed", shape_a=tuple(ta.shape), dtype_a=ta.dtype))
            continue
        td = compare(name, ta, tb, la, lb, tolerance, hashes=hashes)
        if target != name:
            td.name_b = target
        report.bytes_compared += ta.nbytes + tb.nbytes if td.identical_bytes is not None else 0
        report.tensors.append(td)
    for name, tb in list_b:
        if name not in names_a and aliases_a.get(name) not in names_a:
            report.tensors.append(TensorDiff(name, "added", shape_b=tuple(tb.shape), dtype_b=tb.dtype))
    report.diagnostics = diagnostics_for(report) + sharing_changes(list_a, list_b, aliases_a, aliases_b)
    return report


def aliases_of(snap: Snapshot, key: str | None = None) -> dict[str, str]:
    """safetensors ``save_model`` aliases: dropped name -> kept name present in the file."""
    if key is not None:
        return {}  # aliases are a safetensors convention; safetensors files have no parts
    names = {t.name for t in snap.tensors}
    meta = snap.metadata or {}
    derived = meta.get("aliases")
    if isinstance(derived, dict):
        return {str(k): str(v) for k, v in derived.items() if v in names and k not in names}
    if snap.format.startswith("safetensors"):
        return {k: v for k, v in meta.items() if isinstance(v, str) and v in names and k not in names}
    return {}


def compare(name: str, ta: TensorInfo, tb: TensorInfo, la: ByteLocator, lb: ByteLocator, tolerance: float, *,
            hashes: bool = False) -> TensorDiff:
    td = TensorDiff(name, "equal", shape_a=tuple(ta.shape), shape_b=tuple(tb.shape),
                    dtype_a=ta.dtype, dtype_b=tb.dtype)
    if tuple(ta.shape) != tuple(tb.shape):
        td.status = "reshaped"
        return td
    try:
        _compare_values(td, ta, tb, la, lb, hashes)
    except (ValueError, TypeError, InputError) as exc:
        td.status, td.error = "not-compared", str(exc)
        return td
    if ta.dtype != tb.dtype:
        td.status = "retyped"
    elif td.identical_bytes:
        td.status = "identical"
    elif td.mismatched_nonfinite or (td.max_abs_diff or 0.0) > tolerance:
        td.status = "differs"
    elif td.max_abs_diff == 0.0:
        td.status = "equal"  # e.g. -0.0 against 0.0, or NaN payloads
    else:
        td.status = "within-tolerance"
    return td


class _Acc:
    """Running sums over chunks (float64) and NaN/Inf counts, so nothing tensor-sized is ever held.

    One per window; windows are merged in order, so the result does not depend on thread timing."""

    def __init__(self) -> None:
        self.max_abs = 0.0
        self.aa = self.bb = self.ab = self.dd = 0.0
        self.nan_a = self.inf_a = self.nan_b = self.inf_b = 0
        self.nonfinite_appeared = self.mismatched_nonfinite = 0

    def merge(self, other: _Acc) -> None:
        self.max_abs = max(self.max_abs, other.max_abs)
        for key in ("aa", "bb", "ab", "dd", "nan_a", "inf_a", "nan_b", "inf_b", "nonfinite_appeared",
                    "mismatched_nonfinite"):
            setattr(self, key, getattr(self, key) + getattr(other, key))


def _compare_values(td: TensorDiff, ta: TensorInfo, tb: TensorInfo, la: ByteLocator, lb: ByteLocator,
                    hashes: bool) -> None:
    """Bytes first (memcmp on the mapped page cache, no arithmetic when equal), then the statistics.

    Both sides are read as memory-mapped windows of whole chunks; the arithmetic runs chunk by chunk
    (cache-sized) and windows run on WORKERS threads (numpy and memcmp release the GIL).
    """
    same_dtype = ta.dtype == tb.dtype
    da, db = value_dtype(ta), value_dtype(tb)
    work = _work_dtype(da, db)
    n = ta.numel
    step = CHUNK_ELEMS or max(1, CHUNK_BYTES // max(dtypes.itemsize(da), dtypes.itemsize(db)))
    per_window = max(1, WINDOW_BYTES // (step * max(dtypes.itemsize(da), dtypes.itemsize(db))))
    win = step * per_window
    starts = range(0, n, win)
    with ElementWindows(la, ta) as ra, ElementWindows(lb, tb) as rb:
        if hashes:
            td.hash_a, td.hash_b = _digest(ra, starts, win), _digest(rb, starts, win)
        # the first window alone first: when values differ, it usually says so without mapping the rest
        identical = same_dtype and all(_window_same(ra, rb, s, min(win, n - s)) for s in starts[:1]) and all(
            _map(lambda s: _window_same(ra, rb, s, min(win, n - s)), starts[1:]))
        acc = _Acc()
        if not identical:
            for part in _map(lambda s: _window_stats(ra, rb, s, min(win, n - s), step, work, same_dtype), starts):
                acc.merge(part)
    td.identical_bytes = identical
    td.nan_a, td.inf_a, td.nan_b, td.inf_b = acc.nan_a, acc.inf_a, acc.nan_b, acc.inf_b
    td.nonfinite_appeared, td.mismatched_nonfinite = acc.nonfinite_appeared, acc.mismatched_nonfinite
    td.max_abs_diff = acc.max_abs
    norm_a = math.sqrt(acc.aa)
    td.rel_l2 = math.sqrt(acc.dd) / norm_a if norm_a > 0 else (0.0 if acc.dd == 0 else math.inf)
    denom = math.sqrt(acc.aa * acc.bb)
    td.cosine = max(-1.0, min(1.0, acc.ab / denom)) if denom > 0 else (1.0 if acc.aa == acc.bb == 0 else 0.0)


def _map(fn: Any, starts: range) -> Any:
    """``map`` over windows; on WORKERS threads when there are several windows (results stay in order)."""
    if WORKERS <= 1 or len(starts) <= 1:
        return map(fn, starts)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(WORKERS, len(starts))) as pool:
        return list(pool.map(fn, starts))


def _digest(reader: ElementWindows, starts: range, win: int) -> str:
    h = hashlib.blake2b()
    for s in starts:
        h.update(reader.window(s, min(win, reader.size - s)).view("uint8"))
    return h.hexdigest()


def _window_same(ra: ElementWindows, rb: ElementWindows, start: int, count: int) -> bool:
    return _same_bytes(ra.window(start, count), rb.window(start, count))


def _window_stats(ra: ElementWindows, rb: ElementWindows, start: int, count: int, step: int, work: Any,
                  same_dtype: bool) -> _Acc:
    import numpy as np

    acc = _Acc()
    wa, wb = ra.window(start, count), rb.window(start, count)
    dbuf = np.empty(min(step, count), dtype=work)  # x - y, reused: no allocation per chunk
    for pos in range(0, count, step):
        xa, xb = wa[pos:pos + step], wb[pos:pos + step]
        x = _as_work(xa, work)
        if same_dtype and _same_bytes(xa, xb):
            _add_same(acc, x)  # a chunk with the same bytes adds to the norms, not to the difference
        else:
            _accumulate(acc, x, _as_work(xb, work), dbuf)
    return acc


def _add_same(acc: _Acc, x: Any) -> None:
    import numpy as np

    s = _dot(x, x)
    if not math.isfinite(s):
        na, ia = _nonfinite(x)
        acc.nan_a += na
        acc.inf_a += ia
        acc.nan_b += na
        acc.inf_b += ia
        x = x[np.isfinite(x)]
        s = _dot(x, x)
    acc.aa += s
    acc.bb += s
    acc.ab += s


def _accumulate(acc: _Acc, x: Any, y: Any, dbuf: Any) -> None:
    import numpy as np

    aa, bb = _dot(x, x), _dot(y, y)
    if not (math.isfinite(aa) and math.isfinite(bb)):
        # NaN/Inf (or an overflow of the square): count them, then compare the finite positions only
        fa, fb = np.isfinite(x), np.isfinite(y)
        na, ia = _nonfinite(x)
        nb, ib = _nonfinite(y)
        acc.nan_a += na
        acc.inf_a += ia
        acc.nan_b += nb
        acc.inf_b += ib
        acc.nonfinite_appeared += int(np.count_nonzero(fa & ~fb))
        both_nan = np.isnan(x) & np.isnan(y)
        same_inf = np.isinf(x) & (x == y)
        acc.mismatched_nonfinite += int(np.count_nonzero(~(fa & fb) & ~both_nan & ~same_inf))
        keep = fa & fb
        x, y = x[keep], y[keep]
        aa, bb = _dot(x, x), _dot(y, y)
    if x.size == 0:
        return
    d = np.subtract(x, y, out=dbuf[:x.size])
    dd = _dot(d, d)
    acc.max_abs = max(acc.max_abs, float(d.max()), -float(d.min()))
    acc.aa += aa
    acc.bb += bb
    # x.y from the polarisation identity instead of a fourth pass over both inputs. For near-equal
    # tensors (the usual diff) it is also the more accurate: in cos = (aa + bb - dd) / (2 sqrt(aa bb))
    # the rounding errors of aa and bb cancel to first order.
    acc.ab += 0.5 * (aa + bb - dd)
    acc.dd += dd


def _dot(x: Any, y: Any) -> float:
    import numpy as np

    return float(np.dot(x, y))


def _nonfinite(x: Any) -> tuple[int, int]:
    import numpy as np

    return int(np.count_nonzero(np.isnan(x))), int(np.count_nonzero(np.isinf(x)))


def _same_bytes(a: Any, b: Any) -> bool:
    """Byte equality of two contiguous arrays: libc ``memcmp`` (one pass, stops at the first difference,
    releases the GIL), numpy where libc is not at hand."""
    if a.nbytes != b.nbytes:
        return False
    if a.nbytes == 0:
        return True
    memcmp = _memcmp()
    if memcmp is not None:
        return memcmp(a.__array_interface__["data"][0], b.__array_interface__["data"][0], a.nbytes) == 0
    import numpy as np

    return bool(np.array_equal(a.view(np.uint8), b.view(np.uint8)))


_MEMCMP: list[Any] = []


def _memcmp() -> Any:
    if not _MEMCMP:
        try:
            import ctypes

            libc = ctypes.CDLL(None)  # the C library the interpreter already links (POSIX)
            fn = libc.memcmp
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            _MEMCMP.append(fn)
        except (OSError, AttributeError):
            _MEMCMP.append(None)
    return _MEMCMP[0]


def _work_dtype(da: str, db: str) -> Any:
    """float32 when both dtypes fit in it exactly (f32, f16, bf16, f8, small ints), float64 otherwise."""
    import numpy as np

    small = {"float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
             "float8_e5m2fnuz", "float8_e8m0fnu", "int8", "uint8", "int16", "uint16", "bool"}
    return np.dtype(np.float32) if da in small and db in small else np.dtype(np.float64)


def _as_work(x: Any, work: Any) -> Any:
    import numpy as np

    if x.dtype.kind == "c":  # complex: compare real and imaginary parts as a vector twice as long
        x = x.view(np.float64 if x.dtype.itemsize == 16 else np.float32)
    if x.dtype == work:
        return x
    try:  # bfloat16/float8 (ml_dtypes) convert like any float; raw void bytes do not
        return x.astype(work)
    except (TypeError, ValueError):
        raise ValueError(f"values of dtype {x.dtype} have no numeric meaning") from None


def diagnostics_for(report: DiffReport) -> list[Diagnostic]:
    """One finding per difference; value differences within tolerance are information only."""
    out: list[Diagnostic] = []
    for t in report.tensors:
        if t.status == "removed":
            out.append(R.TENSOR_REMOVED.diag(f"in A only ({t.dtype_a} {list(t.shape_a or ())})", subject=t.name,
                                             expected=_desc(t.dtype_a, t.shape_a), found=None))
        elif t.status == "added":
            out.append(R.TENSOR_ADDED.diag(f"in B only ({t.dtype_b} {list(t.shape_b or ())})", subject=t.name,
                                           expected=None, found=_desc(t.dtype_b, t.shape_b)))
        elif t.status == "reshaped":
            out.append(R.TENSOR_RESHAPED.diag(f"{list(t.shape_a or ())} -> {list(t.shape_b or ())}",
                                              subject=t.name, expected=list(t.shape_a or ()),
                                              found=list(t.shape_b or ())))
        elif t.status == "not-compared":
            out.append(R.VALUES_UNREADABLE.diag(f"values not compared: {t.error}", subject=t.name))
        if t.status == "retyped":
            out.append(R.TENSOR_RETYPED.diag(f"{t.dtype_a} -> {t.dtype_b} ({_value_summary(t)})", subject=t.name,
                                             expected=t.dtype_a, found=t.dtype_b, details=_details(t)))
        elif t.status in ("differs", "within-tolerance"):
            within = t.status == "within-tolerance"
            out.append(R.VALUES_DIFFER.diag(
                _value_summary(t) + (f" (within tolerance {report.tolerance:g})" if within else ""),
                subject=t.name, severity=Severity.INFO if within else None,
                expected=f"max abs diff <= {report.tolerance:g}", found=t.max_abs_diff, details=_details(t)))
        if t.nonfinite_appeared:
            out.append(R.NONFINITE_APPEARED.diag(
                f"{t.nonfinite_appeared} value(s) became NaN/Inf in B ({t.nan_b} NaN, {t.inf_b} Inf in B; "
                f"{t.nan_a} NaN, {t.inf_a} Inf in A)", subject=t.name, expected="finite", found="NaN/Inf"))
    return out


def _desc(dtype: str | None, shape: tuple[int, ...] | None) -> str:
    return f"{dtype} {list(shape or ())}"


def _value_summary(t: TensorDiff) -> str:
    if t.max_abs_diff is None:
        return "values not compared"
    parts = [f"max abs diff {t.max_abs_diff:.3g}"]
    if t.rel_l2 is not None:
        parts.append(f"rel L2 {t.rel_l2:.3g}")
    if t.cosine is not None:
        parts.append(f"cosine {t.cosine:.6f}")
    if t.mismatched_nonfinite:
        parts.append(f"{t.mismatched_nonfinite} NaN/Inf mismatch(es)")
    return ", ".join(parts)


def _details(t: TensorDiff) -> dict[str, Any]:
    return {k: v for k, v in t.to_json().items() if k not in ("name", "status", "differs")}


Named = list[tuple[str, TensorInfo]]


def sharing_changes(list_a: Named, list_b: Named, aliases_a: dict[str, str], aliases_b: dict[str, str]
                    ) -> list[Diagnostic]:
    """Pairs tied in one file (shared storage or alias metadata) but stored separately in the other."""
    ta, tb = _tied_pairs(list_a, aliases_a), _tied_pairs(list_b, aliases_b)
    names_a = {n for n, _ in list_a} | set(aliases_a)
    names_b = {n for n, _ in list_b} | set(aliases_b)
    out = []
    for pair, where, other_names in ((ta - tb, "A", names_b), (tb - ta, "B", names_a)):
        for x, y in sorted(pair):
            if x in other_names and y in other_names:
                other = "B" if where == "A" else "A"
                out.append(R.ALIAS_CHANGED.diag(f"{x} and {y} share storage in {where} but not in {other}",
                                                subject=x, related=[y]))
    return out


def _tied_pairs(named: Named, aliases: dict[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for name, t in named:
        if t.storage is not None and t.numel > 0:
            groups.setdefault(str(t.storage), []).append(name)
    for dropped, kept in aliases.items():
        groups.setdefault(f"alias:{kept}", [kept]).append(dropped)
    pairs: set[tuple[str, str]] = set()
    for names in groups.values():
        names = sorted(set(names))
        for i, x in enumerate(names):
            for y in names[i + 1:]:
                pairs.add((x, y))
    return pairs

