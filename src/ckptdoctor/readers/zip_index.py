"""A zip archive's central directory, read with one seek and bounded reads (no ``zipfile`` import).

``sniff`` needs the member names and the torch reader needs, per member, where it lives and how it is
stored. ``zipfile`` builds a ZipInfo object per member and costs an import of ~10 ms; for a
checkpoint with thousands of storages both show up in ``inspect``. This module parses the end of
central directory record (zip64 included), then the central directory in one read, and keeps one
small tuple per member. The last index read is cached by (path, size, mtime, inode), so the reader
that runs after ``sniff`` does not parse the directory again.

Every offset and size is checked against the file size before it is used; a malformed archive
raises ``BadZip``. Reading a member: stored members are a single bounded read, deflated ones are
decompressed with a bounded output size; the CRC is checked.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import BinaryIO

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes + comment)
_EOCD64_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator (20 bytes)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (56 bytes)
_CDIR = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header (46 bytes + name/extra/comment)
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header (30 bytes + name/extra)
_MAX_COMMENT = 0xFFFF
STORED, DEFLATED = 0, 8


class BadZip(Exception):
    """The archive's directory is missing, truncated or inconsistent."""


class ZipEntry(namedtuple("ZipEntry", "filename header_offset compress_size file_size compress_type crc")):
    """One member. ``header_offset`` is the absolute position of its local header in the file. (A
    collections.namedtuple: typing.NamedTuple would import typing at start-up.)"""

    __slots__ = ()


class ZipIndex:
    """The members of one archive: ``entries`` by name (the last one wins, as in ``zipfile``)."""

    def __init__(self, path: str, size: int, names: list[str], entries: dict[str, ZipEntry]) -> None:
        self.path = path
        self.size = size
        self.names = names
        self.entries = entries

    def payload_offset(self, entry: ZipEntry) -> int:
        """Where a member's bytes start in the file (local header + name + extra), checked."""
        offset = local_payload_offset(self.path, entry.header_offset, entry.filename)
        if offset + entry.compress_size > self.size:
            raise BadZip(f"{entry.filename} runs past the end of the file")
        return offset

    def read(self, entry: ZipEntry, limit: int) -> bytes:
        """The member's bytes (at most ``limit``, else BadZip), decompressed when deflated, CRC checked."""
        if entry.file_size > limit:
            raise BadZip(f"{entry.filename} declares {entry.file_size:,} bytes")
        offset = self.payload_offset(entry)
        raw = _pread(self.path, offset, entry.compress_size)
        if len(raw) != entry.compress_size:
            raise BadZip(f"{entry.filename} is truncated")
        if entry.compress_type == STORED:
            data = raw
        elif entry.compress_type == DEFLATED:
            d = zlib.decompressobj(-15)
            try:
                data = d.decompress(raw, entry.file_size + 1)  # bounded by the declared size
            except zlib.error as exc:
                raise BadZip(f"{entry.filename}: {exc}") from None
        else:
            raise BadZip(f"{entry.filename} uses compression method {entry.compress_type}")
        if len(data) != entry.file_size or zlib.crc32(data) != entry.crc:
            raise BadZip(f"bad CRC-32 or size for {entry.filename}")
        return data


def local_payload_offset(path: str, header_offset: int, filename: str) -> int:
    """Where a member's bytes start: after its local header, name and extra field. The local extra field
    may differ from the central directory's, so it is read from the local header itself. Raises BadZip
    when that header is missing or damaged; the caller checks the member's size against the file."""
    header = _pread(path, header_offset, _LOCAL.size)
    if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise BadZip(f"bad local header for {filename}")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return header_offset + _LOCAL.size + name_len + extra_len


def _pread(path: str, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


_cache: tuple[tuple[str, int, int, int], ZipIndex] | None = None


def read_index(path: str) -> ZipIndex:
    """The archive's index; the last one read is reused while the file is unchanged."""
    global _cache
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if _cache is not None and _cache[0] == key:
        return _cache[1]
    with open(path, "rb") as fh:
        index = _parse(path, fh, st.st_size)
    _cache = (key, index)
    return index


def _parse(path: str, fh: BinaryIO, size: int) -> ZipIndex:
    tail_len = min(size, _EOCD.size + _MAX_COMMENT + _EOCD64_LOCATOR.size + _EOCD64.size)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    # the last EOCD signature whose 22-byte record fits (a comment may follow it)
    at = tail.rfind(b"PK\x05\x06", 0, len(tail) - _EOCD.size + 4) if len(tail) >= _EOCD.size else -1
    if at < 0:
        raise BadZip("File is not a zip file")
    _sig, disk, _disk_cd, _n_disk, count, cd_size, cd_offset, _comment = _EOCD.unpack_from(tail, at)
    eocd_pos = size - tail_len + at
    concat = eocd_pos - cd_size - cd_offset
    loc = at - _EOCD64_LOCATOR.size
    if loc >= 0 and tail[loc:loc + 4] == b"PK\x06\x07":
        rec = loc - _EOCD64.size
        if rec < 0 or tail[rec:rec + 4] != b"PK\x06\x06":
            raise BadZip("zip64 end of central directory record is missing")
        (_sig64, _sz, _cv, _rv, disk, _dd, _n_disk, count, cd_size, cd_offset) = _EOCD64.unpack_from(tail, rec)
        concat = eocd_pos - cd_size - cd_offset - _EOCD64.size - _EOCD64_LOCATOR.size
    if disk != 0:
        raise BadZip("zip archives that span several disks are not supported")
    cd_start = cd_offset + concat
    if cd_start < 0 or cd_size < 0 or cd_start + cd_size > eocd_pos:
        raise BadZip("the central directory lies outside the file")
    if count > cd_size // _CDIR.size + 1:
        raise BadZip(f"the directory declares {count:,} members in {cd_size:,} bytes")
    fh.seek(cd_start)
    cd = fh.read(cd_size)
    if len(cd) != cd_size:
        raise BadZip("the central directory is truncated")

    names: list[str] = []
    entries: dict[str, ZipEntry] = {}
    unpack = _CDIR.unpack_from
    new_entry = tuple.__new__  # ZipEntry without the Python-level __new__ (thousands of members)
    pos = 0
    head = _CDIR.size
    while pos < cd_size:
        if pos + head > cd_size:
            raise BadZip("the central directory is truncated")
        (sig, _cv, _cs, _ev, _res, flags, method, _t, _d, crc, csize, fsize, name_len, extra_len, comment_len,
         _ds, _ia, _ea, offset) = unpack(cd, pos)
        if sig != b"PK\x01\x02":
            raise BadZip("Bad magic number for central directory")
        name_end = pos + head + name_len
        extra_end = name_end + extra_len
        if extra_end + comment_len > cd_size:
            raise BadZip("the central directory is truncated")
        raw_name = cd[pos + head:name_end]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        if "\x00" in name:
            name = name[:name.index("\x00")]
        if csize == 0xFFFFFFFF or fsize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            fsize, csize, offset = _zip64_extra(cd[name_end:extra_end], fsize, csize, offset)
        offset += concat
        if offset < 0 or offset + _LOCAL.size + csize > size:
            raise BadZip(f"{name} lies outside the file")
        names.append(name)
        entries[name] = new_entry(ZipEntry, (name, offset, csize, fsize, method, crc))
        pos = extra_end + comment_len
    return ZipIndex(path, size, names, entries)


def _zip64_extra(extra: bytes, fsize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field (id 1), for the fields saturated at 0xFFFFFFFF."""
    i = 0
    while i + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4:i + 4 + ln]
        if tag == 1:
            vals = [v for (v,) in struct.iter_unpack("<Q", body[:len(body) // 8 * 8])]
            if fsize == 0xFFFFFFFF:
                if not vals:
                    raise BadZip("corrupt zip64 extra field")
                fsize = vals.pop(0)
            if csize == 0xFFFFFFFF:
                if not vals:
                    raise BadZip("corrupt zip64 extra field")
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF:
                if not vals:
                    raise BadZip("corrupt zip64 extra field")
                offset = vals.pop(0)
            return fsize, csize, offset
        i += 4 + ln
    raise BadZip("zip64 sizes without a zip64 extra field")
