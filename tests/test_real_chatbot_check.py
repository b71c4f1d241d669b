"""``check`` of the REAL Keras 2.2.4 chatbot (python-chatbot ``chatbot_model.h5``: Dense 128 relu, Dropout,
Dense 64 relu, Dropout, Dense 10 softmax over 91 bag-of-words inputs) against Keras 3 models built in
code, with the real ``load_weights`` run each time. ``load_model`` on this file (F203, compile=False) is
covered by test_real_chatbot.py."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")

from ckptdoctor.checking import check  # noqa: E402
from ckptdoctor.diagnostics import Severity  # noqa: E402

REAL_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "real", "python-chatbot")
REAL = os.path.abspath(os.path.join(REAL_DIR, "chatbot_model.h5"))
if not os.path.exists(REAL):  # the shared folder sits beside the project root
    REAL = "/work/shared/real/python-chatbot/chatbot_model.h5"
    REAL_DIR = os.path.dirname(REAL)
pytestmark = pytest.mark.skipif(not os.path.exists(REAL), reason="the real python-chatbot files are not here")


def chatbot(n_inputs: int, n_classes: int):
    """The tutorial's train_chatbot.py model, in Keras 3."""
    return keras.Sequential([
        keras.Input((n_inputs,)),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(n_classes, activation="softmax"),
    ])


def file_weights(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each Dense layer, read from the file with h5py in saved order."""
    out = []
    with h5py.File(path, "r") as f:
        group = f["model_weights"]
        for name in group.attrs["layer_names"]:
            layer = group[name.decode() if isinstance(name, bytes) else name]
            names = [n.decode() if isinstance(n, bytes) else n for n in layer.attrs["weight_names"]]
            if names:
                out.append((np.asarray(layer[names[0]]), np.asarray(layer[names[1]])))
    return out


def load_error(model, path: str) -> str | None:
    try:
        model.load_weights(path)
    except ValueError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def real_words() -> list[str]:
    with open(os.path.join(REAL_DIR, "words.pkl"), "rb") as fh:  # a test may unpickle its own fixture
        return pickle.load(fh)


@pytest.fixture(scope="module")
def grown_folder(tmp_path_factory, real_words: list[str]) -> str:
    """The user's folder after words.pkl changed: the same model file, one word more in the vocabulary."""
    d = tmp_path_factory.mktemp("chatbot_grown")
    shutil.copy(REAL, d / "chatbot_model.h5")
    shutil.copy(os.path.join(REAL_DIR, "classes.pkl"), d / "classes.pkl")
    with open(d / "words.pkl", "wb") as fh:
        pickle.dump(sorted([*real_words, "zebra"]), fh)
    return str(d / "chatbot_model.h5")


def test_matching_model_has_no_errors_and_loads_the_files_weights(real_words: list[str]) -> None:
    model = chatbot(len(real_words), 10)
    report = check(model, REAL)
    errors = [d for d in report.diagnostics if d.severity >= Severity.ERROR]
    assert errors == [], [(d.code, d.message) for d in errors]
    assert report.prediction(f"load_weights('{os.path.basename(REAL)}')").outcome == "ok"

    assert load_error(model, REAL) is None  # the real load agrees
    x = (np.random.default_rng(0).random((4, len(real_words))) > 0.8).astype("float32")  # bags of words
    h = x
    layers = file_weights(REAL)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        h = np.maximum(h, 0) if i < len(layers) - 1 else np.exp(h - h.max(1, keepdims=True))
    h /= h.sum(1, keepdims=True)
    assert np.allclose(np.asarray(model.predict(x, verbose=0)), h, atol=1e-5)


def test_grown_vocabulary_is_explained_in_words(grown_folder: str, real_words: list[str]) -> None:
    n_file = file_weights(REAL)[0][0].shape[0]
    with open(os.path.join(os.path.dirname(grown_folder), "words.pkl"), "rb") as fh:
        n_now = len(pickle.load(fh))
    assert (n_file, n_now) == (len(real_words), len(real_words) + 1)
    model = chatbot(n_now, 10)
    report = check(model, grown_folder)
    shape = [d for d in report.diagnostics if d.code == "A103"]
    assert len(shape) == 1 and not report.ok
    msg = shape[0].message
    assert f"trained on {n_file} input features (Dense kernel {n_file}x128), your model has {n_now}" in msg
    assert f"vocabulary (words.pkl, now {n_now} words) changed since training" in msg
    assert "classes" not in msg  # the output layer is unchanged

    pred = report.prediction(f"load_weights('{os.path.basename(grown_folder)}')")
    assert pred.outcome == "error" and pred.exception == "ValueError"
    assert load_error(model, grown_folder) == pred.message  # the real load raises the predicted error


def test_unchanged_word_list_points_at_the_model_code(real_words: list[str]) -> None:
    # the real folder's words.pkl still has the file's size: the model code is what changed
    report = check(chatbot(len(real_words) + 1, 10), REAL)
    msg = next(d.message for d in report.diagnostics if d.code == "A103")
    assert f"words.pkl next to the file still lists {len(real_words)} words" in msg


def test_more_output_classes_is_explained_as_the_class_list(real_words: list[str]) -> None:
    with open(os.path.join(REAL_DIR, "classes.pkl"), "rb") as fh:
        n_classes = len(pickle.load(fh))
    assert file_weights(REAL)[-1][0].shape[1] == n_classes
    model = chatbot(len(real_words), n_classes + 1)
    report = check(model, REAL)
    shape = [d for d in report.diagnostics if d.code == "A103"]
    assert len(shape) == 1
    msg = shape[0].message
    assert f"output layer has {n_classes} classes (Dense kernel 64x{n_classes}), your model has {n_classes + 1}" in msg
    assert f"classes.pkl next to the file still lists {n_classes} classes" in msg
    assert "input features" not in msg

    pred = report.prediction(f"load_weights('{os.path.basename(REAL)}')")
    assert pred.outcome == "error"
    assert load_error(model, REAL) == pred.message


def test_same_explanation_for_a_keras3_weights_file(tmp_path, real_words: list[str]) -> None:
    # the chatbot re-saved by Keras 3 (.weights.h5 is loaded by path, not by position)
    model = chatbot(len(real_words), 10)
    model.load_weights(REAL)
    path = str(tmp_path / "chatbot.weights.h5")
    model.save_weights(path)
    grown = chatbot(len(real_words) + 1, 10)
    report = check(grown, path)
    (a103,) = [d for d in report.diagnostics if d.code == "A103"]
    assert f"trained on {len(real_words)} input features (Dense kernel {len(real_words)}x128)" in a103.message
    assert "changed since training" in a103.message  # no word list beside this file
    pred = report.prediction("load_weights('chatbot.weights.h5')")
    assert pred.outcome == "error"
    err = load_error(grown, path)
    assert err is not None and err.splitlines()[0] == pred.message.splitlines()[0]
