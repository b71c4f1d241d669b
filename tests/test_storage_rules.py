"""File-side storage findings (D110-D113) against what torch itself does with the same files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

import ckptdoctor


def codes(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for d in ckptdoctor.inspect(path)[0].diagnostics:
        out.setdefault(d.code, []).append(d)
    return out


def test_view_of_larger_storage_reports_the_bytes_torch_really_writes(tmp_path: Path) -> None:
    big = torch.randn(1000, 64)
    path = tmp_path / "view.pt"
    torch.save({"first_rows": big[:10]}, path)
    compact = tmp_path / "compact.pt"
    torch.save({"first_rows": big[:10].clone()}, compact)
    (d111,) = codes(path)["D111"]
    assert d111.details["wasted_bytes"] == big.untyped_storage().nbytes() - big[:10].clone().untyped_storage().nbytes()
    # the file really is larger by that much (give or take zip alignment padding)
    assert abs((path.stat().st_size - compact.stat().st_size) - d111.details["wasted_bytes"]) < 1024
    assert "D111" not in codes(compact)
    loaded = torch.load(path, weights_only=True)["first_rows"]
    assert loaded.untyped_storage().nbytes() == big.untyped_storage().nbytes()


def test_tied_weights_are_shared_in_the_file_and_safetensors_refuses_them(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    lin = torch.nn.Linear(4, 4)
    sd = {"emb.weight": lin.weight, "out.weight": lin.weight, "other": torch.zeros(2)}
    path = tmp_path / "tied.pt"
    torch.save(sd, path)
    (d112,) = codes(path)["D112"]
    assert sorted(d112.found) == ["emb.weight", "out.weight"]
    loaded = torch.load(path, weights_only=True)
    assert loaded["emb.weight"].data_ptr() == loaded["out.weight"].data_ptr()
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(loaded, str(tmp_path / "tied.safetensors"))


def test_non_contiguous_tensor(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "t.pt"
    torch.save({"t": torch.randn(8, 16).T, "ok": torch.randn(3)}, path)
    (d113,) = codes(path)["D113"]
    assert d113.found == ["t"]
    loaded = torch.load(path, weights_only=True)
    assert not loaded["t"].is_contiguous()
    with pytest.raises(ValueError, match="non contiguous"):
        save_file(loaded, str(tmp_path / "t.safetensors"))


def test_cuda_saved_checkpoint_is_predicted_to_fail_on_this_cpu_machine(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu.pt"
    torch.save({"w": torch.ones(3)}, cpu)
    # Rewrite the storage's device tag the way a GPU machine writes it (BINUNICODE 'cpu' -> 'cuda:0').
    gpu = tmp_path / "gpu.pt"
    with zipfile.ZipFile(cpu) as src, zipfile.ZipFile(gpu, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info.filename, data)
    assert "D110" not in codes(cpu)
    (d110,) = codes(gpu)["D110"]
    assert d110.found == ["cuda:0"]
    assert not torch.cuda.is_available()
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device"):
        torch.load(gpu, weights_only=True)
    assert torch.equal(torch.load(gpu, weights_only=True, map_location="cpu")["w"], torch.ones(3))


def test_disjoint_views_of_one_storage_are_not_shared_weights(tmp_path: Path) -> None:
    """torch.split pieces (or an LSTM's flattened cuDNN weights) live in one storage without overlapping:
    safetensors' save_file writes them, so D112 (which predicts its refusal) must not fire."""
    from safetensors.torch import save_file

    whole = torch.randn(10, 4)
    top, bottom = whole.split(5)
    path = tmp_path / "split.pt"
    torch.save({"top": top, "bottom": bottom, "tied_a": whole[2:4], "tied_b": whole[3:5]}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["top"].untyped_storage().data_ptr() == loaded["bottom"].untyped_storage().data_ptr()
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(loaded, str(tmp_path / "all.safetensors"))
    save_file({k: loaded[k] for k in ("top", "bottom")}, str(tmp_path / "pieces.safetensors"))  # no error
    groups = sorted(sorted(d.found) for d in codes(path)["D112"])
    # safetensors' own grouping of the same tensors, for comparison
    from safetensors.torch import _find_shared_tensors

    expected = sorted(sorted(g) for g in _find_shared_tensors(loaded) if len(g) > 1)
    assert groups == expected
    assert all("top" not in g or "tied_a" in g for g in groups)
