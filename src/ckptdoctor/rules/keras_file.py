"""F2xx: advice about a Keras file's format, from the file alone (no model needed).

The model-side counterpart (choosing `.h5` when saving) is C106 keras-legacy-h5, emitted by `lint`.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules.registry import Rule, snapshot_check

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ckptdoctor.snapshot import Snapshot

LEGACY_HDF5 = Rule("F201", "legacy-hdf5-format", Severity.INFO,
                   "The file uses the legacy Keras HDF5 format; `.keras` is the native format.", """
    ## What it means
    The file is a full model or weights saved as `.h5` in the layout of Keras 2 / tf.keras
    (`model_weights`, `layer_names`, `weight_names`, `model_config`). Keras 3 still reads and writes it,
    but calls it legacy.

    ## Why it happens
    `model.save("x.h5")`, or a model saved before Keras 3 existed.

    ## What the framework does
    Saving logs `WARNING:absl:You are saving your model as an HDF5 file via model.save() or
    keras.saving.save_model(model). This file format is considered legacy. We recommend using instead
    the native Keras format, e.g. model.save('my_model.keras')`. Loading works, but
    `model.load_weights("x.h5")` matches layers by position (`Shape mismatch in layer #1 (named ...)`),
    and a custom class fails with `Unknown layer` rather than the clearer `.keras` messages.

    ## Example
    ```python
    model.save("chatbot.h5")      # legacy
    model.save("chatbot.keras")   # native: config.json + metadata.json + model.weights.h5
    ```

    ## Fix
    Load it once and re-save: `keras.models.load_model("x.h5", compile=False).save("x.keras")`, or
    `model.save_weights("x.weights.h5")` for weights only.
""")

NO_TRAINING_CONFIG = Rule("F202", "keras-no-training-config", Severity.INFO,
                          "The model file has no training configuration: it loads uncompiled.", """
    ## What it means
    The legacy `.h5` full model has a `model_config` but no `training_config`: the model was never
    compiled before it was saved, or it was saved with `include_optimizer=False`.

    ## What the framework does
    `keras.models.load_model("x.h5")` logs `WARNING:absl:No training configuration found in the save
    file, so the model was *not* compiled. Compile it manually.` (tf.keras 2.x: the same text from
    `WARNING:tensorflow`). The weights are loaded correctly; only the optimizer, loss and metrics are
    missing. With `compile=False` the message does not appear.

    ## Fix
    Nothing, for inference: pass `compile=False`. To keep training, call `model.compile(...)` after
    loading, or compile before saving.
""")

KERAS2_OPTIMIZER_ARGS = Rule("F203", "keras2-optimizer-arguments", Severity.WARNING,
                             "The saved optimizer uses Keras 2 arguments that Keras 3 rejects.", """
    ## What it means
    The file's training configuration stores the optimizer with Keras 2 argument names such as
    `lr` (now `learning_rate`) or `decay` (removed in Keras 3).

    ## Why it happens
    The model was saved with Keras 2.x or an old tf.keras.

    ## What the framework does
    Keras 3 `load_model("x.h5")` warns `Argument decay is no longer supported and will be ignored.`
    and then raises `ValueError: Argument(s) not recognized: {'lr': 0.01}`. tf.keras 2 loads it.

    ## Example
    The python-chatbot `chatbot_model.h5` (Keras 2.2.4, `SGD(lr=0.01, decay=1e-6, momentum=0.9,
    nesterov=True)`) fails this way under Keras 3.

    ## Fix
    `keras.models.load_model("x.h5", compile=False)` loads the architecture and weights; then compile
    again with `SGD(learning_rate=0.01, momentum=0.9, nesterov=True)` and re-save as `.keras`.
""")

KERAS_OP_IN_H5 = Rule("F205", "keras-op-in-legacy-h5", Severity.ERROR,
    "The .h5 model config holds a keras.ops operation node, which load_model cannot rebuild from .h5.", """
    ## What it means
    A Keras 3 functional model records every `keras.ops` call in its graph as an operation node:
    `Embedding(mask_zero=True)` adds a `NotEqual` node that computes the mask, and `keras.ops.tanh(x)`
    between layers adds a `Tanh` node. The native `.keras` format stores each node's module
    (`keras.src.ops.numpy`); the legacy `.h5` format stores only the class name.

    ## Why it happens
    `model.save("model.h5")` in Keras 3 writes the node anyway (with a warning that `.h5` is legacy),
    but the `.h5` loader looks class names up among layers only.

    ## What the framework does
    `keras.models.load_model("model.h5")` raises `ValueError: Unknown layer: 'NotEqual'. Please ensure
    you are using a keras.utils.custom_object_scope ...`, which reads like a custom-layer problem but
    is not one. `model.load_weights("model.h5")` into the same model built in code still works.

    ## Example
    ```python
    x = keras.layers.Embedding(1000, 64, mask_zero=True)(inputs)
    x = keras.layers.LSTM(128)(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.save("chatbot.h5")           # loads back: ValueError: Unknown layer: 'NotEqual'
    ```

    ## Fix
    Save in the native format: `model.save("chatbot.keras")`. For this file, build the model in code
    and call `model.load_weights("chatbot.h5")`, then save it as `.keras`.
""")


@snapshot_check
def check_keras_ops_in_h5(snapshot: Snapshot) -> list[Diagnostic]:
    """keras.ops nodes (NotEqual from a mask, Tanh from keras.ops.tanh) in a legacy .h5 config."""
    if snapshot.format != "keras-h5" or snapshot.config is None:
        return []
    from ckptdoctor.readers.keras_config import keras_op_nodes

    nodes = keras_op_nodes(snapshot.config)
    if not nodes:
        return []
    names = sorted({name for _, name, _ in nodes})
    first_path, first, as_layer = next(((p, n, a) for p, n, a in nodes if not a), nodes[0])
    mask = " (NotEqual: the mask of an Embedding with mask_zero=True)" if "NotEqual" in names else ""
    if as_layer:  # every node's name is also a layer's: load_model builds that layer instead
        behavior = (f"keras.models.load_model rebuilds {first} as the {first} *layer*: it fails (TypeError, or "
                    "'Only input tensors may be passed as positional arguments') unless the layer's defaults "
                    "happen to match the op")
    else:
        behavior = (f"keras.models.load_model raises `ValueError: Unknown layer: '{first}'` (not a custom layer "
                    "problem)")
    return [KERAS_OP_IN_H5.diag(
        f"the model graph holds keras.ops node(s) {', '.join(names)}{mask}: load_model cannot rebuild them "
        "from .h5", severity=Severity.WARNING if as_layer else Severity.ERROR, subject=first_path,
        found=names, expected="layers only (or the .keras format)",
        framework_behavior=behavior + "; model.load_weights into the model built in code works",
        fix="save with model.save('model.keras'); for this file: build the model in code, "
            "model.load_weights(path), then save as .keras",
        details={"nodes": [p for p, _, _ in nodes]})]


# Keras 2 optimizer argument -> what Keras 3 calls it (None: removed)
_KERAS2_OPTIMIZER_ARGS: dict[str, str | None] = {"lr": "learning_rate", "decay": None}


@snapshot_check
def check_keras_file_format(snapshot: Snapshot) -> list[Diagnostic]:
    if snapshot.format != "keras-h5":
        return []
    out: list[Diagnostic] = []
    version = snapshot.framework_version or "unknown"
    full_model = snapshot.config is not None
    out.append(LEGACY_HDF5.diag(
        f"legacy Keras HDF5 {'full model' if full_model else 'weights file'} (saved by Keras {version})",
        subject=snapshot.path, found="keras-h5", expected="keras-v3 (.keras)",
        framework_behavior="Keras 3 reads it; saving logs 'This file format is considered legacy'",
        fix="keras.models.load_model(path, compile=False).save('model.keras')"
            if full_model else "re-save with model.save_weights('model.weights.h5')"))
    if full_model and snapshot.training_config is None:
        out.append(NO_TRAINING_CONFIG.diag(
            "no training_config: load_model returns an uncompiled model",
            subject=snapshot.path,
            framework_behavior="load_model logs 'No training configuration found in the save file, so the "
                               "model was *not* compiled. Compile it manually.'",
            fix="pass compile=False when loading for inference, or compile after loading"))
    out.extend(_keras2_optimizer(snapshot))
    return out


def _keras2_optimizer(snapshot: Snapshot) -> list[Diagnostic]:
    tc = snapshot.training_config
    opt = tc.get("optimizer_config") if isinstance(tc, dict) else None
    cfg: Any = opt.get("config") if isinstance(opt, dict) else None
    if not isinstance(cfg, dict):
        return []
    legacy = {k: cfg[k] for k in _KERAS2_OPTIMIZER_ARGS if k in cfg}
    if "lr" not in legacy:  # `decay` alone is only warned about and ignored
        return []
    name = opt.get("class_name", "optimizer")
    renamed = ", ".join(f"{k} -> {v}" if v else f"{k} (removed)" for k, v in _KERAS2_OPTIMIZER_ARGS.items()
                        if k in legacy)
    return [KERAS2_OPTIMIZER_ARGS.diag(
        f"{name} is saved with Keras 2 arguments {sorted(legacy)}: Keras 3 load_model fails to compile it",
        subject="training_config.optimizer_config", found=legacy, expected="learning_rate=...",
        framework_behavior=f"Keras 3 raises `ValueError: Argument(s) not recognized: {{'lr': {cfg['lr']}}}`",
        fix=f"load with compile=False, then compile again ({renamed})")]


@snapshot_check
def check_damaged_class_names(snapshot: Snapshot) -> list[Diagnostic]:
    """A class name in the config that no Python code can define: its bytes were damaged (one changed
    byte in an HDF5 string attribute or config.json), and load_model cannot rebuild that object."""
    from ckptdoctor.rules.file_format import CORRUPT_HEADER

    out: list[Diagnostic] = []
    for cls in snapshot.classes:
        if cls.role.startswith("keras") and not cls.name.isidentifier():
            where = f"module {cls.module}" if cls.module else "no module"
            out.append(CORRUPT_HEADER.diag(
                f"the config names class {cls.name!r} ({where}), which no Python code can define: "
                "the config is damaged", subject=cls.path, found=cls.name,
                framework_behavior="keras.models.load_model fails: `TypeError: Error when deserializing "
                                   "class ...` (the class cannot be found or imported)",
                fix="save or download the file again; the weights alone may still load with "
                    "model.load_weights into a model built in code"))
    return out
