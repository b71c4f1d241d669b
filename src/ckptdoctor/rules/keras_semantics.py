"""F204: a Keras 1/2 file whose layers mean something else in Keras 3 (same weights, other outputs).

Keras 2 defined ``hard_sigmoid(x) = clip(0.2 * x + 0.5, 0, 1)``; Keras 3 defines it as
``clip(x / 6 + 0.5, 0, 1)``. The saved config only stores the NAME ``"hard_sigmoid"``, so Keras 3
loads the file without any message and computes a different function: every LSTM/GRU saved by
Keras <= 2.2 (where ``recurrent_activation="hard_sigmoid"`` was the default) predicts differently.
Found from the file alone (the config tree), no model needed.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules.registry import Rule, snapshot_check

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ckptdoctor.snapshot import Snapshot

KERAS2_HARD_SIGMOID = Rule("F204", "keras2-hard-sigmoid", Severity.WARNING,
                           "The file uses Keras 2's hard_sigmoid, which Keras 3 computes differently.", """
    ## What it means
    A layer of this Keras 1/2 file uses `activation` or `recurrent_activation` (Keras 1:
    `inner_activation`) `"hard_sigmoid"`. The name survived; the function did not:
    Keras 2 `hard_sigmoid(x) = clip(0.2*x + 0.5, 0, 1)`, Keras 3 `hard_sigmoid(x) = clip(x/6 + 0.5, 0, 1)`.

    ## Why it happens
    Keras <= 2.2 used `recurrent_activation="hard_sigmoid"` as the LSTM/GRU default, so nearly every
    recurrent model of that era stores it. Keras 3 aligned `hard_sigmoid` with the paper/PyTorch
    definition (`torch.nn.functional.hardsigmoid` is also `x/6 + 1/2`).

    ## What the framework does
    Nothing visible. `keras.models.load_model(path, compile=False)` and `model.load_weights(path)`
    succeed without a warning, and the model's outputs differ from what Keras 2 computed with the same
    weights (the gates saturate at |x| = 3 instead of 2.5). A PyTorch port with `nn.LSTM` differs even
    more: its gates use the real sigmoid.

    ## Example
    ```python
    # saved by Keras 2.2.4: LSTM(32) with the default recurrent_activation="hard_sigmoid"
    m = keras.models.load_model("old_lstm.h5", compile=False)   # Keras 3: loads, no message
    m.predict(x)                                                  # != the Keras 2 predictions
    ```

    ## Fix
    Reproduce the Keras 2 function. In Keras 3, after loading (or when rebuilding the model in code):
    ```python
    def hard_sigmoid_k2(x):
        return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)
    for layer in model.layers:                  # LSTM/GRU: the activation lives on the cell
        cell = getattr(layer, "cell", layer)
        if getattr(cell, "recurrent_activation", None) is keras.activations.hard_sigmoid:
            cell.recurrent_activation = hard_sigmoid_k2
    ```
    or build the layers with `recurrent_activation=hard_sigmoid_k2` and call `load_weights`. In a
    PyTorch port, write the LSTM cell yourself and use `torch.clamp(0.2 * x + 0.5, 0, 1)` for the
    input, forget and output gates (`nn.LSTM` cannot change its gate function). Retraining with
    `"sigmoid"` is the other way out.
""")

ACTIVATION_KEYS = ("activation", "recurrent_activation", "inner_activation")
# formats whose config carries the saving Keras version
KERAS_CONFIG_FORMATS = ("keras-h5", "keras-v3")


def _is_keras2(version: str | None) -> bool:
    return bool(version) and str(version).startswith(("1.", "2."))


def hard_sigmoid_uses(config: Any) -> list[tuple[str, str, str]]:
    """(layer name, layer class, config key) for every ``"hard_sigmoid"`` activation in a Keras config
    tree (Sequential, Functional, nested models, Bidirectional/TimeDistributed wrappers, RNN cells)."""
    found: list[tuple[str, str, str]] = []

    def walk(node: Any, layer: tuple[str, str]) -> None:
        if isinstance(node, dict):
            cfg = node.get("config")
            if isinstance(node.get("class_name"), str) and isinstance(cfg, dict):
                layer = (str(cfg.get("name") or node["class_name"]), node["class_name"])
            for key in ACTIVATION_KEYS:
                if _names_hard_sigmoid(node.get(key)):
                    found.append((layer[0], layer[1], key))
            for key, value in node.items():
                if key not in ACTIVATION_KEYS:
                    walk(value, layer)
        elif isinstance(node, list):
            for item in node:
                walk(item, layer)

    walk(config, ("", ""))
    return found


def _names_hard_sigmoid(value: Any) -> bool:
    if isinstance(value, str):
        return value == "hard_sigmoid"
    # a serialized function object: {"class_name": "function", "config": "hard_sigmoid", ...}
    return isinstance(value, dict) and value.get("config") == "hard_sigmoid"


@snapshot_check
def check_keras2_hard_sigmoid(snapshot: Snapshot) -> list[Diagnostic]:
    if snapshot.format not in KERAS_CONFIG_FORMATS or snapshot.config is None:
        return []
    version = snapshot.framework_version or snapshot.metadata.get("keras_version")
    if not _is_keras2(version):
        return []
    uses = hard_sigmoid_uses(snapshot.config)
    if not uses:
        return []
    shown = ", ".join(f"{cls} {name!r} ({key})" for name, cls, key in uses[:4])
    more = f" and {len(uses) - 4} more" if len(uses) > 4 else ""
    return [KERAS2_HARD_SIGMOID.diag(
        f"saved by Keras {version} with hard_sigmoid in {shown}{more}: Keras 2 computed clip(0.2x+0.5, 0, 1), "
        "Keras 3 computes clip(x/6+0.5, 0, 1), so the same weights give different outputs",
        subject=uses[0][0], expected="clip(0.2*x + 0.5, 0, 1) (Keras 2 hard_sigmoid)",
        found="clip(x/6 + 0.5, 0, 1) (Keras 3 hard_sigmoid)",
        framework_behavior="load_model / load_weights succeed with no message; predictions silently differ "
                           "from Keras 2's",
        fix="set the cells' recurrent_activation (or the layer's activation) to "
            "lambda x: keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0) after loading, or build the model with it and "
            "call load_weights; in a PyTorch port use torch.clamp(0.2 * x + 0.5, 0, 1) for the i, f, o gates "
            "(ckptdoctor explain F204)",
        path=snapshot.path,
        details={"layers": [{"name": n, "class_name": c, "key": k} for n, c, k in uses]})]
