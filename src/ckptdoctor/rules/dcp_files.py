"""F5xx: torch.distributed.checkpoint (DCP) folders, checked from the files alone.

A DCP checkpoint (``dcp.save``, FSDP, accelerate's ``pytorch_model_fsdp_0/``) is a folder: ``.metadata``
(a pickle of ``Metadata``) names, for every tensor chunk and every non-tensor item, the data file
(``__{rank}_{n}.distcp``) and the byte range that holds it. The reader is ``readers/torch_dcp.py``.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

LOAD_BEHAVIOR = ("torch.distributed.checkpoint.load fails while reading the item (FileNotFoundError, or "
                 "torch.load of a cut-off blob: PytorchStreamReader failed reading zip archive)")

DATA_FILE_MISSING = Rule("F501", "dcp-data-file-missing", Severity.ERROR,
                         "A data file named in the DCP .metadata is not in the folder.", """
    ## What it means
    `.metadata` says that some tensors (or other items) are stored in a file such as
    `__1_0.distcp`, and that file is not in the checkpoint folder.

    ## Why it happens
    Each rank writes its own `__{rank}_{n}.distcp` files; rank 0 writes `.metadata`. Copying the folder
    from only one node, an upload that skipped files, or a save interrupted on another rank leaves a
    `.metadata` that points at files that are not there.

    ## What the framework does
    `torch.distributed.checkpoint.load` (and `dcp_to_torch_save`, accelerate's FSDP loading) fail
    with `FileNotFoundError` when they reach the first item in the missing file.

    ## Example
    ```
    ckpt/.metadata  ckpt/__0_0.distcp          # __1_0.distcp, written by rank 1, was not copied
    ```

    ## Fix
    Copy the missing `__*.distcp` files from the machine (or storage) that wrote them, or save again.
""")

DATA_OUT_OF_RANGE = Rule("F502", "dcp-item-out-of-range", Severity.ERROR,
                         "An item's byte range runs past the end of its .distcp file.", """
    ## What it means
    `.metadata` stores, for each chunk, `_StorageInfo(relative_path, offset, length)`. For this item,
    `offset + length` is larger than the data file.

    ## Why it happens
    The `.distcp` file is truncated (a copy or download that stopped early, a full disk while saving),
    or `.metadata` belongs to another save than the data files next to it.

    ## What the framework does
    Loading reads the slice and calls `torch.load` on it (`weights_only=True` for tensors), which fails
    on the cut-off zip blob: `PytorchStreamReader failed reading zip archive: failed finding central
    directory`.

    ## Fix
    Copy or download the data file again; make sure `.metadata` and the `.distcp` files come from the
    same save.
""")

CHUNK_WITHOUT_STORAGE = Rule("F503", "dcp-chunk-without-storage", Severity.ERROR,
                             "A tensor chunk listed in the DCP .metadata has no storage entry.", """
    ## What it means
    `state_dict_metadata` lists a chunk of a tensor (its offsets and sizes), but `storage_data` has no
    `MetadataIndex(fqn, offsets)` entry saying which file holds it, or the chunks do not cover the
    tensor.

    ## Why it happens
    `.metadata` was edited or merged by hand, or written by a custom planner that dropped items.

    ## What the framework does
    `torch.distributed.checkpoint.load` raises `KeyError` for the `MetadataIndex` when it plans the
    read, so no tensor of the checkpoint is loaded.

    ## Fix
    Save the checkpoint again with `torch.distributed.checkpoint.save`.
""")

NOT_DCP_METADATA = Rule("F504", "dcp-metadata-not-metadata", Severity.ERROR,
                        "The .metadata pickle does not hold a torch.distributed.checkpoint Metadata object.", """
    ## What it means
    The folder looks like a DCP checkpoint (`.metadata` + `*.distcp`), but the `.metadata` pickle
    builds some other object.

    ## Why it happens
    The file was replaced, damaged, or crafted. A `.metadata` is loaded with plain `pickle.load`, so
    a crafted one runs code on load (see the S-family findings for the globals it names).

    ## What the framework does
    `torch.distributed.checkpoint.load` unpickles it with `pickle.load` (not weights-only) and then
    fails with `AttributeError` on `storage_data`/`state_dict_metadata`: whatever the pickle runs has
    already run by then.

    ## Fix
    Do not load it. Get the checkpoint folder again from its source.
""")
