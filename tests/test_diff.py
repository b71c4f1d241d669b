"""``diff`` on files with known planted differences, and on identical content across formats."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file, save_model

import ckptdoctor.fixing.diff as diff_module
from ckptdoctor.fixing.diff import diff
from cli_helpers import invoke


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("diff")
    torch.manual_seed(0)
    a = {
        "same.weight": torch.randn(30, 20),
        "nudged.weight": torch.randn(40, 25),
        "reshaped.weight": torch.randn(6, 4),
        "removed.bias": torch.randn(5),
        "nan.weight": torch.randn(50),
        "retyped.weight": torch.randn(16),
        "bf16.weight": torch.randn(9).to(torch.bfloat16),
    }
    b = {k: v.clone() for k, v in a.items()}
    b["nudged.weight"][7, 3] += 1e-3
    b["reshaped.weight"] = b["reshaped.weight"].reshape(4, 6).clone()
    del b["removed.bias"]
    b["added.bias"] = torch.zeros(3)
    b["nan.weight"][11] = float("nan")
    b["retyped.weight"] = b["retyped.weight"].half()
    paths = {"a": d / "epoch3.pt", "b": d / "epoch4.pt", "a_st": d / "epoch3.safetensors",
             "a_legacy": d / "epoch3_legacy.pt"}
    torch.save(a, paths["a"])
    torch.save(b, paths["b"])
    save_file(a, paths["a_st"])
    torch.save(a, paths["a_legacy"], _use_new_zipfile_serialization=False)
    return paths


def _by_name(report: diff_module.DiffReport) -> dict[str, diff_module.TensorDiff]:
    return {t.name: t for t in report.tensors}


def test_planted_differences(planted: dict[str, Path]) -> None:
    report = diff(planted["a"], planted["b"])
    t = _by_name(report)
    assert t["same.weight"].status == "identical" and t["same.weight"].identical_bytes
    assert t["bf16.weight"].status == "identical"
    assert t["nudged.weight"].status == "differs"
    assert t["reshaped.weight"].status == "reshaped"
    assert t["removed.bias"].status == "removed"
    assert t["added.bias"].status == "added"
    assert t["nan.weight"].status == "differs" and t["nan.weight"].nonfinite_appeared == 1
    assert t["retyped.weight"].status == "retyped"
    codes = {(d.code, d.subject) for d in report.diagnostics}
    assert {("A301", "removed.bias"), ("A302", "added.bias"), ("A303", "reshaped.weight"),
            ("D401", "retyped.weight"), ("D402", "nudged.weight"), ("D403", "nan.weight")} <= codes
    assert not any(d.subject == "same.weight" for d in report.diagnostics)
    assert report.exit_code == 1


def test_statistics_match_numpy(planted: dict[str, Path]) -> None:
    a, b = torch.load(planted["a"]), torch.load(planted["b"])
    report = diff(planted["a"], planted["b"])
    t = _by_name(report)
    x = a["nudged.weight"].double().numpy().ravel()
    y = b["nudged.weight"].double().numpy().ravel()
    nudged = t["nudged.weight"]
    assert nudged.max_abs_diff == pytest.approx(np.max(np.abs(x - y)), rel=1e-6)
    assert nudged.rel_l2 == pytest.approx(np.linalg.norm(x - y) / np.linalg.norm(x), rel=1e-4)
    assert nudged.cosine == pytest.approx(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)), abs=1e-6)
    # a cast to float16: compared in value, the difference is the float16 rounding error
    r = t["retyped.weight"]
    ra = a["retyped.weight"].double().numpy()
    rb = b["retyped.weight"].double().numpy()
    assert r.max_abs_diff == pytest.approx(np.max(np.abs(ra - rb)), rel=1e-6) and r.max_abs_diff > 0
    # the NaN position is excluded from the value statistics and counted instead
    n = t["nan.weight"]
    assert (n.nan_a, n.nan_b, n.mismatched_nonfinite) == (0, 1, 1)
    assert n.max_abs_diff == 0.0


def test_tolerance(planted: dict[str, Path]) -> None:
    report = diff(planted["a"], planted["b"], tolerance=1e-2)
    t = _by_name(report)
    assert t["nudged.weight"].status == "within-tolerance"
    assert t["nan.weight"].status == "differs"  # a tolerance never admits NaN
    assert report.exit_code == 1  # the structural differences still count
    info = [d for d in report.diagnostics if d.subject == "nudged.weight"]
    assert [str(d.severity) for d in info] == ["info"]


def test_within_tolerance_only_exits_zero(tmp_path: Path) -> None:
    torch.manual_seed(1)
    a = {"w": torch.randn(100)}
    b = {"w": a["w"] + 5e-4}
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    assert diff(tmp_path / "a.pt", tmp_path / "b.pt").exit_code == 1
    assert diff(tmp_path / "a.pt", tmp_path / "b.pt", tolerance=1e-3).exit_code == 0
    assert diff(tmp_path / "a.pt", tmp_path / "b.pt", tolerance=1e-4).exit_code == 1


@pytest.mark.parametrize("other", ["a_st", "a_legacy"])
def test_identical_content_across_formats(planted: dict[str, Path], other: str) -> None:
    report = diff(planted["a"], planted[other])
    assert report.format_a == "torch-zip" and report.format_b != "torch-zip"
    assert report.exit_code == 0, [t.to_json() for t in report.tensors if t.differs]
    assert all(t.status == "identical" for t in report.tensors)
    assert len(report.tensors) == len(torch.load(planted["a"]))


def test_tied_pt_against_save_model_output(tmp_path: Path) -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(8, 3)
            self.out = torch.nn.Linear(3, 8)
            self.out.weight = self.emb.weight

    model = Tied()
    torch.save(model.state_dict(), tmp_path / "tied.pt")
    save_model(model, str(tmp_path / "tied.safetensors"))
    report = diff(tmp_path / "tied.pt", tmp_path / "tied.safetensors")
    assert report.exit_code == 0
    assert _by_name(report)["out.weight"].name_b == "emb.weight"
    # untied copies: same values, the sharing is reported
    untied = {k: v.clone() for k, v in model.state_dict().items()}
    save_file(untied, tmp_path / "untied.safetensors")
    report = diff(tmp_path / "tied.pt", tmp_path / "untied.safetensors")
    assert report.exit_code == 0
    assert [d.code for d in report.diagnostics] == ["A304"]


def test_chunked_streaming_gives_same_answer(planted: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _by_name(diff(planted["a"], planted["b"]))
    monkeypatch.setattr(diff_module, "CHUNK_ELEMS", 7)  # many chunks, NaN and the nudge in different ones
    monkeypatch.setattr(diff_module, "WINDOW_BYTES", 64)  # many mapped windows, merged across threads
    chunked = _by_name(diff(planted["a"], planted["b"]))
    for name, t in whole.items():
        c = chunked[name]
        assert c.status == t.status, name
        if t.max_abs_diff is not None:
            assert c.max_abs_diff == pytest.approx(t.max_abs_diff)
            assert c.rel_l2 == pytest.approx(t.rel_l2, rel=1e-5, abs=1e-12)
            assert c.cosine == pytest.approx(t.cosine, abs=1e-6)
            assert (c.nan_b, c.nonfinite_appeared) == (t.nan_b, t.nonfinite_appeared)


def test_hashes_are_blake2b_of_raw_bytes(planted: dict[str, Path]) -> None:
    a, b = torch.load(planted["a"]), torch.load(planted["b"])
    t = _by_name(diff(planted["a"], planted["b"], hashes=True))
    for name in ("same.weight", "nudged.weight", "bf16.weight"):
        assert t[name].hash_a == hashlib.blake2b(a[name].view(torch.uint8).numpy().tobytes()).hexdigest()
        assert t[name].hash_b == hashlib.blake2b(b[name].view(torch.uint8).numpy().tobytes()).hexdigest()
    assert t["same.weight"].hash_a == t["same.weight"].hash_b
    assert t["nudged.weight"].hash_a != t["nudged.weight"].hash_b


def test_training_checkpoint_part(tmp_path: Path) -> None:
    sd = {"w": torch.randn(4, 4), "b": torch.randn(4)}
    torch.save({"model": sd, "epoch": 3, "optimizer": {"state": {}}}, tmp_path / "ckpt.pt")
    save_file(sd, tmp_path / "model.safetensors")
    assert diff(tmp_path / "ckpt.pt", tmp_path / "model.safetensors").exit_code == 1
    report = diff(tmp_path / "ckpt.pt", tmp_path / "model.safetensors", key_a="model")
    assert report.exit_code == 0 and len(report.tensors) == 2


def test_cli_exit_codes_and_json(planted: dict[str, Path]) -> None:
    same = invoke(["diff", str(planted["a"]), str(planted["a_st"])])
    assert same.exit_code == 0, same.output
    assert "match" in same.output
    differ = invoke(["diff", str(planted["a"]), str(planted["b"]), "--format", "json"])
    assert differ.exit_code == 1
    doc = json.loads(differ.output)
    assert doc["tool"]["name"] == "ckptdoctor"
    assert {d["code"] for d in doc["diagnostics"]} >= {"A301", "A302", "A303", "D401", "D402", "D403"}
    assert all({"code", "name", "severity", "subject", "message", "expected", "found", "framework_behavior",
                "fix"} <= set(d) for d in doc["diagnostics"])
    tensors = {t["name"]: t for t in doc["diff"]["tensors"]}
    assert tensors["nudged.weight"]["status"] == "differs"
    assert math.isclose(tensors["nudged.weight"]["max_abs_diff"], 1e-3, rel_tol=1e-2)
    text = invoke(["diff", str(planted["a"]), str(planted["b"]), "-v"])
    assert text.exit_code == 1 and "nan-inf-appeared" in text.output and "same.weight" in text.output
    missing = invoke(["diff", str(planted["a"]), "/nonexistent.pt"])
    assert missing.exit_code == 2 and "F101" in missing.output


def test_gguf_quantized_against_float_shows_the_quantization_error(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize, quantize

    weights = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
    paths = {}
    for name, qtype in (("f32", None), ("q8", Q.Q8_0)):
        w = gguf.GGUFWriter(str(tmp_path / f"{name}.gguf"), "llama")
        if qtype is None:
            w.add_tensor("w", weights)
        else:
            w.add_tensor("w", quantize(weights, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        paths[name] = tmp_path / f"{name}.gguf"
    report = diff(paths["f32"], paths["q8"])
    (t,) = report.tensors
    decoded = dequantize(quantize(weights, Q.Q8_0), Q.Q8_0).astype(np.float64)
    assert t.status == "retyped" and (t.dtype_a, t.dtype_b) == ("float32", "Q8_0")
    assert t.max_abs_diff == pytest.approx(np.abs(weights - decoded).max())
    assert t.cosine == pytest.approx(float(weights.ravel() @ decoded.ravel()
                                           / np.linalg.norm(weights) / np.linalg.norm(decoded)))
    assert [x.status for x in diff(paths["q8"], paths["q8"]).tensors] == ["identical"]
