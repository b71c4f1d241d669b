"""Canonical dtype names (torch's spelling without ``torch.``) and their sizes.

Every reader reports dtypes with these names so that files of different formats compare directly.
numpy and ml_dtypes are imported only when values are read.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any


# name -> itemsize in bytes
ITEMSIZE: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
    "complex128": 16, "complex64": 8, "complex32": 4,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1,
    "bool": 1,
    "qint8": 1, "quint8": 1, "qint32": 4, "quint4x2": 1, "quint2x4": 1,
}

FLOATING = {"float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
            "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"}
INTEGER = {"int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"}

# torch.<X>Storage (legacy typed storages) -> dtype
TORCH_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128", "ComplexFloatStorage": "complex64",
    "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
}

# safetensors header dtype -> canonical
SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
    "C64": "complex64", "C128": "complex128",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
SAFETENSORS_NAMES: dict[str, str] = {v: k for k, v in SAFETENSORS_DTYPES.items()}

_NUMPY_NAMES = {"float64", "float32", "float16", "complex128", "complex64", "int64", "int32", "int16",
                "int8", "uint64", "uint32", "uint16", "uint8", "bool"}
_ML_DTYPES = {"bfloat16": "bfloat16", "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
              "float8_e4m3fnuz": "float8_e4m3fnuz", "float8_e5m2fnuz": "float8_e5m2fnuz",
              "float8_e8m0fnu": "float8_e8m0fnu"}
# storage-only dtypes whose bytes are best seen as their raw integer representation
_RAW_AS = {"qint8": "int8", "quint8": "uint8", "qint32": "int32", "quint4x2": "uint8", "quint2x4": "uint8",
           "complex32": "float16"}


def itemsize(dtype: str) -> int:
    try:
        return ITEMSIZE[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}") from None


def to_numpy(dtype: str) -> Any:
    """The numpy dtype for a canonical name (bfloat16 and float8 via ml_dtypes)."""
    import numpy as np

    if dtype in _NUMPY_NAMES:
        return np.dtype(dtype)
    if dtype in _ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[dtype]))
    if dtype in _RAW_AS:
        return np.dtype(_RAW_AS[dtype])
    raise ValueError(f"no numpy dtype for {dtype!r}")


def from_numpy(np_dtype: Any) -> str:
    """Canonical name of a numpy (or ml_dtypes) dtype."""
    name = str(np_dtype)
    if name in ITEMSIZE:
        return name
    return {"float8_e4m3": "float8_e4m3fn"}.get(name, name)


def is_float(dtype: str) -> bool:
    return dtype in FLOATING
