"""Where a zip member's bytes start: after its *local* header, whose extra field (torch pads it to align
storages) differs from the central directory's."""

from __future__ import annotations

import struct
import zipfile


def payload_offset(raw: bytes, info: zipfile.ZipInfo) -> int:
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len
