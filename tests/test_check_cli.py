"""``ckptdoctor check`` on the command line: text, JSON and SARIF output, and exit codes."""

from __future__ import annotations

import json
import os

import pytest

from cli_helpers import invoke

pytest.importorskip("torch")
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples", "article")
TORCH_T = os.path.join(EXAMPLES, "torch_chatbot.py")
KERAS_T = os.path.join(EXAMPLES, "keras_chatbot.py")
ARGS = json.dumps({"vocab_size": 1000, "embedding_dim": 64, "hidden_size": 128})


@pytest.fixture(scope="module")
def article(tmp_path_factory):
    import sys

    sys.path.insert(0, EXAMPLES)
    import torch_chatbot

    return torch_chatbot.save_article_checkpoint(str(tmp_path_factory.mktemp("cli")))


def run(*args: str):
    return invoke(["check", *args], catch_exceptions=False)


def test_article_example2_text(article):
    res = run(article, "--model", f"{TORCH_T}:ChatbotModel_No_Custom_Layer", "--model-args", ARGS)
    assert res.exit_code == 1
    assert "A102" in res.output and "custom_linear" in res.output
    assert "meta device" in res.output
    assert "custom_linear.weight" in res.output  # the key list is in the summary line
    verbose = run(article, "--model", f"{TORCH_T}:ChatbotModel_No_Custom_Layer", "--model-args", ARGS, "-v")
    assert "Unexpected key(s) in state_dict" in verbose.output  # the predicted RuntimeError text


def test_matching_file_exits_zero_with_no_findings(article):
    res = run(article, "--model", f"{TORCH_T}:ChatbotModel", "--model-args", ARGS, "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert doc["diagnostics"] == [] and doc["summary"]["error"] == 0
    assert doc["subject"]["model"]["class"] == "ChatbotModel"
    assert {p["outcome"] for p in doc["framework_behavior"]} == {"ok"}


def test_json_contract_for_a_rename(article):
    res = run(article, "--model", f"{TORCH_T}:ChatbotModelRenamedHead", "--model-args", ARGS, "--format", "json")
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert doc["tool"]["name"] == "ckptdoctor"
    diag = next(d for d in doc["diagnostics"] if d["code"] == "A105")
    for field in ("code", "name", "severity", "subject", "message", "expected", "found", "framework_behavior", "fix"):
        assert field in diag
    assert diag["fix_plan"] == {"kind": "rename-keys", "description": "rename 'fc' to 'head'",
                                "data": {"mapping": {"fc.weight": "head.weight", "fc.bias": "head.bias"}}}
    assert doc["fix_plan"][0]["kind"] == "rename-keys"


def test_sarif_is_structurally_valid(article):
    res = run(article, "--model", f"{TORCH_T}:ChatbotModel_No_Custom_Layer", "--model-args", ARGS,
              "--format", "sarif")
    assert res.exit_code == 1
    log = json.loads(res.output)
    assert log["version"] == "2.1.0" and "sarif" in log["$schema"]
    run0 = log["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    rule_ids = [r["id"] for r in rules]
    assert len(rule_ids) == len(set(rule_ids))
    assert run0["results"]
    for result in run0["results"]:
        assert result["ruleId"] in rule_ids
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note", "none")
        loc = result["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"]
        assert loc["logicalLocations"][0]["fullyQualifiedName"]
    a102 = next(r for r in rules if r["id"] == "A102")
    assert a102["name"] == "unexpected-tensor" and "What the framework does" in a102["fullDescription"]["text"]


def test_input_error_still_gives_a_parseable_sarif_log(tmp_path):
    """Code scanning gets a failed invocation with the F code, not an empty stdout it cannot parse."""
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    res = run(empty, "--model", f"{TORCH_T}:ChatbotModel_No_Custom_Layer", "--model-args", ARGS, "--format", "sarif")
    assert res.exit_code == 2
    assert res.stderr.startswith("error[F102]: ") and len(res.stderr.splitlines()) == 1
    run0 = json.loads(res.stdout)["runs"][0]
    invocation = run0["invocations"][0]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    assert invocation["toolExecutionNotifications"][0]["descriptor"]["id"] == "F102"
    assert [r["ruleId"] for r in run0["results"]] == ["F102"]
    assert run0["tool"]["driver"]["rules"][0]["name"] == "empty-file"
    assert run0["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == str(empty)


def test_usage_error_with_json_gives_an_error_object(article, tmp_path):
    res = run(article, "--model", f"{tmp_path / 'absent.py'}:Net", "--format", "json")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --model") and len(res.stderr.splitlines()) == 1
    doc = json.loads(res.stdout)
    assert doc["error"]["kind"] == "usage" and doc["error"]["code"] is None
    assert "absent.py" in doc["error"]["message"]
    assert doc["diagnostics"] == [] and doc["summary"]["error"] == 0


def test_fail_on_threshold(tmp_path):
    import torch

    import ckptdoctor  # noqa: F401

    ckpt = tmp_path / "train.pt"
    import sys

    sys.path.insert(0, EXAMPLES)
    import torch_chatbot

    model = torch_chatbot.ChatbotModel(**json.loads(ARGS))
    torch.save({"model": model.state_dict(), "epoch": 1}, ckpt)
    base = [str(ckpt), "--model", f"{TORCH_T}:ChatbotModel", "--model-args", ARGS]
    assert run(*base).exit_code == 0  # only an info finding (A110)
    assert run(*base, "--fail-on", "info").exit_code == 1
    assert run(*base, "--key", "model", "--fail-on", "info").exit_code == 0


def test_usage_and_input_errors_exit_2(article, tmp_path):
    assert run(article, "--model", f"{TORCH_T}:NoSuchThing").exit_code == 2
    assert run(article, "--model", f"{TORCH_T}:ChatbotModel", "--model-args", "{bad").exit_code == 2
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    res = run(str(empty), "--model", f"{TORCH_T}:ChatbotModel", "--model-args", ARGS)
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_keras_example1_cli(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    import sys

    sys.path.insert(0, EXAMPLES)
    import keras_chatbot

    paths = keras_chatbot.save_article_files(str(tmp_path))
    res = run(paths["keras"], "--model", f"{KERAS_T}:create_model_v2", "--format", "json")
    assert res.exit_code == 1
    doc = json.loads(res.output)
    codes = [d["code"] for d in doc["diagnostics"]]
    assert "A103" in codes and "A111" in codes
    lw = next(p for p in doc["framework_behavior"] if p["call"].endswith("keras')"))
    assert lw["outcome"] == "error" and lw["message"].startswith("A total of 2 objects could not be loaded")


@pytest.mark.parametrize("models_init", [True, False], ids=["regular", "namespace-subpackage"])
def test_model_file_inside_a_package_is_imported_as_the_package_module(tmp_path, models_init):
    """`--model src/ckdpkg/models/net.py:Net` where net.py does `from ..layers import Block`: imported as
    ckdpkg.models.net from src/, as the project's own code imports it (as a script it could not be).
    models/ may lack __init__.py (a namespace subpackage, as in facenet_pytorch)."""
    import subprocess
    import sys

    import torch

    pkg = tmp_path / "src" / "ckdpkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if models_init:
        (pkg / "models" / "__init__.py").write_text("")
    (pkg / "layers.py").write_text(
        "import torch\n\nclass Block(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.lin = torch.nn.Linear(4, 4)\n")
    (pkg / "models" / "net.py").write_text(
        "import torch\nfrom ..layers import Block\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.block = Block()\n        self.head = torch.nn.Linear(4, 2)\n")
    sys.path.insert(0, str(tmp_path / "src"))
    try:
        from ckdpkg.models.net import Net

        torch.save(Net().state_dict(), tmp_path / "net.pt")
        del Net
    finally:
        sys.path.remove(str(tmp_path / "src"))
        for name in [m for m in sys.modules if m == "ckdpkg" or m.startswith("ckdpkg.")]:
            del sys.modules[name]
    target = f"{pkg / 'models' / 'net.py'}:Net"
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "check", str(tmp_path / "net.pt"), "--model", target,
                           "--format", "json"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["summary"]["error"] == 0
    assert not [d for d in doc["diagnostics"] if d["code"].startswith("A1")]
