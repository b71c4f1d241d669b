"""F204 keras2-hard-sigmoid: a Keras 2 file's LSTM with ``recurrent_activation="hard_sigmoid"`` loads in
Keras 3 without a message and computes something else. The files are real legacy ``.h5`` written by
Keras 3 and stamped ``keras_version="2.2.4"`` (exactly what a Keras 2.2.4 file carries); the semantic
difference is proven numerically against a numpy LSTM with Keras 2's gates."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")

from ckptdoctor.readers import read  # noqa: E402
from ckptdoctor.rules import run_snapshot_checks  # noqa: E402
from ckptdoctor.rules.keras_semantics import hard_sigmoid_uses  # noqa: E402

UNITS, STEPS, FEATURES = 4, 6, 3


def _save(path: str, recurrent_activation: str, version: str | None) -> str:
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((STEPS, FEATURES)),
                          keras.layers.LSTM(UNITS, recurrent_activation=recurrent_activation)])
    # large weights, so that gate pre-activations leave [-2.5, 2.5] where the two definitions differ most
    m.set_weights([np.random.default_rng(2).normal(0, 1.5, w.shape).astype("float32") for w in m.get_weights()])
    m.save(path)
    if version is not None:
        with h5py.File(path, "r+") as f:
            f.attrs["keras_version"] = version
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("k2_semantics")
    return {
        "k2_hard": _save(str(d / "k2_hard.h5"), "hard_sigmoid", "2.2.4"),
        "k2_sigmoid": _save(str(d / "k2_sigmoid.h5"), "sigmoid", "2.2.4"),
        "k3_hard": _save(str(d / "k3_hard.h5"), "hard_sigmoid", None),
    }


def _codes(path: str) -> list[str]:
    return [d.code for d in run_snapshot_checks(read(path))]


def numpy_lstm(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, gate) -> np.ndarray:
    """Keras LSTM (gate order i, f, c, o; tanh activation) with the recurrent activation ``gate``."""
    h = np.zeros((x.shape[0], UNITS))
    c = np.zeros((x.shape[0], UNITS))
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * UNITS:(k + 1) * UNITS] for k in range(4))
        c = gate(f) * c + gate(i) * np.tanh(g)
        h = gate(o) * np.tanh(c)
    return h


def keras2_hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def keras3_hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def test_fires_only_for_keras2_hard_sigmoid(files: dict[str, str]) -> None:
    assert "F204" in _codes(files["k2_hard"])
    assert "F204" not in _codes(files["k2_sigmoid"])  # Keras 2, but the real sigmoid: same in Keras 3
    assert "F204" not in _codes(files["k3_hard"])  # saved by Keras 3: it already means x/6 + 0.5


def test_names_the_layer_and_both_definitions(files: dict[str, str]) -> None:
    snap = read(files["k2_hard"])
    diag = next(d for d in run_snapshot_checks(snap) if d.code == "F204")
    layer = json.loads(h5py.File(files["k2_hard"], "r").attrs["model_config"])["config"]["layers"][-1]
    assert diag.subject == layer["config"]["name"]
    assert diag.details["layers"] == [{"name": layer["config"]["name"], "class_name": "LSTM",
                                       "key": "recurrent_activation"}]
    assert "0.2x+0.5" in diag.message and "x/6+0.5" in diag.message and "2.2.4" in diag.message


def test_keras1_inner_activation_and_wrappers_are_found() -> None:
    # Keras 1 spelled it inner_activation; Bidirectional nests the layer config one level down
    cfg = {"class_name": "Sequential", "config": [
        {"class_name": "LSTM", "config": {"name": "old", "inner_activation": "hard_sigmoid", "activation": "tanh"}},
        {"class_name": "Bidirectional", "config": {"name": "bi", "layer": {
            "class_name": "GRU", "config": {"name": "gru", "recurrent_activation": "hard_sigmoid"}}}},
        {"class_name": "Dense", "config": {"name": "out", "activation": "softmax"}}]}
    assert hard_sigmoid_uses(cfg) == [("old", "LSTM", "inner_activation"), ("gru", "GRU", "recurrent_activation")]


def test_keras3_silently_computes_another_function_and_the_fix_restores_keras2(files: dict[str, str]) -> None:
    model = keras.models.load_model(files["k2_hard"], compile=False)  # no error, no warning
    x = np.random.default_rng(3).normal(0, 1.0, (5, STEPS, FEATURES)).astype("float32")
    with h5py.File(files["k2_hard"], "r") as f:  # the file's own weights, read without Keras
        group = f["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
        lstm = group[next(n for n in names if group[n].attrs["weight_names"].size)]
        weights = [np.asarray(lstm[n]) for n in lstm.attrs["weight_names"]]
    keras3_out = np.asarray(model.predict(x, verbose=0))
    as_keras2 = numpy_lstm(x, *weights, gate=keras2_hard_sigmoid)
    as_keras3 = numpy_lstm(x, *weights, gate=keras3_hard_sigmoid)
    assert np.allclose(keras3_out, as_keras3, atol=1e-5)  # the numpy LSTM is right...
    assert np.abs(keras3_out - as_keras2).max() > 1e-2  # ...and Keras 3 is not what Keras 2 computed

    # the fix F204 prints: the Keras 2 function on the cell
    cell = model.layers[0].cell
    assert cell.recurrent_activation is keras.activations.hard_sigmoid

    def hard_sigmoid_k2(t):
        return keras.ops.clip(0.2 * t + 0.5, 0.0, 1.0)

    cell.recurrent_activation = hard_sigmoid_k2
    assert np.allclose(np.asarray(model.predict(x, verbose=0)), as_keras2, atol=1e-5)
