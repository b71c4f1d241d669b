"""TensorFlow checkpoints ("tensor bundles"), read without TensorFlow.

A bundle is a prefix (``ckpt-1``, ``variables/variables``) with
* ``<prefix>.index``: a LevelDB-style SSTable (TF's ``core/lib/io/table_format.txt`` without filter
  blocks) mapping each checkpoint key to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc);
  the empty key holds the ``BundleHeaderProto`` (shard count, endianness, version);
* ``<prefix>.data-NNNNN-of-MMMMM``: the raw little-endian C-order tensor bytes.

The table is decoded here with ``struct`` and the small protobuf reader in ``protowire``: no TensorFlow
and no protobuf package. Every block handle, entry offset and size is checked against the real file
sizes before anything is read, so a hostile index cannot make us allocate or seek past the data.

Checkpoints written by TF2 (``tf.train.Checkpoint``, Keras ``save_weights("ckpt")``, SavedModel
``variables/``) carry a ``_CHECKPOINTABLE_OBJECT_GRAPH`` string tensor: the object graph that gives each
opaque key (``layer_with_weights-0/embeddings/.ATTRIBUTES/VARIABLE_VALUE``, ``variables/3/...``) its
variable name (``embedding/embeddings``). It is decoded and reported per tensor as ``attrs["full_name"]``.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ckptdoctor.errors import InputError
from ckptdoctor.readers import protowire as pw
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot, TensorInfo, numel

if TYPE_CHECKING:
    import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
MAGIC_BYTES = struct.pack("<Q", TABLE_MAGIC)
FOOTER_LEN = 48  # 2 x BlockHandle::kMaxEncodedLength (20) + 8-byte magic
TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c
MAX_INDEX_BYTES = 1 << 30  # an index is ~100 bytes per tensor: 1 GiB is far beyond any real checkpoint
CRC_CHECK_LIMIT = 4 << 20  # verify block checksums (pure Python crc32c) for index files up to this size
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
DATA_RE = re.compile(r"^(?P<prefix>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})$")

# tensorflow/core/framework/types.proto DataType -> (TF name, canonical dtype or None when not numeric)
TF_DTYPES: dict[int, tuple[str, str | None]] = {
    1: ("DT_FLOAT", "float32"), 2: ("DT_DOUBLE", "float64"), 3: ("DT_INT32", "int32"),
    4: ("DT_UINT8", "uint8"), 5: ("DT_INT16", "int16"), 6: ("DT_INT8", "int8"), 7: ("DT_STRING", None),
    8: ("DT_COMPLEX64", "complex64"), 9: ("DT_INT64", "int64"), 10: ("DT_BOOL", "bool"),
    11: ("DT_QINT8", "qint8"), 12: ("DT_QUINT8", "quint8"), 13: ("DT_QINT32", "qint32"),
    14: ("DT_BFLOAT16", "bfloat16"), 15: ("DT_QINT16", None), 16: ("DT_QUINT16", None),
    17: ("DT_UINT16", "uint16"), 18: ("DT_COMPLEX128", "complex128"), 19: ("DT_HALF", "float16"),
    20: ("DT_RESOURCE", None), 21: ("DT_VARIANT", None), 22: ("DT_UINT32", "uint32"),
    23: ("DT_UINT64", "uint64"), 24: ("DT_FLOAT8_E5M2", "float8_e5m2"),
    25: ("DT_FLOAT8_E4M3FN", "float8_e4m3fn"), 26: ("DT_FLOAT8_E4M3FNUZ", "float8_e4m3fnuz"),
    27: ("DT_FLOAT8_E4M3B11FNUZ", None), 28: ("DT_FLOAT8_E5M2FNUZ", "float8_e5m2fnuz"),
    29: ("DT_INT4", None), 30: ("DT_UINT4", None), 31: ("DT_INT2", None), 32: ("DT_UINT2", None),
    33: ("DT_FLOAT4_E2M1FN", None),
}
DT_STRING = 7


# ------------------------------------------------------------------------------------------ crc32c
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE: list[int] = []


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as LevelDB and TF use. Pure Python: for small blocks only."""
    if not _CRC_TABLE:
        _CRC_TABLE.extend(_crc_table())
    table = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------------ SSTable
def _bad(path: str, message: str, code: str = F.CORRUPT_HEADER.code) -> InputError:
    return InputError(code, f"TensorFlow checkpoint index: {message}", path,
                      "save the checkpoint again, or copy both the .index and the .data-* files")


def is_table(path: str) -> bool:
    """True when the file ends with the TF/LevelDB table magic (content sniffing)."""
    try:
        size = os.path.getsize(path)
        if size < FOOTER_LEN:
            return False
        with open(path, "rb") as fh:
            fh.seek(size - 8)
            return fh.read(8) == MAGIC_BYTES
    except OSError:
        return False


def read_table(path: str, data: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable held in ``data``, in key order."""
    if len(data) < FOOTER_LEN or data[-8:] != MAGIC_BYTES:
        raise _bad(path, "no table footer (the file is truncated or not a checkpoint index)", F.TRUNCATED_FILE.code)
    footer = memoryview(data)[-FOOTER_LEN:-8]
    try:
        _meta_off, pos = pw.read_varint(footer, 0)
        _meta_size, pos = pw.read_varint(footer, pos)
        index_off, pos = pw.read_varint(footer, pos)
        index_size, pos = pw.read_varint(footer, pos)
    except pw.ProtoError as exc:
        raise _bad(path, f"bad footer ({exc})") from None
    limit = len(data) - FOOTER_LEN
    verify = len(data) <= CRC_CHECK_LIMIT
    index_block = _block(path, data, index_off, index_size, limit, verify)
    out: list[tuple[bytes, bytes]] = []
    for _sep, handle in _block_entries(path, index_block):
        try:
            off, p = pw.read_varint(handle, 0)
            size, _ = pw.read_varint(handle, p)
        except pw.ProtoError as exc:
            raise _bad(path, f"bad block handle in the index block ({exc})") from None
        out.extend(_block_entries(path, _block(path, data, off, size, limit, verify)))
    return out


def _block(path: str, data: bytes, offset: int, size: int, limit: int, verify: bool) -> bytes:
    if offset + size + TRAILER_LEN > limit:
        raise _bad(path, f"a block at offset {offset} of {size} bytes runs past the end of the file "
                         f"({limit + FOOTER_LEN} bytes)", F.TRUNCATED_FILE.code)
    contents = data[offset:offset + size]
    kind = data[offset + size]
    if kind != 0:
        name = {1: "Snappy", 2: "zlib"}.get(kind, f"type {kind}")
        raise _bad(path, f"a block is compressed ({name}); TensorFlow writes checkpoint indexes uncompressed, "
                         "so this file was not written by tf.train.Checkpoint / save_weights")
    if verify:
        (stored,) = struct.unpack_from("<I", data, offset + size + 1)
        if mask_crc(crc32c(data[offset:offset + size + 1])) != stored:
            raise _bad(path, f"checksum mismatch in the block at offset {offset} (the file is corrupt)")
    return contents


def _block_entries(path: str, block: bytes) -> list[tuple[bytes, bytes]]:
    """Prefix-compressed entries of one block, up to its restart array."""
    if len(block) < 4:
        raise _bad(path, "a block is shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (num_restarts + 1)
    if end < 0:
        raise _bad(path, f"a block claims {num_restarts} restart points, more than fit in {len(block)} bytes")
    view = memoryview(block)
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    try:
        while pos < end:
            shared, pos = pw.read_varint(view, pos)
            non_shared, pos = pw.read_varint(view, pos)
            value_len, pos = pw.read_varint(view, pos)
            if shared > len(key) or pos + non_shared + value_len > end:
                raise _bad(path, "a block entry's lengths run past its block")
            key = key[:shared] + bytes(view[pos:pos + non_shared])
            pos += non_shared
            out.append((key, bytes(view[pos:pos + value_len])))
            pos += value_len
    except pw.ProtoError as exc:
        raise _bad(path, f"a block entry is damaged ({exc})") from None
    return out


# ------------------------------------------------------------------------------------------ bundle protos
@dataclass
class BundleEntry:
    """One ``BundleEntryProto``. ``slices`` lists, per saved slice, (start, length) per dim (length -1: all)."""

    key: str
    dtype_enum: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    slices: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def tf_dtype(self) -> str:
        return TF_DTYPES.get(self.dtype_enum, (f"DT_{self.dtype_enum}", None))[0]

    @property
    def dtype(self) -> str | None:
        return TF_DTYPES.get(self.dtype_enum, ("", None))[1]

    @property
    def numel(self) -> int:
        return numel(self.shape)


@dataclass
class Bundle:
    prefix: str
    index_path: str
    num_shards: int
    endianness: int  # 0 little, 1 big
    version: dict[str, Any]
    entries: list[BundleEntry]
    slice_data: dict[bytes, BundleEntry]  # encoded (name, slice) key -> the entry holding that slice's bytes
    data_files: list[str]
    shard_sizes: dict[int, int]  # shard id -> file size, for the shards that exist

    @property
    def missing_shards(self) -> list[int]:
        return [i for i in range(self.num_shards) if i not in self.shard_sizes]

    def data_path(self, shard: int) -> str:
        return self.data_files[shard]


def _parse_header(path: str, raw: bytes) -> tuple[int, int, dict[str, Any]]:
    num_shards, endianness, version = 0, 0, {}
    for num, _wire, value in pw.fields(raw):
        if num == 1 and isinstance(value, int):
            num_shards = value
        elif num == 2 and isinstance(value, int):
            endianness = value
        elif num == 3 and not isinstance(value, int):
            version = _version_def(value)
    return num_shards, endianness, version


def _version_def(raw: memoryview) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _wire, value in pw.fields(raw):
        if num == 1 and isinstance(value, int):
            out["producer"] = pw.as_int64(value)
        elif num == 2 and isinstance(value, int):
            out["min_consumer"] = pw.as_int64(value)
        elif num == 3:
            out.setdefault("bad_consumers", []).extend(pw.packed_varints(value))
    return out


def _parse_shape(raw: memoryview) -> tuple[int, ...]:
    dims: list[int] = []
    for num, _wire, value in pw.fields(raw):
        if num == 2 and not isinstance(value, int):
            size = 0
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 1 and isinstance(v2, int):
                    size = pw.as_int64(v2)
            dims.append(size)
    return tuple(dims)


def _parse_slice(raw: memoryview) -> list[tuple[int, int]]:
    extents: list[tuple[int, int]] = []
    for num, _wire, value in pw.fields(raw):
        if num == 1 and not isinstance(value, int):
            start, length = 0, -1
            for n2, _w2, v2 in pw.fields(value):
                if n2 == 1 and isinstance(v2, int):
                    start = pw.as_int64(v2)
                elif n2 == 2 and isinstance(v2, int):
                    length = pw.as_int64(v2)
            extents.append((start, length))
    return extents


def _parse_entry(key: str, raw: bytes) -> BundleEntry:
    entry = BundleEntry(key=key, dtype_enum=0, shape=())
    for num, _wire, value in pw.fields(raw):
        if isinstance(value, int):
            if num == 1:
                entry.dtype_enum = value
            elif num == 3:
                entry.shard_id = value
            elif num == 4:
                entry.offset = pw.as_int64(value)
            elif num == 5:
                entry.size = pw.as_int64(value)
            elif num == 6:
                entry.crc32c = value
        elif num == 2:
            entry.shape = _parse_shape(value)
        elif num == 7:
            entry.slices.append(_parse_slice(value))
    return entry


def prefix_of(path: str) -> str:
    """The bundle prefix for an ``.index`` file, a ``.data-NNNNN-of-MMMMM`` shard, or the prefix itself."""
    if path.endswith(".index"):
        return path[: -len(".index")]
    m = DATA_RE.match(path)
    return m.group("prefix") if m else path


def read_bundle(index_path: str) -> Bundle:
    """Parse ``<prefix>.index`` and check every entry against the data shards' sizes (nothing read yet)."""
    try:
        size = os.path.getsize(index_path)
    except OSError as exc:
        raise InputError(F.PATH_NOT_FOUND.code, f"cannot open the checkpoint index ({exc.strerror or exc})",
                         index_path) from None
    if size > MAX_INDEX_BYTES:
        raise _bad(index_path, f"{size:,} bytes is far larger than any checkpoint index")
    with open(index_path, "rb") as fh:
        data = fh.read()
    pairs = read_table(index_path, data)
    if not pairs or pairs[0][0] != b"":
        raise _bad(index_path, "no bundle header entry (the empty key): not a TensorFlow checkpoint index")
    try:
        num_shards, endianness, version = _parse_header(index_path, pairs[0][1])
    except pw.ProtoError as exc:
        raise _bad(index_path, f"the bundle header is damaged ({exc})") from None
    if not 1 <= num_shards <= 99999:
        raise _bad(index_path, f"the header claims {num_shards} data shards")
    if endianness not in (0, 1):
        raise _bad(index_path, f"unknown endianness {endianness} in the bundle header")
    prefix = prefix_of(index_path)
    data_files = [f"{prefix}.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]
    shard_sizes = {i: os.path.getsize(p) for i, p in enumerate(data_files) if os.path.isfile(p)}

    entries: list[BundleEntry] = []
    slice_data: dict[bytes, BundleEntry] = {}
    for raw_key, raw_value in pairs[1:]:
        # keys starting with a 0 byte are checkpoint::EncodeTensorNameSlice(name, slice): one slice's bytes
        key = raw_key.decode("utf-8", "replace") if not raw_key.startswith(b"\x00") else repr(raw_key)
        try:
            entry = _parse_entry(key, raw_value)
        except pw.ProtoError as exc:
            raise _bad(index_path, f"entry {key!r} is damaged ({exc})") from None
        _validate(index_path, entry, num_shards, shard_sizes)
        if raw_key.startswith(b"\x00"):
            slice_data[raw_key] = entry
        else:
            entries.append(entry)
    for entry in entries:
        for extents in entry.slices:
            _validate_slice(index_path, entry, extents, slice_data)
    return Bundle(prefix=prefix, index_path=index_path, num_shards=num_shards, endianness=endianness,
                  version=version, entries=entries, slice_data=slice_data, data_files=data_files,
                  shard_sizes=shard_sizes)


def _validate_slice(path: str, entry: BundleEntry, extents: list[tuple[int, int]],
                    slice_data: dict[bytes, BundleEntry]) -> None:
    if len(extents) != len(entry.shape):
        raise _bad(path, f"a slice of {entry.key!r} has {len(extents)} dims, the variable has {len(entry.shape)}")
    for (start, length), dim in zip(extents, entry.shape, strict=True):
        if start < 0 or (length != -1 and (length < 0 or start + length > dim)):
            raise _bad(path, f"a slice of {entry.key!r} ({extents}) lies outside its shape {list(entry.shape)}")
    part = slice_data.get(encode_slice_key(entry.key, extents))
    if part is not None:
        want = tuple(dim if length == -1 else length for (_s, length), dim in zip(extents, entry.shape, strict=True))
        if part.shape != want or part.dtype_enum != entry.dtype_enum:
            raise _bad(path, f"the stored slice {extents} of {entry.key!r} has shape {list(part.shape)}, "
                             f"expected {list(want)}")


# ------------------------------------------------------------------------------------------ slice keys
# tensorflow/core/lib/strings/ordered_code.cc, as used by checkpoint::EncodeTensorNameSlice
_SIGNED_HEADER = {1: (0x80, 0), 2: (0xC0, 0), 3: (0xE0, 0), 4: (0xF0, 0), 5: (0xF8, 0), 6: (0xFC, 0),
                  7: (0xFE, 0), 8: (0xFF, 0), 9: (0xFF, 0x80), 10: (0xFF, 0xC0)}


def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _string_increasing(text: str) -> bytes:
    escape = {0x00: b"\x00\xff", 0xFF: b"\xff\x00"}  # so that the terminator 00 01 stays unique
    return b"".join(escape.get(b, bytes([b])) for b in text.encode("utf-8")) + b"\x00\x01"


def _signed_increasing(value: int) -> bytes:
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = min(10, x.bit_length() // 7 + 1)
    buf = bytearray(value.to_bytes(10, "big", signed=True))[10 - length:]
    buf[0] ^= _SIGNED_HEADER[length][0]
    buf[1] ^= _SIGNED_HEADER[length][1]
    return bytes(buf)


def encode_slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    """The bundle key under which the bytes of one slice of a partitioned variable are stored."""
    out = _num_increasing(0) + _string_increasing(name) + _num_increasing(len(extents))
    for start, length in extents:
        out += _signed_increasing(start) + _signed_increasing(length)
    return out


def _validate(path: str, e: BundleEntry, num_shards: int, shard_sizes: dict[int, int]) -> None:
    if any(d < 0 for d in e.shape):
        raise _bad(path, f"entry {e.key!r} has a negative dimension in shape {list(e.shape)}")
    if e.slices:
        return  # a partitioned variable: its bytes live under the slice keys
    if e.offset < 0 or e.size < 0:
        raise _bad(path, f"entry {e.key!r} has a negative offset or size")
    if e.shard_id >= num_shards:
        raise _bad(path, f"entry {e.key!r} is in shard {e.shard_id}, but the header says {num_shards} shard(s)")
    dtype = e.dtype
    if dtype is not None:
        from ckptdoctor.dtypes import itemsize

        expected = e.numel * itemsize(dtype)
        if e.size != expected:
            raise _bad(path, f"entry {e.key!r} ({e.tf_dtype} {list(e.shape)}) should hold {expected:,} bytes "
                             f"but claims {e.size:,}")
    have = shard_sizes.get(e.shard_id)
    if have is not None and e.offset + e.size > have:
        raise InputError(F.TRUNCATED_FILE.code,
                         f"entry {e.key!r} lies at bytes {e.offset:,}..{e.offset + e.size:,} but the data shard "
                         f"{os.path.basename(prefix_of(path))}.data-{e.shard_id:05d}-of-{num_shards:05d} has "
                         f"only {have:,} bytes (truncated copy?)", path,
                         "copy or save the checkpoint again: the .data file is incomplete")


# ------------------------------------------------------------------------------------------ values
def _load_numeric(path: str, dtype: str, big_endian: bool, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    import numpy as np

    from ckptdoctor.dtypes import to_numpy

    npd = to_numpy(dtype)
    count = numel(shape)
    if count == 0:
        return np.empty(shape, dtype=npd)
    if big_endian and npd.itemsize > 1:
        raw = np.memmap(path, dtype=npd.newbyteorder(">"), mode="r", offset=offset, shape=(count,))
        return raw.astype(npd).reshape(shape)
    return np.memmap(path, dtype=npd, mode="r", offset=offset, shape=(count,)).reshape(shape)


def read_strings(path: str, offset: int, size: int, count: int) -> list[bytes]:
    """A DT_STRING tensor: ``count`` varint64 lengths, a 4-byte masked crc32c of them, then the bytes."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        raw = fh.read(size)
    if len(raw) != size:
        raise ValueError("string tensor runs past the end of its data file")
    lengths: list[int] = []
    pos = 0
    for _ in range(count):
        n, pos = pw.read_varint(raw, pos)
        lengths.append(n)
    pos += 4  # masked crc32c of the varint lengths
    if pos + sum(lengths) != size:
        raise ValueError("string tensor lengths do not add up to its size")
    out = []
    for n in lengths:
        out.append(raw[pos:pos + n])
        pos += n
    return out


def _load_strings(path: str, offset: int, size: int, shape: tuple[int, ...]) -> np.ndarray:
    import numpy as np

    count = numel(shape)
    arr = np.empty(count, dtype=object)  # python bytes objects: never a pickle
    for i, s in enumerate(read_strings(path, offset, size, count)):
        arr[i] = s
    return arr.reshape(shape)


def _load_sliced(bundle: Bundle, e: BundleEntry) -> np.ndarray:
    """A partitioned variable (or one split by a sharding policy), assembled from its stored slices."""
    import numpy as np

    from ckptdoctor.dtypes import to_numpy

    out = np.zeros(e.shape, dtype=to_numpy(e.dtype or ""))
    for extents in e.slices:
        part = bundle.slice_data[encode_slice_key(e.key, extents)]
        index = tuple(slice(None) if length == -1 else slice(start, start + length) for start, length in extents)
        out[index] = _load_numeric(bundle.data_path(part.shard_id), e.dtype or "", bundle.endianness == 1,
                                   part.offset, part.shape)
    return out


def entry_loader(bundle: Bundle, e: BundleEntry) -> Callable[[], np.ndarray] | None:
    if e.slices:
        parts = [bundle.slice_data.get(encode_slice_key(e.key, x)) for x in e.slices]
        if e.dtype is None or any(p is None or p.shard_id not in bundle.shard_sizes for p in parts):
            return None
        return partial(_load_sliced, bundle, e)
    if e.shard_id not in bundle.shard_sizes:
        return None
    path = bundle.data_path(e.shard_id)
    if e.dtype_enum == DT_STRING:
        return partial(_load_strings, path, e.offset, e.size, e.shape)
    if e.dtype is None:
        return None
    return partial(_load_numeric, path, e.dtype, bundle.endianness == 1, e.offset, e.shape)


# ------------------------------------------------------------------------------------------ object graph
@dataclass
class ObjectNode:
    children: list[tuple[int, str]] = field(default_factory=list)  # (node id, local name)
    attributes: list[dict[str, str]] = field(default_factory=list)  # name, full_name, checkpoint_key
    slots: list[tuple[int, str, int]] = field(default_factory=list)  # (original node, slot name, slot node)


def parse_object_graph(raw: bytes) -> list[ObjectNode]:
    """``TrackableObjectGraph{nodes=1{children=1{node_id=1, local_name=2}, attributes=2{name=1, full_name=2,
    checkpoint_key=3}, slot_variables=3{original_variable_node_id=1, slot_name=2, slot_variable_node_id=3}}}``."""
    nodes: list[ObjectNode] = []
    for num, _wire, value in pw.fields(raw):
        if num != 1 or isinstance(value, int):
            continue
        node = ObjectNode()
        for n2, _w2, v2 in pw.fields(value):
            if isinstance(v2, int):
                continue
            if n2 == 1:
                ref = {n3: v3 for n3, _w3, v3 in pw.fields(v2)}
                node.children.append((int(ref.get(1, 0)) if isinstance(ref.get(1, 0), int) else 0,
                                      pw.text(ref[2]) if 2 in ref else ""))
            elif n2 == 2:
                names = {1: "name", 2: "full_name", 3: "checkpoint_key"}
                attr = {names[n3]: pw.text(v3) for n3, _w3, v3 in pw.fields(v2) if n3 in names}
                node.attributes.append(attr)
            elif n2 == 3:
                ref = {n3: v3 for n3, _w3, v3 in pw.fields(v2)}
                orig, slot = ref.get(1, 0), ref.get(3, 0)
                node.slots.append((orig if isinstance(orig, int) else 0,
                                   pw.text(ref[2]) if 2 in ref else "", slot if isinstance(slot, int) else 0))
        nodes.append(node)
    return nodes


def object_paths(nodes: list[ObjectNode]) -> dict[int, str]:
    """Each node's shortest path of local names from the root (node 0), e.g. ``model/layer_with_weights-0``."""
    paths: dict[int, str] = {0: ""} if nodes else {}
    queue = [0] if nodes else []
    while queue:
        nid = queue.pop(0)
        for child, local in nodes[nid].children:
            if 0 <= child < len(nodes) and child not in paths:
                paths[child] = f"{paths[nid]}/{local}" if paths[nid] else local
                queue.append(child)
    return paths


def name_tensors(nodes: list[ObjectNode]) -> dict[str, dict[str, Any]]:
    """checkpoint key -> attrs (full_name, object path, role, slot) from the object graph."""
    paths = object_paths(nodes)
    slot_of: dict[int, tuple[int, str]] = {}
    for node in nodes:
        for orig, slot_name, slot_node in node.slots:
            slot_of[slot_node] = (orig, slot_name)
    out: dict[str, dict[str, Any]] = {}
    for nid, node in enumerate(nodes):
        obj_path = paths.get(nid, "")  # slot variables hang off slot_variables, not children: no path
        for attr in node.attributes:
            key = attr.get("checkpoint_key")
            if not key:
                continue
            info: dict[str, Any] = {"object_path": obj_path} if nid in paths else {}
            if attr.get("full_name"):
                info["full_name"] = attr["full_name"]
            first = obj_path.split("/", 1)[0]
            if nid in slot_of or first == "optimizer" or "/.OPTIMIZER_SLOT/" in key or key.startswith("optimizer/"):
                info["role"] = "optimizer"
                if nid in slot_of:
                    orig, slot_name = slot_of[nid]
                    info["slot"] = slot_name
                    orig_names = [a.get("full_name") for a in nodes[orig].attributes] if orig < len(nodes) else []
                    if orig_names and orig_names[0]:
                        info["slot_of"] = orig_names[0]
            elif first == "save_counter" or key.startswith("save_counter/"):
                info["role"] = "checkpoint-counter"
            else:
                info["role"] = "weight"
            out[key] = info
    return out


# ------------------------------------------------------------------------------------------ snapshot
def bundle_snapshot(bundle: Bundle, path: str, fmt: str = "tf-checkpoint") -> Snapshot:
    """A Snapshot of a bundle: tensors named by checkpoint key, with object-graph names in ``attrs``."""
    snap = Snapshot(path=path, format=fmt, framework="tensorflow")
    snap.metadata.update({
        "bundle_prefix": os.path.basename(bundle.prefix),
        "num_shards": bundle.num_shards,
        "endianness": "big" if bundle.endianness == 1 else "little",
        "data_files": [os.path.basename(p) for p in bundle.data_files],
    })
    if bundle.version:
        snap.metadata["bundle_version"] = bundle.version
    if bundle.slice_data:
        snap.metadata["slice_entries"] = len(bundle.slice_data)

    names: dict[str, dict[str, Any]] = {}
    graph_entry = next((e for e in bundle.entries if e.key == OBJECT_GRAPH_KEY), None)
    if graph_entry is not None and graph_entry.dtype_enum == DT_STRING and graph_entry.shard_id in bundle.shard_sizes:
        try:
            raw = read_strings(bundle.data_path(graph_entry.shard_id), graph_entry.offset, graph_entry.size, 1)[0]
            nodes = parse_object_graph(raw)
        except (ValueError, OSError) as exc:
            snap.metadata["object_graph_error"] = str(exc)
        else:
            names = name_tensors(nodes)
            snap.metadata["object_graph"] = {"nodes": len(nodes), "named_tensors": len(names)}

    for e in bundle.entries:
        if e.key == OBJECT_GRAPH_KEY:
            continue
        attrs: dict[str, Any] = {"tf_dtype": e.tf_dtype}
        if bundle.num_shards > 1:
            attrs["shard"] = e.shard_id
        attrs.update(names.get(e.key, {}))
        if e.crc32c is not None:
            attrs["crc32c"] = e.crc32c
        if e.slices:
            attrs["partitioned"] = True
            attrs["slices"] = [[list(x) for x in s] for s in e.slices]
            parts = [bundle.slice_data.get(encode_slice_key(e.key, x)) for x in e.slices]
            attrs["slice_shards"] = sorted({p.shard_id for p in parts if p is not None})
            if any(p is None for p in parts):
                attrs["missing_slices"] = sum(1 for p in parts if p is None)
        if "role" not in attrs:
            attrs["role"] = _role_from_key(e.key)
        full = attrs.get("full_name")
        if attrs["role"] == "weight" and isinstance(full, str) and "/" in full:
            attrs["layer"] = full.split("/", 1)[0]  # tf.keras variable names start with the layer's name
        dtype = e.dtype or ("string" if e.dtype_enum == DT_STRING else e.tf_dtype.lower().replace("dt_", "tf_"))
        nbytes = e.size if not e.slices else (e.numel * _itemsize(e.dtype))
        if not e.slices:  # where the bytes are; not ``storage``: bundle tensors never share bytes
            attrs["data_file"] = os.path.basename(bundle.data_path(e.shard_id))
            attrs["byte_offset"] = e.offset
        snap.tensors.append(TensorInfo(name=e.key, shape=e.shape, dtype=dtype, nbytes=nbytes, attrs=attrs,
                                       loader=entry_loader(bundle, e)))
    snap.metadata["optimizer_tensors"] = sum(1 for t in snap.tensors if t.attrs.get("role") == "optimizer")
    if bundle.missing_shards:
        from ckptdoctor.rules import tf_files

        for shard in bundle.missing_shards:
            n = sum(1 for e in bundle.entries if e.shard_id == shard and not e.slices)
            snap.diagnostics.append(tf_files.DATA_SHARD_MISSING.diag(
                f"the data shard {os.path.basename(bundle.data_files[shard])} is missing ({n} tensor(s) have no "
                "values): only the .index was copied", subject=os.path.basename(bundle.data_files[shard]),
                path=bundle.index_path, expected=os.path.basename(bundle.data_files[shard]), found=None,
                framework_behavior=tf_files.MISSING_SHARD_BEHAVIOR,
                fix="copy every <prefix>.data-NNNNN-of-MMMMM file next to the .index (and the `checkpoint` file)"))
    return snap


def _itemsize(dtype: str | None) -> int:
    from ckptdoctor.dtypes import itemsize

    return itemsize(dtype) if dtype else 0


def _role_from_key(key: str) -> str:
    """Role of a key without an object graph (TF1 Saver checkpoints name variables directly)."""
    if key.startswith("optimizer/") or "/.OPTIMIZER_SLOT/" in key:
        return "optimizer"
    last = key.rsplit("/", 1)[-1]
    if last in ("Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1", "Adagrad") or key in (
            "global_step", "beta1_power", "beta2_power"):
        return "optimizer"
    return "weight"


def read(path: str, fmt: str = "tf-checkpoint") -> Snapshot:
    """A TF checkpoint from its ``.index`` file (or one of its ``.data-*`` shards, or the bare prefix)."""
    index_path = prefix_of(path) + ".index"
    if not os.path.isfile(index_path):
        raise InputError(F.NOT_A_MODEL.code, "a TensorFlow checkpoint data shard without its .index file", path,
                         "the .index file holds the tensor names and offsets: copy it next to the .data file")
    bundle = read_bundle(index_path)
    snap = bundle_snapshot(bundle, index_path, "tf-checkpoint")
    snap.file_size = os.path.getsize(index_path) + sum(bundle.shard_sizes.values())
    _read_checkpoint_state(snap, bundle)
    return snap


def _read_checkpoint_state(snap: Snapshot, bundle: Bundle) -> None:
    """The ``checkpoint`` text file next to the bundle names the latest save (CheckpointState, text proto)."""
    state = os.path.join(os.path.dirname(bundle.prefix) or ".", "checkpoint")
    try:
        with open(state, "rb") as fh:
            text = fh.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
    if not m:
        return
    latest = m.group(1)
    snap.metadata["checkpoint_file_latest"] = latest
    snap.metadata["is_latest"] = os.path.basename(latest) == os.path.basename(bundle.prefix)
