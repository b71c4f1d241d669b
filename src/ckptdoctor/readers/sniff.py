"""Recognise a file's format from its content (magic bytes and structure), never by extension alone."""

from __future__ import annotations

import os
import re
import stat
import struct

from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NUMPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# torch legacy: a protocol-2 pickle of the LONG1 MAGIC_NUMBER 0x1950a86a20f9469cfc6c
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
GGUF_MAGIC = b"GGUF"  # llama.cpp; followed by a little-endian uint32 version
LFS_PREFIX = b"version https://git-lfs.github.com/spec/"
_HEAD = 4096


def read_head(path: str, size: int = _HEAD) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise InputError(F.UNREADABLE.code, f"cannot read: {exc.strerror or exc}", path) from None


def check_regular_file(path: str) -> int:
    """The file's size; raises InputError for a missing, special or empty file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(F.PATH_NOT_FOUND.code, "no such file or directory", path) from None
    except OSError as exc:
        raise InputError(F.UNREADABLE.code, f"cannot stat: {exc.strerror or exc}", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(F.UNREADABLE.code, "not a regular file", path)
    if st.st_size == 0:
        raise InputError(F.EMPTY_FILE.code, "the file is empty (0 bytes): the save or download did not finish",
                         path, "save or download it again")
    return st.st_size


def sniff(path: str) -> str:
    """The format name of a file. Raises InputError (F family) when it is not a model file.

    Formats: torch-zip, torchscript, keras-v3, npz, zip (other), hdf5, npy, torch-legacy, torch-tar,
    pickle, safetensors, tf-checkpoint (a tensor-bundle ``.index``, or one of its ``.data-*`` shards),
    tf-savedmodel (its ``saved_model.pb``), torch-dcp (a torch.distributed.checkpoint folder or its
    ``.metadata`` pickle), gguf (llama.cpp).
    """
    if os.path.isdir(path) and _is_dcp_folder(path):
        return "torch-dcp"
    size = check_regular_file(path)
    head = read_head(path)
    tf_format = _sniff_tensorflow(path, size)
    if tf_format is not None:
        return tf_format
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if _looks_like_pickle(head) and is_dcp_metadata_name(os.path.basename(path)):
        return "torch-dcp"

    if head.startswith(ZIP_MAGICS):
        return _sniff_zip(path)
    if head.startswith(HDF5_MAGIC) or _hdf5_with_userblock(path, size):
        return "hdf5"
    if head.startswith(NUMPY_MAGIC):
        return "npy"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "torch-tar"
    if head.startswith(LFS_PREFIX):
        raise InputError(F.LFS_POINTER.code, "this is a git-lfs pointer file, not the weights", path,
                         "run `git lfs pull` in the clone, or download the file itself")
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        raise InputError(F.HTML_PAGE.code, "this is an HTML page saved instead of the weights", path,
                         "download the file again with its direct link")
    if _looks_like_safetensors(head):
        return "safetensors"
    if _looks_like_pickle(head):
        return "pickle"
    if len(head) >= 8 and head[8:9] == b"{":
        return "safetensors"  # a header we will reject with a precise reason
    known = _other_format(head)
    if known is not None:
        what, hint = known
        raise InputError(F.NOT_A_MODEL.code, f"this is {what}, not a checkpoint format ckptdoctor reads", path, hint)
    raise InputError(F.NOT_A_MODEL.code, f"unrecognised content (starts with {head[:16]!r})", path,
                     "formats are recognised by content: is this the file you meant?")


_DECOMPRESS = "decompress it and inspect the result"
# (magic, offset) -> (what the file is, what to do): files people try on model checkpoints
_OTHER_FORMATS: list[tuple[bytes, int, str, str]] = [
    (b"\x1f\x8b", 0, "gzip-compressed data", f"{_DECOMPRESS} (gunzip -k FILE); joblib and gensim write these"),
    (b"BZh", 0, "bzip2-compressed data", f"{_DECOMPRESS} (bunzip2 -k FILE)"),
    (b"\xfd7zXZ\x00", 0, "xz-compressed data", f"{_DECOMPRESS} (unxz -k FILE)"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd-compressed data", f"{_DECOMPRESS} (zstd -d FILE)"),
    (b"\x04\x22\x4d\x18", 0, "lz4-compressed data (a joblib dump with compress='lz4'?)",
     f"{_DECOMPRESS} (lz4 -d FILE)"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive", "extract it and inspect the model files inside"),
    (b"ustar", 257, "a tar archive", "extract it (tar xf FILE) and inspect the model files inside"),
    (b"TFL3", 4, "a TensorFlow Lite flatbuffer (.tflite)", "inspect the SavedModel or Keras file it was "
     "converted from"),
    # llama.cpp before GGUF: the uint32 magics 'ggml', 'ggmf', 'ggjt' written little-endian
    *((magic, 0, "a legacy GGML file (before GGUF)", "convert it to GGUF with llama.cpp's scripts")
      for magic in (b"lmgg", b"fmgg", b"tjgg")),
    (b"\x89PNG", 0, "a PNG image", "pass the model file, not an image"),
    (b"\xff\xd8\xff", 0, "a JPEG image", "pass the model file, not an image"),
    (b"%PDF", 0, "a PDF document", "pass the model file"),
]


def _other_format(head: bytes) -> tuple[str, str] | None:
    for magic, offset, what, hint in _OTHER_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            return what, hint
    if _looks_like_onnx(head):
        return "an ONNX model", "inspect the PyTorch or TensorFlow checkpoint it was exported from"
    return None


# ONNX ModelProto fields (onnx.proto): ir_version=1 varint, producer_name=2, producer_version=3, domain=4,
# model_version=5 varint, doc_string=6, graph=7, opset_import=8, metadata_props=14, training_info=20,
# functions=25, configuration=26
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def _looks_like_onnx(head: bytes) -> bool:
    """ir_version first, then only ModelProto fields (with their wire types) up to a graph field."""
    if head[:1] != b"\x08" or not 3 <= head[1] <= 30:
        return False
    from ckptdoctor.readers.protowire import ProtoError, read_varint

    pos = 0
    try:
        while pos < len(head):
            tag, pos = read_varint(head, pos)
            if _ONNX_FIELDS.get(tag >> 3) != tag & 7:
                return False
            value, pos = read_varint(head, pos)
            if tag & 7 == 2:
                if tag >> 3 == 7:
                    return True  # the graph: its bytes may run past the head
                pos += value
    except ProtoError:
        return False
    return False


TF_TABLE_MAGIC = b"\x57\xfb\x80\x8b\x24\x75\x47\xdb"  # 0xdb4775248b80fb57, little-endian, ends a TF table
_TF_DATA_SHARD = re.compile(r"\.data-\d{5}-of-\d{5}$")


def _sniff_tensorflow(path: str, size: int) -> str | None:
    """A TF checkpoint index ends with the table magic; a data shard is recognised by its .index sibling."""
    if size >= 48:
        with open(path, "rb") as fh:
            fh.seek(size - 8)
            if fh.read(8) == TF_TABLE_MAGIC:
                return "tf-checkpoint"
    name = os.path.basename(path)
    if name.endswith(".index"):
        with open(path, "rb") as fh:
            head = fh.read(4)
        # a table's first entry is the bundle header under the empty key: shared=0, non_shared=0, len, 0x08
        if len(head) == 4 and head[:2] == b"\x00\x00" and (head[3] == 0x08 or head[2] == 0):
            return "tf-checkpoint"  # without its footer: the reader reports it as truncated
    if name == "saved_model.pb" and os.path.isdir(os.path.join(os.path.dirname(path), "variables")):
        return "tf-savedmodel"
    m = _TF_DATA_SHARD.search(path)
    if m and os.path.isfile(path[:m.start()] + ".index"):
        return "tf-checkpoint"
    return None


def _sniff_zip(path: str) -> str:
    # our own directory parser: no zipfile import, and the torch reader reuses the cached index
    from ckptdoctor.readers.zip_index import BadZip, read_index

    try:
        names = read_index(path).names
    except (BadZip, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"the zip archive is damaged or truncated ({exc})", path,
                         "download or save it again") from None
    roots = {n.split("/", 1)[0] for n in names}
    if "config.json" in names and "metadata.json" in names:
        return "keras-v3"
    if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names) and any(
        n.endswith("/code/") or "/code/" in n for n in names
    ):
        return "torchscript"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "torch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    raise InputError(F.NOT_A_MODEL.code,
                     f"a zip archive, but not a PyTorch, Keras or NumPy one (top entries: {sorted(roots)[:5]})",
                     path)


def _hdf5_with_userblock(path: str, size: int) -> bool:
    offset = 512
    while offset < min(size, 1 << 20):
        with open(path, "rb") as fh:
            fh.seek(offset)
            if fh.read(8) == HDF5_MAGIC:
                return True
        offset *= 2
    return False


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return n > 1 and head[8:9] == b"{"


def _looks_like_pickle(head: bytes) -> bool:
    if head[:1] == b"\x80" and len(head) > 1 and 0 <= head[1] <= 5:
        return True
    # protocol 0/1 pickles (Python 2 era .pkl files) start with an opcode such as MARK '(', EMPTY_DICT '}',
    # EMPTY_LIST ']' or GLOBAL 'c'; text can start with those bytes too
    first = head[:1]
    if first == b"c":  # GLOBAL: "c<module>\n<name>\n", which prose ("computer human ...") is not
        return _GLOBAL_LINES.match(head) is not None
    if first not in (b"(", b"}", b"]"):
        return False
    if b"." in head[-64:] or len(head) < _HEAD:  # a STOP near the end, or the whole (small) file
        return True
    return _parses_to_the_cut(head)


_GLOBAL_LINES = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


def _parses_to_the_cut(head: bytes) -> bool:
    """A large pickle: its first bytes are well-formed opcodes right up to where the head was cut."""
    from ckptdoctor.readers import pickle_vm

    try:
        pickle_vm.load(head)
    except pickle_vm.PickleError as exc:
        return exc.code == F.TRUNCATED_FILE.code
    except (MemoryError, RecursionError):
        return False
    return True


def is_dcp_metadata_name(name: str) -> bool:
    """``.metadata`` or ``__{rank}.metadata``: the pickled index of a torch.distributed.checkpoint folder."""
    if name == ".metadata":
        return True
    return name.startswith("__") and name.endswith(".metadata") and name[2:-len(".metadata")].isdigit()


def _is_dcp_folder(path: str) -> bool:
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(is_dcp_metadata_name(n) for n in names) and any(n.endswith(".distcp") for n in names)
