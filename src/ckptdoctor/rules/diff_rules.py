"""Codes emitted by ``diff`` (A30x structure, D40x values) and by ``convert`` when it must refuse (D55x).

``diff`` compares two checkpoints tensor by tensor; every difference it finds is one of these findings,
and its exit status is 1 when any of them is beyond ``--tolerance``.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

TENSOR_REMOVED = Rule("A301", "tensor-removed", Severity.ERROR, "A tensor of the first file is missing from the second.", """
    ## What it means
    `ckptdoctor diff A B` found a tensor name in A that B does not have (after resolving safetensors
    alias metadata, so a tied weight stored once is not reported).

    ## Why it happens
    A layer was removed or renamed between the two saves, a prefix changed (`module.` from
    DataParallel, `model.` from a wrapper), or B was saved from a different part of the checkpoint.

    ## What the framework does
    Loading B into the model that produced A raises `Missing key(s) in state_dict` with
    `strict=True` (torch) or leaves the layer at its initial values with `strict=False`; Keras reports
    objects that could not be loaded.

    ## Example
    ```
    error[A301] tensor-removed fc.bias: in A only  (float32 [10])
    ```

    ## Fix
    If the tensor was renamed, `ckptdoctor check B --model ...` proposes the mapping. If it was
    dropped on purpose, nothing to do: rerun `diff` to confirm the rest matches.
""")

TENSOR_ADDED = Rule("A302", "tensor-added", Severity.ERROR, "The second file has a tensor the first does not.", """
    ## What it means
    A tensor name exists in B and not in A.

    ## Why it happens
    A layer was added, a buffer became persistent, a prefix changed, or B holds more than the
    model (optimizer state, EMA weights).

    ## What the framework does
    Loading B into the model that produced A raises `Unexpected key(s) in state_dict` with torch
    `strict=True`, and drops the tensor silently with `strict=False`.

    ## Example
    ```
    error[A302] tensor-added head.weight: in B only  (float32 [10, 64])
    ```

    ## Fix
    Check that B is the file you meant; `ckptdoctor check B --model ...` tells which tensors the model
    will use.
""")

TENSOR_RESHAPED = Rule("A303", "tensor-reshaped", Severity.ERROR, "A tensor has a different shape in the two files.", """
    ## What it means
    The same name holds tensors of different shapes, so their values cannot be compared.

    ## Why it happens
    A hyperparameter changed (hidden size, vocabulary, number of classes), a Keras kernel was
    transposed into the torch layout, or the wrong checkpoint was picked.

    ## What the framework does
    torch raises `size mismatch for NAME` even with `strict=False`; Keras raises a shape mismatch
    error, or skips the layer with a warning under `skip_mismatch=True`.

    ## Example
    ```
    error[A303] tensor-reshaped fc.weight: [10, 64] -> [20, 64]
    ```

    ## Fix
    Build the model with the hyperparameters of the file you load, or re-initialise that layer on
    purpose (load with the layer removed from the state dict).
""")

TENSOR_RETYPED = Rule("D401", "tensor-dtype-changed", Severity.ERROR, "A tensor has a different dtype in the two files.", """
    ## What it means
    The same name holds the same shape in another dtype (float32 in A, bfloat16 in B, ...). The
    values are still compared after converting both to floating point.

    ## Why it happens
    One file was saved after `.half()`/`.to(torch.bfloat16)`, under mixed precision, or converted by a
    tool that casts.

    ## What the framework does
    torch `load_state_dict` casts silently to the model's dtype (with `assign=True` the model takes
    the file's dtype); Keras casts to the variable's dtype. A narrower dtype loses precision silently.

    ## Example
    ```
    error[D401] tensor-dtype-changed fc.weight: float32 -> bfloat16  (max abs diff 3.1e-03)
    ```

    ## Fix
    If the cast was intended, pass a `--tolerance` that admits its rounding error; otherwise save
    again from the full-precision model.
""")

VALUES_DIFFER = Rule("D402", "tensor-values-differ", Severity.ERROR, "A tensor's values differ between the two files.", """
    ## What it means
    Same name, shape and dtype, different values. `diff` reports the largest absolute difference,
    the relative L2 distance `||a-b|| / ||a||`, the cosine similarity and whether the raw bytes are
    identical. It is an error when the largest absolute difference exceeds `--tolerance` (default 0:
    any difference), and information otherwise.

    ## Why it happens
    Training continued between the saves (epoch 3 against epoch 4), a lossy conversion, or the
    wrong file.

    ## What the framework does
    Nothing: values are loaded as they are. This is the silent kind of difference.

    ## Example
    ```
    error[D402] tensor-values-differ fc.weight: max abs diff 1.0e-03, rel L2 2.3e-04, cosine 1.000000
    ```

    ## Fix
    If the difference is expected (a cast, a re-save on another device), rerun with
    `--tolerance` set to the largest difference you accept.
""")

NONFINITE_APPEARED = Rule("D403", "nan-inf-appeared", Severity.ERROR, "NaN or Inf values appear in the second file that the first did not have.", """
    ## What it means
    The tensor in B holds NaN or Inf at positions where A holds finite numbers.

    ## Why it happens
    Training diverged (a learning rate too high, fp16 overflow without loss scaling), or a cast to a
    narrower dtype overflowed (a value above 65504 in float16, above 448 in float8_e4m3fn).

    ## What the framework does
    Nothing at load time: the model loads and produces NaN outputs later.

    ## Example
    ```
    error[D403] nan-inf-appeared fc.weight: 1 NaN, 0 Inf in B (0 and 0 in A)
    ```

    ## Fix
    Go back to the last checkpoint without them; lower the learning rate or enable loss scaling.
    A tolerance never admits them.
""")

VALUES_UNREADABLE = Rule("D404", "tensor-values-not-compared", Severity.WARNING, "The values of a tensor could not be compared.", """
    ## What it means
    The structure matches but the values of this tensor could not be read from one of the files
    (an opaque dtype, a storage the reader cannot reach).

    ## Fix
    Compare that tensor with the framework itself, or convert both files to safetensors first
    (`ckptdoctor convert`).
""")

ALIAS_CHANGED = Rule("A304", "tensor-sharing-changed", Severity.WARNING, "Two tensors share storage in one file and not in the other.", """
    ## What it means
    In one file the tensors are one storage (tied weights, a view), in the other they are separate
    copies, or a safetensors alias (`__metadata__` name -> kept name) replaces one of them.

    ## Why it happens
    safetensors cannot store shared memory: `save_model` keeps one name and records the others as
    metadata; `save_file` refuses. A `.clone()` before saving unties them.

    ## What the framework does
    torch re-ties parameters only when the model ties them in `__init__`; untied copies train apart.

    ## Fix
    Nothing when the model ties the weights itself. Otherwise load with
    `safetensors.torch.load_model`, which restores the alias names.
""")

DTYPE_NOT_SAFETENSORS = Rule("D550", "dtype-not-in-safetensors", Severity.ERROR, "A tensor's dtype has no safetensors equivalent.", """
    ## What it means
    `ckptdoctor convert` refused the file: one tensor's dtype (quantized `qint8`, `complex32`,
    `float8_e4m3fnuz`, ...) cannot be written to safetensors, whose dtypes are F64 F32 F16 BF16
    F8_E4M3 F8_E5M2 F8_E8M0 C64 C128 I64 I32 I16 I8 U64 U32 U16 U8 BOOL.

    ## Fix
    Dequantize or cast that tensor in PyTorch before converting, or keep the file in the PyTorch
    format.
""")

SHARED_WITHOUT_OWNER = Rule("D551", "shared-storage-without-owner", Severity.ERROR, "Tensors overlap in one storage and none of them covers it all.", """
    ## What it means
    `ckptdoctor convert` refused the file: some tensors are overlapping views of the same storage and
    none of them is the whole storage, so safetensors' alias convention (store one tensor, record the
    others as metadata) cannot describe them. `safetensors.torch.save_model` refuses the same case.

    ## Why it happens
    Views such as `big[2:5]` and `big[4:8]` saved without `big` itself.

    ## Fix
    `.clone()` the views before saving (each becomes its own storage), or save the full tensor too.
""")

NOT_A_STATE_DICT = Rule("D552", "training-checkpoint-needs-key", Severity.ERROR, "The file is a training checkpoint: choose the part to convert.", """
    ## What it means
    The file holds more than a state dict (for example `{"model": ..., "optimizer": ..., "epoch": 3}`)
    and `convert` was not told which part to write.

    ## Fix
    Pass `--key model` (or the key that holds the model's state dict, e.g. `state_dict`).
""")
