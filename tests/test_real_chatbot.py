"""The real Keras 2.2.4 chatbot model from python-chatbot (Sequential Dense 128 / Dropout / Dense 64 /
Dropout / Dense 10 over 91 inputs, trained with SGD), checked against h5py and against Keras 3 itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckptdoctor.readers import read

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "python-chatbot" / "chatbot_model.h5"
if not REAL.exists():
    REAL = Path("/work/shared/real/python-chatbot/chatbot_model.h5")
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="the real chatbot file is not available")


def attr_names(group: h5py.Group, key: str) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(group.attrs[key]).tolist()]


@pytest.fixture(scope="module")
def truth() -> dict:
    with h5py.File(REAL, "r") as f:
        mw = f["model_weights"]
        layers = attr_names(mw, "layer_names")
        weights = {ln: [(wn, mw[ln][wn].shape, mw[ln][wn][()]) for wn in attr_names(mw[ln], "weight_names")]
                   if mw[ln].attrs["weight_names"].size else [] for ln in layers}
        return {"layers": layers, "weights": weights, "keras_version": f.attrs["keras_version"],
                "backend": f.attrs["backend"], "model_config": json.loads(f.attrs["model_config"]),
                "training_config": json.loads(f.attrs["training_config"])}


def test_layers_shapes_and_version(truth: dict) -> None:
    snap = read(REAL)
    assert snap.format == "keras-h5" and snap.framework == "keras"
    assert snap.framework_version == truth["keras_version"] == "2.2.4"
    assert snap.metadata["backend"] == truth["backend"] == "tensorflow"
    assert [x["name"] for x in snap.layers] == truth["layers"]
    assert [x["class_name"] for x in snap.layers] == [c["class_name"] for c in truth["model_config"]["config"]["layers"]]
    for layer in snap.layers:
        assert [(w["name"], tuple(w["shape"])) for w in layer["weights"]] == [
            (n, s) for n, s, _ in truth["weights"][layer["name"]]]
    model = [t for t in snap.tensors if t.attrs.get("role") != "optimizer"]
    assert [t.shape for t in model] == [(91, 128), (128,), (128, 64), (64,), (64, 10), (10,)]
    for t in model:
        _, _, value = next(w for w in truth["weights"][t.attrs["layer"]] if w[0] == t.name)
        assert np.array_equal(t.read(), value)
    units = [x["hyperparameters"].get("units") for x in snap.layers if x["class_name"] == "Dense"]
    assert units == [128, 64, 10]
    assert snap.training_config == truth["training_config"]
    assert snap.training_config["optimizer_config"]["class_name"] == "SGD"
    assert {c.name for c in snap.classes} >= {"Sequential", "Dense", "Dropout", "SGD"}
    assert all(c.builtin for c in snap.classes)


def test_cli_reports_file_advice(truth: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(REAL), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["format"] == "keras-h5" and out["framework_version"] == "2.2.4"
    codes = {d["code"] for d in out["diagnostics"]}
    assert {"F201", "F203"} <= codes and "F202" not in codes
    text = subprocess.run([sys.executable, "-m", "ckptdoctor", "inspect", str(REAL)], capture_output=True,
                          text=True, timeout=120).stdout
    for layer in truth["layers"]:
        if truth["weights"][layer]:
            assert layer in text


def test_keras3_agrees_and_fails_as_f203_says() -> None:
    """Keras 3 loads the same weights with compile=False, and fails on the Keras 2 `lr` argument
    otherwise: the failure F203 predicts from the file alone."""
    code = (
        "import json, sys, keras\n"
        "m = keras.models.load_model(sys.argv[1], compile=False)\n"
        "print(json.dumps([list(w.shape) for w in m.get_weights()]))\n"
        "try:\n    keras.models.load_model(sys.argv[1])\n    print('loaded')\n"
        "except ValueError as e:\n    print(str(e).splitlines()[0])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(REAL)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "torch"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    shapes_line, error_line = proc.stdout.strip().splitlines()[-2:]
    snap = read(REAL)
    assert json.loads(shapes_line) == [list(t.shape) for t in snap.tensors if t.attrs.get("role") != "optimizer"]
    assert error_line.startswith("Argument(s) not recognized: {'lr'")
