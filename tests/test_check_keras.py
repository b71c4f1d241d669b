"""``check`` against Keras 3 (torch backend): the article's Example 1 saved as .h5, .keras and .weights.h5,
checked against v2 (LSTM 64), one layer fewer, one extra layer, and v1 itself. For each, the REAL
``load_weights`` / ``load_model`` runs and ckptdoctor's prediction must match what Keras did."""

from __future__ import annotations

import os
import sys
import warnings

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples", "article"))
import keras_chatbot as kc  # noqa: E402

from ckptdoctor.checking import check  # noqa: E402

FACTORIES = {
    "v2": kc.create_model_v2,
    "fewer": kc.create_model_one_layer_fewer,
    "extra": kc.create_model_extra_layer,
    "v1": kc.create_model_v1,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return kc.save_article_files(str(tmp_path_factory.mktemp("keras_check")))


@pytest.fixture(scope="module")
def models():
    return {name: f() for name, f in FACTORIES.items()}


def actual_load_weights(model, path: str, skip_mismatch: bool = False) -> tuple[str, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path, skip_mismatch=skip_mismatch)
        except ValueError as exc:
            return "error", str(exc)
    user = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return ("warning", user[0]) if user else ("ok", "")


def expected_outcome(pred) -> str:
    # a silent partial load is, from the framework's side, a load with no message
    return "ok" if pred.outcome == "silent" else pred.outcome


CASES = [(fmt, name) for fmt in ("h5", "keras", "weights") for name in FACTORIES]


@pytest.mark.parametrize("fmt,name", CASES)
def test_load_weights_prediction_matches_keras(files, models, fmt, name):
    path = files[fmt]
    model = FACTORIES[name]()  # the same object is checked and loaded, so auto-names agree
    report = check(model, path)
    for skip in (False, True):
        pred = report.prediction("skip_mismatch=True" if skip else "')")
        outcome, message = actual_load_weights(model, path, skip)
        assert expected_outcome(pred) == outcome, (fmt, name, skip, pred.summary(), message)
        if outcome == "error":
            assert pred.message.splitlines()[0] == message.splitlines()[0]
        if outcome == "warning":
            assert pred.message.splitlines()[0] == message.splitlines()[0]


def test_example1_v2_explained_in_user_terms(files, models):
    for fmt in ("h5", "keras", "weights"):
        report = check(models["v2"], files[fmt])
        shapes = [d for d in report.diagnostics if d.code == "A103"]
        lstm = shapes[0]
        assert "LSTM(units=128)" in lstm.message and "LSTM(units=64)" in lstm.message, lstm.message
        assert "64x512" in lstm.message
        assert lstm.details["saved_hyperparameters"] == {"units": 128}
        # the Dense mismatch is a knock-on of the LSTM change, listed after it
        assert "consequence" in shapes[1].message
        assert not report.ok


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_load_model_ignores_the_new_code(files, models, fmt):
    """The article's own call: load_model() returns the SAVED architecture and never uses create_model_v2."""
    report = check(models["v2"], files[fmt])
    a111 = [d for d in report.diagnostics if d.code == "A111"]
    assert len(a111) == 1
    loaded = keras.models.load_model(files[fmt], compile=False)
    lstm = next(layer for layer in loaded.layers if type(layer).__name__ == "LSTM")
    assert lstm.units == 128  # v1, silently, although the code now says 64
    assert report.prediction("load_model").details["uses_your_code"] is False


def test_one_layer_fewer_is_a_silent_partial_load(files, models):
    report = check(models["fewer"], files["weights"])
    assert report.prediction("')").outcome == "silent"
    a107 = [d for d in report.diagnostics if d.code == "A107"]
    assert len(a107) == 1 and a107[0].subject == "layers/dense"
    assert not report.ok  # said loudly
    # and Keras really said nothing
    assert actual_load_weights(FACTORIES["fewer"](), files["weights"]) == ("ok", "")


def test_one_layer_fewer_h5_counts_layers(files, models):
    report = check(models["fewer"], files["h5"])
    a106 = [d for d in report.diagnostics if d.code == "A106"]
    assert len(a106) == 1 and "Dense" in a106[0].message


def test_matching_model_has_no_architecture_findings(files, models):
    for fmt in ("h5", "keras", "weights"):
        report = check(models["v1"], files[fmt])
        assert [d for d in report.diagnostics if d.code.startswith("A") and d.severity >= 2] == []
        assert report.ok


def test_unbuilt_model_is_built_from_its_layers(files):
    report = check(kc.create_model_unbuilt(), files["weights"])
    assert any("not built" in n for n in report.notes)
    assert any(d.code == "A103" for d in report.diagnostics)


def test_optimizer_state_reported_as_harmless(files, models):
    report = check(models["v1"], files["keras"])
    a108 = [d for d in report.diagnostics if d.code == "A108"]
    assert a108 and all(int(d.severity) == 1 for d in a108)


def test_extra_layer_explains_the_path_shift(files, models):
    report = check(models["extra"], files["weights"])
    dense = next(d for d in report.diagnostics if d.subject == "layers/dense")
    assert "2 Dense layer(s), the file 1" in dense.message
    dense_names = [layer.name for layer in models["extra"].layers if type(layer).__name__ == "Dense"]
    assert report.prediction("')").details["failed_objects"] == [f"<Dense name={n}, built=True>" for n in dense_names]
