"""Bad input through the real CLI: one line on stderr with the expected F code, exit status 2, no
traceback, and no allocation sized from an untrusted header."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import run_with_memory_limit


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_empty_dir(d: Path) -> Path:
    (d / "empty").mkdir()
    return d / "empty"


def make_truncated_zip(d: Path) -> Path:
    path = d / "model.pt"
    torch.save({"w": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_safetensors(d: Path, length: int, header: bytes) -> Path:
    path = d / "model.safetensors"
    path.write_bytes(struct.pack("<Q", length) + header + b"\0" * 16)
    return path


def make_hdf5(d: Path) -> Path:
    path = d / "data.h5"
    with h5py.File(path, "w") as f:
        f["measurements"] = np.arange(10.0)
    return path


def make_keras_without_weights(d: Path) -> Path:
    path = d / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}))
        zf.writestr("config.json", json.dumps({"module": "keras", "class_name": "Sequential",
                                               "config": {"name": "s", "layers": []}}))
    return path


def make_dir_of_lfs_pointers(d: Path) -> Path:
    folder = d / "clone"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(LFS)
    (folder / "config.json").write_text("{}")
    return folder


LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 498000000\n"
HEADER = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()

CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing-path": (lambda d: d / "nope.pt", "F101"),
    "empty-dir": (make_empty_dir, "F109"),
    "empty-file": (lambda d: write(d / "empty.pt", b""), "F102"),
    "truncated-zip": (make_truncated_zip, "F103"),
    "safetensors-header-longer-than-file": (lambda d: make_safetensors(d, 1 << 20, HEADER), "F107"),
    "safetensors-absurd-header-length": (lambda d: make_safetensors(d, 2**60, HEADER), "F107"),
    "safetensors-invalid-json": (lambda d: make_safetensors(d, 20, b'{"w": {"dtype": "F3'), "F107"),
    "html-page": (lambda d: write(d / "model.bin", b"<!DOCTYPE html>\n<html><head><title>Sign in</title>"
                                                   b"</head></html>"), "F106"),
    "git-lfs-pointer": (lambda d: write(d / "pytorch_model.bin", LFS), "F105"),
    "hdf5-not-keras": (make_hdf5, "F108"),
    "keras-zip-without-weights": (make_keras_without_weights, "F107"),
    "folder-of-lfs-pointers": (make_dir_of_lfs_pointers, "F105"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    make, code = CASES[case]
    path = make(tmp_path)
    for fmt in ("text", "json"):
        proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path), "--format", fmt],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "KERAS_BACKEND": "torch"})
        assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"error[{code}]: "), lines[0]
        if fmt == "text":
            assert proc.stdout == ""
        else:  # a pipeline still gets a document: the error as an F diagnostic
            doc = json.loads(proc.stdout)
            assert doc["error"]["kind"] == "input" and doc["error"]["code"] == code
            assert [d["code"] for d in doc["diagnostics"]] == [code]
            assert doc["diagnostics"][0]["severity"] == "error"
            assert doc["summary"]["error"] == 1
            assert doc["error"]["message"] in lines[0]


def test_absurd_header_length_is_refused_before_reading(tmp_path: Path) -> None:
    """The header length 2**60 is checked against the file size before any read: with the address space
    capped at 1 GB, the reader still answers F107, and the process's peak memory stays small."""
    path = make_safetensors(tmp_path, 2**60, HEADER)
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from ckptdoctor.errors import InputError\n"
            "from ckptdoctor.readers import read\n"
            "try:\n    read(sys.argv[1])\nexcept InputError as e:\n    print(e.code)\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    got_code, peak_kb = proc.stdout.split()
    assert got_code == "F107"
    assert int(peak_kb) < 100_000  # KB


def test_undecodable_strings_in_a_keras_file_still_give_valid_utf8_output(tmp_path: Path) -> None:
    """A damaged byte inside an HDF5 string attribute (the model config) comes back from h5py as a lone
    surrogate; the report must still be valid UTF-8 JSON and text, even with a strict stdout encoder."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    src = tmp_path / "model.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(src)
    data = src.read_bytes()
    at = data.index(b"GlorotUniform")
    path = write(tmp_path / "damaged.h5", data[:at + 1] + b"\xc9" + data[at + 2:])
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONIOENCODING": "utf-8:strict"}
    for fmt in ("json", "text"):
        proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path), "--format", fmt],
                              capture_output=True, timeout=120, env=env)
        assert proc.returncode in (0, 1), proc.stderr.decode("utf-8", "replace")
        out = proc.stdout.decode("utf-8")  # strict: raises on invalid UTF-8
        if fmt == "json":
            classes = {c["name"] for c in json.loads(out)["files"][0]["classes"]}
            assert "G\ufffdorotUniform" in classes, classes
        else:
            assert "dense" in out


def _onnx_like() -> bytes:
    """An ONNX ModelProto's opening fields, encoded by the spec: ir_version=8, producer_name, graph."""
    graph = b"\x0a\x04Relu"  # GraphProto.node (bytes are not decoded further)
    return b"\x08\x08" + b"\x12\x07pytorch" + b"\x1a\x032.0" + b"\x3a" + bytes([len(graph)]) + graph + b"\x42\x02\x10\x11"


@pytest.mark.parametrize(("kind", "what"), [
    ("gzip", "this is gzip-compressed"), ("bz2", "this is bzip2-compressed"), ("xz", "this is xz-compressed"),
    ("tar", "a tar archive"), ("onnx", "this is an ONNX model"), ("png", "this is a PNG image"),
    ("ggjt", "this is a legacy GGML file"),
])
def test_other_well_known_formats_are_named(tmp_path: Path, kind: str, what: str) -> None:
    """A compressed checkpoint, an archive, an exported ONNX model: one line that says what the file is."""
    import bz2
    import gzip
    import lzma
    import tarfile

    ckpt = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, ckpt)
    data = ckpt.read_bytes()
    path = tmp_path / f"model.{kind}"
    if kind == "tar":
        with tarfile.open(path, "w") as tar:
            tar.add(ckpt, arcname="model.pt")
    else:
        path.write_bytes({"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
                          "onnx": lambda _: _onnx_like(), "png": lambda _: b"\x89PNG\r\n\x1a\n" + bytes(64),
                          "ggjt": lambda _: b"tjgg\x03\x00\x00\x00" + bytes(64)}[kind](data))
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error[F104]: ") and what in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_text_is_not_taken_for_onnx(tmp_path: Path) -> None:
    path = tmp_path / "notes.bin"
    path.write_bytes(b"\x08\x08 not a protobuf at all, just bytes that start like one" * 10)
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2 and "unrecognised content" in proc.stderr


def test_deflated_data_pkl_bomb_is_not_inflated(tmp_path: Path) -> None:
    """A re-zipped torch checkpoint whose data.pkl declares 1 GiB from a few KB: refused before inflating
    (F113), under a 512 MB address-space limit that inflating it would break."""

    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    with zipfile.ZipFile(good) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    pkl = next(n for n in members if n.endswith("/data.pkl"))
    members[pkl] = members[pkl] + bytes(1 << 30)  # same pickle, STOP first, then 1 GiB of padding
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name == pkl else zipfile.ZIP_STORED)
    assert bomb.stat().st_size < 4 << 20
    del members
    proc = run_with_memory_limit(["inspect", str(bomb)], 512 << 20)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error[F113]: ") and "decompression bomb" in proc.stderr
