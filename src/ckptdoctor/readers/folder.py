"""Folders: a Hugging Face model folder, a sharded safetensors set, an unzipped ``.keras``, or any tree of
model files.

What a folder becomes:
* every ``*.index.json`` with a ``weight_map`` becomes ONE snapshot (``safetensors-sharded`` or
  ``torch-sharded``) whose tensors come from the shard headers, checked against the index (F3xx);
  the shards it names are not listed again;
* a directory holding ``config.json`` + ``model.weights.h5`` is an unzipped ``.keras`` (keras-v3);
* a directory holding ``saved_model.pb`` is ONE TensorFlow SavedModel snapshot (tf-savedmodel), its
  ``variables/`` and ``assets/`` included;
* each TensorFlow checkpoint ``<prefix>.index`` is one tf-checkpoint snapshot; its ``<prefix>.data-*``
  shards and the ``checkpoint`` state file are part of it, not listed on their own;
* a directory holding ``.metadata`` + ``*.distcp`` is ONE torch.distributed.checkpoint snapshot (torch-dcp);
  its data files are part of it, not listed on their own;
* every other file is recognised by content and read on its own.

Errors are per file: a model file that cannot be read (an LFS pointer, an empty or truncated file)
becomes a placeholder snapshot (format ``unreadable``) carrying the F-family diagnostic, so one bad
shard does not hide the rest. Side files (config, tokenizer, README, code) and content that is not a
model in a file whose name does not claim a model format are skipped silently. If nothing at all could
be read but something failed, the first failure is raised as the folder's error (exit status 2).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F
from ckptdoctor.rules import shards as S
from ckptdoctor.snapshot import Snapshot

# names that never hold weights: skipped without sniffing
SIDE_SUFFIXES = (".json", ".md", ".txt", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".jinja",
                 ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ipynb", ".csv", ".tsv", ".html", ".lock")
SIDE_NAMES = {"tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "license", "licence", "notice",
              "readme", "makefile", "dockerfile", "vocab", "merges"}
# extensions that claim to be a model file: unrecognised content there is reported, not skipped
MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".hdf5", ".keras", ".npz", ".npy",
                  ".pkl", ".pickle", ".tar", ".pth.tar", ".model", ".weights")
SKIP_DIRS = {"__pycache__", "node_modules"}
HF_CONFIG_KEYS = ("architectures", "model_type", "torch_dtype", "dtype", "transformers_version")


def read_folder(path: str) -> list[Snapshot]:
    snaps: list[Snapshot] = []
    failures: list[InputError] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        files = sorted(f for f in filenames if not f.startswith("."))
        here: list[Snapshot] = []
        consumed: set[str] = set()
        if "config.json" in files and "model.weights.h5" in files:
            here.append(_read_one(dirpath, None, failures))
            consumed.update({"config.json", "metadata.json", "model.weights.h5"})
        if "saved_model.pb" in files:
            snap = _read_one(dirpath, "saved_model.pb", failures)
            if snap is not None:
                here.append(snap)
            consumed.update({"saved_model.pb", "keras_metadata.pb", "fingerprint.pb"})
            dirnames[:] = [d for d in dirnames if d not in ("variables", "assets", "assets.extra")]
        _consume_tf_checkpoint_files(files, consumed)
        if _consume_dcp_files(filenames, consumed):
            snap = _read_one(dirpath, "", failures)
            if snap is not None:
                here.append(snap)
        for name in files:
            if name.endswith(".index.json"):
                shard_snap = _read_index(os.path.join(dirpath, name), consumed)
                if shard_snap is not None:
                    here.append(shard_snap)
        for name in files:
            if name in consumed or _is_side_file(name):
                continue
            snap = _read_one(dirpath, name, failures)
            if snap is not None:
                here.append(snap)
        _add_hf_config(dirpath, files, here)
        snaps.extend(here)
    if failures and not any(s.format != "unreadable" for s in snaps):
        first = failures[0]
        if len(failures) > 1:
            first.message += f" (and {len(failures) - 1} more file(s) in the folder failed)"
        raise first
    return snaps


def _consume_tf_checkpoint_files(files: list[str], consumed: set[str]) -> None:
    """The ``.data-NNNNN-of-MMMMM`` shards of each ``<prefix>.index`` are read through the index."""
    prefixes = {f[: -len(".index")] for f in files if f.endswith(".index")}
    if not prefixes:
        return
    import re

    shard = re.compile(r"^(.+)\.data-\d{5}-of-\d{5}$")
    for f in files:
        m = shard.match(f)
        if m and m.group(1) in prefixes:
            consumed.add(f)
    if "checkpoint" in files:  # tf.train.CheckpointState text file: which prefix is the latest
        consumed.add("checkpoint")


def _consume_dcp_files(filenames: list[str], consumed: set[str]) -> bool:
    """A torch.distributed.checkpoint folder: its ``.metadata`` and ``__{rank}_{n}.distcp`` files are one model."""
    from ckptdoctor.readers.sniff import is_dcp_metadata_name

    metas = [f for f in filenames if is_dcp_metadata_name(f)]
    data = [f for f in filenames if f.endswith(".distcp")]
    if not metas or not data:
        return False
    consumed.update(metas)
    consumed.update(data)
    return True


def _read_one(dirpath: str, name: str | None, failures: list[InputError]) -> Snapshot | None:
    """Read one file (or, with ``name=None``, the unzipped .keras directory; with ``name=""`` the folder itself,
    a DCP checkpoint). Errors become a placeholder."""
    from ckptdoctor.readers import read

    full = dirpath if not name else os.path.join(dirpath, name)
    try:
        if name is None:
            from ckptdoctor.readers.keras_v3 import read_dir

            snap = read_dir(full)
            snap.file_size = snap.file_size or 0
            return snap
        return read(full)
    except InputError as exc:
        if exc.code == F.NOT_A_MODEL.code and not (name or "").lower().endswith(MODEL_SUFFIXES):
            return None  # some other kind of file that happens to sit in the model folder
        exc.path = exc.path or full
        failures.append(exc)
        return _placeholder(full, exc)


def _placeholder(path: str, exc: InputError) -> Snapshot:
    from ckptdoctor.rules.registry import get

    rule = get(exc.code) or F.NOT_A_MODEL
    snap = Snapshot(path=path, format="unreadable", framework="unknown")
    snap.diagnostics.append(rule.diag(exc.message, subject=os.path.basename(path), path=path,
                                      fix=exc.hint or ""))
    with contextlib.suppress(OSError):
        snap.file_size = os.path.getsize(path)
    return snap


def _is_side_file(name: str) -> bool:
    low = name.lower()
    stem = low.split(".", 1)[0]
    return low.endswith(SIDE_SUFFIXES) or low in SIDE_NAMES or stem in SIDE_NAMES or low.startswith("tokenizer")


def _add_hf_config(dirpath: str, files: list[str], snaps: list[Snapshot]) -> None:
    """A Hugging Face ``config.json`` says which architecture and dtype the weights are for."""
    if "config.json" not in files or not snaps:
        return
    try:
        with open(os.path.join(dirpath, "config.json"), "rb") as fh:
            cfg = json.loads(fh.read(1 << 24))  # configs are small; cap what we read
    except (OSError, ValueError):
        return
    if not isinstance(cfg, dict):
        return
    found = {k: cfg[k] for k in HF_CONFIG_KEYS if k in cfg}
    if not ({"architectures", "model_type"} & found.keys()):
        return  # not a transformers config (a .keras config is handled by its reader)
    for snap in snaps:
        if snap.format in ("unreadable", "keras-v3"):
            continue
        for k, v in found.items():
            snap.metadata.setdefault(k, v)


# ---------------------------------------------------------------- sharded sets
def _read_index(index_path: str, consumed: set[str]) -> Snapshot | None:
    """One snapshot for a sharded set, or None when the JSON file is not a shard index."""
    try:
        with open(index_path, "rb") as fh:
            pairs = json.loads(fh.read(1 << 28), object_pairs_hook=_Pairs)
    except (OSError, ValueError):
        return None  # not an index we can use: its shards are read one by one
    index = dict(pairs) if isinstance(pairs, _Pairs) else None
    weight_map_pairs = index.get("weight_map") if index else None
    if not isinstance(weight_map_pairs, _Pairs):
        return None
    dirpath = os.path.dirname(index_path)
    name = os.path.basename(index_path)
    is_torch = not name.endswith(".safetensors.index.json") and ".bin" in name
    snap = Snapshot(path=index_path, format="torch-sharded" if is_torch else "safetensors-sharded",
                    framework="pytorch" if is_torch else "safetensors")
    consumed.add(name)

    weight_map: dict[str, str] = {}
    for key, shard in weight_map_pairs:
        if key in weight_map and weight_map[key] != shard:
            snap.diagnostics.append(S.DUPLICATE_TENSOR.diag(
                f"the index lists {key!r} twice: in {weight_map[key]} and in {shard}", subject=key,
                path=index_path, found=[weight_map[key], shard],
                framework_behavior="the last entry wins when the index is parsed",
                fix="rebuild the index from the shard headers"))
        weight_map[str(key)] = str(shard)
    meta = index.get("metadata") if index else None
    if isinstance(meta, _Pairs):
        snap.metadata.update(_plain(meta))
    snap.metadata["index"] = name

    shards = list(dict.fromkeys(weight_map.values()))
    snap.metadata["shards"] = shards
    seen: dict[str, str] = {}
    total_file_size = 0
    for shard in shards:
        shard_path = os.path.join(dirpath, shard)
        consumed.add(shard)
        if not os.path.isfile(shard_path):
            n = sum(1 for v in weight_map.values() if v == shard)
            snap.diagnostics.append(S.SHARD_MISSING.diag(
                f"shard {shard} is named in the index ({n} tensor(s)) but is not in the folder",
                subject=shard, path=index_path, framework_behavior="transformers raises OSError on load",
                fix="download the missing shard again"))
            continue
        shard_snap = _read_shard(shard_path, snap)
        if shard_snap is None:
            continue
        total_file_size += shard_snap.file_size or 0
        for k, v in shard_snap.metadata.items():
            if k in ("format", "saved_by"):
                snap.metadata.setdefault(k, v)
        if shard_snap.framework_version and not snap.framework_version:
            snap.framework_version = shard_snap.framework_version
        snap.globals.extend(shard_snap.globals)
        snap.classes.extend(shard_snap.classes)
        for d in shard_snap.diagnostics:
            d.path = d.path or shard_path
            snap.diagnostics.append(d)
        in_shard = set()
        for t in shard_snap.tensors:
            in_shard.add(t.name)
            t.attrs["shard"] = shard
            if t.storage is not None:  # storage keys are per file ("0" in every shard): keep them apart
                t.storage = f"{shard}/{t.storage}"
            if t.name in seen:
                snap.diagnostics.append(S.DUPLICATE_TENSOR.diag(
                    f"tensor {t.name!r} is in both {seen[t.name]} and {shard}", subject=t.name,
                    path=index_path, found=[seen[t.name], shard],
                    framework_behavior="whichever shard is loaded last wins, silently",
                    fix="keep one copy: re-save with save_pretrained"))
            else:
                seen[t.name] = shard
            if weight_map.get(t.name) != shard:
                where = f"maps it to {weight_map[t.name]}" if t.name in weight_map else "does not list it"
                snap.diagnostics.append(S.TENSOR_NOT_IN_INDEX.diag(
                    f"shard {shard} holds {t.name!r} but the index {where}", subject=t.name, path=index_path,
                    expected=weight_map.get(t.name), found=shard,
                    framework_behavior="loaders that trust the index ignore this tensor",
                    fix="rebuild the index from the shard headers"))
            snap.tensors.append(t)
        missing = [k for k, v in weight_map.items() if v == shard and k not in in_shard]
        for key in missing:
            snap.diagnostics.append(S.INDEX_KEY_NOT_IN_SHARD.diag(
                f"the index maps {key!r} to {shard}, which does not contain it", subject=key, path=index_path,
                expected=shard, found=None,
                framework_behavior="the tensor is missing when loading: reported as a missing key or a KeyError",
                fix="rebuild the index from the shard headers, or re-save with save_pretrained"))
    snap.file_size = total_file_size
    total = snap.metadata.get("total_size")
    if isinstance(total, int) and not any(d.code == S.SHARD_MISSING.code for d in snap.diagnostics):
        actual = sum(t.nbytes for t in snap.tensors)
        if actual != total:
            snap.diagnostics.append(S.TOTAL_SIZE_MISMATCH.diag(
                f"metadata.total_size is {total:,} bytes but the shards hold {actual:,} bytes of tensors",
                subject="metadata.total_size", path=index_path, expected=total, found=actual,
                framework_behavior="used only for progress and memory planning",
                fix="re-save with save_pretrained to make them agree"))
    return snap


def _read_shard(shard_path: str, snap: Snapshot) -> Snapshot | None:
    from ckptdoctor.readers import read
    from ckptdoctor.rules.registry import get

    try:
        return read(shard_path)
    except InputError as exc:
        rule = get(exc.code) or F.NOT_A_MODEL
        snap.diagnostics.append(rule.diag(f"shard {os.path.basename(shard_path)}: {exc.message}",
                                          subject=os.path.basename(shard_path), path=shard_path,
                                          fix=exc.hint or ""))
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Pairs(list[tuple[str, Any]]):
    """A JSON object kept as its list of pairs, so that duplicate keys in ``weight_map`` stay visible."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in self:
            if k == key:
                return v
        return default
