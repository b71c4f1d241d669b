"""lint and roundtrip on real Keras 3 models (torch backend); each prediction is checked with Keras."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pytest

import ckd_keras_models as K
import ckptdoctor
from ckptdoctor.diagnostics import Severity

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "article"))
import dtype_chatbot as DC


def test_clean_registered_model_passes_lint_and_roundtrip():
    model = K.clean()
    assert ckptdoctor.lint(model).diagnostics == []
    report = ckptdoctor.roundtrip(model)
    assert report.ok and report.output["status"] == "equal", report.render()
    assert "import ckd_keras_models" in report.loaded_with


def test_unregistered_layer_predicted_and_fails_in_fresh_process():
    model = K.unregistered()
    diag = ckptdoctor.lint(model).by_code("C101")[0]
    assert diag.severity == Severity.ERROR and "'Unregistered': Unregistered" in diag.fix
    report = ckptdoctor.roundtrip(model)
    failure = report.by_code("C150")[0]
    assert "Could not locate class 'Unregistered'" in failure.message
    assert "C101" in failure.related and not report.loaded


def test_get_config_missing_arg_really_changes_the_reloaded_layer(tmp_path):
    model = K.forgets_offset()
    diag = ckptdoctor.lint(model).by_code("C102")[0]
    assert "offset=1.0" in diag.message
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path, custom_objects={"ForgetsOffset": K.ForgetsOffset})
    assert again.layers[-1].offset == 0.0  # the predicted default, silently
    x = np.ones((1, 4), "float32")
    assert not np.allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(again(x)))


def test_non_serializable_arg_and_lambda_and_unbuilt(tmp_path):
    model = K._model(K.TakesObject(helper=object()))
    assert ckptdoctor.lint(model).by_code("C103")
    with pytest.raises(NotImplementedError, match="must override `get_config\\(\\)`"):
        model.save(str(tmp_path / "x.keras"))
    lam = K.lambda_model()
    assert ckptdoctor.lint(lam).by_code("C104")
    lam.save(str(tmp_path / "l.keras"))
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.models.load_model(str(tmp_path / "l.keras"))
    unbuilt = K.unbuilt()
    assert ckptdoctor.lint(unbuilt).by_code("C105")
    with pytest.warns(UserWarning, match="not yet been built"):
        unbuilt.save(str(tmp_path / "u.keras"))
    assert keras.models.load_model(str(tmp_path / "u.keras")).weights == []


def test_article_example3_float32_h5_round_trips_with_legacy_advice():
    report = ckptdoctor.roundtrip(DC.create_model(100, 8, 16, 10), save_as="h5")
    assert report.ok and report.output["status"] == "equal", report.render()
    assert report.codes() == ["C106"] and report.by_code("C106")[0].severity == Severity.WARNING


def test_article_example3_mixed_precision_into_float32_model():
    mixed = DC.create_mixed_model(100, 8, 16, 10)
    lint = ckptdoctor.lint(mixed).by_code("D301")
    assert lint and "float32" in lint[0].message
    assert all(v.dtype == "float32" for v in mixed.weights)  # what is stored: float32 variables
    report = ckptdoctor.roundtrip(mixed, save_as="weights", rebuild=lambda_free_builder())
    assert report.compared == report.identical  # the weights themselves are exact
    out = report.by_code("D151")[0]
    assert "D301" in out.related and out.details["status"] in ("dtype", "differs")


def lambda_free_builder():
    return "dtype_chatbot:create_small_model"
