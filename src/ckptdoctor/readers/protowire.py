"""A tiny protobuf wire-format reader: enough to decode TensorFlow's small metadata protos
(BundleEntryProto, TrackableObjectGraph, SavedMetadata, FingerprintDef) without a protobuf dependency.

Only the wire format is decoded: callers know their field numbers. Length-delimited fields are returned
as ``memoryview`` slices of the input, so walking a large message copies nothing. Every length is
checked against the bytes that remain before it is used; a bad length raises ``ProtoError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


class ProtoError(ValueError):
    """The bytes are not a valid protobuf message (truncated varint, length past the end, bad wire type)."""


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, new position) of the varint at ``pos``. At most 10 bytes, as the format allows."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtoError("varint runs past the end of the data")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``: an int for VARINT/I64/I32, a memoryview for LEN."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while pos < end:
        key, pos = read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(view, pos)
            yield number, wire, value
        elif wire == LEN:
            n, pos = read_varint(view, pos)
            if n > end - pos:
                raise ProtoError(f"field {number} claims {n} bytes but only {end - pos} remain")
            yield number, wire, view[pos:pos + n]
            pos += n
        elif wire == I64:
            if pos + 8 > end:
                raise ProtoError("fixed64 runs past the end of the data")
            yield number, wire, struct.unpack_from("<Q", view, pos)[0]
            pos += 8
        elif wire == I32:
            if pos + 4 > end:
                raise ProtoError("fixed32 runs past the end of the data")
            yield number, wire, struct.unpack_from("<I", view, pos)[0]
            pos += 4
        else:  # groups are not used by any message we read
            raise ProtoError(f"unsupported wire type {wire} (field {number})")


def as_int64(value: int) -> int:
    """A varint read as a signed int64 (negative values are encoded as 10-byte two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise ProtoError("expected a string field, found a number")
    return bytes(value).decode("utf-8", "replace")


def packed_varints(value: int | memoryview) -> list[int]:
    """A repeated integer field: either one unpacked varint or a packed LEN run of varints."""
    if isinstance(value, int):
        return [value]
    out: list[int] = []
    pos = 0
    while pos < len(value):
        v, pos = read_varint(value, pos)
        out.append(v)
    return out
