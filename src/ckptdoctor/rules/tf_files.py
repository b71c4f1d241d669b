"""F4xx: TensorFlow checkpoints and SavedModel folders (tf.keras 2.x), from the files alone.

The readers are ``readers/tf_bundle.py`` (tensor bundles: ``ckpt-1.index`` + ``.data-*``) and
``readers/tf_savedmodel.py`` (``saved_model.pb`` folders). Messages quoted here were measured with
TensorFlow 2.21 / tf_keras 2.21 and Keras 3.15 (``tests/data/tf/expected.json`` records them).
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules.registry import Rule, snapshot_check

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from ckptdoctor.snapshot import Snapshot

KERAS3_SAVEDMODEL_ERROR = (
    "ValueError: File format not supported: filepath=sm_dir. Keras 3 only supports V3 `.keras` files, legacy "
    "H5 format files (`.h5` extension). Note that the legacy SavedModel format is not supported by "
    "`load_model()` in Keras 3. In order to reload a TensorFlow SavedModel as an inference-only layer in "
    "Keras 3, use `keras.layers.TFSMLayer(sm_dir, call_endpoint='serving_default')` (note that your "
    "`call_endpoint` might have a different name).")
NO_METADATA_WARNING = (
    "SavedModel saved prior to TF 2.5 detected when loading Keras model. Please ensure that you are saving the "
    "model with model.save() or tf.keras.models.save_model(), *NOT* tf.saved_model.save(). To confirm, there "
    "should be a file named \"keras_metadata.pb\" in the SavedModel directory.")
MISSING_SHARD_BEHAVIOR = ("TensorFlow fails when the variables are restored: `OpError: <prefix>.data-00000-of-00001; "
                          "No such file or directory` (tf.train.load_checkpoint, model.load_weights)")

NO_KERAS_METADATA = Rule("F401", "savedmodel-without-keras-metadata", Severity.WARNING,
                         "The SavedModel has no keras_metadata.pb: Keras cannot rebuild the model from it.", """
    ## What it means
    The folder is a TensorFlow SavedModel (`saved_model.pb` + `variables/`) but has no
    `keras_metadata.pb`, the file where tf.keras (TF >= 2.5) stores each layer's config.

    ## Why it happens
    It was written by `tf.saved_model.save(model, dir)`, not by `model.save(dir)`. The graph and the
    variables are there; the Keras layer classes and their configs are not. (TF < 2.5 had no
    `keras_metadata.pb`: its `model.save` put each layer's config inside `saved_model.pb`, which
    ckptdoctor detects; that case is reported as info, since tf_keras can still rebuild the model.)

    ## What the framework does
    tf_keras `load_model(dir)` warns `SavedModel saved prior to TF 2.5 detected when loading Keras
    model. Please ensure that you are saving the model with model.save() or
    tf.keras.models.save_model(), *NOT* tf.saved_model.save(). To confirm, there should be a file
    named "keras_metadata.pb" in the SavedModel directory.` and revives generic objects from the
    traced functions instead of your layer classes. Keras 3 cannot load any SavedModel (F402).
    `tf.saved_model.load(dir)` still works for inference through its signatures.

    ## Example
    ```python
    tf.saved_model.save(model, "export")   # no keras_metadata.pb
    model.save("export")                   # tf.keras 2.x: keras_metadata.pb written
    ```

    ## Fix
    Rebuild the model in code and restore the variables (the variable names are in the bundle,
    `ckptdoctor inspect DIR` lists them by layer), or re-export from the training code with
    `model.save("model.keras")`. For serving only, use `tf.saved_model.load(dir).signatures`.
""")

KERAS3_CANNOT_LOAD = Rule("F402", "savedmodel-not-loadable-in-keras3", Severity.WARNING,
                          "Keras 3 `load_model` cannot read a SavedModel folder.", """
    ## What it means
    The folder is a tf.keras 2.x / TensorFlow SavedModel. Keras 3 (and TF >= 2.16, where `tf.keras`
    is Keras 3) reads only `.keras` and legacy `.h5` files.

    ## What the framework does
    `keras.saving.load_model(dir)` raises (Keras 3.15):
    `ValueError: File format not supported: filepath=sm_dir. Keras 3 only supports V3 `.keras`
    files, legacy H5 format files (`.h5` extension). Note that the legacy SavedModel format is not
    supported by `load_model()` in Keras 3. In order to reload a TensorFlow SavedModel as an
    inference-only layer in Keras 3, use `keras.layers.TFSMLayer(sm_dir,
    call_endpoint='serving_default')` (note that your `call_endpoint` might have a different name).`
    `TFSMLayer` itself needs the TensorFlow backend: on torch or JAX it raises `NotImplementedError:
    The TFSMLayer is only currently supported with the TensorFlow backend.`

    ## Fix
    One of:
    * inference only, TensorFlow backend: `keras.layers.TFSMLayer(dir, call_endpoint="serving_default")`;
    * `pip install tf_keras`, then with `TF_USE_LEGACY_KERAS=1`:
      `tf.keras.models.load_model(dir).save("model.keras")` (or `.h5`) and load that in Keras 3;
    * rebuild the architecture in Keras 3 code and copy the variables: the bundle is read without
      TensorFlow, and `ckptdoctor.readers.tf_savedmodel.keras_weight_lists(snapshot)` gives each
      layer's arrays in Keras creation order, ready for `layer.set_weights(...)` (check the shapes,
      and the activations: Keras 2 `hard_sigmoid` differs from Keras 3's).
""")

OPTIMIZER_STATE = Rule("F403", "tf-checkpoint-optimizer-state", Severity.INFO,
                       "The TF checkpoint also holds optimizer state: restoring only the model warns.", """
    ## What it means
    Besides the weights, the checkpoint holds the optimizer's variables: the iteration count, the
    learning rate and one or two slots per weight (Adam `m`/`v`, under `optimizer/_variables/N` or
    `.../.OPTIMIZER_SLOT/optimizer/m`).

    ## Why it happens
    `tf.train.Checkpoint(model=model, optimizer=optimizer)`, or `model.save_weights("ckpt")` /
    `model.save(dir)` of a compiled model that has trained.

    ## What the framework does
    Restoring into a model without that optimizer (inference, or a model not yet trained) leaves
    those values unused. TF logs `WARNING:tensorflow:Value in checkpoint could not be found in the
    restored object: (root).optimizer.iter` and, when the objects are deleted, `Detecting that an
    object or model or tf.train.Checkpoint is being deleted with unrestored values. ... To silence
    these warnings, use status.expect_partial().` The weights themselves are restored correctly.

    ## Fix
    Nothing for inference: `model.load_weights(path).expect_partial()` or
    `tf.train.Checkpoint(model=model).restore(path).expect_partial()`. To resume training, create
    the same optimizer and restore it too.
""")

UNCLAIMED_VARIABLES = Rule("F404", "tf-variables-outside-layers", Severity.INFO,
                           "Some variables in the TF object graph belong to no Keras layer.", """
    ## What it means
    The checkpoint's object graph holds variables that are not under any of the model's layers:
    metric accumulators (`keras_api/metrics/0/total`), `tf.Variable`s assigned as plain attributes
    of a subclassed model, or objects tracked from the root of a `tf.train.Checkpoint`.

    ## Why it happens
    TensorFlow saves every trackable object reachable from the saved root, not only layer weights.

    ## What the framework does
    tf.keras restores them when the same attributes exist. A model rebuilt elsewhere (Keras 3,
    PyTorch) has no place for them: they are silently left behind when you port layer by layer.

    ## Fix
    Check the listed names: metric state is harmless; a hand-made `tf.Variable` (a temperature, a
    scale) must be recreated and copied by hand.
""")

DATA_SHARD_MISSING = Rule("F405", "tf-data-shard-missing", Severity.ERROR,
                          "A .data-NNNNN-of-MMMMM file of the TF checkpoint is missing.", """
    ## What it means
    A TensorFlow checkpoint is a prefix: `ckpt-1.index` (names, shapes, offsets) plus the
    `ckpt-1.data-00000-of-00001` file(s) holding the bytes. The index names a data shard that is
    not next to it.

    ## Why it happens
    Only the `.index` (or only some shards) was copied or uploaded; a glob such as `*.index` or a
    size filter dropped the data files.

    ## What the framework does
    `tf.train.list_variables` still lists the names; reading values or `model.load_weights(prefix)`
    fails with `OpError: <prefix>.data-00000-of-00001; No such file or directory` (TF 2.21).

    ## Fix
    Copy every `<prefix>.data-*` file next to `<prefix>.index`, together with the `checkpoint` file.
""")


@snapshot_check
def check_tf_files(snapshot: Snapshot) -> list[Diagnostic]:
    if snapshot.format not in ("tf-checkpoint", "tf-savedmodel"):
        return []
    out: list[Diagnostic] = []
    if snapshot.format == "tf-savedmodel":
        out.extend(_savedmodel(snapshot))
    opt = [t for t in snapshot.tensors if t.attrs.get("role") == "optimizer"]
    if opt:
        slots = [t for t in opt if "slot" in t.attrs or "/m/" in str(t.attrs.get("full_name", ""))
                 or "/v/" in str(t.attrs.get("full_name", "")) or "OPTIMIZER_SLOT" in t.name]
        out.append(OPTIMIZER_STATE.diag(
            f"{len(opt)} optimizer variable(s) ({len(slots)} slot(s)) saved beside the weights",
            subject=snapshot.path, found=len(opt),
            framework_behavior="restoring only the model logs 'Value in checkpoint could not be found in the "
                               "restored object: (root).optimizer...' and an 'unrestored values' warning",
            fix="for inference: model.load_weights(path).expect_partial()",
            details={"tensors": [t.name for t in opt[:20]]}))
    out.extend(_unclaimed(snapshot))
    return out


def _savedmodel(snapshot: Snapshot) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    has_meta = bool(snapshot.metadata.get("keras_metadata"))
    saved_model = snapshot.metadata.get("saved_model") or {}
    inline = saved_model.get("keras_inline_configs") or 0
    if not has_meta and inline:
        version = snapshot.framework_version or "< 2.5"
        out.append(NO_KERAS_METADATA.diag(
            f"no keras_metadata.pb, but {inline} Keras object(s) carry their config inside saved_model.pb "
            f"(tf.keras model.save under TensorFlow {version}, before keras_metadata.pb existed): tf_keras can "
            "rebuild the model",
            severity=Severity.INFO, subject=snapshot.path, expected="keras_metadata.pb",
            found=snapshot.metadata.get("files"),
            framework_behavior=f"tf_keras load_model warns: {NO_METADATA_WARNING} Then it reads the layer "
                               "configs from saved_model.pb",
            fix="tf_keras load_model(dir) and save('model.keras') (TF >= 2.16: pip install tf_keras, "
                "TF_USE_LEGACY_KERAS=1); Keras 3 cannot read the folder itself"))
    elif not has_meta:
        out.append(NO_KERAS_METADATA.diag(
            "no keras_metadata.pb: saved with tf.saved_model.save (or TF < 2.5); Keras cannot rebuild it",
            subject=snapshot.path, expected="keras_metadata.pb", found=snapshot.metadata.get("files"),
            framework_behavior=f"tf_keras load_model warns: {NO_METADATA_WARNING}",
            fix="rebuild the model in code and restore the variables, or re-export with model.save('model.keras')"))
    if has_meta or inline or any(t.attrs.get("layer") for t in snapshot.tensors):
        out.append(KERAS3_CANNOT_LOAD.diag(
            "a tf.keras SavedModel: Keras 3 load_model refuses this folder",
            subject=snapshot.path, found="tf-savedmodel", expected=".keras or .h5",
            framework_behavior=KERAS3_SAVEDMODEL_ERROR.replace("sm_dir", snapshot.path),
            fix="TFSMLayer(dir, call_endpoint='serving_default') with the TF backend; or tf_keras load_model + "
                "save('model.keras'); or rebuild in code and set_weights from "
                "ckptdoctor.readers.tf_savedmodel.keras_weight_lists(snapshot)"))
    return out


def _unclaimed(snapshot: Snapshot) -> list[Diagnostic]:
    names = [t.name for t in snapshot.tensors]
    keras_like = bool(snapshot.metadata.get("keras_metadata")) or any(
        "layer_with_weights-" in n or n.startswith("layer-") or "/layer-" in n for n in names)
    if not keras_like:
        return []
    loose = [t for t in snapshot.tensors
             if t.attrs.get("role") == "weight" and not t.attrs.get("layer")]
    if not loose:
        return []
    shown = [f"{t.name} ({t.attrs['full_name']})" if t.attrs.get("full_name") else t.name for t in loose]
    return [UNCLAIMED_VARIABLES.diag(
        f"{len(loose)} variable(s) belong to no layer: " + ", ".join(shown[:5]) + (" ..." if len(shown) > 5 else ""),
        subject=snapshot.path, found=[t.name for t in loose],
        framework_behavior="tf.keras restores them only into the same attributes; a rebuilt model drops them",
        fix="recreate those variables by hand if they matter (metric state does not)")]
