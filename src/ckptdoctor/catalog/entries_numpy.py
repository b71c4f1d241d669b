"""NumPy (W601-W649) messages, and Keras 3's archive guard (W150).

Texts were produced with numpy 2.x and keras 3.15 on this machine (tests/test_catalog_numpy.py makes each
library print them again and explains what it printed).
"""

from __future__ import annotations

from ckptdoctor.catalog.model import Entry
from ckptdoctor.diagnostics import Severity

E, W = Severity.ERROR, Severity.WARNING

ENTRIES: list[Entry] = [
    Entry(
        code="W601", name="numpy-object-arrays-refused", library="numpy",
        versions="numpy >= 1.16.3 (`allow_pickle` defaults to False)",
        severity=E,
        summary="np.load refused an object array: it is a pickle, and loading it would run it.",
        patterns=(r"Object arrays cannot be loaded when allow_pickle=False",),
        meaning="The .npy/.npz holds an array of dtype object: numpy stored it as a pickle, and np.load "
                "refuses to unpickle it by default.",
        harmless="no for that array (it does not load); the file's numeric arrays load as usual.",
        cause="Saving a list of differently sized arrays, Python objects or strings with np.save/np.savez "
              "turns them into an object array (a pickle).",
        framework="np.load raises ValueError; np.load(path, allow_pickle=True) unpickles it, which imports "
                  "and calls whatever the pickle names.",
        fix="See what the pickle would run without running it: `ckptdoctor inspect file.npz` (S104 lists "
            "its globals). Load with allow_pickle=True only if you trust the file; better, save numeric "
            "arrays (pad ragged rows, or one array per row) or fixed-width strings (dtype '<U..').",
        related=("code-execution",),
        examples=("ValueError: Object arrays cannot be loaded when allow_pickle=False",),
    ),
    Entry(
        code="W602", name="numpy-python2-header", library="numpy",
        versions="numpy >= 1.10, for .npy/.npz files of format version 1.0 and 2.0",
        severity=W,
        summary="np.load read a .npy header written by Python 2 ('shape': (2L,)) after an extra clean-up.",
        patterns=(r"Reading `\.npy` or `\.npz` file required additional header parsing as it was created on "
                  r"Python 2",),
        meaning="The array header was written by Python 2, whose integers can carry an L suffix; numpy "
                "removed the suffixes and read the array.",
        harmless="yes: the values load correctly; object arrays from that era may also need "
                 "encoding='latin1'.",
        cause="An old file, saved by numpy on Python 2.",
        fix="Load it once and save it again: `np.save(path, np.load(path))`, or for .npz "
            "`np.savez(path, **np.load(path))`. `ckptdoctor inspect` reports such headers as F111.",
        related=("not-a-model-file",),
        examples=("UserWarning: Reading `.npy` or `.npz` file required additional header parsing as it was "
                  "created on Python 2. Save the file again to speed up loading and avoid this warning.",),
    ),
    Entry(
        code="W603", name="numpy-truncated-array", library="numpy",
        versions="numpy 1.x and 2.x (`EOF: reading array data` for .npz members and streams, `Failed to read "
                 "all data for array` for .npy files)",
        severity=E,
        summary="np.load found fewer bytes than the array header promises: the file is truncated.",
        patterns=(r"EOF: reading array data, expected (?P<expected>\d+) (?P<unit>bytes) got (?P<got>\d+)",
                  r"Failed to read all data for array\. Expected (?P<shape>\([^)]*\)) = (?P<expected>\d+) "
                  r"(?P<unit>elements), could only read (?P<got>\d+) elements"),
        meaning="np.load expected {expected} and could read {got} ({unit}): the array's data is cut short, "
                "the save or the copy stopped early.",
        harmless="no: the array does not load.",
        cause="A save interrupted (full disk, killed process), a partial download, or a file edited after "
              "saving.",
        fix="Save or download the file again. `ckptdoctor inspect file.npz` names every truncated member "
            "(F103) and reads the intact ones.",
        related=("truncated-file",),
        examples=("ValueError: EOF: reading array data, expected 262144 bytes got 82",
                  "ValueError: Failed to read all data for array. Expected (100,) = 100 elements, could only "
                  "read 21 elements. (file seems not fully written?)"),
    ),
    Entry(
        code="W150", name="keras-zip-bomb-refused", library="keras",
        versions="Keras >= 3.14 (`_reject_zip_bomb` in saving_lib)",
        severity=E,
        summary="Keras refused a .keras archive member that expands far beyond its stored size.",
        patterns=(r"Not allowed: (?:ZIP|archive) member '(?P<member>[^']+)' declares (?P<declared>[\d.]+ ?\w+) "
                  r"but only (?P<stored>[\d.]+ ?\w+) are stored on disk; refusing to (?:load|extract) a "
                  r"potential decompression bomb",),
        meaning="The archive member '{member}' declares {declared} but stores only {stored}: Keras treats it "
                "as a decompression bomb and does not read it.",
        harmless="no: the model does not load (and should not).",
        cause="A crafted archive, or a .keras re-packed with compression (Keras itself stores members "
              "uncompressed, and real weights do not compress a hundredfold).",
        framework="keras.models.load_model raises ValueError before reading the member.",
        fix="Do not load the file. If it is yours, save the model again with model.save('model.keras'). "
            "`ckptdoctor inspect` reports the member as F113 without inflating it.",
        related=("corrupt-header",),
        examples=("ValueError: Not allowed: ZIP member 'model.weights.h5' declares 4.13 GB but only 4.11 MB are "
                  "stored on disk; refusing to load a potential decompression bomb.",),
    ),
]
