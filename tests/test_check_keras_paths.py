"""``check`` for Keras 3 models whose objects are reachable by more than one path.

Keras 3.15's load walk (``saving_lib._load_state``) tries an object at EVERY path it is reachable by
(an attribute ``self.emb`` and the Model's ``layers`` list -> ``layers/embedding``), and a failure under
one path is cleared when the object loads under a later one. For each case the REAL
``model.load_weights`` runs on the very object that was checked, and the prediction must agree with it:
the outcome (error / warning / no message), the message, the objects that could not be loaded, and the
variables whose values actually changed.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")

from ckptdoctor.checking import behavior as B  # noqa: E402
from ckptdoctor.checking import check  # noqa: E402
from ckptdoctor.checking.compare_keras import _groups_from_tensors  # noqa: E402
from ckptdoctor.frameworks.keras_spec import record_save_paths  # noqa: E402

VOCAB, DIM, UNITS, SEQ = 50, 8, 16, 6


def _build(model: Any) -> Any:
    model(np.zeros((1, SEQ), "int32"))
    return model


def sequential(classes: int = 2) -> Any:
    return _build(keras.Sequential([keras.layers.Embedding(VOCAB, DIM), keras.layers.LSTM(UNITS),
                                    keras.layers.Dense(classes, activation="softmax")]))


class Renamed(keras.Model):
    """The Sequential rewritten as a subclassed model: saves ``emb``, ``head``, ``layers/lstm/cell``."""

    def __init__(self, classes: int = 2, dim: int = DIM, **kw: Any) -> None:
        super().__init__(**kw)
        self.emb = keras.layers.Embedding(VOCAB, dim)
        self.rnn = keras.layers.LSTM(UNITS)
        self.head = keras.layers.Dense(classes, activation="softmax")

    def call(self, x: Any) -> Any:
        return self.head(self.rnn(self.emb(x)))


class WithMid(keras.Model):
    """One more Dense than the file, created before the head: ``layers/dense`` is now the new layer."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.emb = keras.layers.Embedding(VOCAB, DIM)
        self.rnn = keras.layers.LSTM(UNITS)
        self.mid = keras.layers.Dense(4)
        self.head = keras.layers.Dense(2, activation="softmax")

    def call(self, x: Any) -> Any:
        return self.head(self.mid(self.rnn(self.emb(x))))


class WithTail(keras.Model):
    """One more Dense than the file, after the head: the new layer has no group at any of its paths."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.emb = keras.layers.Embedding(VOCAB, DIM)
        self.rnn = keras.layers.LSTM(UNITS)
        self.head = keras.layers.Dense(2)
        self.tail = keras.layers.Dense(3)

    def call(self, x: Any) -> Any:
        return self.tail(self.head(self.rnn(self.emb(x))))


class SeqAlias(keras.Sequential):
    """A Sequential subclass that also keeps an attribute pointing at its own output layer."""

    def __init__(self, classes: int = 2, **kw: Any) -> None:
        super().__init__([keras.layers.Embedding(VOCAB, DIM), keras.layers.LSTM(UNITS),
                          keras.layers.Dense(classes, activation="softmax")], **kw)
        self.out_layer = self.layers[-1]


class FuncAlias(keras.Model):
    """A Functional model (subclassed, built from inputs/outputs) with an alias attribute to its output layer."""

    def __init__(self, classes: int = 2, **kw: Any) -> None:
        inputs = keras.Input((SEQ,), dtype="int32")
        dense = keras.layers.Dense(classes, activation="softmax")
        outputs = dense(keras.layers.LSTM(UNITS)(keras.layers.Embedding(VOCAB, DIM)(inputs)))
        super().__init__(inputs, outputs, **kw)
        self.out_layer = dense


class SeqExtra(keras.Sequential):
    """A Sequential subclass with an extra layer held as an attribute, outside the stack."""

    def __init__(self, **kw: Any) -> None:
        super().__init__([keras.layers.Embedding(VOCAB, DIM), keras.layers.LSTM(UNITS),
                          keras.layers.Dense(2, activation="softmax")], **kw)
        self.aux = keras.layers.Dense(3)
        self.aux.build((None, 5))


def _randomize(model: Any, seed: int) -> None:
    """Saved values differ from any initial value, so "this variable was loaded" is visible."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("keras_paths")
    out = {}
    seq = sequential()
    _randomize(seq, 1)
    out["weights"] = str(folder / "seq.weights.h5")
    seq.save_weights(out["weights"])
    out["keras"] = str(folder / "seq.keras")
    seq.save(out["keras"])
    seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # saves optimizer variables too
    seq.optimizer.build(seq.trainable_variables)  # as after training: the moments of every variable
    out["compiled"] = str(folder / "compiled.weights.h5")
    seq.save_weights(out["compiled"])
    # a file with BOTH the attribute paths (Renamed's own save) and the layers paths (the Sequential's)
    renamed = _build(Renamed())
    _randomize(renamed, 2)
    out["both"] = str(folder / "both.weights.h5")
    renamed.save_weights(out["both"])
    with h5py.File(out["weights"], "r") as src, h5py.File(out["both"], "a") as dst:
        for name in ("embedding", "dense"):
            src.copy(f"layers/{name}", dst["layers"], name=name)
    # the same, but the attribute group ``emb`` has another shape: only ``layers/embedding`` fits
    wrong = _build(Renamed(dim=DIM + 1))
    _randomize(wrong, 3)
    out["both_wrong_emb"] = str(folder / "both_wrong_emb.weights.h5")
    wrong.save_weights(out["both_wrong_emb"])
    with h5py.File(out["weights"], "r") as src, h5py.File(out["both_wrong_emb"], "a") as dst:
        del dst["layers/lstm"]
        for name in ("embedding", "lstm", "dense"):
            src.copy(f"layers/{name}", dst["layers"], name=name)
    return out


def _real(model: Any, path: str, skip_mismatch: bool) -> tuple[str, str, set[str]]:
    """(outcome, message, save paths of the variables whose values changed) of the REAL load."""
    paths = record_save_paths(model)
    before = {p: keras.ops.convert_to_numpy(v).copy() for p, v in paths}
    outcome, message = "ok", ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path, skip_mismatch=skip_mismatch)
        except ValueError as exc:
            outcome, message = "error", str(exc)
    user = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "copy keyword" not in
            str(w.message)]
    if outcome == "ok" and user:
        outcome, message = "warning", "\n".join(user)
    changed = {p for p, v in paths if not np.array_equal(before[p], keras.ops.convert_to_numpy(v))}
    return outcome, message, changed


def _no_values(message: str) -> str:
    """Keras prints the target variable with its values; the prediction cannot know them."""
    return re.sub(r", value=.*?>(\n\nList|$)", r", value=...>\1", message, flags=re.S)


def _predicted_changes(report: Any) -> set[str]:
    walk = B.keras_load_walk(_groups_from_tensors(report.snapshot.tensors), report.spec.facts["keras_load_walk"])
    return set(walk.var_source)


def _agree(factory: Callable[[], Any], path: str) -> tuple[Any, str, str]:
    """Check, then load for real (strict and skip_mismatch=True, each on a fresh model): both must agree."""
    first = None
    for skip in (False, True):
        model = factory()
        report = check(model, path)
        pred = report.prediction("skip_mismatch=True" if skip else "')")
        outcome, message, changed = _real(model, path, skip)
        said = "ok" if pred.outcome == "silent" else pred.outcome
        assert said == outcome, (skip, pred.summary(), message)
        if outcome != "ok":
            assert _no_values(pred.message) == _no_values(message), (pred.message, message)
        if outcome == "error":
            failed = [line for line in message.splitlines() if line.startswith("[")][-1]
            assert failed == "[" + ", ".join(pred.details["failed_objects"]) + "]"
        assert _predicted_changes(report) == changed, skip
        first = first or (report, outcome, message)
    assert first is not None
    return first


@pytest.mark.parametrize("fmt", ["weights", "keras"])
def test_subclassed_model_loads_a_sequential_file_through_its_layers_list(files, fmt):
    report, outcome, _ = _agree(lambda: _build(Renamed()), files[fmt])
    assert outcome == "ok"
    assert report.prediction("')").outcome in ("ok", "silent")
    assert not [d for d in report.diagnostics if d.code.startswith("A1") and d.severity >= 2], \
        [(d.code, d.message) for d in report.diagnostics]
    loaded = report.prediction("')").details["loaded_from"]
    assert sorted(loaded.values()) == ["layers/dense", "layers/embedding", "layers/lstm/cell"]


@pytest.mark.parametrize("fmt", ["weights", "keras"])
def test_changed_head_fails_under_the_path_keras_uses(files, fmt):
    report, outcome, message = _agree(lambda: _build(Renamed(classes=3)), files[fmt])
    assert outcome == "error" and message.startswith("A total of 1 objects could not be loaded")
    [a103] = [d for d in report.diagnostics if d.code == "A103"]
    assert a103.subject == "layers/dense"  # not 'head', where the file has nothing
    assert a103.found == [[UNITS, 2], [2]] and a103.expected == [[UNITS, 3], [3]]
    assert "2 classes" in a103.message and a103.details["paths_tried"] == ["head", "layers/dense"]
    # the saved 'layers/dense' WAS tried (and did not fit): it is not a group "nothing in the model matches"
    assert not [d for d in report.diagnostics if d.code in ("A101", "A102")]


def test_changed_embedding_fails_and_the_lstm_follows(files):
    report, outcome, message = _agree(lambda: _build(Renamed(dim=DIM + 2)), files["weights"])
    assert outcome == "error" and message.startswith("A total of 2 objects could not be loaded")
    shapes = {d.subject: d for d in report.diagnostics if d.code == "A103"}
    assert set(shapes) == {"layers/embedding", "layers/lstm/cell"}
    # the LSTM is tried at 'layers/lstm' (shapes differ) and then at 'rnn' (absent): the finding is the first
    assert shapes["layers/lstm/cell"].details["paths_tried"] == ["layers/lstm/cell", "rnn/cell"]


def test_extra_layer_before_the_head_shifts_the_auto_names(files):
    report, outcome, message = _agree(lambda: _build(WithMid()), files["weights"])
    assert outcome == "error" and message.startswith("A total of 2 objects could not be loaded")
    by_code = {(d.code, d.subject) for d in report.diagnostics if d.severity >= 2}
    assert ("A103", "layers/dense") in by_code  # mid is layers/dense, whose saved kernel is the head's
    assert ("A101", "head") in by_code  # head is tried at 'head' and 'layers/dense_1': neither exists
    a101 = next(d for d in report.diagnostics if d.code == "A101")
    assert a101.details["paths_tried"] == ["head", "layers/dense_1"]


def test_extra_layer_after_the_head(files):
    report, outcome, _ = _agree(lambda: _build(WithTail()), files["weights"])
    assert outcome == "error"
    [failed] = report.prediction("')").details["failed_objects"]
    assert failed.startswith("<Dense ")
    [a101] = [d for d in report.diagnostics if d.code == "A101"]
    # 'layers' sorts before 'tail': the save walk wrote it as layers/dense_1, the load tries that first
    assert a101.subject == "layers/dense_1" and a101.details["paths_tried"] == ["layers/dense_1", "tail"]


def test_attribute_path_wins_when_both_paths_are_in_the_file(files):
    report, outcome, _ = _agree(lambda: _build(Renamed()), files["both"])
    assert outcome == "ok"
    pred = report.prediction("')")
    assert pred.outcome == "silent"  # the layers/... copies are never read
    assert sorted(pred.details["ignored_groups"]) == ["layers/dense", "layers/embedding"]
    a107 = [d for d in report.diagnostics if d.code == "A107"]
    assert a107 and sorted(a107[0].details["groups"]) == ["layers/dense", "layers/embedding"]
    # and the values really came from 'emb', not 'layers/embedding'
    model = _build(Renamed())
    model.load_weights(files["both"])
    with h5py.File(files["both"], "r") as f:
        assert np.array_equal(keras.ops.convert_to_numpy(model.emb.embeddings), f["emb/vars/0"][()])
        assert not np.array_equal(f["emb/vars/0"][()], f["layers/embedding/vars/0"][()])


def test_attribute_group_with_other_shape_falls_back_to_the_layers_path(files):
    report, outcome, _ = _agree(lambda: _build(Renamed()), files["both_wrong_emb"])
    assert outcome == "ok"
    pred = report.prediction("')")
    loaded = pred.details["loaded_from"]
    assert loaded[next(k for k in loaded if k.startswith("<Embedding"))] == "layers/embedding"
    assert "emb" in pred.details["ignored_groups"]
    assert not [d for d in report.diagnostics if d.code in ("A101", "A103", "A105")]


ALIASED = {"sequential": SeqAlias, "functional": FuncAlias}


@pytest.mark.parametrize("kind", list(ALIASED))
def test_sequential_or_functional_with_an_alias_attribute_loads(files, kind):
    report, outcome, _ = _agree(lambda: _build(ALIASED[kind]()), files["weights"])
    assert outcome == "ok" and report.prediction("')").outcome == "ok"


@pytest.mark.parametrize("kind", list(ALIASED))
def test_alias_of_a_mismatched_layer(files, kind):
    """The layer fails at 'layers/dense' (shapes), then again at its alias 'out_layer' (absent): Keras' message
    is the LAST one (0 variables received); the finding names the real cause, the shapes at 'layers/dense'."""
    report, outcome, message = _agree(lambda: _build(ALIASED[kind](classes=3)), files["weights"])
    assert outcome == "error" and "received 0 variables" in message
    [a103] = [d for d in report.diagnostics if d.code == "A103"]
    # a Functional model's private _operations_by_depth (walked last) reaches the layer once more
    extra = ["_operations_by_depth/container/dense"] if kind == "functional" else []
    assert a103.subject == "layers/dense" and a103.details["paths_tried"] == ["layers/dense", "out_layer", *extra]


def test_sequential_subclass_with_an_extra_attribute_layer(files):
    report, outcome, _ = _agree(lambda: _build(SeqExtra()), files["weights"])
    assert outcome == "error"
    [a101] = [d for d in report.diagnostics if d.code == "A101"]
    assert a101.subject == "aux"


def _compiled_renamed() -> Any:
    model = _build(Renamed())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # its optimizer is not built yet
    return model


def test_optimizer_walked_at_its_own_path(files):
    """The optimizer is one more object of the walk: unbuilt, it has 2 variables where the file has 2 + moments."""
    report, outcome, message = _agree(_compiled_renamed, files["compiled"])
    assert outcome == "warning" and message.startswith("Skipping variable loading for optimizer")
    assert not [d for d in report.diagnostics if d.code in ("A101", "A103")]
