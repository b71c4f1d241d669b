"""Codes emitted by ``fix`` when it refuses to write (A40x, D560) or when the written file does not
verify (A403). A refusal ends the command with one line and exit status 2; a failed verification with
exit status 1, and OUT is never created.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

NOT_MECHANICAL = Rule("A401", "fix-not-mechanical", Severity.ERROR,
    "The file disagrees with the model in a way no mechanical fix can repair.", """
    ## What it means
    `ckptdoctor fix` only applies fixes that cannot change what the model computes: renaming keys,
    dropping tensors the model does not use, exact dtype casts, restoring tied aliases and known
    layout conversions. `check` found a problem outside that list: a tensor the model needs and the
    file does not have (A101), a shape mismatch (A103, A109), a layer that could be any of several
    saved ones (ambiguous rename), or a layer count that differs.

    ## Why it happens
    The code that builds the model changed its architecture (a hidden size, a vocabulary, a new layer)
    since the file was saved. Weights cannot be invented or reshaped without retraining.

    ## What the framework does
    `load_state_dict(strict=True)` raises; `strict=False` still raises on size mismatches and leaves
    missing tensors at their initial values.

    ## Example
    ```
    error[A401]: ckpt.pt: cannot fix: 'lstm' has other shapes in the file (A103) ...
    ```

    ## Fix
    Run `ckptdoctor check FILE --model TARGET` and follow its advice: build the model with the
    hyperparameters the file was saved with, or retrain the changed layers.
""")

NO_VERIFIED_PORT = Rule("A402", "no-verified-layout-conversion", Severity.ERROR,
    "The file comes from another framework and no verified conversion exists for one of its layers.", """
    ## What it means
    Porting Keras weights to PyTorch needs a layout conversion per layer. `fix` knows and has verified
    numerically: Embedding (copy), Dense -> Linear (transpose), LSTM (transpose, gate order i,f,c,o is
    torch's i,f,g,o, bias -> bias_ih with bias_hh zero) and GRU with `reset_after=True` (gates z,r,h
    reordered to r,z,n, then transposed; bias rows -> bias_ih / bias_hh). Anything else is refused.

    ## Why it happens
    A layer kind without a known mapping (Conv, Bidirectional, attention), a GRU with
    `reset_after=False` (Keras 2 default; PyTorch has no equivalent), an LSTM/GRU whose
    `recurrent_activation` is not `sigmoid` (Keras 2's `hard_sigmoid`), or the layers of the file and
    of the model do not correspond one to one.

    ## What the framework does
    `torch.load` cannot read a Keras file at all; a wrong manual port loads without error and computes
    something else.

    ## Example
    ```
    error[A402]: v1.h5: GRU 'gru' has reset_after=False (the Keras 2 default): PyTorch's GRU has no equivalent
    ```

    ## Fix
    Port the weights by hand for that layer and compare outputs on a sample input, or build the model
    with layers that have a known mapping.
""")

FIX_NOT_VERIFIED = Rule("A403", "fixed-file-not-verified", Severity.ERROR,
    "The fixed file was written to a temporary file but did not verify, so OUT was not created.", """
    ## What it means
    After writing, `fix` runs `check` on the new file against the model and then loads it with the real
    framework in a separate process (`model.load_state_dict(..., strict=True)`). One of these failed.

    ## Why it happens
    A finding `check` reports but `fix` cannot repair, or a model whose constructor differs from the
    spec used to plan the fix (random shapes, arguments read from the environment).

    ## What the framework does
    Nothing was written: the temporary file is removed and OUT does not appear.

    ## Example
    ```
    error[A403] the fixed file did not verify, so fixed.pt was not written: the framework refused the
    fixed file: load_state_dict(strict=True) raised RuntimeError: ...
    ```

    ## Fix
    Read the reported failure; `ckptdoctor check OUT --model ...` on a file written with `--dry-run`'s
    plan applied by hand shows the same finding.
""")

LOSSY_CAST_REFUSED = Rule("D560", "lossy-cast-refused", Severity.ERROR,
    "The model expects a dtype that cannot hold the file's values exactly; fix refuses without --allow-lossy.", """
    ## What it means
    A tensor would have to be cast to a narrower type: float32 -> float16/bfloat16 (rounding, and values
    above 65504 become inf in float16), float16 <-> bfloat16, or float -> integer (truncation toward zero,
    what `load_state_dict` itself does silently).

    ## Why it happens
    The model is built in another precision than it was trained in (`model.half()`, a bf16 inference
    build), or an integer buffer is stored as float by an older version of the code.

    ## What the framework does
    `load_state_dict` performs the same cast silently (see D201, D202). `fix` makes the loss a decision.

    ## Example
    ```
    error[D560]: model.pt: 4 tensor(s) need a lossy cast (float32 -> float16): fc.weight, ...
    ```

    ## Fix
    Pass `--allow-lossy` if the narrower dtype is what you want, or build the model in the file's dtype.
""")
