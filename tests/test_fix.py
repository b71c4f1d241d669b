"""``ckptdoctor fix``: every fix kind applied to a real checkpoint, the result loaded STRICTLY by the real
framework, and the loaded model's outputs compared with the original model's on a sample input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

os.environ.setdefault("KERAS_BACKEND", "torch")

from ckptdoctor.errors import InputError, UsageError
from ckptdoctor.fixing.fix import fix
from zip_helpers import payload_offset

NETS = textwrap.dedent('''
    import torch
    import torch.nn as nn

    # the source article's Example 2 classes, as the demo ships them
    from ckptdoctor.demo.scripts.example2_torch import ChatbotModel, ChatbotModel_No_Custom_Layer, CustomLinear


    class Net(nn.Module):
        def __init__(self, vocab=30, dim=8, hidden=6, out=4):
            super().__init__()
            self.emb = nn.Embedding(vocab, dim)
            self.lstm = nn.LSTM(dim, hidden, batch_first=True)
            self.head = nn.Linear(hidden, out)

        def forward(self, x):
            o, _ = self.lstm(self.emb(x))
            return self.head(o[:, -1])


    class HalfNet(Net):
        def __init__(self):
            super().__init__()
            self.half()


    class BigNet(Net):
        def __init__(self):
            super().__init__(hidden=7)


    class Sneaky(Net):
        """Builds another size on the meta device than on the CPU: the plan fits, the real load does not."""

        def __init__(self):
            super().__init__(hidden=7 if torch.empty(0).is_meta else 6)


    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(12, 5)
            self.out = nn.Linear(5, 12, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, x):
            return self.out(self.emb(x))


    class Port(nn.Module):
        """The torch twin of Keras Embedding(50, 6) -> LSTM/GRU(5) -> Dense(3)."""

        def __init__(self, rnn="LSTM"):
            super().__init__()
            self.emb = nn.Embedding(50, 6)
            self.rnn = getattr(nn, rnn)(6, 5, batch_first=True)
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            out, _ = self.rnn(self.emb(x))
            return self.fc(out[:, -1])
''')

X = torch.randint(0, 30, (3, 5), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    (folder / "nets.py").write_text(NETS)
    sys.path.insert(0, str(folder))
    import importlib

    mod = importlib.import_module("nets")
    yield folder, mod
    sys.path.remove(str(folder))
    sys.modules.pop("nets", None)


def trained(mod, cls="Net", **kw):
    torch.manual_seed(0)
    return getattr(mod, cls)(**kw).eval()


def load_strict(model_cls, path, **kw):
    """What a user does with the fixed file: build the model, load it strictly."""
    model = model_cls(**kw).eval()
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), weights_only=True)
    model.load_state_dict(state, strict=True)
    return model, state


def same_outputs(a, b, x=X, atol=0.0):
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.dtype == yb.dtype
    assert torch.allclose(ya, yb, atol=atol, rtol=0), float((ya - yb).abs().max())


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "KERAS_BACKEND": "torch"})


# ---- name fixes ------------------------------------------------------------------------------------------
def test_dataparallel_prefix_to_torch_zip_via_cli(nets, tmp_path):
    """`module.` (DataParallel) stripped; the .pt is written without torch and read by torch.load(weights_only)."""
    folder, mod = nets
    m = trained(mod)
    src = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(m).state_dict(), src)
    before = src.read_bytes()
    out = tmp_path / "fixed.pt"
    proc = cli("fix", str(src), "--model", f"{folder / 'nets.py'}:Net", "-o", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["fix"]
    assert report["plan"]["prefix"] == {"action": "strip", "prefix": "module."}
    assert report["load"]["ok"] and report["load"]["process"] == "subprocess"
    assert report["check_after"] == []
    loaded, _ = load_strict(mod.Net, out)
    same_outputs(m, loaded)
    assert src.read_bytes() == before  # the input is never modified
    assert not [p for p in os.listdir(tmp_path) if "ckptdoctor-tmp" in p]


def test_torch_compile_prefix(nets, tmp_path):
    _, mod = nets
    m = trained(mod)
    src = tmp_path / "compiled.pt"
    torch.save(torch.compile(m).state_dict(), src)
    assert all(k.startswith("_orig_mod.") for k in torch.load(src, weights_only=True))
    out = tmp_path / "fixed.safetensors"
    report = fix(mod.Net(), src, out)
    assert report.ok and report.plan.prefix == {"action": "strip", "prefix": "_orig_mod."}
    assert report.load["ok"] and report.load["process"] == "in-process"
    same_outputs(m, load_strict(mod.Net, out)[0])


def test_add_prefix_when_the_model_is_wrapped(nets, tmp_path):
    _, mod = nets
    m = trained(mod)
    src = tmp_path / "plain.pt"
    torch.save(m.state_dict(), src)
    wrapper = nn.DataParallel(mod.Net())
    report = fix(wrapper, src, tmp_path / "wrapped.pt")
    assert report.ok and report.plan.prefix == {"action": "add", "prefix": "module."}
    loaded = nn.DataParallel(mod.Net()).eval()
    loaded.load_state_dict(torch.load(tmp_path / "wrapped.pt", weights_only=True), strict=True)
    same_outputs(m, loaded.module)


def test_renamed_layer_fc_to_head(nets, tmp_path):
    _, mod = nets
    m = trained(mod)
    sd = {k.replace("head.", "fc."): v for k, v in m.state_dict().items()}
    src = tmp_path / "old.pt"
    torch.save(sd, src)
    report = fix(mod.Net(), src, tmp_path / "new.safetensors")
    assert report.ok
    assert report.plan.renames == {"fc.weight": "head.weight", "fc.bias": "head.bias"}
    same_outputs(m, load_strict(mod.Net, tmp_path / "new.safetensors")[0])


def test_training_checkpoint_drops_unexpected_head_and_leaves_optimizer_out(nets, tmp_path):
    _, mod = nets
    m = trained(mod)
    opt = torch.optim.Adam(m.parameters())
    m(X).sum().backward()
    opt.step()
    sd = dict(m.state_dict())
    sd["aux_head.weight"] = torch.randn(2, 6)  # a removed head
    sd["aux_head.bias"] = torch.randn(2)
    src = tmp_path / "ckpt.pt"
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, src)
    report = fix(mod.Net(), src, tmp_path / "model.pt")
    assert report.ok
    assert report.plan.key == "model"
    assert report.plan.dropped == ["aux_head.weight", "aux_head.bias"]  # listed, never silent
    assert report.plan.left_out and all(n.startswith("optimizer.") for n in report.plan.left_out)
    assert any("drop 2 tensor(s)" in s and "aux_head.weight" in s for s in report.plan.steps())
    loaded, state = load_strict(mod.Net, tmp_path / "model.pt")
    assert not any(k.startswith("aux_head") for k in state)
    same_outputs(m, loaded)


def test_article_example2_custom_layer_dropped(nets, tmp_path):
    """Example 2: ChatbotModel's state_dict into ChatbotModel_No_Custom_Layer: custom_linear.* dropped."""
    folder, mod = nets
    m = trained(mod, "ChatbotModel")
    src = tmp_path / "chatbot.pth"
    torch.save(m.state_dict(), src)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        mod.ChatbotModel_No_Custom_Layer().load_state_dict(torch.load(src, weights_only=True))
    out = tmp_path / "chatbot_fixed.pth"
    proc = cli("fix", str(src), "--model", f"{folder / 'nets.py'}:ChatbotModel_No_Custom_Layer", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "custom_linear.weight" in proc.stdout and "custom_linear.bias" in proc.stdout
    loaded, state = load_strict(mod.ChatbotModel_No_Custom_Layer, out)
    assert sorted(state) == sorted(mod.ChatbotModel_No_Custom_Layer().state_dict())
    x = torch.randint(0, 100, (2, 4))
    with torch.no_grad():  # the saved fc is the new model's output layer
        lstm_out, _ = m.lstm(m.embedding(x))
        assert torch.equal(m.fc(lstm_out[:, -1, :]), loaded(x))


# ---- dtypes ------------------------------------------------------------------------------------------------
def test_fp16_file_into_fp32_model_is_an_exact_cast(nets, tmp_path):
    _, mod = nets
    m = trained(mod).half().float()  # fp32 model holding exactly the fp16 values
    src = tmp_path / "half.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.half() for k, v in m.state_dict().items()}, src)
    report = fix(mod.Net(), src, tmp_path / "full.pt")
    assert report.ok
    assert {(t.source_dtype, t.dtype, t.cast) for t in report.plan.casts} == {("float16", "float32", "exact")}
    loaded, state = load_strict(mod.Net, tmp_path / "full.pt")
    assert all(v.dtype == torch.float32 for v in state.values())
    same_outputs(m, loaded)


def test_fp32_into_fp16_model_refused_unless_allow_lossy(nets, tmp_path):
    folder, mod = nets
    m = trained(mod)
    src = tmp_path / "fp32.pt"
    torch.save(m.state_dict(), src)
    out = tmp_path / "half.pt"
    proc = cli("fix", str(src), "--model", f"{folder / 'nets.py'}:HalfNet", "-o", str(out))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "D560" in proc.stderr and "float32 -> float16" in proc.stderr
    assert not out.exists()
    report = fix(mod.HalfNet(), src, out, allow_lossy=True)
    assert report.ok and {t.cast for t in report.plan.casts} == {"narrow"}
    _, state = load_strict(mod.HalfNet, out)
    assert all(v.dtype == torch.float16 for v in state.values())
    for k, v in m.state_dict().items():  # exactly what torch's own cast gives
        assert torch.equal(state[k], v.half())


# ---- tied weights ----------------------------------------------------------------------------------------
def test_tied_weights_cloned_for_safetensors(nets, tmp_path):
    _, mod = nets
    m = trained(mod, "Tied")
    src = tmp_path / "tied.pt"
    torch.save(m.state_dict(), src)
    with pytest.raises(RuntimeError, match="share memory"):
        from safetensors.torch import save_file

        save_file(m.state_dict(), tmp_path / "direct.safetensors")
    report = fix(mod.Tied(), src, tmp_path / "tied.safetensors")
    assert report.ok
    loaded, state = load_strict(mod.Tied, tmp_path / "tied.safetensors")
    assert torch.equal(state["emb.weight"], state["out.weight"])
    same_outputs(m, loaded, x=torch.tensor([[1, 2, 3]]))


def test_tied_alias_restored_from_save_model_file(nets, tmp_path):
    """safetensors.torch.save_model stores one name; fix restores the other as shared storage in a .pt."""
    _, mod = nets
    from safetensors.torch import save_model

    m = trained(mod, "Tied")
    src = tmp_path / "saved_model.safetensors"
    save_model(m, str(src))
    with pytest.raises(RuntimeError, match="Missing key"):
        from safetensors.torch import load_file

        mod.Tied().load_state_dict(load_file(src))
    report = fix(mod.Tied(), src, tmp_path / "restored.pt")
    assert report.ok and len(report.plan.aliases) == 1
    loaded, state = load_strict(mod.Tied, tmp_path / "restored.pt")
    assert state["emb.weight"].untyped_storage().data_ptr() == state["out.weight"].untyped_storage().data_ptr()
    same_outputs(m, loaded, x=torch.tensor([[1, 2, 3]]))


# ---- Keras -> torch ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("keras")
    out = {}
    for rnn in ("LSTM", "GRU"):
        keras.utils.set_random_seed(0)
        k = keras.Sequential([keras.layers.Embedding(50, 6), getattr(keras.layers, rnn)(5), keras.layers.Dense(3)])
        k.build((None, 4))
        path = folder / f"{rnn.lower()}.weights.h5"
        k.save_weights(str(path))
        x = np.random.default_rng(0).integers(0, 50, (3, 4))
        out[rnn] = (path, x, np.asarray(keras.ops.convert_to_numpy(k(x))))
    return out


@pytest.mark.parametrize("rnn", ["LSTM", "GRU"])
def test_keras_weights_ported_to_torch(nets, keras_models, tmp_path, rnn):
    folder, mod = nets
    path, x, expected = keras_models[rnn]
    out = tmp_path / f"{rnn}.safetensors"
    report = fix(f"{folder / 'nets.py'}:Port", path, out, model_args=json.dumps({"rnn": rnn}))
    assert report.ok, report.diagnostics and report.diagnostics[0].message
    ops = {t.op for t in report.plan.tensors}
    assert "transpose" in ops or "reorder-gates-transpose" in ops
    [rec] = report.load["recurrent"]  # the port itself compared with Keras in the subprocess
    assert rec["kind"] == rnn and rec["ok"] and rec["max_abs_diff"] < 1e-5
    loaded, _ = load_strict(mod.Port, out, rnn=rnn)
    with torch.no_grad():
        got = loaded(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-5


# ---- dry run and refusals ---------------------------------------------------------------------------------
def test_dry_run_writes_nothing(nets, tmp_path):
    folder, mod = nets
    src = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(trained(mod)).state_dict(), src)
    out = tmp_path / "never.pt"
    proc = cli("fix", str(src), "--model", f"{folder / 'nets.py'}:Net", "-o", str(out), "--dry-run",
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["fix"]
    assert plan["dry_run"] and not plan["written"] and plan["plan"]["prefix"]["prefix"] == "module."
    assert sorted(os.listdir(tmp_path)) == ["dp.pt"]
    text = cli("fix", str(src), "--model", f"{folder / 'nets.py'}:Net", "--dry-run")
    assert text.returncode == 0 and "strip the prefix 'module.'" in text.stdout


def test_shape_mismatch_is_refused(nets, tmp_path):
    _, mod = nets
    src = tmp_path / "net.pt"
    torch.save(trained(mod).state_dict(), src)
    with pytest.raises(InputError) as err:
        fix(mod.BigNet(), src, tmp_path / "out.pt")
    assert err.value.code == "A401" and "A103" in err.value.message
    assert not (tmp_path / "out.pt").exists()


def test_existing_output_needs_force(nets, tmp_path):
    _, mod = nets
    src = tmp_path / "net.pt"
    torch.save(nn.DataParallel(trained(mod)).state_dict(), src)
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="--force"):
        fix(mod.Net(), src, out)
    assert out.read_bytes() == b"keep me"
    assert fix(mod.Net(), src, out, force=True).ok
    load_strict(mod.Net, out)
    with pytest.raises(UsageError, match="input file"):
        fix(mod.Net(), src, src, force=True)


def test_refusals_exit_2_with_one_line(nets, tmp_path):
    folder, mod = nets
    src = tmp_path / "net.pt"
    torch.save(trained(mod).state_dict(), src)
    for extra, code in ((["--model", f"{folder / 'nets.py'}:BigNet", "-o", str(tmp_path / "o.pt")], "A401"),
                        (["--model", f"{folder / 'nets.py'}:Net", "-o", str(tmp_path / "o.txt")], None)):
        proc = cli("fix", str(src), *extra)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        if code:
            assert code in proc.stderr


def test_file_that_fails_the_real_load_is_never_published(nets, tmp_path):
    folder, mod = nets
    src = tmp_path / "h7.pt"
    torch.save(nn.DataParallel(mod.Net(hidden=7)).state_dict(), src)
    out = tmp_path / "out.pt"
    report = fix(f"{folder / 'nets.py'}:Sneaky", src, out)
    assert not report.ok and not report.written
    assert [d.code for d in report.diagnostics] == ["A403"]
    assert "size mismatch" in report.load["error"]
    assert sorted(os.listdir(tmp_path)) == ["h7.pt"]  # no OUT, no temporary file left


def test_untied_model_gets_the_tied_head_copied_from_an_hf_folder(tmp_path):
    """save_pretrained dropped lm_head (tied in config.json); the user's model does not tie it:
    `fix` copies the embedding into the head, and the strict load restores every trained tensor."""
    sys.path.insert(0, os.path.dirname(__file__))
    try:
        import ckd_hf_models as H
    finally:
        sys.path.remove(os.path.dirname(__file__))
    torch.manual_seed(0)
    trained_model = H.TinyLlamaForCausalLM()
    folder = H.save_hf_folder(trained_model, str(tmp_path / "hf"))
    out = tmp_path / "fixed.safetensors"
    report = fix(H.untied_causal_lm(), folder, str(out))
    assert report.ok, report
    from safetensors.torch import load_file

    sd = load_file(str(out))
    model = H.untied_causal_lm()
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.lm_head.weight, trained_model.lm_head.weight)
    trained_state = trained_model.state_dict()
    assert all(torch.equal(v, trained_state[k]) for k, v in model.state_dict().items())


def test_damaged_storage_is_not_copied_into_the_fixed_file(nets, tmp_path):
    """The same prefix fix on a checkpoint with one flipped storage byte: torch.load would hand back the
    changed weight silently; fix refuses (CRC-32) and writes nothing."""
    import zipfile

    _, mod = nets
    src = tmp_path / "compiled.pt"
    torch.save(torch.compile(trained(mod)).state_dict(), src)
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        member = zf.getinfo(next(n for n in zf.namelist() if n.endswith("/data/0")))
    raw[payload_offset(raw, member) + 2] ^= 0x40
    src.write_bytes(bytes(raw))
    torch.load(src, weights_only=True)  # no error from torch
    out = tmp_path / "fixed.safetensors"
    with pytest.raises(InputError) as err:
        fix(mod.Net(), src, out)
    assert err.value.code == "F107" and "CRC-32" in err.value.message and not out.exists()
