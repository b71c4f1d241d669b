"""``check`` on Hugging Face style folders (config.json + model.safetensors, sharded safetensors + index,
pytorch_model.bin) with tied embeddings, HF/PEFT prefixes and a resized vocabulary. transformers is not
used: tiny Llama-like modules (tests/ckd_hf_models.py) and a save_pretrained look-alike write the
folders; every prediction is compared with the REAL torch ``load_state_dict`` (strict and not) and
``safetensors.torch.load_model`` on the same files."""

from __future__ import annotations

import json
import os
import sys

import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("safetensors.torch")
from cli_helpers import invoke  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import ckd_hf_models as H  # noqa: E402
from ckd_torch_load import assert_state_dict_predictions  # noqa: E402
from ckptdoctor.checking import check  # noqa: E402
from ckptdoctor.diagnostics import Severity  # noqa: E402


def actual_load_model(model, path: str) -> tuple[str, object]:
    try:
        missing, unexpected = st.load_model(model, path)
    except RuntimeError as exc:
        return "error", str(exc)
    return ("silent", (sorted(missing), sorted(unexpected))) if missing or unexpected else ("ok", None)


def assert_load_model_prediction(report, model, path: str) -> None:
    pred = report.prediction("safetensors.torch.load_model")
    outcome, info = actual_load_model(model, path)
    assert pred.outcome == outcome, (pred.outcome, pred.message, outcome, info)
    if outcome == "error":
        assert pred.message == info
    if outcome == "silent":
        assert (pred.details["missing_keys"], pred.details["unexpected_keys"]) == info


def codes(report, severity: Severity | None = None) -> list[str]:
    return [d.code for d in report.diagnostics if severity is None or d.severity == severity]


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    return H.TinyLlamaForCausalLM()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, trained) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hf")
    out = {
        "tied": H.save_hf_folder(trained, str(d / "tied")),
        "tied_default": H.save_hf_folder(trained, str(d / "tied_default"), tie=None),  # key absent: True
        "sharded": H.save_hf_folder(trained, str(d / "sharded"), shards=2),
        "backbone": H.save_hf_folder(trained.model, str(d / "backbone")),
    }
    torch.manual_seed(1)
    out["untied_vocab"] = H.save_hf_folder(H.untied_causal_lm(vocab_size=H.VOCAB + 1), str(d / "untied_vocab"),
                                           tie=False)
    out["tied_vocab"] = H.save_hf_folder(H.TinyLlamaForCausalLM(vocab_size=H.VOCAB + 1), str(d / "tied_vocab"))
    bin_dir = d / "bin"
    bin_dir.mkdir()
    torch.save(trained.state_dict(), bin_dir / "pytorch_model.bin")  # torch.save keeps both tied names
    (bin_dir / "config.json").write_text(json.dumps(H.config_for(trained)))
    out["bin"] = str(bin_dir)
    # safetensors' own save_model: drops one tied name and records it in the header metadata
    out["save_model"] = str(d / "save_model.safetensors")
    st.save_model(trained, out["save_model"])
    # both names as separate tensors (a torch.save'd state_dict converted with clones)
    out["both_names"] = str(d / "both_names.safetensors")
    st.save_file({k: v.detach().clone() for k, v in trained.state_dict().items()}, out["both_names"])
    out["peft"] = str(d / "peft.safetensors")
    st.save_file({"base_model.model." + k: v.detach().clone() for k, v in trained.state_dict().items()
                  if k != "lm_head.weight"}, out["peft"])
    return out


def test_folder_is_read_and_the_weights_file_named(folders: dict[str, str]) -> None:
    r = check(H.TinyLlamaForCausalLM(), folders["tied"])
    assert r.snapshot.path == os.path.join(folders["tied"], "model.safetensors")
    assert any("checking model.safetensors" in n for n in r.notes)
    r = check(H.TinyLlamaForCausalLM(), folders["sharded"])
    assert r.snapshot.format == "safetensors-sharded"
    assert any("model.safetensors.index.json (2 shards)" in n for n in r.notes)
    assert len(r.snapshot.tensors) == len(H.load_hf_folder(folders["sharded"]))


@pytest.mark.parametrize("name", ["tied", "tied_default", "sharded"])
def test_tied_head_dropped_by_save_pretrained_is_a_warning_not_an_error(folders, trained, name: str) -> None:
    model = H.TinyLlamaForCausalLM()
    report = check(model, folders[name])
    assert report.ok, [(d.code, d.message) for d in report.diagnostics]
    (a101,) = [d for d in report.diagnostics if d.code == "A101"]
    assert a101.severity == Severity.WARNING and a101.subject == "lm_head.weight"
    assert a101.details["tied_to"] == "model.embed_tokens.weight"
    said = "at its default, true" if name == "tied_default" else "config.json has tie_word_embeddings=true"
    assert said in a101.message
    for fragment in ("strict=True) raises", "harmless", "from_pretrained re-ties"):
        assert fragment in a101.framework_behavior

    sd = H.load_hf_folder(folders[name])
    assert "lm_head.weight" not in sd
    assert_state_dict_predictions(report, model, sd)  # strict=True really raises, strict=False is silent
    # ...and strict=False really loaded the head through the tie (harmless, as the diagnostic says)
    assert torch.equal(model.lm_head.weight, trained.model.embed_tokens.weight)
    if name != "sharded":
        fresh = H.TinyLlamaForCausalLM()
        assert_load_model_prediction(report, fresh, os.path.join(folders[name], "model.safetensors"))
        assert torch.equal(fresh.lm_head.weight, trained.lm_head.weight)


def test_untied_model_gets_a_random_head_and_an_error(folders, trained) -> None:
    model = H.untied_causal_lm()
    report = check(model, folders["tied"])
    assert not report.ok
    (a101,) = [d for d in report.diagnostics if d.code == "A101"]
    assert a101.severity == Severity.ERROR and "does not tie" in a101.message
    assert "RANDOM" in a101.framework_behavior
    assert a101.fix_plan.kind == "copy-keys"
    assert a101.fix_plan.data["mapping"] == {"model.embed_tokens.weight": "lm_head.weight"}
    assert "model.lm_head.weight = model.model.embed_tokens.weight" in a101.fix

    sd = H.load_hf_folder(folders["tied"])
    before = model.lm_head.weight.detach().clone()
    assert_state_dict_predictions(report, model, sd)
    assert torch.equal(model.lm_head.weight, before)  # strict=False: the head kept its random values
    assert_load_model_prediction(report, H.untied_causal_lm(), os.path.join(folders["tied"], "model.safetensors"))
    # the fix, applied: copy the tensor, and the strict load succeeds with the trained head
    for src, dst in a101.fix_plan.data["mapping"].items():
        sd[dst] = sd[src]
    fixed = H.untied_causal_lm()
    fixed.load_state_dict(sd, strict=True)
    assert torch.equal(fixed.lm_head.weight, trained.lm_head.weight)


def test_safetensors_save_model_aliases(folders, trained) -> None:
    path = folders["save_model"]
    kept = st.load_file(path)
    report = check(H.TinyLlamaForCausalLM(), path)
    assert report.ok
    (a101,) = [d for d in report.diagnostics if d.code == "A101"]
    dropped = a101.subject
    assert dropped not in kept and a101.details["file_key"] in kept
    assert "save_model dropped it" in a101.message
    assert_load_model_prediction(report, H.TinyLlamaForCausalLM(), path)
    assert_state_dict_predictions(report, H.TinyLlamaForCausalLM(), kept)
    # an untied model: the file's own metadata says which tensor the dropped name was
    report = check(H.untied_causal_lm(), path)
    (a101,) = [d for d in report.diagnostics if d.code == "A101"]
    assert a101.severity == Severity.ERROR and "safetensors metadata records" in a101.message
    assert_load_model_prediction(report, H.untied_causal_lm(), path)


def test_load_model_rejects_both_tied_names_as_predicted(folders) -> None:
    # the file has BOTH names: load_state_dict is happy, safetensors.load_model counts one as unexpected
    report = check(H.TinyLlamaForCausalLM(), folders["both_names"])
    assert report.prediction("strict=True").outcome == "ok"
    assert report.prediction("safetensors.torch.load_model").outcome == "error"
    assert_load_model_prediction(report, H.TinyLlamaForCausalLM(), folders["both_names"])
    assert_state_dict_predictions(report, H.TinyLlamaForCausalLM(), st.load_file(folders["both_names"]))


def test_task_file_against_bare_backbone_strips_model_prefix(folders) -> None:
    model = H.TinyLlamaModel()
    report = check(model, folders["tied"])
    prefix = [d for d in report.diagnostics if d.code == "A104"]
    assert len(prefix) == 1 and prefix[0].fix_plan.kind == "strip-prefix"
    assert prefix[0].fix_plan.data["prefix"] == "model."
    assert "LlamaForCausalLM" in prefix[0].message and "bare backbone" in prefix[0].message
    assert codes(report, Severity.ERROR) == ["A104"]  # one finding, not 20 missing + 20 unexpected
    sd = H.load_hf_folder(folders["tied"])
    assert_state_dict_predictions(report, model, sd)
    model.load_state_dict({k.removeprefix("model."): v for k, v in sd.items()}, strict=True)  # the fix works


def test_backbone_file_against_task_model_adds_model_prefix(folders) -> None:
    model = H.TinyLlamaForCausalLM()
    report = check(model, folders["backbone"])
    (prefix,) = [d for d in report.diagnostics if d.code == "A104"]
    assert prefix.fix_plan.kind == "add-prefix" and prefix.fix_plan.data["prefix"] == "model."
    assert "adds base_model_prefix" in prefix.framework_behavior
    # lm_head is absent from the backbone file, but tied to model.embed_tokens: a warning, not an error
    (a101,) = [d for d in report.diagnostics if d.code == "A101"]
    assert a101.severity == Severity.WARNING
    sd = H.load_hf_folder(folders["backbone"])
    assert_state_dict_predictions(report, model, sd)
    res = model.load_state_dict({"model." + k: v for k, v in sd.items()}, strict=False)
    assert res.missing_keys == ["lm_head.weight"] and not res.unexpected_keys


def test_peft_prefix_is_one_rule(folders, trained) -> None:
    model = H.TinyLlamaForCausalLM()
    report = check(model, folders["peft"])
    (prefix,) = [d for d in report.diagnostics if d.code == "A104"]
    assert prefix.fix_plan.data == {"prefix": "base_model.model."} and "PEFT" in prefix.message
    assert "A102" not in codes(report) and "A101" in codes(report, Severity.WARNING)
    sd = st.load_file(folders["peft"])
    assert_state_dict_predictions(report, model, sd)
    assert_load_model_prediction(report, H.TinyLlamaForCausalLM(), folders["peft"])


def test_resized_vocabulary_is_one_cause_for_embedding_and_head(folders) -> None:
    model = H.untied_causal_lm()
    report = check(model, folders["untied_vocab"])
    (a109,) = [d for d in report.diagnostics if d.code == "A109"]
    assert set(a109.details["tensors"]) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert (a109.details["file_vocab"], a109.details["model_vocab"]) == (H.VOCAB + 1, H.VOCAB)
    assert "resize_token_embeddings(33)" in a109.fix
    assert "A103" not in codes(report)
    sd = H.load_hf_folder(folders["untied_vocab"])
    assert_state_dict_predictions(report, model, sd)  # size mismatch for both, strict or not
    model.resize_token_embeddings(H.VOCAB + 1)  # the fix A109 prints
    model.load_state_dict(sd, strict=True)


def test_resized_vocabulary_with_tied_head(folders) -> None:
    model = H.TinyLlamaForCausalLM()
    report = check(model, folders["tied_vocab"])
    (a109,) = [d for d in report.diagnostics if d.code == "A109"]
    assert list(a109.details["tensors"]) == ["model.embed_tokens.weight"]
    assert [d.severity for d in report.diagnostics if d.code == "A101"] == [Severity.WARNING]
    assert_state_dict_predictions(report, model, H.load_hf_folder(folders["tied_vocab"]))
    model.resize_token_embeddings(H.VOCAB + 1)
    model.load_state_dict(H.load_hf_folder(folders["tied_vocab"]), strict=False)
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_pytorch_model_bin_folder_keeps_both_tied_names(folders) -> None:
    report = check(H.TinyLlamaForCausalLM(), folders["bin"])
    assert report.snapshot.path.endswith("pytorch_model.bin")
    assert "A101" not in codes(report) and report.ok
    sd = torch.load(os.path.join(folders["bin"], "pytorch_model.bin"), weights_only=True)
    assert_state_dict_predictions(report, H.TinyLlamaForCausalLM(), sd)


def test_cli_checks_a_folder(folders) -> None:
    target = os.path.join(os.path.dirname(__file__), "ckd_hf_models.py")
    res = invoke(["check", folders["sharded"], "--model", f"{target}:TinyLlamaForCausalLM", "--format", "json"],
                 catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [d["code"] for d in data["diagnostics"]] == ["A101"]
    assert any("2 shards" in n for n in data["notes"])
    res = invoke(["check", folders["sharded"], "--model", f"{target}:untied_causal_lm"], catch_exceptions=False)
    assert res.exit_code == 1
