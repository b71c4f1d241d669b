"""``check`` against PyTorch: for each scenario the REAL ``load_state_dict`` runs (strict and not), and
ckptdoctor's prediction (error / silent / ok, and which keys) must match what torch actually did."""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "article"))
import torch_chatbot as tc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import ckptdoctor  # noqa: E402
from ckd_torch_load import actual_load_state_dict, assert_state_dict_predictions  # noqa: E402
from ckptdoctor.checking import check  # noqa: E402

ARGS = tc.ARTICLE_ARGS


class Net(nn.Module):
    def __init__(self, vocab: int = 100, hidden: int = 16, head: str = "fc", extra: bool = False,
                 drop_fc: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        if not drop_fc:
            setattr(self, head, nn.Linear(hidden, 2))
        if extra:
            self.extra = nn.Linear(2, 2)


class WithBuffer(nn.Module):
    def __init__(self, persistent: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("inv_freq", torch.ones(2), persistent=persistent)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_check")
    torch.manual_seed(0)
    out = {"article": tc.save_article_checkpoint(str(d))}
    net = Net()
    sd = net.state_dict()
    out["net"] = str(d / "net.pt")
    torch.save(sd, out["net"])
    out["dp"] = str(d / "dp.pt")
    torch.save(nn.DataParallel(Net()).state_dict(), out["dp"])
    out["compiled"] = str(d / "compiled.pt")
    torch.save(torch.compile(Net()).state_dict(), out["compiled"])
    out["vocab"] = str(d / "vocab.pt")
    torch.save(Net(vocab=101).state_dict(), out["vocab"])
    out["train"] = str(d / "train.pt")
    opt = torch.optim.Adam(net.parameters())
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, out["train"])
    out["buffer"] = str(d / "buffer.pt")
    torch.save(WithBuffer(persistent=True).state_dict(), out["buffer"])
    from safetensors.torch import save_file

    out["st_dp"] = str(d / "dp.safetensors")
    save_file({f"module.{k}": v.contiguous() for k, v in sd.items()}, out["st_dp"])
    return out


def load(path: str) -> dict:
    return torch.load(path, weights_only=True)


def test_article_example2_unexpected_custom_linear(files):
    model = tc.ChatbotModel_No_Custom_Layer(**ARGS)
    report = check(model, files["article"])
    assert_state_dict_predictions(report, model, load(files["article"]))
    a102 = [d for d in report.diagnostics if d.code == "A102"]
    assert [d.subject for d in a102] == ["custom_linear"]
    assert a102[0].details["keys"] == ["custom_linear.weight", "custom_linear.bias"]
    assert "strict=False" in a102[0].framework_behavior
    assert not report.ok
    # the unused `fc` of the article's ChatbotModel is saved and matches: no finding about it
    assert not any(d.subject == "fc" for d in report.diagnostics)


def test_matching_file_has_no_findings_on_meta_model(files):
    with torch.device("meta"):
        meta = tc.ChatbotModel(**ARGS)
    report = check(meta, files["article"])
    assert [d for d in report.diagnostics if d.code.startswith("A")] == []
    assert_state_dict_predictions(report, tc.ChatbotModel(**ARGS), load(files["article"]))


@pytest.mark.parametrize("which,prefix", [("dp", "module."), ("compiled", "_orig_mod."), ("st_dp", "module.")])
def test_wrapper_prefix_is_one_finding(files, which, prefix):
    model = Net()
    report = check(model, files[which])
    sd = load(files[which]) if which != "st_dp" else __import__("safetensors.torch").torch.load_file(files[which])
    assert_state_dict_predictions(report, model, sd)
    codes = [d.code for d in report.diagnostics if d.code.startswith("A")]
    assert codes == ["A104"], codes  # not 7 missing + 7 unexpected
    a104 = report.diagnostics[[d.code for d in report.diagnostics].index("A104")]
    assert a104.fix_plan.kind == "strip-prefix" and a104.fix_plan.data["prefix"] == prefix
    # applying the plan makes the real strict load succeed
    fixed = {k.removeprefix(prefix): v for k, v in sd.items()}
    assert actual_load_state_dict(Net(), fixed, True)[0] == "ok"


def test_renamed_layer_mapping_applies(files):
    model = Net(head="head")
    report = check(model, files["net"])
    sd = load(files["net"])
    assert_state_dict_predictions(report, model, sd)
    a105 = [d for d in report.diagnostics if d.code == "A105"]
    assert len(a105) == 1 and [d.code for d in report.diagnostics if d.code.startswith("A")] == ["A105"]
    mapping = a105[0].fix_plan.data["mapping"]
    assert mapping == {"fc.weight": "head.weight", "fc.bias": "head.bias"}
    renamed = {mapping.get(k, k): v for k, v in sd.items()}
    assert actual_load_state_dict(Net(head="head"), renamed, True)[0] == "ok"


def test_changed_hidden_size_errors_even_non_strict(files):
    model = Net(hidden=32)
    report = check(model, files["net"])
    assert_state_dict_predictions(report, model, load(files["net"]))
    assert report.prediction("strict=False").outcome == "error"
    lstm = next(d for d in report.diagnostics if d.code == "A103" and d.subject == "lstm")
    assert "hidden_size=16" in lstm.message and "hidden_size=32" in lstm.message
    assert lstm.details["saved_hyperparameters"]["hidden_size"] == 16
    fc = next(d for d in report.diagnostics if d.subject == "fc")
    assert fc.details["knock_on"] is True  # the Linear only follows the LSTM change


def test_vocab_resized(files):
    model = Net(vocab=100)
    report = check(model, files["vocab"])
    assert_state_dict_predictions(report, model, load(files["vocab"]))
    a109 = [d for d in report.diagnostics if d.code == "A109"]
    assert len(a109) == 1 and a109[0].found == [101, 8] and a109[0].expected == [100, 8]
    assert "101" in a109[0].fix


@pytest.mark.parametrize("kwargs,code", [({"extra": True}, "A101"), ({"drop_fc": True}, "A102")])
def test_extra_and_missing_layers(files, kwargs, code):
    model = Net(**kwargs)
    report = check(model, files["net"])
    assert_state_dict_predictions(report, model, load(files["net"]))
    assert [d.code for d in report.diagnostics if d.code.startswith("A")] == [code]


def test_training_checkpoint_key_found(files):
    model = Net()
    report = check(model, files["train"])
    assert report.selected_key == "model"
    codes = [d.code for d in report.diagnostics if d.code.startswith("A")]
    assert codes == ["A110"], codes
    assert_state_dict_predictions(report, model, load(files["train"])["model"])
    explicit = check(model, files["train"], key="model")
    assert [d.code for d in explicit.diagnostics if d.code.startswith("A")] == []


def test_non_persistent_buffer_in_file(files):
    model = WithBuffer(persistent=False)
    report = check(model, files["buffer"])
    assert_state_dict_predictions(report, model, load(files["buffer"]))
    assert [d.code for d in report.diagnostics if d.code.startswith("A")] == ["A114"]


def test_public_api_and_spec(files):
    report = ckptdoctor.check(Net(), files["net"])
    assert report.ok and report.spec.framework == "pytorch"
    layer = next(layer for layer in report.spec.layers if layer.path == "lstm")
    assert layer.params["hidden_size"] == 16 and layer.params["input_size"] == 8
    assert report.to_json()["framework_behavior"][0]["outcome"] == "ok"
