"""`ckptdoctor demo`: the article's scenarios run with the real frameworks and are diagnosed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ckptdoctor.cli import COMMANDS
from ckptdoctor.demo import SCENARIOS


def test_every_step_names_a_real_command_and_a_shipped_script() -> None:
    scripts = Path(__file__).parents[1] / "src" / "ckptdoctor" / "demo" / "scripts"
    for scenario in SCENARIOS:
        assert (scripts / scenario.script).is_file()
        for step in scenario.steps:
            if step.argv[0] == "ckptdoctor":
                assert step.argv[1] in COMMANDS, step
            else:
                assert step.argv[:2] == ("python", scenario.script), step


def test_scenario_2_reproduces_the_article_and_diagnoses_it(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "demo", "--scenario", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "torch", "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = proc.stdout
    # what torch itself printed, then ckptdoctor's diagnosis of it
    assert 'Unexpected key(s) in state_dict: "custom_linear.weight", "custom_linear.bias"' in text
    assert "error[A102]" in text and "custom_linear" in text
    assert "W205" in text and "__main__.ChatbotModel" in text  # explain of the weights_only failure
    assert "C201" in text  # the whole-module pickle names its __main__ classes
    fixed = out / "chatbot_model_fixed.pth"
    assert fixed.is_file()

    import torch

    sys.path.insert(0, str(out))
    try:
        from example2_torch import ChatbotModel_No_Custom_Layer
    finally:
        sys.path.remove(str(out))
    model = ChatbotModel_No_Custom_Layer()
    result = model.load_state_dict(torch.load(fixed, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
