"""GGUF files (llama.cpp), read from the header alone; values by memory map.

Layout (ggml ``docs/gguf.md``): ``GGUF`` magic, uint32 version (2 or 3; version 1 used 32-bit counts),
uint64 tensor count, uint64 metadata count, the typed metadata key/values, the tensor infos (name,
n_dims, dims in ggml order, i.e. reversed against numpy, ggml type, offset into the data section), then
the data section, aligned to ``general.alignment`` (default 32). Numbers are little-endian unless the
whole file was written big-endian (then the version reads byte-swapped).

Every count and length is checked against the bytes left in the file before anything is allocated or
sliced. Unquantized tensors (F32, F16, BF16, F64, I8..I64) map to canonical dtypes and read as numpy
memmaps; block-quantized ones (Q4_0, Q8_0, Q4_K, ...) keep their ggml name as dtype and report shape
and bytes. Their values are decoded to float32 by the ``gguf`` package (llama.cpp's own Python
reference, ``gguf.quants.dequantize``) when it is installed; without it, value reads are refused.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import TYPE_CHECKING, Any

from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot, TensorInfo, numel

if TYPE_CHECKING:
    import numpy as np

DEFAULT_ALIGNMENT = 32
MAX_DIMS = 8  # ggml has GGML_MAX_DIMS = 4; anything far beyond is a corrupt header
MAX_NAME = 1 << 16
KEEP_ARRAY = 64  # arrays up to this length are kept in metadata; longer ones are summarised
KEEP_STRING = 1 << 16

# ggml type id -> (name, canonical dtype or None when quantized, elements per block, bytes per block)
GGML_TYPES: dict[int, tuple[str, str | None, int, int]] = {
    0: ("F32", "float32", 1, 4), 1: ("F16", "float16", 1, 2),
    2: ("Q4_0", None, 32, 18), 3: ("Q4_1", None, 32, 20), 6: ("Q5_0", None, 32, 22), 7: ("Q5_1", None, 32, 24),
    8: ("Q8_0", None, 32, 34), 9: ("Q8_1", None, 32, 40),
    10: ("Q2_K", None, 256, 84), 11: ("Q3_K", None, 256, 110), 12: ("Q4_K", None, 256, 144),
    13: ("Q5_K", None, 256, 176), 14: ("Q6_K", None, 256, 210), 15: ("Q8_K", None, 256, 292),
    16: ("IQ2_XXS", None, 256, 66), 17: ("IQ2_XS", None, 256, 74), 18: ("IQ3_XXS", None, 256, 98),
    19: ("IQ1_S", None, 256, 50), 20: ("IQ4_NL", None, 32, 18), 21: ("IQ3_S", None, 256, 110),
    22: ("IQ2_S", None, 256, 82), 23: ("IQ4_XS", None, 256, 136),
    24: ("I8", "int8", 1, 1), 25: ("I16", "int16", 1, 2), 26: ("I32", "int32", 1, 4), 27: ("I64", "int64", 1, 8),
    28: ("F64", "float64", 1, 8), 29: ("IQ1_M", None, 256, 56), 30: ("BF16", "bfloat16", 1, 2),
    34: ("TQ1_0", None, 256, 54), 35: ("TQ2_0", None, 256, 66), 39: ("MXFP4", None, 32, 17),
    40: ("NVFP4", None, 64, 36), 41: ("Q1_0", None, 128, 18),
}

# metadata value type -> (name, struct code, size); 8 = string, 9 = array
_SCALARS: dict[int, tuple[str, str, int]] = {
    0: ("uint8", "B", 1), 1: ("int8", "b", 1), 2: ("uint16", "H", 2), 3: ("int16", "h", 2), 4: ("uint32", "I", 4),
    5: ("int32", "i", 4), 6: ("float32", "f", 4), 7: ("bool", "?", 1), 10: ("uint64", "Q", 8),
    11: ("int64", "q", 8), 12: ("float64", "d", 8),
}
_STRING, _ARRAY = 8, 9
_MIN_SIZE = {**{k: v[2] for k, v in _SCALARS.items()}, _STRING: 8, _ARRAY: 12}


def read(path: str, fmt: str) -> Snapshot:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            raise InputError(F.UNREADABLE.code, f"cannot map the file: {exc}", path) from None
    try:
        header = _Header(buf, size, path)
        header.parse()
    finally:
        buf.close()
    snap = Snapshot(path=path, format=fmt, framework="gguf", file_size=size)
    snap.tensors = header.tensors
    snap.metadata.update(header.summary())
    return snap


class _Header:
    def __init__(self, buf: mmap.mmap, size: int, path: str) -> None:
        self.buf, self.size, self.path, self.pos = buf, size, path, 0
        self.endian = "<"
        self.version = 0
        self.kv: dict[str, Any] = {}
        self.kv_types: dict[str, str] = {}
        self.array_lengths: dict[str, int] = {}
        self.tensors: list[TensorInfo] = []
        self.alignment = DEFAULT_ALIGNMENT
        self.data_start = 0

    # ---- primitives (each checks the bytes left first) -------------------------------------------
    def fail(self, message: str, truncated: bool = False) -> InputError:
        code = F.TRUNCATED_FILE.code if truncated else F.CORRUPT_HEADER.code
        hint = "the download or copy stopped early: get the file again" if truncated else \
            "the GGUF header is damaged: get the file again"
        return InputError(code, f"GGUF: {message} (at byte {self.pos:,})", self.path, hint)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} needs {n:,} bytes but only {self.size - self.pos:,} are left", truncated=True)

    def unpack(self, code: str, n: int, what: str) -> Any:
        self.need(n, what)
        (v,) = struct.unpack_from(self.endian + code, self.buf, self.pos)
        self.pos += n
        return v

    def u32(self, what: str) -> int:
        return int(self.unpack("I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.unpack("Q", 8, what))

    def string(self, what: str, keep: int | None = None) -> str:
        n = self.u64(f"the length of {what}")
        self.need(n, what)
        limit = n if keep is None else min(n, keep)
        raw = self.buf[self.pos:self.pos + limit]
        self.pos += n
        text = raw.decode("utf-8", "replace")
        return text if limit == n else text + f"… ({n:,} bytes)"

    def check_count(self, count: int, min_each: int, what: str) -> None:
        """A declared count is refused when even the smallest items would not fit in the file."""
        left = self.size - self.pos
        if count < 0 or count * min_each > left:
            raise self.fail(f"the header declares {count:,} {what}, which cannot fit in the {left:,} bytes left")

    # ---- structure ---------------------------------------------------------------------------------
    def parse(self) -> None:
        self.need(8, "the GGUF magic and version")
        if bytes(self.buf[:4]) != b"GGUF":
            raise self.fail("the file does not start with the GGUF magic")
        self.pos = 4
        version = struct.unpack_from("<I", self.buf, 4)[0]
        if version not in (1, 2, 3) and struct.unpack_from(">I", self.buf, 4)[0] in (2, 3):
            self.endian = ">"  # a big-endian GGUF (gguf-py --bigendian): every number is swapped
            version = struct.unpack_from(">I", self.buf, 4)[0]
        if version == 1:
            raise self.fail("GGUF version 1 (32-bit counts, 2023) is not supported: convert it with a current "
                            "llama.cpp")
        if version not in (2, 3):
            raise self.fail(f"unknown GGUF version {version} after the magic (expected 2 or 3)")
        self.pos = 8
        self.version = version
        n_tensors = self.u64("the tensor count")
        n_kv = self.u64("the metadata count")
        self.check_count(n_kv, 8 + 4 + 1, "metadata entries")
        self.check_count(n_tensors, 8 + 4 + 4 + 8, "tensors")
        for _ in range(n_kv):
            key = self.string("a metadata key", MAX_NAME)
            vtype = self.u32(f"the type of {key!r}")
            self.kv[key] = self.value(vtype, key)
        align = self.kv.get("general.alignment")
        if align is not None:
            if not isinstance(align, int) or isinstance(align, bool) or align <= 0 or align & (align - 1):
                raise self.fail(f"general.alignment is {align!r}: it must be a power of two")
            self.alignment = align
        infos = [self.tensor_info() for _ in range(n_tensors)]
        self.data_start = -(-self.pos // self.alignment) * self.alignment
        for info in infos:
            self.tensors.append(self.tensor(*info))

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALARS:
            name, code, n = _SCALARS[vtype]
            self.kv_types[key] = name
            return self.unpack(code, n, f"the value of {key!r}")
        if vtype == _STRING:
            self.kv_types[key] = "string"
            return self.string(f"the value of {key!r}", KEEP_STRING)
        if vtype == _ARRAY:
            return self.array(key, 0)
        raise self.fail(f"metadata {key!r} has unknown value type {vtype}")

    def array(self, key: str, depth: int) -> Any:
        if depth > 8:
            raise self.fail(f"metadata {key!r}: arrays nested too deep")
        etype = self.u32(f"the element type of {key!r}")
        count = self.u64(f"the length of {key!r}")
        if etype not in _MIN_SIZE:
            raise self.fail(f"metadata {key!r} is an array of unknown type {etype}")
        self.check_count(count, _MIN_SIZE[etype], f"elements in {key!r}")
        if depth == 0:
            self.kv_types[key] = f"array[{_SCALARS[etype][0] if etype in _SCALARS else 'string' if etype == _STRING else 'array'}]"
            self.array_lengths[key] = count
        keep = count <= KEEP_ARRAY
        if etype in _SCALARS:
            _name, code, n = _SCALARS[etype]
            self.need(count * n, f"the values of {key!r}")
            values = list(struct.unpack_from(f"{self.endian}{count}{code}", self.buf, self.pos)) if keep else None
            self.pos += count * n
        elif etype == _STRING:
            values = [] if keep else None
            for i in range(count):  # skipped one length at a time: strings have no fixed size
                if keep:
                    values.append(self.string(f"{key}[{i}]", KEEP_STRING))  # type: ignore[union-attr]
                else:
                    n = self.u64(f"the length of {key}[{i}]")
                    self.need(n, f"{key}[{i}]")
                    self.pos += n
        else:
            values = [self.array(key, depth + 1) for _ in range(count)]
            if not keep:
                values = None
        if values is None:
            return {"array_of": _SCALARS[etype][0] if etype in _SCALARS else "string" if etype == _STRING
                    else "array", "length": count}
        return values

    def tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self.string("a tensor name", MAX_NAME)
        n_dims = self.u32(f"the rank of {name!r}")
        if n_dims > MAX_DIMS:
            raise self.fail(f"tensor {name!r} declares {n_dims} dimensions")
        dims = tuple(self.u64(f"a dimension of {name!r}") for _ in range(n_dims))
        gtype = self.u32(f"the type of {name!r}")
        offset = self.u64(f"the data offset of {name!r}")
        return name, dims, gtype, offset

    def tensor(self, name: str, dims: tuple[int, ...], gtype: int, offset: int) -> TensorInfo:
        shape = tuple(reversed(dims))  # ggml lists the fastest-varying dimension first
        n = numel(shape)
        known = GGML_TYPES.get(gtype)
        attrs: dict[str, Any] = {"ggml_type": known[0] if known else gtype, "data_offset": self.data_start + offset}
        if known is None:
            attrs["values"] = f"ggml type {gtype} is unknown to ckptdoctor: size and values not known"
            return TensorInfo(name=name, shape=shape, dtype=f"ggml_type_{gtype}", nbytes=0, attrs=attrs)
        tname, dtype, block, block_bytes = known
        if dims and dims[0] % block:
            raise self.fail(f"tensor {name!r} is {tname} with {dims[0]} elements per row, not a multiple of its "
                            f"block size {block}")
        nbytes = n // block * block_bytes
        start = self.data_start + offset
        if offset % self.alignment:
            attrs["misaligned"] = True  # llama.cpp refuses it: "tensor data is not within file bounds / aligned"
        if start + nbytes > self.size:
            raise InputError(F.TRUNCATED_FILE.code,
                             f"GGUF: tensor {name!r} needs bytes {start:,}..{start + nbytes:,} but the file has "
                             f"{self.size:,}", self.path, "the download or copy stopped early: get the file again")
        info = TensorInfo(name=name, shape=shape, dtype=dtype or tname, nbytes=nbytes, location="cpu", attrs=attrs)
        if dtype is None:
            attrs["quantized"] = True
            info.loader = _dequantizer(self.path, start, shape, gtype, tname, block, block_bytes)
        else:
            info.loader = _mapper(self.path, start, shape, dtype, self.endian)
        return info

    # ---- metadata ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        kv = self.kv
        arch = kv.get("general.architecture")
        out: dict[str, Any] = {"gguf_version": self.version, "alignment": self.alignment,
                               "tensor_data_offset": self.data_start, "saved_by": "llama.cpp / gguf"}
        if self.endian == ">":
            out["byteorder"] = "big"
        for key, field in (("general.architecture", "architecture"), ("general.name", "name"),
                           ("general.file_type", "file_type"), ("general.quantization_version",
                                                                "quantization_version")):
            if key in kv:
                out[field] = kv[key]
        if isinstance(arch, str) and f"{arch}.context_length" in kv:
            out["context_length"] = kv[f"{arch}.context_length"]
        if "tokenizer.ggml.tokens" in self.array_lengths:
            out["vocab_size"] = self.array_lengths["tokenizer.ggml.tokens"]
        if "tokenizer.ggml.model" in kv:
            out["tokenizer"] = kv["tokenizer.ggml.model"]
        out["gguf_metadata"] = kv
        out["gguf_metadata_types"] = self.kv_types
        return out


def _mapper(path: str, start: int, shape: tuple[int, ...], dtype: str, endian: str) -> Any:
    def load() -> np.ndarray:
        import numpy as np

        from ckptdoctor.dtypes import to_numpy

        npd = to_numpy(dtype)
        n = numel(shape)
        if n == 0:
            return np.zeros(shape, dtype=npd)
        if endian == ">" and npd.itemsize > 1:
            raw = np.memmap(path, dtype=np.dtype(f">u{npd.itemsize}"), mode="r", offset=start, shape=(n,))
            return raw.astype(f"<u{npd.itemsize}").view(npd).reshape(shape)
        return np.memmap(path, dtype=npd, mode="r", offset=start, shape=shape)

    return load


def _dequantizer(path: str, start: int, shape: tuple[int, ...], gtype: int, tname: str, block: int,
                 block_bytes: int) -> Any:
    """Values of a block-quantized tensor as float32 (the whole tensor: 4 bytes per element in memory)."""

    def load() -> np.ndarray:
        import numpy as np

        try:
            from gguf import GGMLQuantizationType
            from gguf.quants import dequantize
        except ImportError:
            raise ValueError(f"quantized ({tname}): `pip install gguf` to decode the values") from None
        try:
            qtype = GGMLQuantizationType(gtype)
        except ValueError:
            raise ValueError(f"quantized ({tname}): this gguf version cannot decode it") from None
        if numel(shape) == 0:
            return np.zeros(shape, dtype=np.float32)
        rows, row_elems = shape[:-1], shape[-1]
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=start,
                        shape=(*rows, row_elems // block * block_bytes))
        try:
            return dequantize(raw, qtype)
        except NotImplementedError:
            raise ValueError(f"quantized ({tname}): gguf cannot decode this type") from None

    return load
