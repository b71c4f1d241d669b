"""The GGUF reader against the ``gguf`` package (llama.cpp's own Python reader/writer, a test-only
dependency): names, shapes, types, offsets, metadata and values, quantized block sizes, big-endian files,
and headers that lie about their sizes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402

from ckptdoctor.errors import InputError  # noqa: E402
from ckptdoctor.readers import read  # noqa: E402
from ckptdoctor.readers.gguf import GGML_TYPES  # noqa: E402
from ckptdoctor.readers.sniff import sniff  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "KERAS_BACKEND": "torch"})


def write(path: Path, endian: Any = None, n_tokens: int = 300) -> Path:
    kwargs = {"endianess": endian} if endian is not None else {}
    w = gguf.GGUFWriter(str(path), "llama", **kwargs)
    w.add_name("tiny-chatbot")
    w.add_context_length(256)
    w.add_embedding_length(64)
    for fn, key, value in (("add_uint8", "t.u8", 7), ("add_int8", "t.i8", -3), ("add_uint16", "t.u16", 600),
                           ("add_int16", "t.i16", -600), ("add_uint32", "t.u32", 70000),
                           ("add_int32", "t.i32", -70000), ("add_float32", "t.f32", 1.5),
                           ("add_uint64", "t.u64", 2**40), ("add_int64", "t.i64", -2**40),
                           ("add_float64", "t.f64", 2.25), ("add_bool", "t.bool", True),
                           ("add_string", "t.str", "héllo {{ chat }}")):
        getattr(w, fn)(key, value)
    w.add_array("t.ints", [1, 2, 3])
    w.add_array("t.strs", ["a", "bc"])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(n_tokens)])
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((n_tokens, 64)).astype(np.float32))
    w.add_tensor("output.weight", rng.standard_normal((64, 32)).astype(np.float16))
    w.add_tensor("blk.0.ffn.bias", np.arange(10, dtype=np.int32))
    w.add_tensor("blk.0.scale", np.array([0.5, -2.0, 3.25], dtype=np.float64))
    for qname, qtype in (("attn_q", GGMLQuantizationType.Q8_0), ("attn_k", GGMLQuantizationType.Q4_0),
                         ("attn_v", GGMLQuantizationType.TQ2_0)):
        q = gguf.quants.quantize(rng.standard_normal((4, 256)).astype(np.float32), qtype)
        w.add_tensor(f"blk.0.{qname}.weight", q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {"little": write(root / "tiny.gguf"),
            "big": write(root / "tiny-be.gguf", endian=gguf.GGUFEndian.BIG)}


def flat(v: Any) -> list[Any]:
    return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]


@pytest.mark.parametrize("which", ["little", "big"])
def test_tensors_match_gguf_reader(files: dict[str, Path], which: str) -> None:
    path = files[which]
    assert sniff(str(path)) == "gguf"
    snap = read(path)
    ref = gguf.GGUFReader(str(path), "r")
    assert snap.format == "gguf" and snap.framework == "gguf"
    assert snap.names == [t.name for t in ref.tensors]
    for t, r in zip(snap.tensors, ref.tensors, strict=True):
        assert t.shape == tuple(int(d) for d in reversed(r.shape)), t.name  # numpy order
        assert t.attrs["ggml_type"] == r.tensor_type.name
        assert t.attrs["data_offset"] == r.data_offset
        assert t.nbytes == r.n_bytes
        if t.attrs.get("quantized"):
            assert t.dtype == r.tensor_type.name
            expected = gguf.quants.dequantize(r.data, r.tensor_type)  # llama.cpp's Python reference
            values = t.read()
            assert values.shape == t.shape == expected.shape and values.dtype == np.float32
            assert np.array_equal(values, expected)
        else:
            values = t.read()
            assert values.shape == r.data.shape
            assert np.array_equal(np.asarray(values, dtype=np.float64), np.asarray(r.data, dtype=np.float64))
    assert snap.metadata["alignment"] == ref.alignment
    assert snap.metadata["tensor_data_offset"] == ref.data_offset


def test_metadata_matches_gguf_reader(files: dict[str, Path]) -> None:
    snap = read(files["little"])
    ref = gguf.GGUFReader(str(files["little"]), "r")
    kv = snap.metadata["gguf_metadata"]
    types = snap.metadata["gguf_metadata_types"]
    assert set(kv) == {k for k in ref.fields if not k.startswith("GGUF.")}
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        expected = field.contents()
        if key == "tokenizer.ggml.tokens":  # large arrays are summarised, not dumped
            assert kv[key] == {"array_of": "string", "length": len(expected)}
            continue
        got = kv[key]
        if isinstance(expected, float):
            assert got == pytest.approx(expected), key
        else:
            assert (flat(got) if isinstance(got, list) else got) == expected, key
        main = field.types[0]
        assert types[key] == ("string" if main == gguf.GGUFValueType.STRING else
                              f"array[{field.types[1].name.lower() if field.types[1] != gguf.GGUFValueType.ARRAY else 'array'}]"
                              if main == gguf.GGUFValueType.ARRAY else main.name.lower()), key
    assert snap.metadata["architecture"] == ref.fields["general.architecture"].contents()
    assert snap.metadata["name"] == "tiny-chatbot"
    assert snap.metadata["context_length"] == ref.fields["llama.context_length"].contents()
    assert snap.metadata["vocab_size"] == len(ref.fields["tokenizer.ggml.tokens"].contents())


def test_block_sizes_match_ggml() -> None:
    """Our table against gguf's GGML_QUANT_SIZES for every type both know."""
    theirs = {t.value: (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}
    ours = {k: (name, block, nbytes) for k, (name, _dtype, block, nbytes) in GGML_TYPES.items()}
    common = set(theirs) & set(ours)
    assert len(common) >= 30
    for k in common:
        assert ours[k] == theirs[k], k


def test_cli_json_and_values(files: dict[str, Path]) -> None:
    r = cli("inspect", str(files["little"]), "--format", "json", "--values")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ref = {t.name: t for t in gguf.GGUFReader(str(files["little"]), "r").tensors}
    assert out["format"] == "gguf" and out["framework"] == "gguf"
    for t in out["tensors"]:
        r = ref[t["name"]]
        data = gguf.quants.dequantize(r.data, r.tensor_type) if t["attrs"].get("quantized") else r.data
        data = np.asarray(data, dtype=np.float64)
        assert t["values"]["max"] == pytest.approx(data.max())
        assert t["values"]["mean"] == pytest.approx(data.mean())
    assert sum(bool(t["attrs"].get("quantized")) for t in out["tensors"]) == 3


# ---- bad input ------------------------------------------------------------------------------------------

def header(version: int = 3, n_tensors: int = 0, n_kv: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def kv_string(key: str, value: bytes, declared: int | None = None) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, len(value) if declared is None else declared) + value


BAD = {
    "bad-version": (header(version=77), "F107"),
    "version-1": (header(version=1), "F107"),
    "absurd-kv-count": (header(n_kv=2**60) + b"\0" * 64, "F107"),
    "absurd-tensor-count": (header(n_tensors=2**62) + b"\0" * 64, "F107"),
    "absurd-string": (header(n_kv=1) + kv_string("general.name", b"x", declared=2**50), "F103"),
    "absurd-array": (header(n_kv=1) + struct.pack("<Q", 1) + b"a" + struct.pack("<IIQ", 9, 10, 2**59) + b"\0" * 32,
                     "F107"),
    "short-header": (b"GGUF\x03\x00", "F103"),
    "unknown-value-type": (header(n_kv=1) + struct.pack("<Q", 1) + b"a" + struct.pack("<I", 99) + b"\0" * 16,
                           "F107"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_headers_are_one_line_exit_2_without_big_allocations(tmp_path: Path, case: str) -> None:
    data, code = BAD[case]
    path = tmp_path / f"{case}.gguf"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as exc:
            read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.code == code, exc.value.message
    assert peak < 4 << 20  # nothing sized from the lying field (gguf.GGUFReader itself may try to)
    r = cli("inspect", str(path))
    assert r.returncode == 2 and code in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_truncated_file(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["little"].read_bytes()
    ref = gguf.GGUFReader(str(files["little"]), "r")
    cut_data = tmp_path / "cut-data.gguf"  # the header is whole, the last tensor's bytes are not
    cut_data.write_bytes(data[: ref.tensors[-1].data_offset + 3])
    with pytest.raises(InputError) as exc:
        read(cut_data)
    assert exc.value.code == "F103" and ref.tensors[-1].name in exc.value.message
    cut_header = tmp_path / "cut-header.gguf"
    cut_header.write_bytes(data[:300])
    with pytest.raises(InputError) as exc:
        read(cut_header)
    assert exc.value.code in ("F103", "F107")
    r = cli("inspect", str(cut_data))
    assert r.returncode == 2 and "F103" in r.stderr + r.stdout
