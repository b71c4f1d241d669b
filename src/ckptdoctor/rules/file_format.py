"""F family: the file itself (missing, empty, truncated, not a model, a stand-in for the real file)."""

from __future__ import annotations

from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import Rule

PATH_NOT_FOUND = Rule("F101", "path-not-found", Severity.ERROR, "The path does not exist.", """
    ## What it means
    ckptdoctor was given a file or folder that is not there.

    ## Fix
    Check the path (relative paths are resolved from the current directory). For a Hugging Face
    folder, pass the folder itself.
""")

EMPTY_FILE = Rule("F102", "empty-file", Severity.ERROR, "The file is empty (0 bytes).", """
    ## What it means
    The file has no content. A save that crashed or ran out of disk space, or a download that
    failed, leaves an empty file behind.

    ## What the framework does
    `torch.load` raises `EOFError` with an empty message; h5py and safetensors refuse the file.

    ## Fix
    Save or download the file again and check the free disk space.
""")

TRUNCATED_FILE = Rule("F103", "truncated-file", Severity.ERROR, "The file ends before its structure does.", """
    ## What it means
    The file starts like a model file, but its end is missing: a zip without its central directory,
    a safetensors file shorter than its header says, a pickle without STOP.

    ## Why it happens
    An interrupted download or copy, a save killed half-way, a disk that filled up.

    ## What the framework does
    torch: `OSError: [Errno 22] Invalid argument` or `failed finding central directory`.
    safetensors: `incomplete metadata, file not fully covered`.

    ## Fix
    Download or save it again. Save through a temporary file and rename it, so that a crash never
    leaves half a file under the real name.
""")

NOT_A_MODEL = Rule("F104", "not-a-model-file", Severity.ERROR, "The file is not in any model format ckptdoctor reads.", """
    ## What it means
    The content matched no known format: PyTorch zip or legacy pickle, TorchScript, safetensors,
    Keras `.keras`, Keras HDF5, NumPy `.npy`/`.npz`, or a plain pickle.

    ## Fix
    Check that this is the file you meant. Formats are recognised by content, never by extension.
""")

LFS_POINTER = Rule("F105", "git-lfs-pointer", Severity.ERROR, "The file is a git-lfs pointer, not the weights.", """
    ## What it means
    The file is a small text file starting `version https://git-lfs.github.com/spec/v1`. The real
    weights were never downloaded: the repository was cloned without git-lfs.

    ## What the framework does
    torch: `UnpicklingError: invalid load key, 'v'` or `Unsupported operand 118`.
    safetensors: `header too large`.

    ## Fix
    `git lfs install && git lfs pull` in the clone, or download the file itself.
""")

HTML_PAGE = Rule("F106", "html-page", Severity.ERROR, "The file is an HTML page, not the weights.", """
    ## What it means
    A download saved a web page (a login page, an error page, a "confirm download" page) under
    the model's name.

    ## Fix
    Download the file again with the direct link, or with the hub client of the site.
""")

CORRUPT_HEADER = Rule("F107", "corrupt-header", Severity.ERROR, "The file's header is invalid.", """
    ## What it means
    The header that describes the tensors cannot be trusted: a safetensors header length larger
    than the file, a header that is not JSON, offsets outside the data, or a zip member missing.

    ## Fix
    Download or save the file again. ckptdoctor never allocates memory sized from such a header.
""")

HDF5_NOT_KERAS = Rule("F108", "hdf5-not-keras", Severity.ERROR, "The HDF5 file is not a Keras model or weights file.", """
    ## What it means
    The file is valid HDF5 but has neither the legacy Keras layout (`model_weights`, `layer_names`,
    `model_config`) nor the Keras 3 weights layout (`layers/.../vars`).

    ## Fix
    Check that this is the file you meant. A plain HDF5 dataset file is not a model.
""")

NO_MODELS = Rule("F109", "no-models-in-directory", Severity.ERROR, "The folder holds no model file.", """
    ## What it means
    ckptdoctor walked the folder and found no file in a format it reads.

    ## Fix
    Pass the folder that holds the weights (`*.safetensors`, `pytorch_model.bin`, `*.keras`, `*.h5`).
""")

UNREADABLE = Rule("F110", "unreadable-file", Severity.ERROR, "The file cannot be opened.", """
    ## What it means
    The operating system refused to open or read the file (permissions, a special file, an I/O error).

    ## Fix
    Check the file's permissions and that it is a regular file.
""")

PYTHON2_NPY_HEADER = Rule("F111", "python2-npy-header", Severity.INFO,
                          "A .npy header was written by Python 2; numpy reads it after a clean-up.", """
    ## What it means
    The array header is a Python dict literal. Python 2 spelled some integers with a trailing `L`
    (`'shape': (2L,)`), which is not valid Python 3. ckptdoctor, like numpy, drops those `L`s for
    format versions up to 2.0; anything else in the header must still be a plain literal.

    ## What the framework does
    `np.load` reads the array and warns: `UserWarning: Reading .npy or .npz file required additional
    header parsing as it was created on Python 2. Save the file again to speed up loading and avoid
    this warning.` Object arrays from that era also name Python 2 modules in their pickles.

    ## Fix
    Load the file once and save it again: `np.save(path, np.load(path))` (for `.npz`,
    `np.savez(path, **np.load(path))`).
""")

STRUCTURE_TRUNCATED = Rule("F112", "structure-truncated", Severity.INFO,
                           "The pickled object is larger than ckptdoctor walks; it is summarised.", """
    ## What it means
    ckptdoctor walks a pickle's object tree to name every tensor by its path. It stops at 500,000
    nodes or 64 levels, and a container the pickle shares (the same dict under two keys) is walked
    again under each name only while that stays below 100,000 nodes; beyond that it is shown as
    `<same object as PATH>`.

    ## Why it happens
    Very large Python structures saved beside the weights (long lists, deep configs), or a file made
    to exhaust readers: 2 KB of pickle that nests `{"k": d, "j": d}` thirty times names a billion paths.

    ## What the framework does
    `torch.load` and `pickle.load` rebuild the whole object; shared containers stay shared objects.

    ## Fix
    Nothing, if the file is yours: the tensors listed are read as usual. Save the state dict alone
    (`torch.save(model.state_dict(), path)`) for a file every tool lists in full.
""")

ZIP_BOMB = Rule("F113", "zip-decompression-bomb", Severity.ERROR,
                "An archive member declares far more bytes than it stores: loaders refuse it as a bomb.", """
    ## What it means
    A zip member (the `model.weights.h5` of a `.keras` archive) says it expands to gigabytes from a
    few megabytes on disk. Keras writes members uncompressed, and real weights do not compress a
    hundredfold, so this is a decompression bomb (CWE-409) or a badly re-packed archive.

    ## What the framework does
    Keras 3 refuses before reading it: `ValueError: Not allowed: ZIP member 'model.weights.h5'
    declares 4.13 GB but only 4.11 MB are stored on disk; refusing to load a potential decompression
    bomb.` (a member above 4 GiB that expands more than 100x). ckptdoctor does not decompress it
    either: it lists the layers from `config.json` and no weights.

    ## Fix
    Do not load the file. If it is yours, save the model again with `model.save("model.keras")`
    (Keras stores the members uncompressed).
""")
