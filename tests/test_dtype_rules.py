"""D-family file checks against what torch, safetensors and Keras really do with the same files."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch
from safetensors.torch import save_file

import ckd_hazard_models as M
import ckptdoctor
from ckptdoctor.diagnostics import Severity
from ckptdoctor.frameworks.torch_spec import spec_from_module
from ckptdoctor.rules import run_model_checks, run_snapshot_checks


def mine(diags, *codes):
    return [d for d in diags if d.code in codes]


def test_bfloat16_file_unreadable_by_numpy(tmp_path):
    path = str(tmp_path / "bf.safetensors")
    save_file({"w": torch.ones(2, 2, dtype=torch.bfloat16), "b": torch.ones(2)}, path)
    diag = mine(run_snapshot_checks(ckptdoctor.read(path)), "D303")[0]
    assert diag.found == ["bfloat16"]
    # a plain numpy process (ml_dtypes, imported by keras, would register bfloat16 with numpy)
    code = "import sys; from safetensors.numpy import load_file; load_file(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "TypeError: data type 'bfloat16' not understood" in proc.stderr
    plain = str(tmp_path / "f32.safetensors")
    save_file({"b": torch.ones(2)}, plain)
    assert not mine(run_snapshot_checks(ckptdoctor.read(plain)), "D303")


def test_float_into_integer_buffer_truncates(tmp_path):
    path = str(tmp_path / "m.pt")
    model = M.IntBuffer()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["ids"] = torch.tensor([1.7, 2.2, 3.9])
    sd["lin.weight"] = sd["lin.weight"].half()
    torch.save(sd, path)
    diags = run_model_checks(ckptdoctor.read(path), spec_from_module(model))
    trunc = mine(diags, "D202")
    assert [d.subject for d in trunc] == ["ids"] and trunc[0].severity == Severity.ERROR
    widen = mine(diags, "D201")
    assert len(widen) == 1 and widen[0].severity == Severity.INFO and widen[0].subject == "lin.weight"
    # what torch really does: silent truncation, exact widening, assign keeps the file's dtype
    model.load_state_dict(torch.load(path))
    assert model.ids.tolist() == [1, 2, 3]
    assert model.lin.weight.dtype == torch.float32
    assert torch.equal(model.lin.weight, sd["lin.weight"].float())
    assigned = M.IntBuffer()
    assigned.load_state_dict(torch.load(path), assign=True)
    assert assigned.lin.weight.dtype == torch.float16


def test_narrowing_cast_is_a_warning_and_really_rounds(tmp_path):
    path = str(tmp_path / "f32.pt")
    src = M.IntBuffer()
    torch.save(src.state_dict(), path)
    half = M.IntBuffer().half()
    diag = mine(run_model_checks(ckptdoctor.read(path), spec_from_module(half)), "D201")[0]
    assert diag.severity == Severity.WARNING and "float32 -> float16" in diag.message
    half.load_state_dict(torch.load(path))
    assert not torch.equal(half.lin.weight.float(), src.lin.weight)


def test_same_dtypes_give_no_dtype_findings(tmp_path):
    path = str(tmp_path / "ok.pt")
    model = M.IntBuffer()
    torch.save(model.state_dict(), path)
    assert not mine(run_model_checks(ckptdoctor.read(path), spec_from_module(model)), "D201", "D202")


def test_keras_mixed_precision_file_stores_float32(tmp_path):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "article"))
    import dtype_chatbot as DC

    path = str(tmp_path / "mp.keras")
    DC.create_mixed_model(50, 4, 8, 6).save(path)
    snap = ckptdoctor.read(path)
    diag = mine(run_snapshot_checks(snap), "D301")[0]
    assert diag.found == "mixed_float16" and "stored as float32" in diag.message
    assert {t.dtype for t in snap.tensors} == {"float32"}
    plain = str(tmp_path / "f32.keras")
    DC.create_model(50, 4, 8, 6).save(plain)
    assert not mine(run_snapshot_checks(ckptdoctor.read(plain)), "D301", "D302")
