"""torch.distributed.checkpoint folders read without torch, checked against torch's own DCP loader.

Fixtures are written by ``dcp.save`` (torch 2.13, CPU, no process group); names, shapes, dtypes and values
are compared with ``dcp.load`` into a state_dict of the same keys and with ``dcp_to_torch_save`` output
read by ``torch.load``. Damaged folders and a crafted ``.metadata`` are made from torch's own classes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    TensorProperties,
    TensorStorageMetadata,
)

from ckptdoctor.errors import InputError
from ckptdoctor.inspection import inspect
from ckptdoctor.readers import read, read_path
from ckptdoctor.readers.sniff import sniff


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KERAS_BACKEND": "torch"})


class Chatbot(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(self.emb(x))[0])


def training_state() -> dict[str, Any]:
    torch.manual_seed(0)
    model = Chatbot()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randint(0, 50, (2, 5))).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "extra": {"bf16": torch.randn(3, 4).bfloat16(), "i64": torch.arange(6).reshape(2, 3)}}


def save(state: dict[str, Any], folder: Path, **writer: Any) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is disabled ... single process"
        if writer:
            dcp.save(state, storage_writer=FileSystemWriter(str(folder), **writer), no_dist=True)
        else:
            dcp.save(state, checkpoint_id=str(folder), no_dist=True)
    return folder


def torch_load_dcp(folder: Path, snap_names: list[str], snap: Any) -> dict[str, torch.Tensor]:
    """What dcp.load puts into a state_dict with the same keys (shapes/dtypes from torch's own metadata)."""
    md = dcp.FileSystemReader(str(folder)).read_metadata()
    target = {k: torch.zeros(v.size, dtype=v.properties.dtype) for k, v in md.state_dict_metadata.items()
              if isinstance(v, TensorStorageMetadata)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(target, checkpoint_id=str(folder), no_dist=True)
    return target


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list) and not all(isinstance(x, (int, float)) for x in obj):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = obj
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dcp")
    state = training_state()
    return {
        "per_rank": save(state, root / "per_rank"),
        "per_item": save(state, root / "per_item", single_file_per_rank=False),
    }


@pytest.mark.parametrize("kind", ["per_rank", "per_item"])
def test_names_shapes_dtypes_values_match_dcp_load(folders: dict[str, Path], kind: str) -> None:
    folder = folders[kind]
    snap = read(folder)
    assert snap.format == "torch-dcp" and snap.framework == "pytorch"
    md = dcp.FileSystemReader(str(folder)).read_metadata()
    expected = {k: v for k, v in md.state_dict_metadata.items() if isinstance(v, TensorStorageMetadata)}
    assert snap.names == list(expected)
    loaded = torch_load_dcp(folder, snap.names, snap)
    for t in snap.tensors:
        ref = loaded[t.name]
        assert t.shape == tuple(ref.shape), t.name
        assert t.dtype == str(ref.dtype).removeprefix("torch."), t.name
        assert t.nbytes == ref.numel() * ref.element_size()
        values = t.read()
        assert values.shape == tuple(ref.shape)
        assert np.array_equal(values.astype(np.float64), ref.double().numpy()), t.name
    files = {p.name for p in folder.iterdir() if p.suffix == ".distcp"}
    assert set(snap.metadata["data_files"]) == files
    assert snap.file_size == sum(p.stat().st_size for p in folder.iterdir())
    assert not [d for d in inspect(folder)[0].diagnostics if d.code[0] in "FS" and d.severity.value != "info"]


def test_matches_dcp_to_torch_save(folders: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "full.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(str(folders["per_rank"]), str(out))
    full = flatten(torch.load(out, weights_only=False))
    snap = read(folders["per_rank"])
    tensors = {k: v for k, v in full.items() if isinstance(v, torch.Tensor)}
    assert sorted(snap.names) == sorted(tensors)
    for t in snap.tensors:
        assert np.array_equal(t.read().astype(np.float64), tensors[t.name].double().numpy())
    # non-tensor items (BYTE_IO) are walked symbolically: their values equal what torch loads
    others = {k: v for k, v in full.items() if not isinstance(v, torch.Tensor)}
    assert others, "the fixture has non-tensor items"
    for k, v in others.items():
        assert snap.structure[k] == (list(v) if isinstance(v, tuple) else v), k


def test_one_snapshot_per_folder_cli_json_and_values(folders: dict[str, Path]) -> None:
    folder = folders["per_item"]
    r = cli("inspect", str(folder), "--format", "json", "--values")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["format"] == "torch-dcp" and len(out["files"]) == 1  # the .distcp files are consumed
    loaded = torch_load_dcp(folder, [], None)
    assert [t["name"] for t in out["tensors"]] == list(loaded)
    for t in out["tensors"]:
        ref = loaded[t["name"]].double()
        assert t["shape"] == list(ref.shape)
        assert t["values"]["max"] == pytest.approx(ref.max().item())
        assert t["values"]["mean"] == pytest.approx(ref.mean().item())
    # the .metadata file on its own is recognised by content + name, and a parent folder finds the checkpoint
    assert sniff(str(folder / ".metadata")) == "torch-dcp"
    assert read(folder / ".metadata").names == [t["name"] for t in out["tensors"]]
    snaps = read_path(folder.parent)
    assert sorted(s.format for s in snaps) == ["torch-dcp", "torch-dcp"]


def write_chunked(folder: Path, full: torch.Tensor, splits: list[int]) -> None:
    """A tensor saved as several row chunks (as FSDP/TP ranks do), with torch's own Metadata classes."""
    folder.mkdir()
    chunks, storage = [], {}
    row = 0
    for i, rows in enumerate(splits):
        part = full[row:row + rows].clone()
        name = f"__{i}_0.distcp"
        with open(folder / name, "wb") as fh:
            fh.write(b"\0" * 7)  # a blob need not start at offset 0
            torch.save(part, fh)
        offsets = torch.Size([row, 0])
        chunks.append(ChunkStorageMetadata(offsets=offsets, sizes=part.size()))
        from torch.distributed.checkpoint.filesystem import _StorageInfo

        storage[MetadataIndex("w", offsets, i)] = _StorageInfo(name, 7, (folder / name).stat().st_size - 7)
        row += rows
    md = Metadata(state_dict_metadata={"w": TensorStorageMetadata(
        properties=TensorProperties(dtype=full.dtype), size=full.size(), chunks=chunks)}, storage_data=storage)
    with open(folder / ".metadata", "wb") as fh:
        pickle.dump(md, fh)


def test_multi_chunk_tensor_is_assembled_like_dcp_load(tmp_path: Path) -> None:
    full = torch.randn(10, 6)
    write_chunked(tmp_path / "ck", full, [4, 3, 3])
    target = {"w": torch.zeros(10, 6)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(target, checkpoint_id=str(tmp_path / "ck"), no_dist=True)
    snap = read(tmp_path / "ck")
    (t,) = snap.tensors
    assert t.shape == (10, 6) and len(t.attrs["chunks"]) == 3
    assert [c["offsets"] for c in t.attrs["chunks"]] == [[0, 0], [4, 0], [7, 0]]
    assert np.array_equal(t.read(), target["w"].numpy())
    assert np.array_equal(t.read(), full.numpy())


def codes(folder: Path) -> list[str]:
    return [d.code for d in inspect(folder)[0].diagnostics]


def test_missing_and_truncated_data_files(folders: dict[str, Path], tmp_path: Path) -> None:
    missing = shutil.copytree(folders["per_item"], tmp_path / "missing")
    victim_tensor = read(missing).tensors[2]
    victim = missing / victim_tensor.attrs["file"]
    victim.unlink()
    snap = inspect(missing)[0]
    f501 = [d for d in snap.diagnostics if d.code == "F501"]
    assert len(f501) == 1 and victim.name in f501[0].message and f501[0].subject == victim_tensor.name
    # the tensor in the missing file cannot be read; the others still can
    with pytest.raises(ValueError):
        snap.tensor(victim_tensor.name).read()
    assert snap.tensors[0].read().shape == snap.tensors[0].shape
    r = cli("inspect", str(missing), "--format", "json")
    assert r.returncode == 1 and "F501" in r.stdout

    trunc = shutil.copytree(folders["per_rank"], tmp_path / "trunc")
    data = trunc / "__0_0.distcp"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    found = codes(trunc)
    assert "F502" in found and "F501" not in found
    with warnings.catch_warnings(), pytest.raises(CheckpointException):  # torch agrees the folder cannot be loaded
        warnings.simplefilter("ignore")
        dcp.load(training_state(), checkpoint_id=str(trunc), no_dist=True)


def test_chunk_without_storage_entry(tmp_path: Path) -> None:
    write_chunked(tmp_path / "ck", torch.randn(6, 2), [3, 3])
    with open(tmp_path / "ck" / ".metadata", "rb") as fh:
        md = pickle.load(fh)  # our own fixture
    md.storage_data.pop(next(iter(md.storage_data)))
    with open(tmp_path / "ck" / ".metadata", "wb") as fh:
        pickle.dump(md, fh)
    assert "F503" in codes(tmp_path / "ck")
    assert read(tmp_path / "ck").tensors[0].loader is None


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_metadata_that_would_run_a_command_is_not_executed(folders: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # 1) a real Metadata with a payload in planner_data (dcp.load would run it in pickle.load)
    evil = shutil.copytree(folders["per_rank"], tmp_path / "evil")
    md = dcp.FileSystemReader(str(evil)).read_metadata()
    md.planner_data = {"x": _Evil(str(marker))}
    with open(evil / ".metadata", "wb") as fh:
        pickle.dump(md, fh)
    r = cli("inspect", str(evil), "--format", "json")
    assert not marker.exists()
    out = json.loads(r.stdout)
    s101 = [d for d in out["diagnostics"] if d["code"] == "S101"]
    assert s101 and s101[0]["subject"] in ("posix.system", "os.system")
    assert r.returncode == 1
    assert len(out["tensors"]) == len(read(folders["per_rank"]).tensors)  # still listed
    # 2) a .metadata that is nothing but the payload
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(folders["per_rank"] / "__0_0.distcp", bare)
    with open(bare / ".metadata", "wb") as fh:
        pickle.dump(_Evil(str(marker)), fh)
    found = codes(bare)
    assert not marker.exists()
    assert "F504" in found and "S101" in found


def test_damaged_metadata_is_one_line_exit_2(folders: dict[str, Path], tmp_path: Path) -> None:
    bad = shutil.copytree(folders["per_rank"], tmp_path / "bad")
    meta = bad / ".metadata"
    meta.write_bytes(meta.read_bytes()[:200])
    with pytest.raises(InputError) as exc:
        read(bad)
    assert exc.value.code == "F103"
    r = cli("inspect", str(meta))
    assert r.returncode == 2 and "F103" in r.stderr + r.stdout and "Traceback" not in r.stderr
