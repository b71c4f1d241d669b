"""Value statistics: per tensor, and a layer's tensors taken together (the inspect table's group rows)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ckptdoctor.readers import read
from ckptdoctor.values import combined_stats, tensor_stats
from cli_helpers import invoke, run_with_memory_limit
from zip_helpers import payload_offset


@pytest.fixture(scope="module")
def lstm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(16, 32)
    with torch.no_grad():
        lstm.bias_hh_l0[3] = float("nan")
        lstm.bias_ih_l0[5] = float("inf")
        lstm.bias_ih_l0[6] = 0.0
    path = tmp_path_factory.mktemp("values") / "lstm.pt"
    torch.save(lstm.state_dict(), path)
    return path


def _torch_stats(values: torch.Tensor) -> tuple[float, float, float, float]:
    finite = values[torch.isfinite(values)].double()
    return finite.min().item(), finite.max().item(), finite.mean().item(), finite.std(unbiased=False).item()


def test_combined_stats_equal_the_stats_of_the_concatenation(lstm_file: Path) -> None:
    snap = read(lstm_file)
    combined = combined_stats([(tensor_stats(t), t.numel) for t in snap.tensors])
    sd = torch.load(lstm_file, weights_only=True)
    everything = torch.cat([v.flatten() for v in sd.values()])
    expected = _torch_stats(everything)
    got = (combined.min, combined.max, combined.mean, combined.std)
    assert all(math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-12) for g, e in zip(got, expected, strict=True)), (got, expected)
    assert (combined.nan, combined.inf) == (1, 1)
    assert combined.zeros == int((everything == 0).sum())


def test_combined_stats_of_tensors_without_finite_values() -> None:
    from ckptdoctor.values import TensorStats

    empty = TensorStats(None, None, None, None, 2, 1, 0)
    assert combined_stats([(empty, 3)]) == TensorStats(None, None, None, None, 2, 1, 0)


def test_inspect_values_group_row_shows_the_layers_statistics(lstm_file: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    res = invoke(["inspect", str(lstm_file), "--values"])
    assert res.exit_code == 0, res.output
    sd = torch.load(lstm_file, weights_only=True)
    lo, hi, _, _ = _torch_stats(torch.cat([v.flatten() for v in sd.values()]))
    row = next(line for line in res.stdout.splitlines() if line.startswith("(root)"))
    assert f"{lo:.4g} / {hi:.4g} /" in row, res.stdout
    assert row.rstrip().endswith(" 1/1")  # NaN/Inf of the layer


def test_values_that_cannot_be_read_are_a_finding_not_a_gap(tmp_path: Path) -> None:
    """One storage's compressed bytes damaged: torch.load raises nothing (its tensor holds whatever memory
    the failed decompression left: zeros, stale values, sometimes by chance the right ones); inspect
    --values reports the damaged tensor and still shows the other one's statistics."""
    import zipfile
    import zlib

    good = tmp_path / "good.pt"
    torch.save({"a": torch.arange(4000.0), "b": torch.ones(3)}, good)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            deflate = info.filename.endswith("/data/0")
            dst.writestr(info.filename, src.read(info),
                         compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    raw = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as zf:
        member = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
    start = payload_offset(raw, member)
    for i in range(start + 10, start + 40):
        raw[i] ^= 0x5A
    bad.write_bytes(bytes(raw))
    torch.load(bad, weights_only=True)  # no error from torch
    with zipfile.ZipFile(bad) as zf, pytest.raises(zlib.error):
        zf.read(member.filename)  # the member really is damaged
    res = invoke(["inspect", str(bad), "--values", "-v", "--format", "json"])
    assert res.exit_code == 1, res.output
    import json

    doc = json.loads(res.stdout)
    [finding] = [d for d in doc["diagnostics"] if d["code"] == "F107"]
    assert finding["found"] == ["a"] and "cannot be read" in finding["message"]
    stats = {t["name"]: t.get("values") for t in doc["tensors"]}
    assert stats["b"] and stats["b"]["min"] == 1.0 and not stats["a"]


def test_a_changed_byte_in_a_stored_storage_is_caught_by_its_crc(tmp_path: Path) -> None:
    """torch.load never checks the zip CRC-32: one flipped byte becomes a silently different weight.
    inspect --values reads every storage anyway and checks it."""
    import json
    import zipfile

    path = tmp_path / "model.pt"
    torch.save({"a": torch.arange(4000.0), "b": torch.ones(3)}, path)
    clean = invoke(["inspect", str(path), "--values", "--format", "json"])
    assert clean.exit_code == 0 and not json.loads(clean.stdout)["diagnostics"]
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        member = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
        assert member.compress_type == zipfile.ZIP_STORED
    start = payload_offset(raw, member)
    raw[start + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    loaded = torch.load(path, weights_only=True)
    assert not torch.equal(loaded["a"], torch.arange(4000.0))  # torch returns the changed weight, no error
    with zipfile.ZipFile(path) as zf, pytest.raises(zipfile.BadZipFile, match="CRC"):
        zf.read(member.filename)  # the archive's own CRC says so
    res = invoke(["inspect", str(path), "--values", "--format", "json"])
    assert res.exit_code == 1
    [d] = json.loads(res.stdout)["diagnostics"]
    assert d["code"] == "F107" and d["found"] == ["a"] and "CRC-32" in d["message"]


def test_values_of_a_large_tensor_are_read_window_by_window(tmp_path: Path) -> None:
    """A 160 MiB int8 tensor: read whole as float64 it would take 1.25 GiB; under a 1 GiB address-space
    limit --values still answers, and matches numpy on the same bytes."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    big = rng.integers(-128, 127, size=(160, 1 << 20), dtype=np.int8)
    path = tmp_path / "big.safetensors"
    save_file({"emb": big}, str(path))
    proc = run_with_memory_limit(["inspect", str(path), "--values", "--format", "json"], 1 << 30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    values = json.loads(proc.stdout)["tensors"][0]["values"]
    assert values["min"] == float(big.min()) and values["max"] == float(big.max())
    assert math.isclose(values["mean"], float(big.mean(dtype=np.float64)), rel_tol=1e-9)
    assert math.isclose(values["std"], float(big.std(dtype=np.float64)), rel_tol=1e-6)
    assert values["zeros"] == int((big == 0).sum())


def test_hdf5_values_are_read_slab_by_slab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Keras weights file's datasets are read in slabs of rows (bounded memory): with a tiny window the
    statistics still equal those of the whole dataset as h5py reads it."""
    import os

    import h5py
    import numpy as np

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from ckptdoctor import values

    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(70)])
    path = tmp_path / "dense.weights.h5"
    model.save_weights(path)
    monkeypatch.setattr(values, "WINDOW", 1000)  # 300x70 kernel: 22 slabs of 14 rows
    snap = read(path)
    with h5py.File(path) as f:
        for t in snap.tensors:
            expected = f[t.name][()].astype(np.float64)
            got = values.tensor_stats(t)
            assert (got.min, got.max) == (expected.min(), expected.max())
            assert math.isclose(got.mean, expected.mean(), rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(got.std, expected.std(), rel_tol=1e-9, abs_tol=1e-12)
    kernel = next(t for t in snap.tensors if t.shape == (300, 70))
    assert len(list(kernel.loader.chunks(1000))) == 22
