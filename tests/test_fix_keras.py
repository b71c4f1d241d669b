"""``ckptdoctor fix`` for Keras 3 models (torch backend): legacy ``.h5`` -> ``.weights.h5`` (the real Keras
2.2.4 chatbot and the article's LSTM model), a ``.keras`` into a model whose layer paths changed, and a
torch state_dict ported into a Keras model. Every output is loaded by the REAL ``model.load_weights`` and
the model's outputs compared with an independent computation (numpy on the file's weights, Keras' own
legacy loader, or the torch model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "article"))
import keras_chatbot as kc  # noqa: E402

from ckptdoctor.errors import InputError, UsageError  # noqa: E402
from ckptdoctor.fixing.fix import fix  # noqa: E402

REAL = "/work/shared/real/python-chatbot/chatbot_model.h5"
_here = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "real", "python-chatbot", "chatbot_model.h5")
if os.path.exists(_here):
    REAL = os.path.abspath(_here)

MODELS = textwrap.dedent('''
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch.nn as nn


    def chatbot(n_inputs=91, n_classes=10, compiled=False):
        """python-chatbot's train_chatbot.py model, in Keras 3."""
        m = keras.Sequential([
            keras.Input((n_inputs,)),
            keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
            keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.5),
            keras.layers.Dense(n_classes, activation="softmax"),
        ])
        if compiled:  # a compiled model saves (fresh) optimizer variables too
            m.compile(optimizer="sgd", loss="categorical_crossentropy")
        return m


    class TorchBot(nn.Module):
        """The article's ChatbotModel: Embedding -> LSTM -> Linear."""

        def __init__(self, rnn="LSTM", hidden=5):
            super().__init__()
            self.embedding = nn.Embedding(50, 6)
            self.lstm = getattr(nn, rnn)(6, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, 3)

        def forward(self, x):
            out, _ = self.lstm(self.embedding(x))
            return self.fc(out[:, -1])


    def keras_bot(rnn="LSTM", units=5):
        m = keras.Sequential([keras.layers.Embedding(50, 6), getattr(keras.layers, rnn)(units), keras.layers.Dense(3)])
        m.build((None, 4))
        return m


    class Renamed(keras.Model):
        """The article's v1 rewritten as a subclassed model: other .weights.h5 paths (emb/, head/)."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.emb = keras.layers.Embedding(1000, 64)
            self.rnn = keras.layers.LSTM(128)
            self.head = keras.layers.Dense(2, activation="softmax")

        def call(self, x):
            return self.head(self.rnn(self.emb(x)))


    def renamed():
        m = Renamed()
        m(np.zeros((1, 20), "int32"))
        return m
''')

TOKENS = np.random.default_rng(1).integers(0, 50, (3, 4))


@pytest.fixture(scope="module")
def mods(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_fix_models")
    (folder / "kmodels.py").write_text(MODELS)
    sys.path.insert(0, str(folder))
    import importlib

    mod = importlib.import_module("kmodels")
    yield folder, mod
    sys.path.remove(str(folder))
    sys.modules.pop("kmodels", None)


@pytest.fixture(scope="module")
def article(tmp_path_factory):
    """The article's v1 saved by Keras 3 as legacy .h5, .keras and .weights.h5 (compiled with adam)."""
    return kc.save_article_files(str(tmp_path_factory.mktemp("article")))


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory, mods):
    _, mod = mods
    folder = tmp_path_factory.mktemp("torch_src")
    out = {}
    for rnn, hidden in (("LSTM", 5), ("GRU", 5), ("LSTM", 8)):
        torch.manual_seed(0)
        net = mod.TorchBot(rnn, hidden).eval()
        path = folder / f"{rnn}{hidden}.pt"
        torch.save(net.state_dict(), path)
        with torch.no_grad():
            out[(rnn, hidden)] = (path, net(torch.from_numpy(TOKENS)).numpy())
    return out


def predict(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x)))


def load_clean(model, path):
    """What the user does with OUT: load_weights, which must neither raise nor warn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(str(path))
    assert not [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return model


def h5_tree(path):
    """{object path: (kind, attribute names, shape, dtype)} for every group and dataset (the ``name``
    attribute's value is the layer's auto-name, which differs from one model instance to the next)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = sorted(obj.attrs)
            out[name] = ("dataset", attrs, obj.shape, str(obj.dtype)) if isinstance(obj, h5py.Dataset) else (
                "group", attrs, None, None)
        f.visititems(visit)
    return out


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ckptdoctor", *args], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"})


# ---- the real Keras 2.2.4 chatbot ------------------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists(REAL), reason="the real python-chatbot files are not here")
def test_real_chatbot_h5_to_weights_h5(mods, tmp_path):
    folder, mod = mods
    out = tmp_path / "chatbot.weights.h5"
    report = fix(f"{folder / 'kmodels.py'}:chatbot", REAL, out)  # TARGET: the load is proven in a fresh process
    assert report.ok, [d.message for d in report.diagnostics]
    assert report.load["process"] == "subprocess" and report.load["ok"] and report.load["variables"] == 6
    assert not [d for d in report.check_after if d.severity >= 2]
    assert sum(n.startswith("optimizer_weights/") for n in report.plan.dropped) == 7  # SGD state of Keras 2

    x = (np.random.default_rng(0).random((4, 91)) > 0.8).astype("float32")
    got = predict(load_clean(mod.chatbot(), out), x)
    # independent: numpy on the file's own weights, read with h5py in layer_names order
    h = x
    with h5py.File(REAL, "r") as f:
        g = f["model_weights"]
        dense = [g[n.decode()] for n in g.attrs["layer_names"] if len(g[n.decode()].attrs["weight_names"])]
        weights = [[np.asarray(d[w.decode()]) for w in d.attrs["weight_names"]] for d in dense]
    for i, (k, b) in enumerate(weights):
        h = h @ k + b
        h = np.maximum(h, 0) if i < len(weights) - 1 else np.exp(h - h.max(1, keepdims=True))
    h /= h.sum(1, keepdims=True)
    assert np.allclose(got, h, atol=1e-6)
    legacy = mod.chatbot()
    legacy.load_weights(REAL)  # Keras 3's own topological loader on the original file
    assert np.array_equal(got, predict(legacy, x))

    # the layout is the one model.save_weights writes: same groups, name attributes, shapes, dtypes
    ref = tmp_path / "ref.weights.h5"
    legacy.save_weights(str(ref))
    assert h5_tree(out) == h5_tree(ref)


@pytest.mark.skipif(not os.path.exists(REAL), reason="the real python-chatbot files are not here")
def test_compiled_model_gets_its_own_fresh_optimizer_variables(mods, tmp_path):
    _, mod = mods
    model = mod.chatbot(compiled=True)
    out = tmp_path / "compiled.weights.h5"
    report = fix(model, REAL, out)
    assert report.ok, [d.message for d in report.diagnostics]
    assert [t.op for t in report.plan.tensors if t.name.startswith("optimizer/")] == ["fresh", "fresh"]
    ref = tmp_path / "ref.weights.h5"
    model.save_weights(str(ref))
    assert h5_tree(out) == h5_tree(ref)
    with h5py.File(out, "r") as f:
        assert float(f["optimizer/vars/1"][()]) == pytest.approx(0.01)  # SGD's default, not Keras 2's state
    load_clean(mod.chatbot(compiled=True), out)


# ---- the article's LSTM model -----------------------------------------------------------------------------------
def test_article_legacy_h5_to_weights_h5(article, tmp_path):
    out = tmp_path / "v1.weights.h5"
    report = fix(kc.create_model_v1(), article["h5"], out)  # a live model: probed in-process on a clone
    assert report.ok, [d.message for d in report.diagnostics]
    assert report.load["ok"] and report.load["process"] == "in-process"
    x = np.random.default_rng(2).integers(0, 1000, (2, kc.SEQ_LEN))
    legacy = kc.create_model_v1()
    legacy.load_weights(article["h5"])
    fixed = load_clean(kc.create_model_v1(), out)
    assert np.array_equal(predict(fixed, x), predict(legacy, x))
    saved = keras.models.load_model(article["keras"])  # the model that was saved, as Keras restores it
    assert np.allclose(predict(fixed, x), predict(saved, x), atol=1e-6)


def test_keras_file_into_a_model_with_other_paths(mods, article, tmp_path):
    folder, mod = mods
    out = tmp_path / "renamed.weights.h5"
    report = fix(f"{folder / 'kmodels.py'}:renamed", article["keras"], out)
    assert report.ok, [d.message for d in report.diagnostics]
    assert report.plan.renames == {"layers/embedding": "emb", "layers/dense": "head"}
    assert {"optimizer/vars/0", "optimizer/vars/1"} <= set(report.plan.dropped)
    x = np.random.default_rng(3).integers(0, 1000, (2, kc.SEQ_LEN))
    saved = keras.models.load_model(article["keras"])
    assert np.allclose(predict(load_clean(mod.renamed(), out), x), predict(saved, x), atol=1e-6)


# ---- torch -> Keras ----------------------------------------------------------------------------------------------
def test_torch_lstm_state_dict_to_keras(mods, torch_files, tmp_path):
    folder, mod = mods
    src, expected = torch_files[("LSTM", 5)]
    out = tmp_path / "lstm.weights.h5"
    report = fix(f"{folder / 'kmodels.py'}:keras_bot", src, out)
    assert report.ok, [d.message for d in report.diagnostics]
    assert {t.op for t in report.plan.tensors} == {"copy", "transpose", "add"}
    [rec] = report.load["recurrent"]  # torch LSTM vs the loaded Keras layer, in the fresh process
    assert rec["kind"] == "LSTM" and rec["ok"] and rec["max_abs_diff"] < 1e-5
    got = predict(load_clean(mod.keras_bot(), out), TOKENS)
    assert np.abs(got - expected).max() < 1e-5


def test_torch_gru_state_dict_to_keras(mods, torch_files, tmp_path):
    _, mod = mods
    src, expected = torch_files[("GRU", 5)]
    out = tmp_path / "gru.weights.h5"
    report = fix(mod.keras_bot("GRU"), src, out)
    assert report.ok, [d.message for d in report.diagnostics]
    [rec] = report.load["recurrent"]
    assert rec["kind"] == "GRU" and rec["ok"]
    got = predict(load_clean(mod.keras_bot("GRU"), out), TOKENS)
    assert np.abs(got - expected).max() < 1e-5


# ---- dry run and refusals ----------------------------------------------------------------------------------------
def test_dry_run_writes_nothing(article, tmp_path):
    out = tmp_path / "never.weights.h5"
    report = fix(kc.create_model_v1(), article["h5"], out, dry_run=True)
    assert report.ok and not report.written and not out.exists()
    assert [t.name for t in report.plan.tensors if not t.name.startswith("optimizer/")] == [
        "layers/embedding/vars/0", "layers/lstm/cell/vars/0", "layers/lstm/cell/vars/1", "layers/lstm/cell/vars/2",
        "layers/dense/vars/0", "layers/dense/vars/1"]
    assert os.listdir(tmp_path) == []


def test_lstm_128_into_64_is_refused(article, tmp_path):
    for fmt in ("h5", "keras"):
        with pytest.raises(InputError) as err:
            fix(kc.create_model_v2(), article[fmt], tmp_path / "v2.weights.h5")
        assert err.value.code == "A401" and "A103" in err.value.message, err.value.message
    assert os.listdir(tmp_path) == []


def test_torch_hidden_size_mismatch_is_refused(mods, torch_files, tmp_path):
    _, mod = mods
    src, _ = torch_files[("LSTM", 8)]
    with pytest.raises(InputError) as err:
        fix(mod.keras_bot(), src, tmp_path / "o.weights.h5")
    assert err.value.code == "A401"
    src, _ = torch_files[("GRU", 5)]
    with pytest.raises(InputError) as err:  # a GRU file into an LSTM model: no conversion
        fix(mod.keras_bot("LSTM"), src, tmp_path / "o.weights.h5")
    assert err.value.code == "A402"
    assert os.listdir(tmp_path) == []


def test_existing_output_and_wrong_extension(article, tmp_path):
    out = tmp_path / "v1.weights.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="--force"):
        fix(kc.create_model_v1(), article["h5"], out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(UsageError, match=r"\.weights\.h5"):
        fix(kc.create_model_v1(), article["h5"], tmp_path / "v1.h5")
    with pytest.raises(UsageError, match=r"\.weights\.h5"):
        fix(kc.create_model_v1(), article["h5"], tmp_path / "v1.safetensors")
    assert fix(kc.create_model_v1(), article["h5"], out, force=True).ok
    load_clean(kc.create_model_v1(), out)


def test_cli_refusal_is_one_line_and_dry_run_json(article, tmp_path):
    target = f"{os.path.join(os.path.dirname(kc.__file__), 'keras_chatbot.py')}:create_model_v2"
    proc = cli("fix", article["h5"], "--model", target, "-o", str(tmp_path / "o.weights.h5"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "A401" in proc.stderr, proc.stderr
    v1 = target.replace("create_model_v2", "create_model_v1")
    proc = cli("fix", article["keras"], "--model", v1, "-o", str(tmp_path / "o.weights.h5"), "--dry-run",
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["fix"]["plan"]
    assert plan["output_format"] == "keras-weights" and "optimizer/vars/0" in plan["dropped"]
    assert os.listdir(tmp_path) == []
