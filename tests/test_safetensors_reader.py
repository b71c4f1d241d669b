"""The safetensors reader against safetensors/torch themselves: names, shapes, dtypes, values, metadata,
tied-weight aliases, and every way a header can lie."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file, save_model

from ckptdoctor.errors import InputError
from ckptdoctor.readers import read


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          timeout=120)


def torch_dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


@pytest.fixture(scope="module")
def all_dtypes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(2, generator=g, dtype=torch.float64),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3),
        "i32": torch.arange(4, dtype=torch.int32),
        "i8": torch.tensor([-3, 4], dtype=torch.int8),
        "u8": torch.tensor([250, 4], dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "f8": torch.randn(4, generator=g).to(torch.float8_e4m3fn),
        "f8e5": torch.randn(4, generator=g).to(torch.float8_e5m2),
        "c64": torch.randn(3, generator=g, dtype=torch.complex64),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "layer.0.weight": torch.randn(8, 8, generator=g),
    }
    path = tmp_path_factory.mktemp("st") / "all.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt", "note": "made by the test"})
    return path


def test_header_matches_safe_open(all_dtypes: Path) -> None:
    snap = read(all_dtypes)
    assert snap.format == "safetensors"
    with safe_open(str(all_dtypes), framework="pt") as f:
        expected = {k: (tuple(f.get_tensor(k).shape), torch_dtype_name(f.get_tensor(k))) for k in f.keys()}  # noqa: SIM118
        meta = f.metadata()
    assert {t.name: (t.shape, t.dtype) for t in snap.tensors} == expected
    assert {k: snap.metadata[k] for k in meta} == meta
    assert snap.metadata["saved_by"] == "pytorch"
    with safe_open(str(all_dtypes), framework="pt") as f:
        for t in snap.tensors:
            assert t.nbytes == f.get_tensor(t.name).numel() * f.get_tensor(t.name).element_size()


def test_values_match_torch(all_dtypes: Path) -> None:
    snap = read(all_dtypes)
    with safe_open(str(all_dtypes), framework="pt") as f:
        for t in snap.tensors:
            ref = f.get_tensor(t.name)
            arr = t.read()
            assert arr.shape == tuple(ref.shape)
            if ref.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
                # compare bit patterns: ml_dtypes and torch share the encodings
                assert arr.view(np.uint8).tobytes() == ref.contiguous().view(torch.uint8).numpy().tobytes()
                assert np.array_equal(arr.astype(np.float32), ref.float().numpy())
            else:
                assert np.array_equal(arr, ref.numpy())


def test_cli_json_and_values(all_dtypes: Path) -> None:
    proc = cli("inspect", str(all_dtypes), "--format", "json", "--values")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["format"] == "safetensors"
    with safe_open(str(all_dtypes), framework="pt") as f:
        got = {t["name"]: t for t in out["tensors"]}
        assert set(got) == set(f.keys())
        for name in f.keys():  # noqa: SIM118
            ref = f.get_tensor(name)
            assert got[name]["shape"] == list(ref.shape)
            assert got[name]["dtype"] == torch_dtype_name(ref)
            stats = got[name]["values"]
            if ref.numel() == 0 or ref.is_complex():
                continue
            as_f = ref.double()
            assert stats["min"] == pytest.approx(as_f.min().item())
            assert stats["max"] == pytest.approx(as_f.max().item())
            assert stats["mean"] == pytest.approx(as_f.mean().item(), rel=1e-6, abs=1e-9)


def test_reading_the_header_imports_no_numpy_or_safetensors(all_dtypes: Path) -> None:
    code = ("import sys; from ckptdoctor.readers import read; s = read(sys.argv[1]); "
            "print(len(s.tensors), *(m in sys.modules for m in ('numpy', 'safetensors', 'torch', 'h5py')))")
    proc = subprocess.run([sys.executable, "-c", code, str(all_dtypes)], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["15", "False", "False", "False", "False"]


class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.out = torch.nn.Linear(4, 10, bias=False)
        self.out.weight = self.emb.weight


def test_save_model_aliases_are_visible(tmp_path: Path) -> None:
    path = tmp_path / "tied.safetensors"
    save_model(Tied(), str(path))
    with safe_open(str(path), framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    snap = read(path)
    assert snap.names == keys  # the file itself holds only the kept tensor
    # every metadata entry that names a dropped tensor is exposed as an alias of the kept one
    dropped = {k: v for k, v in meta.items() if v in keys}
    assert dropped and snap.metadata["aliases"] == dropped
    for alias, target in dropped.items():
        assert alias in snap.tensor(target).attrs["aliases"]
    model = Tied()
    assert set(model.state_dict()) == set(keys) | set(snap.metadata["aliases"])


# ---------------------------------------------------------------- headers that lie
def write_raw(path: Path, header: bytes | dict, data: bytes = b"", length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def safetensors_refuses(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="np") as f:
            list(f.keys())
    except Exception:
        return True
    return False


@pytest.mark.parametrize(("name", "header", "data", "length", "code"), [
    ("longer-than-file", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 10_000, "F107"),
    ("absurd-length", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 2**60, "F107"),
    ("not-json", b"{not json at all}", b"", None, "F107"),
    ("unknown-dtype", {"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "F107"),
    ("shape-vs-span", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, None, "F107"),
    ("negative-shape", {"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "F107"),
    ("overlap", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None, "F107"),
    ("truncated-data", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "F103"),
    ("lone-surrogate", b'{"a\\udc80": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4, None,
     "F107"),
    ("metadata-not-object", {"__metadata__": "x", "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}},
     b"\0", None, "F107"),
])
def test_bad_headers(tmp_path: Path, name: str, header: bytes | dict, data: bytes, length: int | None,
                     code: str) -> None:
    path = write_raw(tmp_path / f"{name}.safetensors", header, data, length)
    assert safetensors_refuses(path)
    with pytest.raises(InputError) as info:
        read(path)
    assert info.value.code == code


def test_absurd_header_length_allocates_nothing(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "absurd.safetensors", {"a": {}}, b"", 2**60)
    tracemalloc.start()
    with pytest.raises(InputError):
        read(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20


def test_gap_and_trailing_bytes_are_diagnosed_not_fatal(tmp_path: Path) -> None:
    header = {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
              "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}
    path = write_raw(tmp_path / "gap.safetensors", header, b"\1\2\0\0\3\4\x09\x09")
    assert safetensors_refuses(path)
    snap = read(path)
    assert [list(t.read()) for t in snap.tensors] == [[1, 2], [3, 4]]
    messages = [d.message for d in snap.diagnostics if d.code == "F107"]
    assert len(messages) == 2 and "before tensor 'b'" in messages[0] and "after the last tensor" in messages[1]


def test_zero_size_and_scalar_tensors(tmp_path: Path) -> None:
    path = tmp_path / "z.safetensors"
    save_file({"e": torch.zeros(0, 5), "s": torch.tensor(2.0), "x": torch.ones(2)}, str(path))
    snap = read(path)
    assert snap.tensor("e").read().shape == (0, 5)
    assert snap.tensor("s").read().shape == () and float(snap.tensor("s").read()) == 2.0


def test_surrogate_pair_names_read_as_safetensors_reads_them(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "emoji.safetensors",
                     b'{"a\\ud83d\\ude00": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', b"\1")
    with safe_open(str(path), framework="np") as f:
        expected = list(f.keys())
    assert [t.name for t in read(path).tensors] == expected == ["a\U0001F600"]
