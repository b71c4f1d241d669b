"""PyTorch zip checkpoints (``torch.save`` since 1.6) and TorchScript archives, read without torch.

Layout: ``<archive>/data.pkl`` (the object, tensors as persistent ids naming storages),
``<archive>/data/<key>`` (raw storage bytes), ``byteorder``, ``.format_version``, ``version``.
``<archive>`` is whatever folder name the first entry uses. TorchScript archives add ``code/``,
``constants.pkl`` (storages under ``constants/``) and name ``__torch__.*`` classes in data.pkl.
"""

from __future__ import annotations

import re

from ckptdoctor.errors import InputError
from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.pickle_objects import Walker, note_truncation, storage_nbytes_of, tensor_info
from ckptdoctor.readers.zip_index import STORED, BadZip, ZipEntry, ZipIndex, read_index
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import GlobalRef, Snapshot, TensorInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    import numpy as np

MAX_PICKLE_BYTES = 1 << 31  # a data.pkl larger than this is not a checkpoint we should hold in memory


def read(path: str, fmt: str) -> Snapshot:
    try:
        index = read_index(path)  # usually the one sniff just read (cached)
    except (BadZip, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"the zip archive is damaged or truncated ({exc})", path,
                         "download or save it again") from None
    archive = ZipArchive(path, index)
    snap = Snapshot(path=path, format=fmt, framework="pytorch", file_size=index.size)
    archive.fill(snap)
    return snap


class ZipArchive:
    def __init__(self, path: str, index: ZipIndex) -> None:
        self.path = path
        self.index = index
        self.size = index.size
        if not index.names:
            raise InputError(F.CORRUPT_HEADER.code, "the zip archive holds no files", path)
        first = index.names[0]
        if "/" not in first:
            raise InputError(F.CORRUPT_HEADER.code, f"file in archive is not in a subdirectory: {first}", path)
        self.prefix = first.split("/", 1)[0]
        self.members = index.entries

    def member(self, name: str) -> ZipEntry | None:
        return self.members.get(f"{self.prefix}/{name}")

    def read_member(self, info: ZipEntry, limit: int) -> bytes:
        try:
            return self.index.read(info, limit)
        except (BadZip, OSError) as exc:
            raise InputError(F.TRUNCATED_FILE.code, f"cannot read {info.filename} from the archive ({exc})",
                             self.path, "download or save it again") from None

    def small_text(self, name: str) -> str | None:
        info = self.member(name)
        if info is None or info.file_size > 4096:
            return None
        return self.read_member(info, 4096).decode("utf-8", "replace").strip()

    def read_pickle(self, name: str) -> bytes:
        info = self.member(name)
        if info is None:
            raise InputError(F.CORRUPT_HEADER.code, f"zip member {self.prefix}/{name} is missing", self.path)
        if info.file_size > MAX_PICKLE_BYTES or (info.compress_type == STORED and info.file_size > self.size):
            raise InputError(F.CORRUPT_HEADER.code, f"{name} declares {info.file_size:,} bytes", self.path)
        if info.compress_type != STORED and info.file_size > max(64 << 20, 100 * info.compress_size):
            # torch writes members uncompressed; a pickle that inflates 100x past 64 MiB is a bomb
            raise InputError(F.ZIP_BOMB.code, f"{name} declares {info.file_size:,} bytes from "
                             f"{info.compress_size:,} compressed: a decompression bomb, not read", self.path,
                             "do not load the file")
        return self.read_member(info, MAX_PICKLE_BYTES)

    def storage_reader(self, folder: str, key: str, nbytes: int) -> Any:
        """A function returning the storage's bytes as a flat uint8 array (memmap when stored)."""
        info = self.member(f"{folder}/{key}")
        if info is None:
            raise InputError(F.CORRUPT_HEADER.code,
                             f"zip member {self.prefix}/{folder}/{key} is missing (a tensor's storage)", self.path,
                             "the file is damaged: save or download it again")
        if info.file_size < nbytes:
            raise InputError(F.CORRUPT_HEADER.code,
                             f"storage {folder}/{key} holds {info.file_size:,} bytes but its tensors need {nbytes:,}",
                             self.path)
        path = self.path
        index = self.index
        if info.compress_type == STORED:
            # cheap bound now (no extra read per storage); the exact payload offset when values are read
            if info.header_offset + 30 + len(info.filename) + info.file_size > self.size:
                raise InputError(F.TRUNCATED_FILE.code, f"storage {folder}/{key} runs past the end of the file",
                                 path, "download or save it again")

            def load_stored() -> np.ndarray:
                import numpy as np

                if info.file_size == 0:
                    return np.zeros(0, dtype=np.uint8)
                try:
                    offset = index.payload_offset(info)
                except (BadZip, OSError) as exc:
                    raise InputError(F.CORRUPT_HEADER.code, str(exc), path) from None
                return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(info.file_size,))

            return load_stored

        def load_compressed() -> np.ndarray:
            import zipfile

            import numpy as np

            from ckptdoctor.readers.zip_errors import ZIP_READ_ERRORS

            try:
                with zipfile.ZipFile(path) as zf, zf.open(info.filename) as fh:
                    data = fh.read(nbytes)  # bounded: never more than the tensors need
            except (*ZIP_READ_ERRORS, KeyError) as exc:
                raise InputError(F.CORRUPT_HEADER.code, f"cannot read storage {info.filename!r}: {exc}",
                                 path) from None
            return np.frombuffer(data, dtype=np.uint8)

        return load_compressed

    # ---- the snapshot ------------------------------------------------------------------------------
    def fill(self, snap: Snapshot) -> None:
        byteorder = self.small_text("byteorder") or "little"
        meta: dict[str, Any] = {"archive": self.prefix, "byteorder": byteorder}
        for key, name in (("format_version", ".format_version"), ("archive_version", "version"),
                          ("storage_alignment", ".storage_alignment")):
            value = self.small_text(name) or self.small_text(f".data/{name}" if name == "version" else name)
            if value is not None:
                meta[key] = value
        torchscript = snap.format == "torchscript" or self.member("constants.pkl") is not None
        if torchscript:
            snap.format = "torchscript"
        members = _TorchScriptCode(self) if torchscript else None
        walker = Walker(torchscript_members=members.members if members else None)
        all_globals: dict[GlobalRef, pickle_vm.GlobalUse] = {}
        opcodes: dict[str, int] = {}
        protocols: set[int] = set()
        storages: dict[tuple[str, str], pickle_vm.StorageRef] = {}
        folders: list[str] = []  # the storage folder of each walked tensor, in order
        model_class: str | None = None

        sources = [("data.pkl", "data", "")]
        if torchscript:
            sources.append(("constants.pkl", "constants", "constants"))
        for pkl, folder, root in sources:
            if pkl == "constants.pkl" and self.member(pkl) is None:
                continue
            result = run_pickle(self.read_pickle(pkl), self.path, pkl)
            protocols.add(result.protocol)
            for g, use in result.globals.items():
                all_globals.setdefault(g, pickle_vm.GlobalUse()).merge(use)
            for name, n in result.opcodes.items():
                opcodes[name] = opcodes.get(name, 0) + n
            before = len(walker.out.tensors)
            structure = walker.walk(result.value, root).structure
            for _name, t, _meta in walker.out.tensors[before:]:
                folders.append(folder)
                if t.storage is not None:
                    storages.setdefault((folder, t.storage.key), t.storage)
            if pkl == "data.pkl":
                snap.structure = structure
                model_class = walker.out.model_class
            else:
                meta["constants"] = structure
        walked = walker.out

        readers: dict[tuple[str, str], Any] = {}
        sizes: dict[tuple[str, str], int] = {}
        for (folder, key), storage in storages.items():
            need = storage_nbytes_of(storage)
            # a tensor may reach further than the storage numel says only in a corrupt file
            readers[(folder, key)] = self.storage_reader(folder, key, need)
            sizes[(folder, key)] = need
        tensors: list[TensorInfo] = []
        for (name, t, tmeta), folder in zip(walked.tensors, folders, strict=True):
            skey = (folder, t.storage.key) if t.storage is not None else None
            reader = readers.get(skey) if skey else None
            info = tensor_info(name, t, tmeta, reader, sizes.get(skey) if skey else None, byteorder)
            if folder == "constants" and info.storage is not None:
                info.storage = f"constants/{info.storage}"
            tensors.append(info)
        snap.tensors = tensors
        snap.classes = list(walked.classes.values())
        snap.globals = list(all_globals)
        meta["pickle_protocol"] = max(protocols) if protocols else None
        meta["pickle_globals"] = {g.qualname: {"count": u.count, "uses": sorted(u.uses)}
                                  for g, u in all_globals.items()}
        meta["pickle_opcodes"] = sorted(opcodes)
        if model_class is not None:
            meta["model_class"] = model_class
        if torchscript and members is not None:
            meta["torchscript"] = {
                "code_files": members.code_files,
                "note": "TorchScript archive (torch.jit.save): load it with torch.jit.load, not torch.load; "
                        "tensors are listed from data.pkl and constants.pkl",
            }
            meta["saved_by"] = "torch.jit.save"
        else:
            meta["saved_by"] = "torch.save"
        snap.metadata.update(meta)
        note_truncation(snap, walked)


def run_pickle(data: bytes, path: str, what: str) -> pickle_vm.PickleResult:
    try:
        return pickle_vm.load(data)
    except pickle_vm.PickleError as exc:
        code = F.TRUNCATED_FILE.code if exc.code == "F103" else F.CORRUPT_HEADER.code
        raise InputError(code, f"{what}: {exc}", path, "the file is damaged: save or download it again") from None


class _TorchScriptCode:
    """``__parameters__``/``__buffers__`` of each ``__torch__`` class, read from the archive's code files."""

    _CLASS = re.compile(r"^class (\w+)\(", re.M)
    _LIST = re.compile(r"^\s+__(parameters|buffers)__ = \[([^\]]*)\]", re.M)

    def __init__(self, archive: ZipArchive) -> None:
        self.archive = archive
        prefix = f"{archive.prefix}/code/"
        self.code_files = sorted(n[len(prefix):] for n in archive.members if n.startswith(prefix) and n.endswith(".py"))
        self.cache: dict[str, dict[str, tuple[list[str], list[str]]]] = {}

    def members(self, qualname: str) -> tuple[list[str], list[str]] | None:
        module, _, cls = qualname.rpartition(".")
        classes = self.cache.get(module)
        if classes is None:
            classes = self.cache[module] = self._parse(module)
        return classes.get(cls)

    def _parse(self, module: str) -> dict[str, tuple[list[str], list[str]]]:
        info = self.archive.member("code/" + module.replace(".", "/") + ".py")
        if info is None or info.file_size > 4 << 20:
            return {}
        text = self.archive.read_member(info, 4 << 20).decode("utf-8", "replace")
        out: dict[str, tuple[list[str], list[str]]] = {}
        starts = [(m.start(), m.group(1)) for m in self._CLASS.finditer(text)]
        for i, (start, name) in enumerate(starts):
            body = text[start:starts[i + 1][0] if i + 1 < len(starts) else len(text)]
            lists = {k: re.findall(r'"([^"]*)"', v) for k, v in self._LIST.findall(body)}
            out[name] = (lists.get("parameters", []), lists.get("buffers", []))
        return out


def storage_member(archive: str | None, key: str) -> str:
    """The zip member holding storage ``key`` (a TorchScript constant's key starts with ``constants/``)."""
    return f"{archive}/{key}" if key.startswith("constants/") else f"{archive}/data/{key}"


def storage_crc_errors(snap: Snapshot) -> list[tuple[str, list[str]]]:
    """Storages whose bytes fail the zip's CRC-32: (member, names of the tensors read from it).

    torch.load never checks these CRCs: a byte changed after saving (a flaky disk, a bad copy, an edit)
    comes back as a silently different weight. Each stored storage is read once through one 8 MiB buffer
    (not a memory map, whose touched pages would count as this process's memory)."""
    from binascii import crc32  # the same CRC-32 as zlib's, about 1.5x faster here

    if snap.format not in ("torch-zip", "torchscript"):
        return []
    index = read_index(snap.path)
    prefix = snap.metadata.get("archive")
    users: dict[str, list[str]] = {}
    for t in snap.tensors:
        if t.storage is None:
            continue
        users.setdefault(storage_member(prefix, t.storage), []).append(t.name)
    failed: list[tuple[str, list[str]]] = []
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    with open(snap.path, "rb", buffering=0) as fh:
        for member, names in users.items():
            entry = index.entries.get(member)
            if entry is None or entry.compress_type != STORED:
                continue  # deflated members are CRC-checked by zipfile when read to the end
            try:
                fh.seek(index.payload_offset(entry))
            except BadZip:
                continue  # a damaged local header: reading the tensor's values reports it
            crc, left = 0, entry.compress_size
            while left:
                n = fh.readinto(view[:min(len(buf), left)])
                if not n:
                    break  # a short file: the reads of the values report it
                crc = crc32(view[:n], crc)
                left -= n
            if left == 0 and crc != entry.crc:
                failed.append((member, names))
    return failed


CRC_HINT = "get an intact copy: torch.load would return the changed values silently"


def crc_failure(member: str, names: list[str]) -> str:
    """The one wording for a storage whose bytes fail the zip CRC-32."""
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"storage {member} fails its zip CRC-32: its bytes changed after saving (tensors {shown})"
