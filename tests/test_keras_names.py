"""Keras 3 class names for configs without modules (legacy .h5), and F205: keras.ops nodes in a .h5 model."""

from __future__ import annotations

import importlib
import inspect as pyinspect
import json
import logging
import os
import pkgutil
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from ckptdoctor.inspection import inspect  # noqa: E402
from ckptdoctor.readers.keras_names import KERAS3_LAYERS, KERAS3_OPS  # noqa: E402


def _installed_names() -> tuple[set[str], set[str]]:
    from keras.src.layers.layer import Layer
    from keras.src.ops.operation import Operation

    layers = {o.__name__ for o in vars(keras.layers).values() if pyinspect.isclass(o) and issubclass(o, Layer)}
    ops = set()
    import keras.src.ops as ops_pkg

    for info in pkgutil.iter_modules(ops_pkg.__path__):
        if info.name.endswith("_test"):
            continue
        module = importlib.import_module(f"keras.src.ops.{info.name}")
        ops |= {o.__name__ for o in vars(module).values() if pyinspect.isclass(o) and issubclass(o, Operation)
                and not issubclass(o, Layer) and o.__module__ == module.__name__}
    return layers, ops


def test_names_cover_the_installed_keras() -> None:
    """A newer keras with new layers or ops fails here: regenerate keras_names.py from it."""
    layers, ops = _installed_names()
    assert layers <= KERAS3_LAYERS, sorted(layers - KERAS3_LAYERS)
    assert ops <= KERAS3_OPS, sorted(ops - KERAS3_OPS)


def _functional(tail: Callable | None) -> keras.Model:
    """Tokens -> Embedding(mask_zero=True) -> LSTM -> Dense (the chatbot shape), or with ``tail`` applied
    to a plain Embedding -> Flatten -> Dense stack."""
    inputs = keras.Input((6,), dtype="int32")
    if tail is None:
        x = keras.layers.LSTM(3)(keras.layers.Embedding(30, 4, mask_zero=True)(inputs))
    else:
        x = tail(keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Embedding(30, 4)(inputs))))
    return keras.Model(inputs, keras.layers.Dense(2)(x))


CASES: dict[str, tuple[Callable | None, str | None]] = {
    "embedding-mask-zero": (None, "error"),  # the article's chatbot shape, with mask_zero=True
    "ops-tanh": (lambda x: keras.ops.tanh(x), "error"),
    "ops-add-constant": (lambda x: keras.ops.add(x, 1.0), "warning"),  # "Add" is also a layer name
    "rms-normalization-layer": (lambda x: keras.layers.RMSNormalization()(x), None),  # a Keras 3 layer
}


@pytest.mark.parametrize("case", list(CASES))
def test_keras_ops_nodes_in_h5_against_load_model(tmp_path: Path, case: str) -> None:
    tail, severity = CASES[case]
    path = tmp_path / f"{case}.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            _functional(tail).save(path)
        finally:
            logging.disable(logging.NOTSET)
    loaded_ok, error = True, ""
    try:
        keras.models.load_model(path)
    except (ValueError, TypeError) as exc:
        loaded_ok, error = False, str(exc)
    rebuilt = _functional(tail)
    rebuilt.load_weights(path)  # the weights themselves always load into the model built in code
    [snap] = inspect(path)
    found = [d for d in snap.diagnostics if d.code == "F205"]
    assert not [d for d in snap.diagnostics if d.code == "C101"]  # none of these is a custom class
    if severity is None:
        assert loaded_ok and not found
        return
    [d] = found
    assert str(d.severity) == severity
    if severity == "error":  # load_model fails the way the finding says
        assert not loaded_ok
        assert f"Unknown layer: '{d.found[0]}'" in error and f"Unknown layer: '{d.found[0]}'" in d.framework_behavior
    config = json.loads(h5py.File(path).attrs["model_config"])
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert set(d.found) <= classes


def test_explain_unknown_layer_tells_an_op_node_from_a_custom_class(tmp_path: Path) -> None:
    """The message load_model printed for the mask_zero chatbot .h5, pasted into explain."""
    from ckptdoctor.catalog import explain

    path = tmp_path / "chatbot.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _functional(None).save(path)
    with pytest.raises(ValueError) as err:
        keras.models.load_model(path)
    [op] = explain(str(err.value)).findings
    assert op.entry.code == "W115" and op.variables["class_name"] == "NotEqual"
    assert "keras.ops" in op.variables["unknown_cause"] and "load_weights" in op.variables["unknown_fix"]
    [custom] = explain("ValueError: Unknown layer: 'NoArgScale'. Please ensure you are using a "
                       "`keras.utils.custom_object_scope` and that this object is included in the scope.").findings
    assert "custom_object_scope({'NoArgScale': NoArgScale})" in custom.variables["unknown_fix"]
