"""A family: the file's structure does not match the code that builds the model (the article's cause 1).

The diagnostics are built by ``ckptdoctor.checking`` (which aligns names first, so that one wrapper
prefix is one finding, not 400); the rules and their documentation live here.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

MISSING = Rule("A101", "missing-tensor", Severity.ERROR, "The model expects tensors the file does not have.", """
    ## What it means
    Your code builds a layer (or a parameter, or a persistent buffer) whose weights are not in the
    file, under any name ckptdoctor could align.

    ## Why it happens
    A layer was added to the code after the file was saved; the file is a partial save (only the
    backbone, only the adapter); or the file belongs to another model.

    ## What the framework does
    PyTorch `load_state_dict(strict=True)` raises `RuntimeError: Error(s) in loading state_dict for
    Net: Missing key(s) in state_dict: "head.weight", ...`. With `strict=False` nothing is raised: the
    key is listed in the returned `missing_keys` and the layer keeps its random initialisation.
    Keras `load_weights` (`.keras`, `.weights.h5`) raises `Layer 'x' expected 2 variables, but received
    0 variables during loading` inside `A total of N objects could not be loaded`.

    Tied weights are the exception ckptdoctor reports as a **warning**: `save_pretrained` (with
    `tie_word_embeddings`, the default) and `safetensors.torch.save_model` drop `lm_head.weight` because
    it is the same tensor as `model.embed_tokens.weight`. If your model ties them too (same Parameter),
    only `load_state_dict(strict=True)` complains; `strict=False` loads the head through the tie,
    `safetensors.torch.load_model` forgives names the live model shares, and `from_pretrained` re-ties.
    If your model does NOT tie them, the head stays random under `strict=False`: an error, with a
    `copy-keys` fix plan (or tie them: `model.lm_head.weight = model.model.embed_tokens.weight`).

    ## Example
    ```python
    class Net(nn.Module):            # saved without `head`
        def __init__(self):
            super().__init__(); self.body = nn.Linear(8, 8); self.head = nn.Linear(8, 2)
    Net().load_state_dict(torch.load("body_only.pt"))   # Missing key(s): "head.weight", "head.bias"
    ```

    ## Fix
    Build the model the file was saved from, or load with `strict=False` and initialise the missing
    layers on purpose (and check the returned `missing_keys`).
""")

UNEXPECTED = Rule("A102", "unexpected-tensor", Severity.ERROR, "The file has tensors the model does not use.", """
    ## What it means
    The file holds weights for a layer your code no longer builds (or never built under that name).

    ## Why it happens
    A layer was removed from the code (the article's Example 2: `custom_linear`), the file also holds
    an auxiliary head, or the file was saved from a bigger model.

    ## What the framework does
    PyTorch `load_state_dict(strict=True)` raises `Unexpected key(s) in state_dict: "custom_linear.weight",
    ...`. With `strict=False` the keys are dropped **silently** (they only appear in `unexpected_keys`).
    Keras ignores extra groups in a `.weights.h5` silently (see A107); the legacy `.h5` loader counts
    layers and raises `Layer count mismatch` (see A106).

    ## Example
    The article's `ChatbotModel` saved with `custom_linear`, loaded into `ChatbotModel_No_Custom_Layer`:
    `Unexpected key(s) in state_dict: "custom_linear.weight", "custom_linear.bias".` It is an error, not
    a warning as the article says.

    ## Fix
    If the layer is really gone, drop the keys before loading (`fix_plan` kind `drop-keys`), or use
    `strict=False` after checking that only these keys are reported.
""")

SHAPE = Rule("A103", "shape-mismatch", Severity.ERROR, "A tensor has another shape in the file than in the model.", """
    ## What it means
    The same tensor (same name after alignment) has different dimensions: a hyperparameter of the layer
    changed between saving and loading (units, hidden size, number of classes, kernel size).
    ckptdoctor infers the hyperparameters from the shapes and says which one changed; mismatches that
    only follow from an upstream change (the Dense after a smaller LSTM) are marked as such.

    ## What the framework does
    PyTorch raises `size mismatch for lstm.weight_ih_l0: copying a param with shape torch.Size([512, 64])
    from checkpoint, the shape in current model is torch.Size([256, 64]).` **even with `strict=False`**.
    Keras `load_weights` raises `ValueError: A total of N objects could not be loaded ... The shape of the
    target variable and the shape of the target value in variable.assign(value) must match`
    (`.keras`/`.weights.h5`), or `Shape mismatch in layer #1 (named lstm)for weight ...` (legacy `.h5`).
    With `skip_mismatch=True` Keras only warns and leaves those layers randomly initialised.

    ## Example
    The article's Example 1: saved with `LSTM(128)` (kernel 64x512 = 64 x 4x128), code builds
    `LSTM(64)` (kernel 64x256).

    ## Fix
    Build the model with the hyperparameters the file was saved with (ckptdoctor prints them), or
    retrain. Do not use `skip_mismatch=True` to make the error go away: the layer stays random.
""")

PREFIX = Rule("A104", "key-prefix", Severity.ERROR, "Every key of the file carries a wrapper prefix the model does not (or the reverse).", """
    ## What it means
    The names differ only by a prefix added by a wrapper: `module.` (nn.DataParallel /
    DistributedDataParallel), `_orig_mod.` (torch.compile), `model.` (a task/Lightning wrapper),
    `base_model.model.` (PEFT). One rule explains all the keys.

    ## What the framework does
    `load_state_dict(strict=True)` lists every key twice: all as missing, all (prefixed) as unexpected.
    With `strict=False` **nothing is loaded and nothing is raised**: the model stays random.

    ## Fix
    Strip the prefix before loading:
    `torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(sd, "module.")`, or save the
    unwrapped model (`model.module.state_dict()`, `model._orig_mod.state_dict()`). `fix_plan` is
    `strip-prefix` (or `add-prefix`) with the prefix.
""")

RENAMED = Rule("A105", "renamed-layer", Severity.ERROR, "A layer has the same tensors, shapes and order under another name.", """
    ## What it means
    The file's `fc.weight`/`fc.bias` and the model's `head.weight`/`head.bias` have the same leaf names
    and shapes in the same order: the layer was renamed in the code (or Keras auto-named it
    differently, `dense` and `dense_1`). Tensor-level conventions (`gamma`/`beta` for
    `weight`/`bias`) are reported here too.

    ## What the framework does
    PyTorch strict: `Missing key(s) ... "head.weight"` and `Unexpected key(s) ... "fc.weight"`. With
    `strict=False` the layer silently keeps its random initialisation. Keras matches `.weights.h5` by
    path, so a shifted auto-name makes the wrong layer receive the weights (or none).

    ## Fix
    Rename the keys before loading (`fix_plan` kind `rename-keys` with the mapping), or give the layer
    its old name back. In Keras, give layers explicit `name=`s.
""")

LAYER_COUNT = Rule("A106", "layer-count-mismatch", Severity.ERROR, "A legacy HDF5 file has another number of weighted layers than the model.", """
    ## What it means
    Keras loads a legacy `.h5` file topologically: the i-th layer with weights in the model receives the
    i-th saved layer with weights, whatever the names. The counts differ.

    ## What the framework does
    `ValueError: Layer count mismatch when loading weights from file. Model expected 2 layers, found 3
    saved layers.` (Keras <= 2.6: `You are trying to load a weight file containing 3 layers into a model
    with 2 layers.`) With `by_name=True`, unmatched layers are skipped silently.

    ## Fix
    Rebuild the layer stack the file was saved with, or load with `by_name=True` after giving layers
    explicit, matching names (and check that each layer did load).
""")

SILENT_PARTIAL = Rule("A107", "silent-partial-load", Severity.ERROR, "The load will succeed without any message, but weights are not used.", """
    ## What it means
    Part of the file will be ignored (or part of the model left at its initial values) and the framework
    will say nothing.

    ## Why it happens
    Keras 3 matches `.weights.h5`/`.keras` by path and ignores saved groups the model does not have: a
    model with one layer fewer loads the file with no warning, and the saved Dense weights are dropped.
    PyTorch `load_state_dict(strict=False)` drops unexpected keys and leaves missing ones random, also
    silently.

    ## What the framework does
    Nothing visible: no warning, no error (measured with keras 3.15 and torch 2.13).

    ## Fix
    Make the architecture match. If the partial load is intended (a backbone only), make it explicit:
    in torch, `strict=False` and assert the returned `missing_keys`/`unexpected_keys`; in Keras, re-save
    the weights of the smaller model so the file holds only what loads (Keras's `objects_to_skip=` names
    model layers to leave alone, not saved groups to ignore).
""")

OPTIMIZER = Rule("A108", "optimizer-state-mismatch", Severity.INFO, "The optimizer state in the file will not be restored; the weights are fine.", """
    ## What it means
    The file carries optimizer variables (Adam moments, iteration count) that do not match the live
    optimizer (or the model has none).

    ## What the framework does
    Keras: `UserWarning: Skipping variable loading for optimizer 'adam', because it has 2 variables
    whereas the saved optimizer has 14 variables.` PyTorch ignores an `optimizer` entry unless you load
    it yourself.

    ## Fix
    Harmless for inference: `load_model(..., compile=False)` or ignore it. To resume training, build the
    optimizer first (`model.optimizer.build(model.trainable_variables)`) before loading.
""")

VOCAB = Rule("A109", "vocab-size-changed", Severity.ERROR, "An embedding or output layer has another vocabulary size in the file.", """
    ## What it means
    Only the first dimension of an embedding (or of the output head tied to it) differs: the vocabulary
    was resized, typically by `resize_token_embeddings` after adding special tokens (32000 -> 32001).

    ## What the framework does
    `size mismatch for model.embed_tokens.weight: copying a param with shape torch.Size([32001, 4096])
    from checkpoint, the shape in current model is torch.Size([32000, 4096]).`, also with `strict=False`.

    When the input embedding and an untied output head (`lm_head.weight`, and its bias) both change, it is
    one cause and one finding that lists both tensors.

    ## Fix
    Resize before loading: `model.resize_token_embeddings(32001)` (Hugging Face), or build the model with
    the file's vocabulary size; load the tokenizer that was saved with the file.
""")

TRAINING_CKPT = Rule("A110", "nested-state-dict", Severity.INFO, "The weights are nested inside a training checkpoint.", """
    ## What it means
    The file is a dictionary such as `{"model": state_dict, "optimizer": ..., "epoch": ...}`; the model's
    weights are under one key.

    ## What the framework does
    `model.load_state_dict(torch.load(f))` reports every key as missing and the top-level entries as
    unexpected.

    ## Fix
    `model.load_state_dict(torch.load(f)["model"])` (ckptdoctor names the key; `--key` selects it).
""")

LOAD_MODEL = Rule("A111", "load-model-ignores-code", Severity.INFO, "load_model() rebuilds the model from the file, not from your code.", """
    ## What it means
    `.keras` and full-model `.h5` files contain the architecture. `keras.models.load_model(path)` builds
    the model from that saved config: the code you changed is never consulted.

    ## What the framework does
    The article's Example 1 calls `load_model("chatbot_model_v1.h5")` after defining `create_model_v2`:
    the load succeeds silently and returns the **v1** model (LSTM 128); `model_v2` is simply replaced.
    The mismatch shows only with `model_v2.load_weights(path)`.

    ## Fix
    Decide which architecture you want. To use the new code, build it and call `load_weights` (and fix
    the mismatches reported next to this note); to use the saved model, call `load_model` and drop the
    new code.
""")

WEIGHT_COUNT = Rule("A112", "weight-count-mismatch", Severity.ERROR, "A layer has another number of variables in the file than in the model.", """
    ## What it means
    The same layer saved more or fewer variables than the model's layer has: `use_bias` changed, LSTM
    became GRU, a layer type changed behind the same name.

    ## What the framework does
    Keras 3: `Layer 'lstm_cell' expected 2 variables, but received 3 variables during loading.`
    (`received 0` when the layer's path is absent from the file). Legacy `.h5`: `Weight count mismatch for
    layer #1 (named ...)`. PyTorch reports the extra or absent keys as unexpected/missing.

    ## Fix
    Build the layer with the options it was saved with.
""")

CROSS_FRAMEWORK = Rule("A113", "cross-framework-layout", Severity.ERROR, "The file comes from another framework; the weights need a layout conversion, not a load.", """
    ## What it means
    A Keras file checked against a PyTorch model (or the reverse). The layers correspond, but the
    tensors are stored differently: Dense `kernel [in, out]` is Linear `weight [out, in]` (transposed);
    LSTM `kernel [in, 4u]` is `weight_ih_l0 [4h, in]` (transposed, gate order i, f, c, o equals torch's
    i, f, g, o); Keras keeps one LSTM bias where torch has `bias_ih` + `bias_hh`; GRU gates z, r, h must
    be reordered to r, z, n.

    ## What the framework does
    Neither framework reads the other's files: `torch.load` of an HDF5 file fails with `Unsupported
    operand 72`, and Keras cannot read a state_dict.

    ## Fix
    Convert with the plan in `fix_plan` (kind `port-weights`: per-tensor source, target and operation).
""")

NON_PERSISTENT = Rule("A114", "non-persistent-buffer-in-file", Severity.ERROR, "The file has a tensor the model registers as a non-persistent buffer.", """
    ## What it means
    The model registers this buffer with `register_buffer(..., persistent=False)`, so `load_state_dict`
    does not expect it, but the file has it (saved by an older version of the code, e.g. Hugging Face
    `rotary_emb.inv_freq` before it became non-persistent).

    ## What the framework does
    `strict=True`: `Unexpected key(s) in state_dict: "rotary_emb.inv_freq".` With `strict=False` it is
    dropped; the model recomputes the buffer at init.

    ## Fix
    Drop the key before loading (`fix_plan` kind `drop-keys`).
""")
