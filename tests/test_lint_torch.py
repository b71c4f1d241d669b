"""lint on real torch models: each predicted hazard is then shown to happen with the real framework."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

import ckd_hazard_models as M
import ckptdoctor
from ckptdoctor.diagnostics import Severity


def codes(model, **kw):
    return {d.code for d in ckptdoctor.lint(model, **kw).diagnostics}


def test_clean_model_has_no_findings():
    report = ckptdoctor.lint(M.Clean())
    assert report.diagnostics == [], report.render()
    assert report.ok


def test_lost_state_is_predicted_and_really_lost():
    model = M.train_a_little(M.LosesState())
    report = ckptdoctor.lint(model)
    by = {d.code: d for d in report.diagnostics}
    assert by["D101"].subject == "scale" and by["D101"].severity == Severity.ERROR
    assert by["D102"].subject == "counts"
    assert by["D103"].subject == "blocks" and "list" in by["D103"].message
    # what the linter predicted, by the real framework: none of the three is in the saved state
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf)
    assert not any(k.startswith(("scale", "counts", "blocks")) for k in saved)
    fresh = M.LosesState()
    fresh.load_state_dict(saved, strict=True)
    assert not torch.equal(fresh.scale, model.scale)
    assert not torch.equal(fresh.blocks[0].weight, model.blocks[0].weight)
    # and the plain attribute does not follow .double(), the buffer does
    model.double()
    assert model.scale.dtype == torch.float32 and model.counts.dtype == torch.float64


def test_tied_parameters_refused_by_safetensors(tmp_path):
    model = M.Tied()
    diag = ckptdoctor.lint(model).by_code("D104")[0]
    assert set(diag.found) == {"emb.weight", "out.weight"}
    assert diag.severity == Severity.WARNING
    assert ckptdoctor.lint(model, save_as="safetensors").by_code("D104")[0].severity == Severity.ERROR
    with pytest.raises(RuntimeError, match="share memory"):
        save_file(model.state_dict(), str(tmp_path / "t.safetensors"))


def test_view_wastes_the_bytes_reported_and_non_contiguous_is_refused(tmp_path):
    model = M.Views()
    report = ckptdoctor.lint(model)
    view = report.by_code("D105")[0]
    assert view.subject == "window"
    wasted = view.details["wasted_bytes"]
    assert wasted == 90 * 4
    # the real cost: the file with the view is larger than with a clone by exactly those bytes
    a, b = io.BytesIO(), io.BytesIO()
    torch.save({"window": model.window}, a)
    torch.save({"window": model.window.clone()}, b)
    assert len(a.getvalue()) - len(b.getvalue()) >= wasted - 64  # zip alignment padding differs slightly
    assert report.by_code("D106")[0].subject == "proj"
    with pytest.raises(ValueError, match="non contiguous"):
        save_file({"proj": model.proj.detach()}, str(tmp_path / "p.safetensors"))


def test_mixed_dtypes_and_meta_device():
    assert "D107" in codes(M.MixedDtypes())
    meta = torch.nn.Linear(3, 3, device="meta")
    diag = ckptdoctor.lint(meta).by_code("D108")[0]
    assert diag.severity == Severity.ERROR
    with pytest.raises(RuntimeError, match="Cannot copy out of meta tensor"):
        torch.nn.Linear(3, 3).load_state_dict(meta.state_dict())


def test_unpicklable_lambda_and_local_class():
    lam = ckptdoctor.lint(M.HoldsLambda()).by_code("C113")[0]
    assert lam.subject == "act"
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        torch.save(M.HoldsLambda(), io.BytesIO())
    local = ckptdoctor.lint(M.make_local_model())
    assert local.by_code("C112")
    assert ckptdoctor.lint(M.make_local_model(), save_as="module").by_code("C112")[0].severity == Severity.ERROR
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        torch.save(M.make_local_model(), io.BytesIO())


def test_wrapper_prefix_predicted_and_real():
    wrapped = torch.nn.DataParallel(M.Clean())
    diag = ckptdoctor.lint(wrapped).by_code("C131")[0]
    assert "'module.'" in diag.message
    assert all(k.startswith("module.") for k in wrapped.state_dict())
    result = M.Clean().load_state_dict(wrapped.state_dict(), strict=False)
    assert len(result.missing_keys) == len(M.Clean().state_dict())


def test_cli_lint_exit_status_and_json(tmp_path):
    src = os.path.join(os.path.dirname(__file__), "ckd_hazard_models.py")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    bad = subprocess.run([sys.executable, "-m", "ckptdoctor.cli", "lint", "--model", f"{src}:LosesState",
                          "--format", "json"], capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 1, bad.stderr
    doc = json.loads(bad.stdout)
    assert {d["code"] for d in doc["diagnostics"]} >= {"D101", "D102", "D103"}
    good = subprocess.run([sys.executable, "-m", "ckptdoctor.cli", "lint", "--model", f"{src}:Clean"],
                          capture_output=True, text=True, env=env, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "No findings" in good.stdout
