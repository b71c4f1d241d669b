"""Zip layouts tests need: where a member's bytes start (after its *local* header, whose extra field torch
pads to align storages, unlike the central directory's), and a decompression bomb built without compressing."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path


def payload_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def zip_declaring(path: Path, members: dict[str, bytes], bomb: str, declared: int) -> None:
    """A zip whose member ``bomb`` is deflated and declares ``declared`` uncompressed bytes (ZIP64 sizes),
    the way a decompression bomb does, without spending the minutes that compressing gigabytes takes."""
    local, central = b"", b""
    for name, data in members.items():
        raw = name.encode()
        offset, crc = len(local), zlib.crc32(data)
        if name == bomb:
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = packer.compress(data) + packer.flush()
            extra_local = struct.pack("<HHQQ", 1, 16, declared, len(body))
            local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                 len(raw), len(extra_local)) + raw + extra_local + body
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF,
                                   0xFFFFFFFF, len(raw), len(extra_local), 0, 0, 0, 0, offset) + raw + extra_local
        else:
            local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data),
                                 len(raw), 0) + raw + data
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, len(data),
                                   len(data), len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(local + central + end)
