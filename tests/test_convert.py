"""``convert``: checked tensor by tensor against torch.load / h5py / keras, and loaded by safetensors."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_model

from ckptdoctor.errors import InputError, UsageError
from ckptdoctor.fixing.convert import H5_PATHS_KEY, KERAS_PATHS_KEY, convert
from cli_helpers import invoke
from zip_helpers import payload_offset


class Tied(torch.nn.Module):
    """Tied embedding/output weights, bf16 and fp8 buffers, an int buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(12, 6)
        self.out = torch.nn.Linear(6, 12)
        self.out.weight = self.emb.weight
        self.register_buffer("scale_bf16", torch.randn(5).to(torch.bfloat16))
        self.register_buffer("q_e4m3", (torch.randn(7) * 10).to(torch.float8_e4m3fn))
        self.register_buffer("q_e5m2", (torch.randn(7) * 10).to(torch.float8_e5m2))
        self.register_buffer("steps", torch.arange(4, dtype=torch.int64))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    model = Tied()
    sd = model.state_dict()
    plain = dict(sd)
    plain["transposed"] = torch.randn(4, 9).t()  # non-contiguous: written contiguous
    paths = {
        "zip": d / "tied.pt",
        "legacy": d / "legacy.pt",
        "train": d / "train.pt",
        "reference": d / "reference.safetensors",
    }
    torch.save(plain, paths["zip"])
    legacy_sd = {k: v for k, v in plain.items() if not k.startswith("q_")}
    torch.save(legacy_sd, paths["legacy"], _use_new_zipfile_serialization=False)
    opt = torch.optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # the optimizer now holds exp_avg / exp_avg_sq tensors
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, paths["train"])
    save_model(model, str(paths["reference"]))
    return paths


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Bit pattern of any tensor, so float8/bf16 comparisons are exact (NaN-safe)."""
    t = t.contiguous()
    return t.view(torch.uint8) if t.dtype != torch.bool else t


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes()).hexdigest()


def test_zip_to_safetensors_matches_torch_load(files: dict[str, Path], tmp_path: Path) -> None:
    before = _digest(files["zip"])
    out = tmp_path / "out.safetensors"
    report = convert(files["zip"], out)
    assert _digest(files["zip"]) == before  # the input is never modified
    assert report.verified
    expected = torch.load(files["zip"])
    back = load_file(out)
    # tied weights stored once, as save_model does: the dropped name is in the metadata
    assert set(back) == set(expected) - {"out.weight"}
    for name, tensor in back.items():
        assert tensor.dtype == expected[name].dtype, name
        assert tensor.shape == expected[name].shape, name
        assert torch.equal(_bits(tensor), _bits(expected[name])), name
    assert back["q_e4m3"].dtype == torch.float8_e4m3fn and back["scale_bf16"].dtype == torch.bfloat16
    assert report.made_contiguous == ["transposed"]


def test_alias_metadata_matches_save_model(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.safetensors"
    convert(files["zip"], out)
    with safe_open(out, "pt") as ours, safe_open(files["reference"], "pt") as ref:
        ours_meta, ref_meta = ours.metadata(), ref.metadata()
        ref_names = set(ref.keys())
    # every alias save_model records, we record the same way (dropped -> kept)
    assert {k: ours_meta[k] for k in ref_meta} == ref_meta
    assert ref_names <= set(load_file(out))
    torch.manual_seed(1)
    fresh = Tied()
    fresh.register_buffer("transposed", torch.zeros(9, 4))
    missing, unexpected = load_model(fresh, str(out))
    assert not missing and not unexpected
    assert fresh.out.weight.data_ptr() == fresh.emb.weight.data_ptr()  # still tied
    assert torch.equal(fresh.out.weight, torch.load(files["zip"])["out.weight"])


def test_legacy_format(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "legacy.safetensors"
    report = convert(files["legacy"], out)
    assert report.source_format == "torch-legacy"
    expected = torch.load(files["legacy"])
    back = load_file(out)
    assert set(back) | set(report.aliases) == set(expected)
    assert report.aliases == {"out.weight": "emb.weight"}
    for name, tensor in back.items():
        assert torch.equal(_bits(tensor), _bits(expected[name])), name


def test_training_checkpoint_needs_key(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    with pytest.raises(InputError) as err:
        convert(files["train"], out)
    assert err.value.code == "D552" and "--key model" in err.value.one_line()
    assert not out.exists()
    report = convert(files["train"], out, key="model")
    expected = torch.load(files["train"])["model"]
    back = load_file(out)
    assert set(back) | set(report.aliases) == set(expected)
    for name, tensor in back.items():
        assert torch.equal(_bits(tensor), _bits(expected[name])), name
    assert any(name.startswith("optimizer.") for name in report.skipped)


def test_unknown_key_lists_the_keys(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model, optimizer"):
        convert(files["train"], tmp_path / "x.safetensors", key="ema")


def test_refuses_to_overwrite_without_force(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="--force"):
        convert(files["zip"], out)
    assert out.read_bytes() == b"keep me"
    convert(files["zip"], out, force=True)
    assert "emb.weight" in load_file(out)
    with pytest.raises(UsageError, match="input"):
        convert(files["zip"], files["zip"], force=True)


def test_overlapping_views_without_owner_are_refused(tmp_path: Path) -> None:
    base = torch.arange(10.0)
    views = {"a": base[0:6], "b": base[4:10]}
    src = tmp_path / "views.pt"
    torch.save(views, src)

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("a", views["a"])
            self.register_buffer("b", views["b"])

    with pytest.raises(RuntimeError, match="no suitable name"):  # the reference refuses it too
        save_model(Holder(), str(tmp_path / "ref.safetensors"))
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out.safetensors")
    assert err.value.code == "D551"


def test_slice_of_complete_tensor_becomes_alias(tmp_path: Path) -> None:
    big = torch.arange(12.0)
    src = tmp_path / "slice.pt"
    torch.save({"big": big, "part": big[2:5]}, src)
    out = tmp_path / "slice.safetensors"
    report = convert(src, out)

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("big", big.clone())
            self.register_buffer("part", self.big[2:5])

    ref = tmp_path / "ref.safetensors"
    save_model(Holder(), str(ref))
    with safe_open(ref, "pt") as f:
        assert report.aliases == f.metadata() == {"part": "big"}
        assert list(f.keys()) == list(load_file(out))


def test_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "q.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "ComplexHalf support is experimental"
        torch.save({"x": torch.randn(4).to(torch.complex32), "y": torch.ones(2)}, src)
    out = tmp_path / "q.safetensors"
    with pytest.raises(InputError) as err:
        convert(src, out)
    assert err.value.code == "D550" and "complex32" in err.value.message
    assert not out.exists()


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    import keras

    d = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(7, 2, name="emb"),
                              keras.layers.LSTM(3, name="lstm"), keras.layers.Dense(4, name="d1")])
    paths = {"weights": d / "m.weights.h5", "keras": d / "m.keras", "legacy": d / "m.h5"}
    model.save_weights(paths["weights"])
    model.save(paths["keras"])
    model.save(paths["legacy"])
    return {"model": model, **paths}


@pytest.mark.parametrize("kind", ["weights", "keras", "legacy"])
def test_keras_to_safetensors(keras_files: dict[str, object], kind: str, tmp_path: Path) -> None:
    src = keras_files[kind]
    assert isinstance(src, Path)
    out = tmp_path / "k.safetensors"
    report = convert(src, out)
    with safe_open(out, "np") as f:
        meta = f.metadata()
        back = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    keras_paths = json.loads(meta[KERAS_PATHS_KEY]) if KERAS_PATHS_KEY in meta else {k: k for k in back}
    by_keras_path = {p: name for name, p in keras_paths.items()}
    model = keras_files["model"]
    variables = model.weights  # type: ignore[attr-defined]
    assert len(back) == len(variables) == len(report.tensors)
    for var in variables:  # every Keras variable is found through the mapping, with its exact values
        name = by_keras_path[var.path]
        assert np.array_equal(back[name], np.asarray(var.numpy())), var.path
    # and each tensor equals the HDF5 dataset the mapping names
    h5_paths = json.loads(meta[H5_PATHS_KEY]) if H5_PATHS_KEY in meta else {k: k for k in back}
    h5_file = src
    if kind == "keras":  # a .keras zip holds its weights as model.weights.h5
        with zipfile.ZipFile(src) as zf:
            h5_file = Path(zf.extract("model.weights.h5", tmp_path))
    with h5py.File(h5_file, "r") as h5:
        for name, arr in back.items():
            assert np.array_equal(arr, h5[h5_paths[name]][()])


def test_cli_convert_json_and_exit_codes(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli.safetensors"
    result = invoke(["convert", str(files["train"]), "-o", str(out), "--key", "model", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["tool"]["name"] == "ckptdoctor" and doc["diagnostics"] == []
    assert doc["convert"]["aliases"] == {"out.weight": "emb.weight"}
    assert doc["convert"]["verified"] is True
    assert sorted(t["name"] for t in doc["convert"]["tensors"]) == sorted(load_file(out))
    again = invoke(["convert", str(files["train"]), "-o", str(out), "--key", "model"])
    assert again.exit_code == 2 and "--force" in again.output
    bad = invoke(["convert", str(files["train"]), "-o", str(tmp_path / "y.safetensors")])
    assert bad.exit_code == 2 and "D552" in bad.output and "Traceback" not in bad.output
    text = invoke(["convert", str(files["zip"]), "-o", str(tmp_path / "z.safetensors")])
    assert text.exit_code == 0 and "out.weight -> emb.weight" in text.output


def test_conjugate_view_is_written_with_its_values_not_as_an_alias(tmp_path: Path) -> None:
    """z and z.conj() share one storage in the .pt, but they are different tensors: the conjugate is written
    out (resolved, as torch.load gives it), never recorded as an alias of z, and diff agrees."""
    z = torch.randn(4, dtype=torch.complex64)
    other = torch.randn(3, dtype=torch.complex64)
    src = tmp_path / "bits.pt"
    torch.save({"plain": z, "conj": z.conj(), "neg": other.conj().imag}, src)
    out = tmp_path / "bits.safetensors"
    report = convert(src, out)
    assert report.aliases == {}
    loaded = torch.load(src, weights_only=True)
    written = load_file(str(out))
    assert set(written) == set(loaded)
    for name, tensor in loaded.items():
        assert torch.equal(written[name], tensor.resolve_conj().resolve_neg()), name
    res = invoke(["diff", str(src), str(out)])
    assert res.exit_code == 0 and "3 identical" in res.stdout


def test_damaged_storage_is_not_converted(tmp_path: Path) -> None:
    """One flipped byte in a stored storage: torch.load returns the changed weight silently; convert
    refuses (its CRC-32 fails) and writes nothing."""
    src = tmp_path / "model.pt"
    torch.save({"a": torch.arange(4000.0), "b": torch.ones(3)}, src)
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        member = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
    raw[payload_offset(raw, member) + 64] ^= 0x01
    src.write_bytes(bytes(raw))
    assert not torch.equal(torch.load(src, weights_only=True)["a"], torch.arange(4000.0))
    out = tmp_path / "model.safetensors"
    with pytest.raises(InputError) as err:
        convert(src, out)
    assert err.value.code == "F107" and "CRC-32" in err.value.message and not out.exists()
