"""roundtrip: save, reload in a fresh process, compare bit for bit. Each subprocess runs once per module."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import ckd_hazard_models as M
import ckptdoctor
from ckptdoctor.testing import assert_roundtrip

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "examples", "article"))
import no_grad_chatbot as NG  # noqa: E402


@pytest.fixture(scope="module")
def clean_report():
    return assert_roundtrip(M.train_a_little(M.Clean()))


@pytest.fixture(scope="module")
def lossy():
    model = M.train_a_little(M.LosesState())
    return model, ckptdoctor.roundtrip(model)


def test_clean_model_is_bit_identical(clean_report):
    assert clean_report.ok and clean_report.loaded
    assert clean_report.compared == clean_report.identical == len(M.Clean().state_dict())
    assert clean_report.output["status"] == "equal"
    assert clean_report.diagnostics == []


def test_lost_state_shows_up_as_differences_with_causes(lossy):
    model, report = lossy
    assert report.loaded and not report.ok
    diffs = {d.subject: d for d in report.by_code("D150")}
    assert diffs["scale"].related == ["D101"] and "plain tensor attribute" in diffs["scale"].message
    assert diffs["counts"].related == ["D102"]
    assert diffs["blocks[0].weight"].related == ["D103"]
    assert diffs["scale"].details["max_abs_diff"] == pytest.approx(1.5)
    out = report.by_code("D151")[0]
    assert set(out.related) >= {"D101", "D102", "D103"}
    # the saved tensors themselves came back exactly
    assert report.identical == len(model.state_dict())


def test_whole_module_pickle_is_refused_by_weights_only():
    report = ckptdoctor.roundtrip(M.Clean(), save_as="module")
    failures = report.by_code("C150")
    assert failures and "Unsupported global" in failures[0].framework_behavior
    assert "ckd_hazard_models.Clean" in failures[0].framework_behavior
    assert report.by_code("C114")
    # with weights_only=False the importable class does load, and nothing else was lost
    assert report.loaded and report.compared == report.identical


def test_dataparallel_prefix_fails_strict_load():
    report = ckptdoctor.roundtrip(torch.nn.DataParallel(M.Clean()))
    failure = report.by_code("C150")[0]
    assert "Missing key(s)" in failure.framework_behavior and "module.emb.weight" in failure.framework_behavior
    assert "C131" in failure.related


def test_tied_weights_with_safetensors_save_fails_in_process():
    with pytest.raises(AssertionError, match="share memory"):
        assert_roundtrip(M.Tied(), save_as="safetensors")


def test_article_example2_custom_linear():
    model = M.train_a_little(M.small_chatbot())
    ok = ckptdoctor.roundtrip(model, rebuild=M.small_chatbot)
    assert ok.ok and ok.output["status"] == "equal", ok.render()
    missing = ckptdoctor.roundtrip(model, rebuild=M.small_chatbot_without_custom_layer)
    failure = missing.by_code("C150")[0]
    assert 'Unexpected key(s) in state_dict: "custom_linear.weight", "custom_linear.bias"' in \
        failure.framework_behavior
    assert not missing.loaded


def test_no_grad_does_not_lose_state_but_a_plain_attribute_does():
    kept = ckptdoctor.roundtrip(NG.calibrate(NG.NoGradChatbot()))
    assert kept.ok and kept.compared == kept.identical, kept.render()
    lost = ckptdoctor.roundtrip(NG.calibrate(NG.PlainAttributeChatbot()))
    diff = lost.by_code("D150")
    assert [d.subject for d in diff] == ["temperature"] and diff[0].related == ["D101"]
    assert lost.by_code("D151")


def test_cli_roundtrip_clean_exits_zero():
    src = os.path.join(HERE, "ckd_hazard_models.py")
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor.cli", "roundtrip", "--model", f"{src}:Clean",
                           "--format", "json"], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["roundtrip"]["loaded"] and doc["roundtrip"]["tensors_identical"] == len(M.Clean().state_dict())
    assert doc["diagnostics"] == []
