"""Keras 3 ``.keras`` archives (zip of ``metadata.json``, ``config.json``, ``model.weights.h5``) and
their unzipped form (a folder with the same three files).

Nothing is deserialized: the config is parsed as JSON, and the weights are read with h5py straight out
of the zip member (Keras stores it uncompressed, so a window onto the archive file is a valid HDF5 file
and nothing is extracted to disk).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any

from ckptdoctor.diagnostics import Diagnostic
from ckptdoctor.errors import InputError
from ckptdoctor.readers import keras_config as kc
from ckptdoctor.readers.hdf5_guard import rehearsed
from ckptdoctor.readers.keras_h5 import read_keras3_weights
from ckptdoctor.readers.zip_errors import ZIP_READ_ERRORS
from ckptdoctor.readers.zip_index import BadZip, local_payload_offset
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot

WEIGHTS = "model.weights.h5"
CRC_CHECK_BYTES = 64 << 20  # verified on every read up to this size (~30 ms); larger, only on failure
MAX_JSON = 256 << 20  # a config larger than this is not a Keras config; never read it into memory


@rehearsed(diagnose=lambda path: weights_crc_error(path))
def read(path: str, fmt: str = "keras-v3") -> Snapshot:
    try:
        zf = zipfile.ZipFile(path)
    except ZIP_READ_ERRORS as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"the .keras zip archive is damaged or truncated ({exc})", path,
                         "save or download it again") from None
    with zf:
        names = set(zf.namelist())
        snap = Snapshot(path=path, format="keras-v3", framework="keras")
        _fill_from_json(snap, _member_json(zf, "config.json", path), _member_json(zf, "metadata.json", path))
        if WEIGHTS not in names:
            others = sorted(n for n in names if n.startswith("model.weights"))
            extra = f" (it has {others}: a weights format ckptdoctor does not read yet)" if others else ""
            raise InputError(F.CORRUPT_HEADER.code, f"the .keras archive has no {WEIGHTS}{extra}", path,
                             "re-save the model with model.save('x.keras')")
        info = zf.getinfo(WEIGHTS)
    bomb = zip_bomb(info)
    if bomb is not None:
        snap.diagnostics.append(bomb)
        return snap  # nothing is decompressed: Keras refuses the archive before reading it too
    if info.compress_type == zipfile.ZIP_STORED:
        start = _member_data_offset(path, info)

        def opener() -> Any:
            return _h5_window(path, start, info.file_size)
    else:  # a re-zipped archive: h5py reads through the (slower, seekable) decompressing stream

        def opener() -> Any:
            return _h5_member(path)

    try:
        with opener() as f:
            read_keras3_weights(f, snap.config, opener, snap)
    except (*ZIP_READ_ERRORS, KeyError, ValueError) as exc:
        # h5py and the zip stream on a damaged member
        raise InputError(F.CORRUPT_HEADER.code, f"{WEIGHTS} inside the archive is not valid HDF5 ({exc})",
                         path, "save or download it again") from None
    if info.file_size <= CRC_CHECK_BYTES:
        damaged = weights_crc_error(path)
        if damaged is not None:
            raise damaged
    return snap


# Keras 3 saving_lib's decompression-bomb guard (_reject_zip_bomb): a member above 4 GiB that expands
# more than 100x its stored size is refused before it is read
KERAS_BOMB_FLOOR = 1 << 32
KERAS_BOMB_RATIO = 100


def zip_bomb(info: zipfile.ZipInfo) -> Diagnostic | None:
    """The F113 finding when Keras would refuse ``info`` as a decompression bomb, else None."""
    if not (info.file_size > KERAS_BOMB_FLOOR and info.file_size > KERAS_BOMB_RATIO * info.compress_size):
        return None
    return F.ZIP_BOMB.diag(
        f"{info.filename} declares {info.file_size:,} bytes but stores {info.compress_size:,} "
        f"({info.file_size // max(info.compress_size, 1):,}x): a decompression bomb; its weights are not read",
        subject=info.filename, found=info.file_size, expected=f"at most {KERAS_BOMB_RATIO}x {info.compress_size:,}",
        framework_behavior=f"keras.models.load_model raises ValueError: Not allowed: ZIP member '{info.filename}' "
                           "declares ... but only ... are stored on disk; refusing to load a potential "
                           "decompression bomb.",
        fix="do not load it; if it is yours, save the model again with model.save('model.keras')")


def weights_crc_error(path: str) -> InputError | None:
    """Bytes of the weights changed after saving: the zip's CRC-32 shows it, and Keras refuses the file.
    Checking means reading every weight byte, so ``read`` does it for small archives, and for any size
    only when h5py could not read the weights."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(WEIGHTS) as member:
            while member.read(1 << 22):
                pass
    except zipfile.BadZipFile as exc:
        return InputError(F.CORRUPT_HEADER.code, f"{WEIGHTS} inside the archive fails its CRC-32 check: its "
                          f"bytes changed after saving (keras.models.load_model raises `BadZipFile: {exc}`)",
                          path, "save or download the file again")
    except (*ZIP_READ_ERRORS, KeyError):  # not a CRC problem: the caller's own error stands
        return None
    return None

@rehearsed()
def read_dir(path: str) -> Snapshot:
    """An unzipped .keras: the same files in a folder."""
    import h5py

    snap = Snapshot(path=path, format="keras-v3", framework="keras")
    _fill_from_json(snap, _file_json(os.path.join(path, "config.json")),
                    _file_json(os.path.join(path, "metadata.json")))
    weights = os.path.join(path, WEIGHTS)

    def opener() -> Any:
        return h5py.File(weights, "r")

    try:
        with opener() as f:
            read_keras3_weights(f, snap.config, opener, snap)
    except OSError as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"{WEIGHTS} is not valid HDF5 ({exc})", weights) from None
    snap.file_size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
                         if os.path.isfile(os.path.join(path, n)))
    return snap


def _fill_from_json(snap: Snapshot, config: Any, metadata: Any) -> None:
    if isinstance(metadata, dict):
        snap.metadata.update(metadata)
        if isinstance(metadata.get("keras_version"), str):
            snap.framework_version = metadata["keras_version"]
    if not isinstance(config, dict):
        raise InputError(F.CORRUPT_HEADER.code, "config.json of the .keras archive is not a JSON object",
                         snap.path)
    snap.config = config
    compile_config = config.get("compile_config")
    snap.training_config = compile_config if isinstance(compile_config, dict) else None
    snap.classes = kc.class_refs(config, "config")
    snap.layers = kc.layer_list(config)


def _member_json(zf: zipfile.ZipFile, name: str, path: str) -> Any:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise InputError(F.CORRUPT_HEADER.code, f"the .keras archive has no {name}", path) from None
    if info.file_size > MAX_JSON:
        raise InputError(F.CORRUPT_HEADER.code, f"{name} claims {info.file_size:,} bytes: not a Keras config",
                         path)
    try:
        with zf.open(info) as fh:
            return json.loads(fh.read(MAX_JSON + 1))
    except (*ZIP_READ_ERRORS, ValueError) as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"{name} in the .keras archive is unreadable ({exc})",
                         path) from None


def _file_json(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(MAX_JSON + 1))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(F.CORRUPT_HEADER.code, f"cannot parse as JSON ({exc})", path) from None


def _member_data_offset(path: str, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start (after its local header), checked against the file size."""
    try:
        start = local_payload_offset(path, info.header_offset, info.filename)
    except BadZip:
        raise InputError(F.CORRUPT_HEADER.code, f"the zip entry for {info.filename} is damaged", path) from None
    if start + info.file_size > os.path.getsize(path):
        raise InputError(F.TRUNCATED_FILE.code, f"{info.filename} runs past the end of the archive", path)
    return start


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``start`` of a file: h5py opens it as a file."""

    def __init__(self, path: str, start: int, size: int) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:n])
        self._pos += got or 0
        return got or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


@contextlib.contextmanager
def _h5_window(path: str, start: int, size: int) -> Iterator[Any]:
    import h5py

    window = _Window(path, start, size)
    try:
        with h5py.File(window, "r") as f:
            yield f
    finally:
        window.close()


@contextlib.contextmanager
def _h5_member(path: str) -> Iterator[Any]:
    import h5py

    with zipfile.ZipFile(path) as zf, zf.open(WEIGHTS) as member, h5py.File(member, "r") as f:
        yield f
