"""Folders: a Hugging Face style sharded safetensors set (good and broken indexes), side files, per-file
errors, and an unzipped .keras."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ckptdoctor.errors import InputError
from ckptdoctor.readers import read_path

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1234\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KERAS_BACKEND": "torch"})


def write_sharded(folder: Path, n_shards: int = 3) -> dict[str, str]:
    """Shards and index the way transformers' save_pretrained writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    weight_map: dict[str, str] = {}
    total = 0
    for i in range(n_shards):
        shard = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        tensors = {f"model.layers.{i}.{kind}.weight": torch.randn(4, 4, generator=g) for kind in ("q", "k")}
        if i == 0:
            tensors["model.embed_tokens.weight"] = torch.randn(10, 4, generator=g).bfloat16()
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        for k, v in tensors.items():
            weight_map[k] = shard
            total += v.numel() * v.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps(
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16"}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "README.md").write_text("# a model\n")
    (folder / "generation_config.json").write_text("{}")
    return weight_map


def shard_contents(folder: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    out = {}
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for k in f.keys():  # noqa: SIM118
                out[k] = (shard.name, tuple(f.get_slice(k).get_shape()))
    return out


def test_sharded_set_is_one_snapshot(tmp_path: Path) -> None:
    weight_map = write_sharded(tmp_path / "m")
    snaps = read_path(tmp_path / "m")
    assert len(snaps) == 1
    snap = snaps[0]
    assert snap.format == "safetensors-sharded"
    truth = shard_contents(tmp_path / "m")
    assert {t.name: (t.attrs["shard"], t.shape) for t in snap.tensors} == truth
    assert {k: v[0] for k, v in truth.items()} == weight_map
    assert snap.diagnostics == []
    assert snap.metadata["architectures"] == ["LlamaForCausalLM"] and snap.metadata["torch_dtype"] == "bfloat16"
    assert snap.metadata["total_size"] == sum(t.nbytes for t in snap.tensors)
    assert snap.tensor("model.layers.1.q.weight").read().shape == (4, 4)


def test_cli_on_sharded_folder(tmp_path: Path) -> None:
    write_sharded(tmp_path / "m")
    proc = cli("inspect", str(tmp_path / "m"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["format"] == "safetensors-sharded" and len(out["files"]) == 1
    truth = shard_contents(tmp_path / "m")
    assert {t["name"]: tuple(t["shape"]) for t in out["tensors"]} == {k: v[1] for k, v in truth.items()}


def edit_index(folder: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = folder / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    edit(index)
    path.write_text(json.dumps(index))


def codes(folder: Path) -> list[str]:
    return sorted(d.code for s in read_path(folder) for d in s.diagnostics)


def test_index_key_mapped_to_wrong_shard(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder)
    edit_index(folder, lambda ix: ix["weight_map"].__setitem__("model.layers.0.q.weight",
                                                               "model-00002-of-00003.safetensors"))
    # the index now points at a shard that lacks the key, and the real holder is unlisted
    assert codes(folder) == ["F302", "F303"]


def test_missing_shard(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder)
    os.remove(folder / "model-00003-of-00003.safetensors")
    snap = read_path(folder)[0]
    assert [d.code for d in snap.diagnostics] == ["F301"]
    assert "model-00003-of-00003.safetensors" in snap.diagnostics[0].message
    assert not any(t.attrs["shard"].startswith("model-00003") for t in snap.tensors)


def test_tensor_not_in_index_and_total_size(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder)
    edit_index(folder, lambda ix: ix["weight_map"].pop("model.layers.2.k.weight"))
    assert codes(folder) == ["F303"]
    edit_index(folder, lambda ix: ix["metadata"].__setitem__("total_size", 12345))
    assert codes(folder) == ["F303", "F305"]


def test_duplicate_tensor_across_shards(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder, 2)
    save_file({"model.layers.0.q.weight": torch.zeros(4, 4), "model.layers.1.q.weight": torch.zeros(4, 4)},
              str(folder / "model-00002-of-00002.safetensors"))
    assert "F304" in codes(folder)


def test_duplicate_key_in_index_json(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder, 2)
    path = folder / "model.safetensors.index.json"
    text = path.read_text().replace('"weight_map": {', '"weight_map": {"model.layers.0.q.weight": '
                                    '"model-00002-of-00002.safetensors", ', 1)
    path.write_text(text)
    assert "F304" in codes(folder)


def test_bad_shard_is_a_diagnostic_and_lfs_file_a_placeholder(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_sharded(folder)
    (folder / "model-00002-of-00003.safetensors").write_bytes(LFS)
    (folder / "extra.bin").write_bytes(LFS)
    snaps = read_path(folder)
    assert [s.format for s in snaps] == ["safetensors-sharded", "unreadable"]
    assert "F105" in [d.code for d in snaps[0].diagnostics]
    assert [d.code for d in snaps[1].diagnostics] == ["F105"] and snaps[1].path.endswith("extra.bin")
    proc = cli("inspect", str(folder), "--format", "json")
    assert proc.returncode == 1  # error findings, not bad input: the rest of the folder was read
    assert sum(d["code"] == "F105" for d in json.loads(proc.stdout)["diagnostics"]) == 2


def test_folder_with_only_failures_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(LFS)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError) as info:
        read_path(tmp_path)
    assert info.value.code == "F105"


def test_side_files_only_is_no_models(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / "notes.dat").write_bytes(b"some bytes that are not a model")
    with pytest.raises(InputError) as info:
        read_path(tmp_path)
    assert info.value.code == "F109"


def test_plain_files_and_subfolders(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2)}, str(tmp_path / "one.safetensors"))
    (tmp_path / "sub").mkdir()
    save_file({"b": torch.ones(3)}, str(tmp_path / "sub" / "model.safetensors"))
    (tmp_path / ".git").mkdir()
    save_file({"c": torch.ones(3)}, str(tmp_path / ".git" / "hidden.safetensors"))
    snaps = read_path(tmp_path)
    assert [(Path(s.path).relative_to(tmp_path).as_posix(), s.names) for s in snaps] == [
        ("one.safetensors", ["a"]), ("sub/model.safetensors", ["b"])]


def test_unzipped_keras_folder(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        zf.extractall(folder)
    (tmp_path / "m.keras").unlink()
    snaps = read_path(tmp_path)
    assert len(snaps) == 1 and snaps[0].format == "keras-v3"
    assert [t.attrs["keras_path"] for t in snaps[0].tensors] == [v.path for v in model.weights]
    assert [t.shape for t in snaps[0].tensors] == [tuple(v.shape) for v in model.weights]
    shutil.rmtree(folder)


def test_sharded_torch_bins_keep_their_storages_apart(tmp_path: Path) -> None:
    """Every pytorch_model-0000N.bin names its first storage "0": tensors of different shards share
    nothing, so no D112 (and no alias for convert/fix to act on), as torch.load of each shard shows."""
    from ckptdoctor.inspection import inspect

    shards = {"pytorch_model-00001-of-00002.bin": {"embed.weight": torch.randn(10, 4)},
              "pytorch_model-00002-of-00002.bin": {"lm_head.weight": torch.randn(10, 4)}}
    weight_map = {}
    for name, sd in shards.items():
        torch.save(sd, tmp_path / name)
        weight_map.update(dict.fromkeys(sd, name))
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded = {k: v for name in shards for k, v in torch.load(tmp_path / name, weights_only=True).items()}
    assert loaded["embed.weight"].untyped_storage().data_ptr() != loaded["lm_head.weight"].untyped_storage().data_ptr()
    [snap] = inspect(tmp_path)
    assert snap.format == "torch-sharded"
    assert len({t.storage for t in snap.tensors}) == 2
    assert not [d for d in snap.diagnostics if d.code == "D112"]
    for t in snap.tensors:
        assert torch.equal(torch.from_numpy(t.read()), loaded[t.name])
