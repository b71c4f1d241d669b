"""F3xx: a sharded checkpoint (``*.safetensors.index.json`` / ``pytorch_model.bin.index.json``) whose
index disagrees with its shard files. Emitted by ``readers/folder.py`` while it reads the set."""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

SHARD_MISSING = Rule("F301", "shard-missing", Severity.ERROR, "A shard named in the index is not in the folder.", """
    ## What it means
    The index (`model.safetensors.index.json` or `pytorch_model.bin.index.json`) maps tensors to a
    shard file that does not exist next to it.

    ## Why it happens
    An interrupted download (`snapshot_download` with `allow_patterns`, a partial `git lfs pull`), or
    shards copied by hand without all of them.

    ## What the framework does
    transformers `from_pretrained` raises `OSError` / `FileNotFoundError` naming the missing shard.

    ## Example
    `"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}` with only shard 1 present.

    ## Fix
    Download the missing shard(s) again; check the folder's total size against `metadata.total_size`.
""")

INDEX_KEY_NOT_IN_SHARD = Rule("F302", "index-key-not-in-shard", Severity.ERROR,
                              "The index maps a tensor to a shard that does not contain it.", """
    ## What it means
    `weight_map` says tensor `K` lives in shard `S`, but the header of `S` has no tensor `K`.

    ## Why it happens
    Shards re-saved or re-generated without regenerating the index, or shards from two different
    checkpoints mixed in one folder.

    ## What the framework does
    transformers reads the keys listed in the index from each shard; a key the shard lacks is
    reported as missing (its weights stay randomly initialised) or the load fails with a KeyError.

    ## Fix
    Re-save the model with `save_pretrained`, which writes the shards and their index together, or
    rebuild the index from the shard headers.
""")

TENSOR_NOT_IN_INDEX = Rule("F303", "tensor-not-in-index", Severity.WARNING,
                           "A shard holds a tensor that the index does not list.", """
    ## What it means
    A shard's header has a tensor that `weight_map` does not mention (or maps to another shard).

    ## Why it happens
    The index was edited or generated from a different set of shards.

    ## What the framework does
    Loaders that trust the index never consider that tensor: it is silently ignored, or reported as
    an unexpected key depending on the library version.

    ## Fix
    Rebuild the index from the shard headers, or re-save with `save_pretrained`.
""")

DUPLICATE_TENSOR = Rule("F304", "duplicate-tensor-in-shards", Severity.WARNING,
                        "The same tensor name appears in more than one shard, or twice in the index.", """
    ## What it means
    Two shards both hold a tensor with the same name, or the index lists one key twice with different
    shards.

    ## What the framework does
    Whichever shard is loaded last wins, silently. Which one that is depends on the loader.

    ## Fix
    Keep one copy: re-save the model with `save_pretrained`.
""")

TOTAL_SIZE_MISMATCH = Rule("F305", "index-total-size-mismatch", Severity.INFO,
                           "`metadata.total_size` in the index differs from the shards' tensor bytes.", """
    ## What it means
    The index records the total size of all tensors; the shard headers add up to a different number.

    ## Why it happens
    Shards edited after saving, tied weights counted once or twice by different writers, or a mix of
    shards from different checkpoints.

    ## What the framework does
    transformers uses the value only for progress and memory planning; loading is not affected.

    ## Fix
    Nothing is needed if every other check passes. Re-save with `save_pretrained` to make them agree.
""")
