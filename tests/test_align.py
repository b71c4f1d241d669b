"""Name alignment on real key sets (torch wrappers, renames, conventions) and the cross-framework plan."""

from __future__ import annotations

import os

import pytest

from ckptdoctor.checking.align import align, infer_prefix
from ckptdoctor.checking.explain_shapes import infer_keras, infer_torch

torch = pytest.importorskip("torch")
nn = torch.nn


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)


class Stack(nn.Module):
    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block() for _ in range(n))
        self.fc = nn.Linear(8, 2)


def shapes(sd: dict) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items()}


def test_dataparallel_around_compile_is_one_prefix():
    model = Stack()
    wrapped = nn.DataParallel(torch.compile(Stack()))
    al = align(shapes(wrapped.state_dict()), shapes(model.state_dict()))
    assert al.prefix is not None and al.prefix.prefix == "module._orig_mod."
    assert al.missing == [] and al.unexpected == []
    assert al.mapping() == {f"module._orig_mod.{k}": k for k in model.state_dict()}


def test_prefix_added_when_the_model_is_the_wrapper():
    plain = Stack()
    al = align(shapes(plain.state_dict()), shapes(nn.DataParallel(Stack()).state_dict()))
    assert al.prefix.action == "add" and al.prefix.prefix == "module."


def test_one_coincidence_is_not_a_prefix():
    assert infer_prefix(["a.x.weight", "b.weight", "c.weight"], ["x.weight", "d.weight", "e.weight"]) is None


def test_prefix_plus_one_renamed_sublayer():
    class Renamed(Stack):
        def __init__(self) -> None:
            super().__init__()
            self.head = self.fc
            del self.fc

    file_keys = {f"module.{k}": s for k, s in shapes(Stack().state_dict()).items()}
    al = align(file_keys, shapes(Renamed().state_dict()))
    assert al.prefix.prefix == "module."
    assert [(r.old, r.new) for r in al.renames] == [("fc", "head")]
    assert al.renames[0].mapping == {"module.fc.weight": "head.weight", "module.fc.bias": "head.bias"}
    assert al.missing == [] and al.unexpected == []


def test_nested_rename_is_reported_once_per_distinct_rename():
    model = shapes(Stack().state_dict())
    file_keys = {k.replace(".attn.", ".attention."): s for k, s in model.items()}
    al = align(file_keys, model)
    assert {(r.old.split(".")[-1], r.new.split(".")[-1]) for r in al.renames} == {("attention", "attn")}
    assert len(al.pairs) == len(model) and not al.missing


def test_ambiguous_same_shape_layers_give_no_mapping():
    file_keys = {"a.weight": (2, 8), "b.weight": (2, 8)}
    al = align(file_keys, {"c.weight": (2, 8)})
    assert al.renames == [] and al.ambiguities and al.missing == ["c.weight"]


def test_gamma_beta_convention():
    model = shapes(nn.Sequential(nn.LayerNorm(4)).state_dict())
    file_keys = {"0.gamma": (4,), "0.beta": (4,)}
    al = align(file_keys, model)
    assert {c.file_key: c.model_key for c in al.conventions} == {"0.gamma": "0.weight", "0.beta": "0.bias"}


def test_keras_auto_names_shift_under_slash_paths():
    file_keys = {"layers/dense/vars/0": (128, 2), "layers/dense/vars/1": (2,)}
    model = {"layers/dense_1/vars/0": (128, 2), "layers/dense_1/vars/1": (2,)}
    al = align(file_keys, model, sep="/")
    assert [(r.old, r.new) for r in al.renames] == [("layers/dense", "layers/dense_1")]


def test_shape_inference_from_real_modules():
    lstm = nn.LSTM(64, 128, num_layers=2, bidirectional=True)
    inf = infer_torch("LSTM", shapes(lstm.state_dict()))
    assert inf.params == {"input_size": 64, "hidden_size": 128, "num_layers": 2, "bidirectional": True}
    assert infer_torch("GRU", shapes(nn.GRU(10, 7).state_dict())).params["hidden_size"] == 7
    assert infer_keras("LSTM", [(64, 512), (128, 512), (512,)]).params == {"units": 128}
    assert infer_keras("GRU", [(64, 96), (32, 96), (2, 96)]).params == {"units": 32}


def test_keras_file_against_torch_model_gives_a_port_plan(tmp_path):
    """The plan's steps, applied with numpy, make torch compute what Keras computes."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    import numpy as np

    from ckptdoctor.checking import check

    kmodel = keras.Sequential([keras.layers.Embedding(50, 6), keras.layers.LSTM(5), keras.layers.Dense(3)])
    kmodel.build((None, 4))
    path = str(tmp_path / "k.keras")
    kmodel.save(path)

    class TorchPort(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 6)
            self.lstm = nn.LSTM(6, 5, batch_first=True)
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            out, _ = self.lstm(self.emb(x))
            return self.fc(out[:, -1])

    port = TorchPort()
    report = check(port, path)
    a113 = [d for d in report.diagnostics if d.code == "A113"]
    assert len(a113) == 1 and a113[0].fix_plan.kind == "port-weights"
    import ckptdoctor

    snap = ckptdoctor.read(path)
    sd = {}
    for step in a113[0].fix_plan.data["steps"]:
        target = port.state_dict()[step["target"]]
        if step["op"] == "zeros":
            sd[step["target"]] = torch.zeros_like(target)
            continue
        value = np.asarray(snap.tensor(step["source"]).read())
        sd[step["target"]] = torch.from_numpy(value.T.copy() if step["op"] == "transpose" else value.copy())
    port.load_state_dict(sd)
    x = np.random.default_rng(0).integers(0, 50, (2, 4))
    expected = np.asarray(kmodel(x).detach().cpu())
    got = port(torch.from_numpy(x)).detach().numpy()
    assert np.abs(expected - got).max() < 1e-5
