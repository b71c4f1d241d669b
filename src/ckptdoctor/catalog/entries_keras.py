"""Keras 3, tf.keras 2.x / tf-keras and TensorFlow SavedModel messages (W101-W199).

Texts are from ``/work/shared/reference/keras-tf-messages.md`` and ``measured-behaviour.md``. In
patterns a space means optional whitespace and a backtick is optional (see ``model.compile_pattern``).
"""

from __future__ import annotations

from ckptdoctor.catalog.model import Entry
from ckptdoctor.diagnostics import Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
SHAPE = r"(?:torch\.Size\(\[[^\]]*\]\)|\([^)]*\)|\[[^\]]*\])"

ENTRIES: list[Entry] = [
    Entry(
        code="W101", name="keras-untraced-functions", library="tensorflow",
        versions="TensorFlow 2.4-2.15 tf.keras SavedModel saves (WARNING:absl:); INFO level in TF >= 2.16 and "
                 "tf-keras; never printed for Keras 3 `.keras`/`.h5` saves",
        severity=INFO,
        summary="SavedModel save found tf.functions it could not trace (e.g. lstm_cell_layer_call_fn).",
        patterns=(r"Found untraced functions such as (?P<functions>.+?) while saving \(showing (?P<shown>\d+) "
                  r"of (?P<total>\d+)\)",),
        meaning="While writing a SavedModel, TensorFlow found {total} tf.functions that were never traced "
                "({functions}). They belong to: {untraced_layers}. They will not be directly callable on the "
                "object returned by the low-level `tf.saved_model.load`.",
        harmless="yes: `tf.keras.models.load_model` rebuilds the layers ({untraced_layers}) from their saved "
                 "config and restores every weight, so predictions are identical. TensorFlow's maintainers: "
                 "\"can be safely ignored\" (tensorflow/tensorflow#47554).",
        cause="Keras LSTM/GRU layers run fused kernels that read the cell's weights directly and never call "
              "the cell, so the cell's wrapper functions (`*_layer_call_fn`, "
              "`*_layer_call_and_return_conditional_losses`) get no input signature to trace. "
              "`_update_step_xla` (optimizer) and `_jit_compiled_convolution_op` (grouped convolutions, "
              "TF >= 2.11) are skipped the same way.",
        framework="The SavedModel is written completely; only the traces of those functions are missing.",
        fix="Nothing is required. To avoid the message, save without tracing:\n"
            "    model.save('chatbot_model.keras')            # native format, no tracing (TF >= 2.12)\n"
            "    model.save('chatbot_savedmodel', save_traces=False)  # custom layers then need get_config\n"
            "or silence it: `import absl.logging; absl.logging.set_verbosity(absl.logging.ERROR)`.",
        related=(),
        examples=(
            "WARNING:absl:Found untraced functions such as lstm_cell_layer_call_fn, "
            "lstm_cell_layer_call_and_return_conditional_losses, lstm_cell_layer_call_fn, "
            "lstm_cell_layer_call_and_return_conditional_losses, lstm_cell_layer_call_and_return_conditional_losses "
            "while saving (showing 5 of 5). These functions will not be directly callable after loading.",
            "Found untraced functions such as _update_step_xla while saving (showing 1 of 1). These functions "
            "will not be directly callable after loading.",
        ),
        derive=("untraced",), subject="{untraced_layers}",
    ),
    Entry(
        code="W102", name="keras-hdf5-legacy-save", library="keras",
        versions="Keras 2.13-2.15 (UserWarning), tf-keras 2.16+ (UserWarning, 'TF-Keras format'), Keras 3.0 "
                 "(absl), Keras >= 3.1 (WARNING:absl:, longer text mentioning keras.saving.save_model)",
        severity=INFO,
        summary="model.save() to a .h5 path writes the legacy HDF5 format.",
        patterns=(r"You are saving your model as an HDF5 file via `model\.save\(\)`(?: or "
                  r"`keras\.saving\.save_model\(model\)`)?\. This file format is considered legacy\. We "
                  r"recommend using instead the native (?P<format_name>TF-Keras|Keras) format",),
        meaning="`model.save()` was given a `.h5`/`.hdf5` path, so the model was written in the legacy HDF5 "
                "format (config JSON plus weights per layer). The file is complete and loads; Keras only "
                "advises the native `.keras` zip.",
        harmless="yes: the file is written. The legacy format is poorer than `.keras`: custom objects are "
                 "stored by class name only, `load_weights` from `.h5` matches layers by order, and some "
                 "layer state and compile metrics are not kept.",
        cause="A `.h5` filename in `model.save(...)`, `keras.saving.save_model(...)` or "
              "`ModelCheckpoint(filepath='...h5')` (which repeats the message every epoch).",
        framework="Writes `model_config`, `training_config` and `model_weights/<layer>/...` into the HDF5 file.",
        fix="Save in the native format:\n"
            "    model.save('chatbot_model.keras')\n"
            "    keras.callbacks.ModelCheckpoint('ckpt.keras')   # or 'ckpt.weights.h5' with save_weights_only=True\n"
            "In Keras 3 the message is an absl log, not a Python warning: `warnings.filterwarnings` does not "
            "hide it; `absl.logging.set_verbosity(absl.logging.ERROR)` does.",
        related=(),
        examples=(
            "WARNING:absl:You are saving your model as an HDF5 file via `model.save()` or "
            "`keras.saving.save_model(model)`. This file format is considered legacy. We recommend using "
            "instead the native Keras format, e.g. `model.save('my_model.keras')` or "
            "`keras.saving.save_model(model, 'my_model.keras')`. ",
            "/usr/local/lib/python3.10/dist-packages/keras/src/engine/training.py:3103: UserWarning: You are "
            "saving your model as an HDF5 file via `model.save()`. This file format is considered legacy. We "
            "recommend using instead the native Keras format, e.g. `model.save('my_model.keras')`.",
            "UserWarning: You are saving your model as an HDF5 file via `model.save()`. This file format is "
            "considered legacy. We recommend using instead the native TF-Keras format, e.g. "
            "`model.save('my_model.keras')`.",
        ),
    ),
    Entry(
        code="W103", name="keras-compiled-metrics-not-built", library="keras",
        versions="Keras 2.x/tf-keras (WARNING:tensorflow:) and Keras 3 (WARNING:absl:), on load of a compiled model",
        severity=INFO,
        summary="The loaded model is compiled but its metrics are built only on the first fit/evaluate.",
        patterns=(r"Compiled the loaded model, but the compiled metrics have yet to be built\.",),
        meaning="The model was saved after `compile()`, so loading compiled it again. Metric objects are "
                "created lazily, so `model.compile_metrics` stays empty until you train or evaluate.",
        harmless="yes: weights and optimizer are loaded; metrics appear on the first `fit`/`evaluate`.",
        cause="Loading a compiled model from `.h5`/SavedModel (or `.keras`) before any training step.",
        fix="Ignore it, or load without compiling when you only predict:\n"
            "    model = keras.models.load_model('chatbot_model.h5', compile=False)",
        related=(),
        examples=("WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built. "
                  "`model.compile_metrics` will be empty until you train or evaluate the model.",
                  "WARNING:tensorflow:Compiled the loaded model, but the compiled metrics have yet to be built. "
                  "`model.compile_metrics` will be empty until you train or evaluate the model."),
    ),
    Entry(
        code="W104", name="keras-no-training-configuration", library="keras",
        versions="Keras <= 2.2 ('in save file: the model was *not* compiled', UserWarning); Keras 3 / tf-keras "
                 "HDF5 loader ('in the save file, so ...'); tf-keras SavedModel loader ('in save file, so ...')",
        severity=INFO,
        summary="The saved model has no compile information, so it was loaded uncompiled.",
        patterns=(r"No training configuration found in (?:the )?save file[,:] (?:so )?the model was \*?not\*? "
                  r"compiled",),
        meaning="The file holds the architecture and the weights but no `training_config` (loss, optimizer, "
                "metrics), so `load_model` returned an uncompiled model.",
        harmless="yes for inference: `predict` works. To continue training you must `compile()` again; the "
                 "optimizer restarts from scratch.",
        cause="The model was saved before `compile()`, or with `include_optimizer=False`. `load_model(..., "
              "compile=False)` does not print it.",
        fix="For inference: `keras.models.load_model(path, compile=False)`. To train further:\n"
            "    model = keras.models.load_model(path, compile=False)\n"
            "    model.compile(optimizer='adam', loss='categorical_crossentropy')",
        related=("optimizer-state",),
        examples=(
            "WARNING:absl:No training configuration found in the save file, so the model was *not* compiled. "
            "Compile it manually.",
            "WARNING:tensorflow:No training configuration found in save file, so the model was *not* compiled. "
            "Compile it manually.",
            "UserWarning: No training configuration found in save file: the model was *not* compiled. Compile "
            "it manually.",
        ),
    ),
    Entry(
        code="W105", name="keras-optimizer-variables-skipped", library="keras",
        versions="Keras 3 (UserWarning) and Keras 2.11-2.15 / tf-keras (WARNING:absl:)",
        severity=W,
        summary="The saved optimizer state does not fit the live optimizer and was discarded.",
        patterns=(r"Skipping variable loading for optimizer '(?P<optimizer>[^']+)', because it has "
                  r"(?P<live_count>\d+) variables whereas the saved optimizer has (?P<saved_count>\d+) variables",),
        meaning="Your optimizer '{optimizer}' has {live_count} variables, the file's optimizer has "
                "{saved_count}. Keras keeps your optimizer as it is and drops the saved slots. "
                "{optimizer_story}",
        harmless="for inference: the model weights are loaded and predictions are right. Resumed training "
                 "starts with a fresh optimizer (momentum, Adam moments, step counter lost).",
        cause="Loading into a model compiled but never trained (its optimizer is not built yet), a different "
              "optimizer class, a different number of trainable weights, or mixed precision wrapping the "
              "optimizer in a LossScaleOptimizer on one side only.",
        fix="For inference: `keras.models.load_model(path, compile=False)`. To resume training with the "
            "saved state, build the optimizer before loading weights:\n"
            "    model.compile(optimizer='adam', loss='...')\n"
            "    model.optimizer.build(model.trainable_variables)\n"
            "    model.load_weights('ckpt.weights.h5')",
        related=("optimizer-state",),
        examples=("UserWarning: Skipping variable loading for optimizer 'adam_1', because it has 2 variables "
                  "whereas the saved optimizer has 14 variables. ",
                  "WARNING:absl:Skipping variable loading for optimizer 'Adam', because it has 22 variables "
                  "whereas the saved optimizer has 30 variables. "),
        derive=("optimizer_counts",), subject="{optimizer}", expected="live_count", found="saved_count",
    ),
    Entry(
        code="W106", name="keras-optimizer-state-not-loaded", library="keras",
        versions="Keras 2.x / tf-keras (WARNING:tensorflow:) and Keras 3 legacy .h5 loader (WARNING:absl:)",
        severity=W,
        summary="The optimizer state in a legacy .h5 could not be restored.",
        patterns=(r"Error in loading the saved optimizer state\. As a result, your model is starting with a "
                  r"freshly initialized optimizer",),
        meaning="`load_model` of a legacy `.h5` found optimizer weights it could not map onto the rebuilt "
                "optimizer, so the model is compiled with a fresh optimizer.",
        harmless="for inference: the model weights are loaded. Resumed training loses the optimizer state.",
        cause="A file from another Keras version (e.g. Keras 2.10 Adam into Keras 3), a different optimizer "
              "or a different set of trainable weights.",
        fix="For inference: `load_model(path, compile=False)`. To resume training, recompile and accept the "
            "fresh optimizer, or load with the Keras version that wrote the file.",
        related=("optimizer-state",),
        examples=("WARNING:absl:Error in loading the saved optimizer state. As a result, your model is starting "
                  "with a freshly initialized optimizer.",
                  "WARNING:tensorflow:Error in loading the saved optimizer state. As a result, your model is "
                  "starting with a freshly initialized optimizer."),
    ),
    Entry(
        code="W107", name="keras-objects-not-loaded", library="keras",
        versions="Keras >= 3.1 (`.keras` and `.weights.h5`): ValueError, or UserWarning with skip_mismatch=True",
        severity=E, as_warning=W,
        summary="Some layers' saved weights do not fit the model (usually a changed size): 'A total of N objects "
                "could not be loaded'.",
        patterns=(r"A total of (?P<count>\d+) objects could not be loaded\. Example error message for object "
                  r"<(?P<object_class>\w+) name=(?P<object_name>[^,>]+)",),
        details=(r"variable\.shape=(?P<expected_shape>\([^)]*\)), Received: value\.shape=(?P<found_shape>"
                 + SHAPE + r")(?:\. Target variable: <Variable path=(?P<variable>[^,>\s]+))?",
                 r"Layer '(?P<layer>[^']+)' expected (?P<expected_vars>\d+) variables, but received "
                 r"(?P<received_vars>\d+) variables during loading\.(?: Expected: \[[^\]]*\])?",
                 r"List of objects that could not be loaded: (?P<objects>\[[^\]]*\])"),
        meaning="{count} layers of your model could not take the weights saved for them. First failure: "
                "{object_class} '{object_name}' ({variable}): {shape_story} Objects that failed: "
                "{failed_preview}.",
        harmless="no. As an error nothing after the failure is usable. With `skip_mismatch=True` it is a "
                 "warning and the model is half-loaded: the failed layers keep random initial weights "
                 "while the others (e.g. the embedding) are loaded, with no rollback.",
        cause="The code that builds the model differs from the one that saved the file: here a changed size "
              "(units, vocabulary) in {object_class}. A changed layer also shifts every later layer's input "
              "shape (a Dense after an LSTM(64) instead of LSTM(128) fails too).",
        framework="`load_weights`/`load_model` walk the model; each layer that fails is listed, the others "
                  "are assigned. `load_model` of the same `.h5` does NOT fail: it rebuilds the model from "
                  "the file's own config and ignores your code.",
        fix="Build the model exactly as it was saved (e.g. `layers.LSTM(units=128)` if the file has 4x128), "
            "then load:\n"
            "    model = create_model_v1()\n"
            "    model.load_weights('chatbot_model.weights.h5')\n"
            "or load the whole saved model (`keras.models.load_model('chatbot_model.keras')`), or transfer "
            "only the matching layers with `load_weights(path, skip_mismatch=True)` and retrain the rest. "
            "Check with `ckptdoctor check FILE --model file.py:create_model_v2`.",
        related=("shape-mismatch", "silent-partial-load"),
        examples=(
            "ValueError: A total of 2 objects could not be loaded. Example error message for object <LSTMCell "
            "name=lstm_cell, built=True>:\n\nThe shape of the target variable and the shape of the target value "
            "in `variable.assign(value)` must match. variable.shape=(64, 256), Received: "
            "value.shape=torch.Size([64, 512]). Target variable: <Variable path=sequential_2/lstm_2/lstm_cell/"
            "kernel, shape=(64, 256), dtype=float32, value=[[...]]>\n\nList of objects that could not be "
            "loaded:\n[<LSTMCell name=lstm_cell, built=True>, <Dense name=dense_2, built=True>]",
            "ValueError: A total of 1 objects could not be loaded. Example error message for object <GRUCell "
            "name=gru_cell, built=True>:\n\nLayer 'gru_cell' expected 3 variables, but received 0 variables "
            "during loading. Expected: ['kernel', 'recurrent_kernel', 'bias']",
        ),
        derive=("shapes", "object_list", "var_counts"), subject="{object_name}",
        expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W108", name="keras-variable-count-mismatch", library="keras",
        versions="Keras 3 (`.keras`/`.weights.h5`), tf.keras 2.13-2.15 with full variable names",
        severity=E, as_warning=W,
        summary="A layer expected N variables but the file holds M for it.",
        patterns=(r"Layer '(?P<layer>[^']+)' expected (?P<expected_vars>\d+) variables, but received "
                  r"(?P<received_vars>\d+) variables during loading\.(?: Expected: (?P<expected_names>\[[^\]]*\]))?",),
        meaning="Layer '{layer}' has {expected_vars} variables in your model; the file has {received_vars} at "
                "its path. {count_story}",
        harmless="no: the layer keeps its initial weights.",
        cause="Keras matches weights by object path, not by layer name. {count_story}",
        fix="Build the same stack of layers in the same order as when saving, and for layers with custom "
            "state implement `build()` (and `build_from_config`) so that the variables exist before loading. "
            "`ckptdoctor check FILE --model TARGET` lists the paths on both sides.",
        related=("layer-count-mismatch", "missing-tensor", "unbuilt-model"),
        examples=("Layer 'lstm_cell' expected 2 variables, but received 3 variables during loading. Expected: "
                  "['kernel', 'recurrent_kernel']",
                  "ValueError: Layer 'lstm_cell' expected 3 variables, but received 0 variables during loading. "
                  "Expected: ['lstm/lstm_cell/kernel:0', 'lstm/lstm_cell/recurrent_kernel:0', "
                  "'lstm/lstm_cell/bias:0']"),
        derive=("var_counts",), subject="{layer}", expected="expected_vars", found="received_vars",
    ),
    Entry(
        code="W109", name="keras-assign-shape-mismatch", library="keras",
        versions="Keras 3 `Variable.assign` (all backends; torch prints value.shape=torch.Size([...]))",
        severity=E,
        summary="A saved weight has another shape than the model's variable.",
        patterns=(r"The shape of the target variable and the shape of the target value in "
                  r"`variable\.assign\(value\)` must match\. variable\.shape=(?P<expected_shape>\([^)]*\)), "
                  r"Received: value\.shape=(?P<found_shape>" + SHAPE + r")(?:\. Target variable: <Variable "
                  r"path=(?P<variable>[^,>\s]+))?",),
        meaning="The variable {variable} is {expected_shape} in your model, the saved value is {found_shape}: "
                "{shape_story}",
        harmless="no: that variable is not loaded.",
        cause="The layer was built with other sizes than when the file was saved (units, vocabulary, input "
              "dimension).",
        fix="Build the layer with the sizes the file was saved with, or retrain that layer. "
            "`ckptdoctor check FILE --model TARGET` infers the saved hyperparameters from the shapes.",
        related=("shape-mismatch",),
        examples=("The shape of the target variable and the shape of the target value in "
                  "`variable.assign(value)` must match. variable.shape=(32, 256), Received: value.shape=(32, 512). "
                  "Target variable: <Variable path=lstm_1/lstm_cell/kernel, shape=(32, 256), dtype=float32, "
                  "value=[[...]]>",),
        derive=("shapes",), subject="{variable}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W110", name="keras-h5-shape-mismatch", library="keras",
        versions="Keras 3 legacy `.h5` loader ('(named x)for' without a space); tf-keras by_name=True",
        severity=E,
        summary="Legacy .h5 load_weights: a weight of layer #k has another shape than in the model.",
        patterns=(r"Shape mismatch in layer #(?P<index>\d+) \(named (?P<layer>[^)]+)\) for weight "
                  r"(?P<variable>\S+?)\. Weight expects shape (?P<expected_shape>\([^)]*\))\. Received saved "
                  r"weight with shape (?P<found_shape>\([^)]*\))",),
        meaning="Layer #{index} with weights ('{layer}') has {variable} of shape {expected_shape} in your model; "
                "the file has {found_shape}: {shape_story}",
        harmless="no: loading stops here; earlier layers are already assigned.",
        cause="Topological `.h5` loading pairs the i-th layer that has weights in the file with the i-th in "
              "your model; this pair differs in size. `#k` counts only layers that have weights.",
        fix="Build the model with the saved sizes (e.g. LSTM(units=128)), or skip the mismatched weights and "
            "retrain them:\n    model.load_weights('chatbot_model_v1.h5', skip_mismatch=True)\n"
            "Note: `keras.models.load_model('x.h5')` never fails this way; it rebuilds the saved "
            "architecture and ignores your changed code.",
        related=("shape-mismatch",),
        examples=("ValueError: Shape mismatch in layer #1 (named lstm_4)for weight sequential_4/lstm_4/lstm_cell/"
                  "kernel. Weight expects shape (64, 256). Received saved weight with shape (64, 512)",
                  "Shape mismatch in layer #0 (named lstm)for weight lstm/lstm_cell/kernel. Weight expects shape "
                  "(91, 512). Received saved weight with shape (74, 512)"),
        derive=("shapes",), subject="{layer}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W111", name="keras-h5-skipped-weight", library="keras",
        versions="Keras 3 legacy `.h5` loader with skip_mismatch=True (one UserWarning per weight)",
        severity=W,
        summary="Legacy .h5 load_weights(skip_mismatch=True) skipped a weight whose shape differs.",
        patterns=(r"Skipping loading weights for layer #(?P<index>\d+) \(named (?P<layer>[^)]+)\) due to "
                  r"mismatch in shape for weight (?P<variable>\S+?)\. Weight expects shape "
                  r"(?P<expected_shape>\([^)]*\))\. Received saved weight with shape (?P<found_shape>\([^)]*\))",),
        meaning="{variable} was not loaded: {shape_story} It keeps its random initial value.",
        harmless="no: the model is half-loaded; skipped weights are untrained.",
        cause="The model differs in size from the saved one; skip_mismatch=True turned the error into warnings.",
        fix="Retrain the skipped layers, or build the model with the saved sizes.",
        related=("shape-mismatch", "silent-partial-load"),
        examples=("UserWarning: Skipping loading weights for layer #1 (named lstm_6)due to mismatch in shape "
                  "for weight sequential_6/lstm_6/lstm_cell/kernel. Weight expects shape (64, 256). Received "
                  "saved weight with shape (64, 512)",),
        derive=("shapes",), group_by=(), subject="{layer}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W112", name="keras-h5-layer-count-mismatch", library="keras",
        versions="Keras >= 2.7, tf-keras, Keras 3 legacy .h5 ('Layer count mismatch'); Keras <= 2.6 ('You are "
                 "trying to load a weight file containing M layers into a model with N layers')",
        severity=E,
        summary="Legacy .h5 load_weights: the file has another number of layers with weights than the model.",
        patterns=(r"Layer count mismatch when loading weights from file\. Model expected (?P<expected_layers>\d+) "
                  r"layers?, found (?P<found_layers>\d+) saved layers?",
                  r"You are trying to load a weight file containing (?P<found_layers>\d+) layers? into a model "
                  r"with (?P<expected_layers>\d+) layers?"),
        meaning="Your model has {expected_layers} layers with weights, the file has {found_layers}. Topological "
                "loading pairs them by position, so it refuses.",
        harmless="no: nothing is loaded.",
        cause="A layer with weights was added to or removed from the model since the file was saved.",
        fix="Build the saved architecture, or match by layer name (give layers explicit `name=` on both "
            "sides):\n    model.load_weights('weights.h5', by_name=True)   # tf-keras / legacy .h5 only\n"
            "Careful: by_name silently skips layers whose names do not match.",
        related=("layer-count-mismatch",),
        examples=("ValueError: Layer count mismatch when loading weights from file. Model expected 2 layers, "
                  "found 3 saved layers.",
                  "ValueError: You are trying to load a weight file containing 3 layers into a model with 2 layers."),
        expected="expected_layers", found="found_layers",
    ),
    Entry(
        code="W113", name="keras-h5-weight-count-mismatch", library="keras",
        versions="Keras 2.x, tf-keras, Keras 3 legacy .h5 loader",
        severity=E, as_warning=W,
        summary="Legacy .h5: a layer has another number of weights than the saved one.",
        patterns=(r"Weight count mismatch for layer #(?P<index>\d+) \(named (?P<layer>[^)]+?)(?: in the current "
                  r"model, (?P<file_layer>[^)]+?) in the save file)?\)\. Layer expects (?P<expected_vars>\d+) "
                  r"weight\(s\)\. Received (?P<received_vars>\d+) saved weight\(s\)",
                  r"Skipping loading of weights for layer #(?P<index>\d+) \(named (?P<layer>[^)]+)\) due to "
                  r"mismatch in number of weights"),
        meaning="Layer #{index} ('{layer}') expects {expected_vars} weights, the file has {received_vars}.",
        harmless="no: that layer is not loaded.",
        cause="A flag that adds or removes weights differs (use_bias, GRU reset_after, CuDNNLSTM vs LSTM), "
              "or layers are paired wrongly because of a changed order.",
        fix="Build the layer with the saved flags; convert CuDNNLSTM files with tf-keras first.",
        related=("layer-count-mismatch", "shape-mismatch"),
        examples=("Weight count mismatch for layer #1 (named lstm in the current model, lstm_1 in the save "
                  "file). Layer expects 3 weight(s). Received 2 saved weight(s)",
                  "UserWarning: Skipping loading of weights for layer #0 (named dense) due to mismatch in number "
                  "of weights."),
        subject="{layer}", expected="expected_vars", found="received_vars",
    ),
    Entry(
        code="W114", name="keras-could-not-locate-class", library="keras",
        versions="Keras 3 (shorter text up to 3.11, longer since 3.12 mentioning 'custom classes and functions')",
        severity=E,
        summary="Loading found a class name in the config that is not registered or imported.",
        patterns=(r"Could not locate (?:class|function) '(?P<class_name>[^']+)'\. Make sure custom classes "
                  r"(?:and functions )?are decorated with `@keras\.saving\.register_keras_serializable\(\)`",),
        details=(r"'registered_name': '(?P<registered_name>[^']*)'",),
        meaning="The saved config names '{class_name}', which is neither a Keras built-in nor in this "
                "process's custom-object registry, so the model cannot be rebuilt.{class_note}",
        harmless="no: the model does not load.",
        cause="A custom layer/loss/activation was saved unregistered (config 'module': None), or it is "
              "registered but the module with the decorator was not imported before loading (a fresh process, "
              "an inference server without the training script).",
        fix="Register the class and import its module before loading:\n"
            "    @keras.saving.register_keras_serializable(package='chatbot')\n"
            "    class {class_short}(keras.layers.Layer): ...\n"
            "or pass it explicitly:\n"
            "    model = keras.models.load_model('model.keras', custom_objects={{'{class_short}': {class_short}}})",
        related=("unregistered-custom-class",),
        examples=(
            "TypeError: Could not locate class 'Scale'. Make sure custom classes and functions are decorated "
            "with `@keras.saving.register_keras_serializable()`. If they are already decorated, make sure they "
            "are all imported so that the decorator is run before trying to load them. Full object config: "
            "{'module': None, 'class_name': 'Scale', 'config': {'name': 'scale'}, 'registered_name': 'Scale'}",
            "Could not locate class 'Policy'. Make sure custom classes are decorated with "
            "`@keras.saving.register_keras_serializable()`. Full object config: {'class_name': 'Policy', "
            "'config': {'name': 'mixed_float16'}}",
        ),
        derive=("keras_class",), subject="{class_name}",
    ),
    Entry(
        code="W115", name="keras-unknown-layer", library="keras",
        versions="Keras 3 legacy .h5 loader; tf.keras/Keras 2 (`Unknown layer: X. Please ensure this object is "
                 "passed to the `custom_objects` argument`)",
        severity=E,
        summary="Loading a .h5 met a layer class that is not known in this process.",
        patterns=(r"Unknown (?P<kind>layer|activation|loss|metric|initializer|regularizer|constraint|optimizer)"
                  r"(?: class)?: '?(?P<class_name>[\w.>]+)'?\.? Please ensure",),
        meaning="The file's config uses the {kind} '{class_name}', which this process cannot find.",
        harmless="no: the model does not load.",
        cause="{unknown_cause}",
        fix="{unknown_fix}",
        related=("unregistered-custom-class",),
        examples=("ValueError: Unknown layer: 'NoArgScale'. Please ensure you are using a "
                  "`keras.utils.custom_object_scope` and that this object is included in the scope. See "
                  "https://www.tensorflow.org/guide/keras/save_and_serialize#registering_the_custom_object for "
                  "details.",
                  "ValueError: Unknown layer: CustomLayer. Please ensure this object is passed to the "
                  "`custom_objects` argument."),
        derive=("keras_unknown",),
        subject="{class_name}",
    ),
    Entry(
        code="W116", name="keras-deserialization-wrapper", library="keras",
        versions="Keras 3 (`<class ...> could not be deserialized properly`), Keras 3 / tf-keras (`Error when "
                 "deserializing class 'X' using config=`)",
        severity=E,
        summary="An outer error around the real deserialization problem: read 'Exception encountered'.",
        patterns=(r"<class '(?P<outer_class>[\w.]+)'> could not be deserialized properly\. Please ensure that "
                  r"components that are Python object instances",
                  r"Error when deserializing class '(?P<outer_class>[^']+)' using config="),
        details=(r"Exception encountered: (?P<inner_error>.{1,160}?)(?:\. |$)",),
        meaning="Rebuilding '{outer_class}' failed. The outer text talks about `from_config`, but the real "
                "cause is the inner exception: {inner_error}.",
        harmless="no: the model does not load.",
        cause="Usually a missing custom-class registration or a config from another Keras version inside "
              "the model; the wrapper text is misleading.",
        fix="Fix the inner error (see its own explanation below). Only if you wrote a custom `from_config` "
            "that returns nested layers, deserialize them explicitly with "
            "`keras.saving.deserialize_keras_object`.",
        related=("unregistered-custom-class", "incompatible-config"),
        examples=("TypeError: <class 'keras.src.models.sequential.Sequential'> could not be deserialized "
                  "properly. Please ensure that components that are Python object instances (layers, models, "
                  "etc.) returned by `get_config()` are explicitly deserialized in the model's `from_config()` "
                  "method.\n\nconfig={'module': 'keras', 'class_name': 'Sequential'}.\n\nException encountered: "
                  "Unrecognized keyword arguments passed to Embedding: {'batch_input_shape': [None, None]}",
                  "TypeError: Error when deserializing class 'InputLayer' using config={'batch_shape': [4, 20]}."
                  "\n\nException encountered: Unrecognized keyword arguments: ['batch_shape']"),
        subject="{outer_class}",
    ),
    Entry(
        code="W117", name="keras-get-config-required", library="keras",
        versions="Keras 3 (`Object X was created by passing non-serializable argument values`), Keras 2.11+/"
                 "tf-keras (`Layer X was created by ...`), Keras <= 2.10 (`Layer X has arguments [...] in "
                 "__init__ and therefore must override get_config()`)",
        severity=E,
        summary="Saving needs get_config() for a custom layer whose __init__ takes non-plain arguments.",
        patterns=(r"(?:Object|Layer) (?P<class_name>\w+) was created by passing non-serializable argument "
                  r"values in `__init__\(\)`, and therefore the (?:object|layer) must override `get_config\(\)`",
                  r"Layer (?P<class_name>\w+) has arguments (?P<arguments>\[[^\]]*\]) in `__init__` and "
                  r"therefore must override `get_config\(\)`"),
        meaning="`{class_name}` takes `__init__` arguments Keras cannot turn into JSON (objects, layers, "
                "arrays, callables, *args), so it cannot write the layer's config.",
        harmless="no: the save fails (raised at save time).",
        cause="Keras 3 auto-generates get_config only from plain JSON-able `__init__` arguments.",
        fix="Implement get_config returning plain values (and from_config for nested objects):\n"
            "    def get_config(self):\n"
            "        return {{**super().get_config(), 'units': self.units}}\n"
            "or save weights only: `model.save_weights('m.weights.h5')`.",
        related=("get-config-missing",),
        examples=("NotImplementedError: \nObject NonSerializableArg was created by passing\nnon-serializable "
                  "argument values in `__init__()`,\nand therefore the object must override `get_config()` in\n"
                  "order to be serializable. Please implement `get_config()`.",
                  "NotImplementedError: Layer CustomLayer has arguments ['a', 'b']\nin `__init__` and therefore "
                  "must override `get_config()`."),
        subject="{class_name}",
    ),
    Entry(
        code="W118", name="keras-cannot-serialize-object", library="keras",
        versions="Keras 3 serialization_lib",
        severity=E,
        summary="An object in a layer config has no get_config(), so it cannot be saved.",
        patterns=(r"Cannot serialize object (?P<object>.{1,160}?) of type (?P<type><[^>]*>|\S+?)\. To be serializable, "
                  r"a class must implement the `get_config\(\)` method",),
        meaning="The config contains {object} of type {type}, which has no `get_config()`.",
        harmless="no: the save fails.",
        cause="A custom object (initializer, regularizer, arbitrary Python object) stored in a layer's config.",
        fix="Give the class `get_config`/`from_config` and register it, or store plain values in the config.",
        related=("get-config-missing",),
        examples=("TypeError: Cannot serialize object <object object at 0x7f> of type <class 'object'>. To be "
                  "serializable, a class must implement the `get_config()` method.",),
        subject="{type}",
    ),
    Entry(
        code="W119", name="keras-lambda-deserialization-blocked", library="keras",
        versions="Keras >= 3.0 for `.keras`; legacy `.h5` too since 3.12; fail-closed outside SafeModeScope since 3.15",
        severity=E,
        summary="Loading a Lambda layer (Python lambda) is refused in safe mode.",
        patterns=(r"Requested the deserialization of a (?:`Lambda` layer whose `function` is a Python lambda|"
                  r"Python lambda)\. This carries a potential risk of arbitrary code execution",),
        meaning="The file stores the byte code of a Python lambda (a `Lambda` layer or a lambda activation). "
                "Rebuilding it executes that code, so Keras refuses by default.",
        harmless="no: the model does not load until you opt in.",
        cause="A `keras.layers.Lambda(lambda t: ...)` in the model when it was saved.",
        fix="If you trust the file:\n"
            "    model = keras.models.load_model('model.keras', safe_mode=False)\n"
            "Better: replace the Lambda with a small registered custom layer so that no code is stored.",
        related=("lambda-layer", "code-execution"),
        examples=("ValueError: Requested the deserialization of a `Lambda` layer whose `function` is a Python "
                  "lambda. This carries a potential risk of arbitrary code execution and thus it is disallowed by "
                  "default. If you trust the source of the artifact, you can override this error by passing "
                  "`safe_mode=False` to the loading function, or calling "
                  "`keras.config.enable_unsafe_deserialization().",
                  "ValueError: Requested the deserialization of a Python lambda. This carries a potential risk of "
                  "arbitrary code execution and thus it is disallowed by default."),
    ),
    Entry(
        code="W120", name="keras-torch-module-deserialization-blocked", library="keras",
        versions="Keras 3 with the torch backend (TorchModuleWrapper)",
        severity=E,
        summary="A TorchModuleWrapper layer stores a pickled torch module; loading it needs safe_mode=False.",
        patterns=(r"Requested the deserialization of a `torch\.nn\.Module` object via `torch\.load\(\)`",),
        meaning="The file contains a whole `torch.nn.Module` pickled by `torch.save` inside the Keras config; "
                "unpickling can run code, so Keras refuses.",
        harmless="no: the model does not load until you opt in.",
        cause="A `keras.layers.TorchModuleWrapper` in the saved model.",
        fix="For a trusted file: `keras.models.load_model(path, safe_mode=False)`. Otherwise rebuild the "
            "model in code and load only weights.",
        related=("code-execution", "pickle-global"),
        examples=("ValueError: Requested the deserialization of a `torch.nn.Module` object via `torch.load()`. "
                  "This carries a potential risk of arbitrary code execution.",),
    ),
    Entry(
        code="W121", name="keras-lambda-serialized", library="keras",
        versions="Keras 3 serialize_keras_object (not for Lambda layers, which fail only at load)",
        severity=W,
        summary="Saving stored a Python lambda; reloading will need safe_mode=False.",
        patterns=(r"The object being serialized includes a `lambda`\. This is unsafe",),
        meaning="A lambda (e.g. an activation) is written into the file as byte code.",
        harmless="the save works, but every load will need `safe_mode=False`, and the byte code only loads "
                 "on the same Python version.",
        cause="A lambda used as an argument of a layer (activation, initializer...).",
        fix="Use a named function registered with `@keras.saving.register_keras_serializable()`.",
        related=("lambda-layer",),
        examples=("UserWarning: The object being serialized includes a `lambda`. This is unsafe. In order to "
                  "reload the object, you will have to pass `safe_mode=False` to the loading function. Please "
                  "avoid using `lambda` in the future, and use named Python functions instead.",),
    ),
    Entry(
        code="W122", name="keras-invalid-save-extension", library="keras",
        versions="Keras 3 (TF >= 2.16): 'Use model.export(filepath)'; Keras 3.0: 'Use tf.saved_model.save()'",
        severity=E,
        summary="model.save() needs a .keras or .h5 path in Keras 3 (no SavedModel directory).",
        patterns=(r"Invalid filepath extension for saving\. Please add either a `\.keras` extension for the "
                  r"native Keras format .{0,300}?Received: filepath=(?P<path>\S+?)\.?(?:\s|$)",),
        meaning="`model.save('{path}')` has no `.keras`/`.h5` extension. Keras 3 no longer writes a "
                "TensorFlow SavedModel directory from `model.save`.",
        harmless="no: nothing is saved.",
        cause="Code written for tf.keras 2.x (`model.save('dir')`) running under Keras 3 / TF >= 2.16.",
        fix="    model.save('{path}.keras')     # native Keras file\n"
            "    model.export('{path}')         # SavedModel for TF Serving / TFLite (TF backend)",
        related=(),
        examples=("ValueError: Invalid filepath extension for saving. Please add either a `.keras` extension for "
                  "the native Keras format (recommended) or a `.h5` extension. Use `model.export(filepath)` if you "
                  "want to export a SavedModel for use with TFLite/TFServing/etc. Received: filepath=mymodel.",),
        subject="{path}",
    ),
    Entry(
        code="W123", name="keras-weights-filename-extension", library="keras",
        versions="Keras 3",
        severity=E,
        summary="save_weights()/load_weights() need a filename ending in .weights.h5.",
        patterns=(r"The filename must end in `\.weights\.h5`\. Received: filepath=(?P<path>\S+)",),
        meaning="Keras 3 `save_weights` only writes the `.weights.h5` format; '{path}' does not end that way.",
        harmless="no: nothing is saved.",
        cause="Code from Keras 2 (`save_weights('w.h5')` or a TF checkpoint prefix).",
        fix="    model.save_weights('chatbot.weights.h5')",
        related=(),
        examples=("ValueError: The filename must end in `.weights.h5`. Received: filepath=seed_w.h5",),
        subject="{path}",
    ),
    Entry(
        code="W124", name="keras-save-format-deprecated", library="keras",
        versions="Keras 3: absl warning when the path has .keras/.h5, ValueError otherwise",
        severity=W,
        summary="The save_format argument is gone in Keras 3; the extension decides the format.",
        patterns=(r"The `save_format` argument is deprecated in Keras 3\..{0,200}?Received: save_format="
                  r"(?P<save_format>\w+)",),
        meaning="`save_format='{save_format}'` is ignored (or refused): Keras 3 picks the format from the "
                "file extension and cannot write a SavedModel via `save`.",
        harmless="yes when the path ends in .keras/.h5 (only a warning); otherwise the save fails.",
        cause="Keras 2 code passing `save_format='tf'` or `'h5'`.",
        fix="Remove the argument and use `model.save('m.keras')`, or `model.export('dir')` for a SavedModel.",
        related=(),
        examples=("WARNING:absl:The `save_format` argument is deprecated in Keras 3. We recommend removing this "
                  "argument as it can be inferred from the file path. Received: save_format=tf",
                  "ValueError: The `save_format` argument is deprecated in Keras 3. Please remove this argument "
                  "and pass a file path with either `.keras` or `.h5` extension.Received: save_format=tf"),
    ),
    Entry(
        code="W125", name="keras-load-weights-unbuilt", library="keras",
        versions="Keras 3",
        severity=E,
        summary="load_weights() into a model that has no variables yet.",
        patterns=(r"You are loading weights into a model that has not yet been built\.",),
        meaning="The model has not created its weights (it was never called and has no input shape), so "
                "there is nothing to load into.",
        harmless="no: nothing is loaded.",
        cause="A Sequential model without `Input(shape=...)` or a subclassed model, never called before "
              "`load_weights`.",
        fix="Build it first:\n    model.build((None, 20))     # or: model(sample_batch)\n"
            "    model.load_weights('chatbot.weights.h5')",
        related=("unbuilt-model",),
        examples=("ValueError: You are loading weights into a model that has not yet been built. Try building "
                  "the model first by calling it on some data or by using `build()`.",),
    ),
    Entry(
        code="W126", name="keras-save-unbuilt", library="keras",
        versions="Keras 3: UserWarning from model.save, ValueError from save_weights",
        severity=E, as_warning=W,
        summary="Saving a model that has not been built: it may contain no weights.",
        patterns=(r"You are saving a model that has not yet been built\.",),
        meaning="The model was never called, so it may have no variables: the file would hold no weights.",
        harmless="no: `save_weights` fails; `save` writes a file that may lack weights.",
        cause="Saving right after construction, before any call/fit/build.",
        fix="Call the model on a batch or `model.build(input_shape)` before saving.",
        related=("unbuilt-model",),
        examples=("UserWarning: You are saving a model that has not yet been built. It might not contain any "
                  "weights yet. Consider building the model first by calling it on some data.",
                  "ValueError: You are saving a model that has not yet been built. Try building the model first "
                  "by calling it on some data or by using `build()`."),
    ),
    Entry(
        code="W127", name="keras-savedmodel-not-supported", library="keras",
        versions="Keras 3 (TF >= 2.16)",
        severity=E,
        summary="Keras 3 load_model cannot read a TensorFlow SavedModel directory.",
        patterns=(r"File format not supported: filepath=(?P<path>\S+?)\. Keras 3 only supports V3 `\.keras` files",),
        meaning="'{path}' is a SavedModel (or something else), and Keras 3 `load_model` reads only `.keras` "
                "and legacy `.h5`.",
        harmless="no: nothing is loaded.",
        cause="A model saved with tf.keras 2.x `model.save('dir')` loaded with Keras 3.",
        fix="Inference only (TF backend): `keras.layers.TFSMLayer('{path}', call_endpoint='serving_default')`. "
            "To convert: `pip install tf_keras`, `TF_USE_LEGACY_KERAS=1`, load it with tf_keras and save as "
            "`.h5`/`.keras`.",
        related=("not-a-model-file",),
        examples=("ValueError: File format not supported: filepath=sm_export. Keras 3 only supports V3 `.keras` "
                  "files, legacy H5 format files (`.h5` extension). Note that the legacy SavedModel format is not "
                  "supported by `load_model()` in Keras 3.",),
        subject="{path}",
    ),
    Entry(
        code="W128", name="keras-layer-never-built", library="keras",
        versions="Keras 3",
        severity=E,
        summary="A sublayer was never built, but the file has weights for it.",
        patterns=(r"Layer '(?P<layer>[^']+)' was never built and thus it doesn't have any variables\. However "
                  r"the weights file lists (?P<received_vars>\d+) variables for this layer",),
        meaning="'{layer}' has no variables yet, while the file has {received_vars} for it.",
        harmless="no: the layer is not loaded.",
        cause="A parent layer's `build()` does not build its child layers, or a custom layer lacks "
              "`build_from_config`.",
        fix="Build every child in the parent's build(): `self.child.build(input_shape)`, or implement "
            "`get_build_config`/`build_from_config`.",
        related=("unbuilt-model",),
        examples=("ValueError: Layer 'dense' was never built and thus it doesn't have any variables. However the "
                  "weights file lists 2 variables for this layer.",),
        subject="{layer}",
    ),
    Entry(
        code="W129", name="keras-nested-container-skipped", library="keras",
        versions="Keras 3.15 (follows a real loading failure in Functional models)",
        severity=INFO,
        summary="Noise after a failed load in Keras 3.15: a nested container had no saved group.",
        patterns=(r"Skipping nested container at '(?P<container>[^']+)': no matching group found in the saved file",),
        meaning="Keras 3.15 looked for a nested container '{container}' in the file and did not find it.",
        harmless="yes in itself: it follows a real failure (look for 'A total of N objects could not be "
                 "loaded' above) and adds nothing to it.",
        cause="A new Keras 3.15 check that fires on internal containers of Functional models.",
        fix="Fix the real loading error reported with it; ignore this line.",
        related=("silent-partial-load",),
        examples=("UserWarning: Skipping nested container at '_operations_by_depth/container': no matching group "
                  "found in the saved file. This usually means the file was saved with a Keras version that did "
                  "not serialize sublayers nested inside containers.",),
    ),
    Entry(
        code="W130", name="keras-input-shape-argument", library="keras",
        versions="Keras 3 (loading legacy Sequential .h5 files and building models)",
        severity=INFO,
        summary="A layer got input_shape/input_dim; Keras 3 prefers an Input layer.",
        patterns=(r"Do not pass an `input_shape`/`input_dim` argument to a layer\.",),
        meaning="The first layer was given `input_shape`/`input_dim` (often from an old saved config).",
        harmless="yes: the model is built as before.",
        cause="Keras 2 style `Dense(64, input_shape=(20,))`, or loading a legacy Sequential `.h5` whose first "
              "layer stored `batch_input_shape`.",
        fix="In your code: `keras.Sequential([keras.Input(shape=(20,)), layers.Dense(64)])`. For an old file: "
            "ignore it.",
        related=(),
        examples=("UserWarning: Do not pass an `input_shape`/`input_dim` argument to a layer. When using "
                  "Sequential models, prefer using an `Input(shape)` object as the first layer in the model "
                  "instead.",),
    ),
    Entry(
        code="W131", name="keras-optimizer-decay-ignored", library="keras",
        versions="Keras 3 (optimizer configs from Keras 2 files)",
        severity=INFO,
        summary="An old optimizer config has `decay`; Keras 3 ignores it.",
        patterns=(r"Argument `decay` is no longer supported and will be ignored",),
        meaning="The saved optimizer config has Keras 2's `decay`; Keras 3 drops it.",
        harmless="yes for inference; resumed training uses no decay unless you add a schedule.",
        cause="Loading a compiled Keras 2 `.h5`.",
        fix="`load_model(path, compile=False)` and compile with a `keras.optimizers.schedules` learning rate.",
        related=("optimizer-state", "incompatible-config"),
        examples=("UserWarning: Argument `decay` is no longer supported and will be ignored.",),
    ),
    Entry(
        code="W132", name="keras-optimizer-arguments-not-recognized", library="keras",
        versions="Keras 3 loading compiled Keras 2 `.h5` files (e.g. a Keras 2.2.4 chatbot_model.h5)",
        severity=E,
        summary="An old optimizer config has arguments (e.g. lr) that Keras 3 rejects.",
        patterns=(r"Argument\(s\) not recognized: (?P<arguments>\{[^}]*\})",),
        meaning="The saved optimizer config has {arguments}, which Keras 3 optimizers do not accept (`lr` "
                "became `learning_rate`).",
        harmless="no: `load_model` fails while compiling; the weights themselves are fine.",
        cause="A compiled model saved by Keras 2 (training_config with `lr`).",
        fix="    model = keras.models.load_model('chatbot_model.h5', compile=False)\n"
            "    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss='categorical_crossentropy')",
        related=("incompatible-config", "optimizer-state"),
        examples=("ValueError: Argument(s) not recognized: {'lr': 0.009999999776482582}",),
        subject="{arguments}",
    ),
    Entry(
        code="W133", name="keras-unrecognized-keyword-arguments", library="keras",
        versions="Keras 3 reading tf.keras 2.x configs, and tf-keras reading Keras 3 configs",
        severity=E,
        summary="A saved layer config has keyword arguments this Keras version does not know.",
        patterns=(r"Unrecognized keyword arguments(?: passed to (?P<layer_class>\w+))?: (?P<arguments>\{[^}]*\}|"
                  r"\[[^\]]*\])",),
        meaning="The config of {layer_class} carries {arguments}, written by another Keras major version.",
        harmless="no: the model does not load.",
        cause="Keras 2 and Keras 3 model files are not interchangeable (`time_major`, `batch_input_shape` are "
              "Keras 2; `batch_shape` is Keras 3).",
        fix="Rebuild the architecture in code and load only the weights:\n"
            "    model = build_same_architecture()\n    model.load_weights('old_model.h5')\n"
            "or load with the Keras version that wrote it and re-save.",
        related=("incompatible-config",),
        examples=("ValueError: Unrecognized keyword arguments passed to LSTM: {'time_major': False}",
                  "Exception encountered: Unrecognized keyword arguments: ['batch_shape']"),
        subject="{layer_class}",
    ),
    Entry(
        code="W134", name="keras-legacy-dtype-policy", library="keras",
        versions="Keras 3.x loading tf.keras mixed-precision .h5 files",
        severity=E,
        summary="A tf.keras mixed-precision config ('Policy') cannot be read by Keras 3.",
        patterns=(r"'str' object has no attribute 'quantization_mode'",),
        meaning="Each layer's dtype in the file is tf.keras's `{{'class_name': 'Policy', ...}}`; Keras 3 turns "
                "the unknown class into a string and then fails on it.",
        harmless="no: the model does not load.",
        cause="A model saved by tf.keras 2.x under `mixed_float16`/`mixed_bfloat16`.",
        fix="Rebuild the model in code under `keras.config.set_dtype_policy('mixed_float16')` and "
            "`load_weights`, or rewrite each `dtype` in the saved `model_config` to the policy name.",
        related=("mixed-precision", "incompatible-config"),
        examples=("AttributeError: 'str' object has no attribute 'quantization_mode'",),
    ),
    Entry(
        code="W135", name="keras-layer-input-count", library="keras",
        versions="Keras 3 loading Keras 2.2 seq2seq `.h5` (initial_state stored as extra inputs)",
        severity=E,
        summary="A saved layer is wired with more inputs than Keras 3 accepts (old seq2seq initial_state).",
        patterns=(r"Layer \"(?P<layer>[^\"]+)\" expects (?P<expected_inputs>\d+) input\(s\), but it received "
                  r"(?P<received_inputs>\d+) input tensors",),
        meaning="Layer '{layer}' takes {expected_inputs} input(s) but the saved graph feeds it "
                "{received_inputs}: Keras 2 stored `initial_state` as extra inbound tensors.",
        harmless="no: the model does not load, even with compile=False.",
        cause="An old Keras 2.x encoder-decoder (chatbot) file.",
        fix="Rebuild the architecture in code (with `initial_state=`) and `model.load_weights('s2s.h5')`.",
        related=("incompatible-config",),
        examples=('ValueError: Layer "lstm_2" expects 1 input(s), but it received 3 input tensors. Inputs '
                  "received: [<KerasTensor shape=(None, None, 101)>, <KerasTensor shape=(None, 128)>]",),
        subject="{layer}",
    ),
    Entry(
        code="W136", name="tf-checkpoint-unrestored-values", library="tensorflow",
        versions="TensorFlow 2.x checkpoints (save_weights('ckpt'), tf.train.Checkpoint)",
        severity=W,
        summary="A TF checkpoint restore left saved values unused (often the optimizer).",
        patterns=(r"Detecting that an object or model or tf\.train\.Checkpoint is being deleted with unrestored "
                  r"values",),
        meaning="Values in the checkpoint were never matched to objects of your program.",
        harmless="for inference, when the unmatched values are optimizer slots (see the 'Value in checkpoint "
                 "could not be found' lines). Not if layer weights are listed.",
        cause="Restoring a training checkpoint into a model without optimizer, or into a different model.",
        fix="For inference: `model.load_weights(path).expect_partial()`. Otherwise check the listed values.",
        related=("optimizer-state", "unexpected-tensor"),
        examples=("WARNING:tensorflow:Detecting that an object or model or tf.train.Checkpoint is being deleted "
                  "with unrestored values. See the following logs for the specific values in question. To silence "
                  "these warnings, use `status.expect_partial()`. See "
                  "https://www.tensorflow.org/api_docs/python/tf/train/Checkpoint#restorefor details about the "
                  "status object returned by the restore function.",),
    ),
    Entry(
        code="W137", name="tf-checkpoint-value-not-restored", library="tensorflow",
        versions="TensorFlow 2.x checkpoints",
        severity=INFO,
        summary="One checkpoint value had no matching object in the restored program.",
        patterns=(r"Value in checkpoint could not be found in the restored object: (?P<object_path>\S+)",),
        meaning="{object_path} is in the checkpoint but not in your object graph.",
        harmless="yes when these are `.optimizer.` values and you only predict; no for layer weights.",
        cause="Restoring without the optimizer, or into another architecture.",
        fix="`model.load_weights(path).expect_partial()` for inference; otherwise build the same model.",
        related=("unexpected-tensor", "optimizer-state"),
        examples=("WARNING:tensorflow:Value in checkpoint could not be found in the restored object: "
                  "(root).optimizer.iter",),
        group_by=(), subject="{object_path}",
    ),
    Entry(
        code="W138", name="tf-assign-shape-mismatch", library="tensorflow",
        versions="tf.keras 2.x / tf-keras topological .h5 load_weights (TF ResourceVariable.assign)",
        severity=E,
        summary="tf.keras load_weights: a saved weight has another shape than the variable.",
        patterns=(r"Cannot assign value to variable ' ?(?P<variable>[^']+)': Shape mismatch\. ?The variable shape "
                  r"(?P<expected_shape>\([^)]*\)), and the assigned value shape (?P<found_shape>\([^)]*\)) are "
                  r"incompatible",),
        meaning="{variable}: {shape_story}",
        harmless="no: loading stops.",
        cause="The model was built with other sizes than the saved one.",
        fix="Build the saved sizes, or `load_weights(path, by_name=True, skip_mismatch=True)` (which skips "
            "silently in tf-keras) and retrain those layers.",
        related=("shape-mismatch",),
        examples=("ValueError: Cannot assign value to variable ' lstm_2/lstm_cell/kernel:0': Shape mismatch.The "
                  "variable shape (64, 256), and the assigned value shape (64, 512) are incompatible.",),
        derive=("shapes",), subject="{variable}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W139", name="tf-restore-incompatible-tensor", library="tensorflow",
        versions="TensorFlow 2.x checkpoint restore",
        severity=E,
        summary="A TF checkpoint tensor has another shape than the variable it restores.",
        patterns=(r"Received incompatible tensor with shape (?P<found_shape>\([^)]*\)) when attempting to restore "
                  r"variable with shape (?P<expected_shape>\([^)]*\)) and name (?P<variable>[^\s.]+(?:\.[^\s.]+)*?)"
                  r"(?::\d+)?\.?(?:\s|$)",),
        meaning="{variable}: {shape_story}",
        harmless="no: the restore fails.",
        cause="The model's sizes differ from the checkpoint's.",
        fix="Build the model with the checkpoint's sizes.",
        related=("shape-mismatch",),
        examples=("ValueError: Received incompatible tensor with shape (512,) when attempting to restore variable "
                  "with shape (256,) and name lstm_4/lstm_cell/bias:0.",),
        derive=("shapes",), subject="{variable}", expected="expected_shape", found="found_shape",
    ),
    Entry(
        code="W140", name="tf-legacy-optimizer-checkpoint", library="tf-keras",
        versions="Keras 2.11-2.15 / tf-keras",
        severity=E,
        summary="A checkpoint from a legacy optimizer restored into a new (2.11+) optimizer.",
        patterns=(r"You are trying to restore a checkpoint from a legacy Keras optimizer into a v2\.11\+ Optimizer",),
        meaning="The checkpoint's optimizer slots use the pre-2.11 layout.",
        harmless="no for training; for inference restore without the optimizer.",
        cause="Training started with TF <= 2.10 and resumed with TF >= 2.11.",
        fix="Use `tf.keras.optimizers.legacy.Adam` to restore, or `load_weights(...).expect_partial()`.",
        related=("optimizer-state",),
        examples=("ValueError: You are trying to restore a checkpoint from a legacy Keras optimizer into a v2.11+ "
                  "Optimizer, which can cause errors. Please update the optimizer referenced in your code to be an "
                  "instance of `tf.keras.optimizers.legacy.Optimizer`, e.g.: `tf.keras.optimizers.legacy.Adam`.",),
    ),
    Entry(
        code="W141", name="keras-same-name-as-builtin", library="tensorflow",
        versions="tf.keras 2.x SavedModel save (false positive for LSTMCell in TF 2.7)",
        severity=INFO,
        summary="A layer class shares its name with a built-in Keras class.",
        patterns=(r"has the same name '(?P<class_name>[^']+)' as a built-in Keras object",),
        meaning="A class named '{class_name}' is not the built-in one, so loading could pick the wrong class.",
        harmless="yes for built-in layers (TF 2.7 false positive with v1/v2 LSTMCell); rename custom classes.",
        cause="A custom class named like a Keras class, or the v1/v2 recurrent cell mix-up in TF 2.7.",
        fix="Rename your custom class, or pass it in `custom_objects` at load.",
        related=("unregistered-custom-class",),
        examples=("WARNING:absl:<keras.layers.recurrent.LSTMCell object at 0x7f> has the same name 'LSTMCell' as a "
                  "built-in Keras object. Consider renaming <class 'keras.layers.recurrent.LSTMCell'> to avoid "
                  "naming conflicts when loading with `tf.keras.models.load_model`.",),
        subject="{class_name}",
    ),
    Entry(
        code="W142", name="tf-savedmodel-before-2-5", library="tf-keras",
        versions="tf-keras SavedModel loader",
        severity=W,
        summary="A SavedModel without keras_metadata.pb: Keras layers cannot be fully revived.",
        patterns=(r"SavedModel saved prior to TF 2\.5 detected when loading Keras model",),
        meaning="The SavedModel lacks `keras_metadata.pb`; Keras revives generic objects instead of your layers.",
        harmless="partly: inference usually works; custom behaviour and training config may be lost.",
        cause="Saved by TF < 2.5 or with `tf.saved_model.save` instead of `model.save`.",
        fix="Re-save with `model.save('m.keras')` from the code that builds the model.",
        related=("incompatible-config",),
        examples=("SavedModel saved prior to TF 2.5 detected when loading Keras model. Please ensure that you are "
                  "saving the model with model.save() or tf.keras.models.save_model(), *NOT* "
                  "tf.saved_model.save().",),
    ),
    Entry(
        code="W143", name="tf-optimizer-slots-not-restored", library="tf-keras",
        versions="tf-keras SavedModel loader (legacy OptimizerV2)",
        severity=W,
        summary="Optimizer slots cannot be restored from a SavedModel; training restarts its optimizer.",
        patterns=(r"Your optimizer uses slots\. Slots cannot be restored from saved_model",),
        meaning="The legacy optimizer's slot variables are not in the SavedModel restore path.",
        harmless="for inference.",
        cause="Loading a SavedModel trained with a legacy (OptimizerV2) optimizer.",
        fix="Use `.keras`/checkpoints to resume training with optimizer state.",
        related=("optimizer-state",),
        examples=("Your optimizer uses slots. Slots cannot be restored from saved_model, as a result, your model is "
                  "starting with  a new initialized optimizer.",),
    ),
    Entry(
        code="W144", name="tf-function-argument-sanitized", library="tensorflow",
        versions="TensorFlow 2.x tf.function tracing during SavedModel save",
        severity=INFO,
        summary="An input name is not a valid tf.function parameter name and was renamed.",
        patterns=(r"(?P<argument>[\w.\-/:]+)`? is not a valid tf\.function parameter name\. Sanitizing to "
                  r"`?(?P<sanitized>[\w]+)",),
        meaning="The input '{argument}' is exposed as '{sanitized}' in the SavedModel signature.",
        harmless="yes; only the signature's argument name changes.",
        cause="An `Input(name=...)` with '.', '/' or a leading digit.",
        fix="Name inputs with letters, digits and underscores.",
        related=(),
        examples=("WARNING:absl:`input.1` is not a valid tf.function parameter name. Sanitizing to `input_1`.",),
        subject="{argument}",
    ),
    Entry(
        code="W145", name="keras-custom-compile-not-restored", library="keras",
        versions="Keras 3 (trainers/trainer.py)",
        severity=W,
        summary="A subclassed model with a custom compile() was loaded uncompiled.",
        patterns=(r"`compile\(\)` was not called as part of model loading because the model's `compile\(\)` "
                  r"method is custom",),
        meaning="Keras cannot replay your overridden `compile()`, so the model comes back uncompiled.",
        harmless="for inference; call compile() yourself to train.",
        cause="A Model subclass overriding compile() without get_compile_config/compile_from_config.",
        fix="Implement `get_compile_config()` and `compile_from_config(config)`, or compile after loading.",
        related=("get-config-missing",),
        examples=("UserWarning: `compile()` was not called as part of model loading because the model's "
                  "`compile()` method is custom. All subclassed Models that have `compile()` overridden should "
                  "also override `get_compile_config()` and `compile_from_config(config)`.",),
    ),
    Entry(
        code="W146", name="keras-mixed-precision-slow", library="tf-keras",
        versions="tf.keras 2.x / tf-keras mixed precision check (printed once); not printed by Keras 3",
        severity=INFO,
        summary="Mixed precision may run slowly on this machine (no suitable GPU).",
        patterns=(r"The dtype policy (?P<policy>mixed_\w+) may run slowly because this machine does not have a GPU",
                  r"Your GPUs? may run slowly with dtype policy (?P<policy>mixed_\w+)"),
        meaning="The {policy} policy computes in half precision, which is fast only on GPUs with compute "
                "capability >= 7.0 (or TPUs for bfloat16).",
        harmless="yes: results are correct, only speed. Variables are still stored in float32.",
        cause="Mixed precision enabled on a CPU or an older GPU.",
        fix="Ignore it, or `tf.keras.mixed_precision.set_global_policy('float32')` on this machine.",
        related=("mixed-precision",),
        examples=("WARNING:tensorflow:Mixed precision compatibility check (mixed_float16): WARNING\nThe dtype "
                  "policy mixed_float16 may run slowly because this machine does not have a GPU. Only Nvidia GPUs "
                  "with compute capability of at least 7.0 run quickly with mixed_float16.",),
    ),
    Entry(
        code="W147", name="keras-backend-requires-tensorflow", library="keras",
        versions="Keras 3 with the torch/jax backend and no TensorFlow installed",
        severity=E,
        summary="A SavedModel feature (export, TFSMLayer, remote paths) needs TensorFlow.",
        patterns=(r"This requires the tensorflow module\. You can install it via `pip install tensorflow`",
                  r"The TFSMLayer is only currently supported with the TensorFlow backend",
                  r"Handling remote paths requires installing TensorFlow"),
        meaning="The operation uses TensorFlow (SavedModel export/loading, gfile for remote paths), which "
                "is not installed or not the active backend.",
        harmless="no: the operation fails; `.keras`/`.h5` saving and loading work without TensorFlow.",
        cause="`model.export()`, `keras.layers.TFSMLayer` or a gs://-style path on a torch/jax backend.",
        fix="Save with `model.save('m.keras')`, export with `model.export(path, format='onnx')`, or install "
            "TensorFlow and set KERAS_BACKEND=tensorflow for SavedModel work.",
        related=(),
        examples=("ImportError: This requires the tensorflow module. You can install it via "
                  "`pip install tensorflow`",
                  "NotImplementedError: The TFSMLayer is only currently supported with the TensorFlow backend."),
    ),
    Entry(
        code="W148", name="keras-parent-module-not-importable", library="keras",
        versions="Keras 3 (compiled `.keras` saved on one backend, loaded on another)",
        severity=E,
        summary="A class in the config lives in a module that cannot be imported here (often a backend optimizer).",
        patterns=(r"Could not deserialize class '(?P<class_name>[^']+)' because its parent module (?P<module>\S+) "
                  r"cannot be imported",),
        meaning="'{class_name}' was saved from {module}, which this environment cannot import.",
        harmless="no: the model does not load (the weights are fine).",
        cause="A compiled `.keras` saved with the torch backend loaded where only TensorFlow is installed "
              "(backend-specific optimizer class), or a moved custom module.",
        fix="`keras.models.load_model(path, compile=False)` and compile again, or install the missing module.",
        related=("unregistered-custom-class", "optimizer-state"),
        examples=("TypeError: Could not deserialize class 'Adam' because its parent module "
                  "keras.src.backend.torch.optimizers.torch_adam cannot be imported. Full object config: "
                  "{'module': 'keras.src.backend.torch.optimizers.torch_adam', 'class_name': 'Adam'}",),
        subject="{class_name}",
    ),
    Entry(
        code="W149", name="keras-no-model-config", library="keras",
        versions="Keras 3",
        severity=E,
        summary="load_model() was given a weights-only file.",
        patterns=(r"No model config found in the file at (?P<path>\S+?)\.?(?:\s|$)",),
        meaning="'{path}' holds weights only (no architecture), so `load_model` cannot build a model.",
        harmless="no: nothing is loaded.",
        cause="`load_model` on a `.weights.h5` (written by `save_weights`).",
        fix="Build the model in code, then `model.load_weights('{path}')`.",
        related=("not-a-model-file",),
        examples=("ValueError: No model config found in the file at seed.weights.h5.",),
        subject="{path}",
    ),
]
