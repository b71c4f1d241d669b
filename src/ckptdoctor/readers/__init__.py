"""Readers: file -> Snapshot. Pure Python + numpy + h5py. They never execute file content.

``read(path)`` reads one file; ``read_path(path)`` also walks folders. Each format's reader lives in its
own module and is imported only when a file of that format is met, so that reading one safetensors
header does not import h5py.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ckptdoctor.errors import InputError
from ckptdoctor.readers.sniff import sniff
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot

# format -> module in ckptdoctor.readers that defines ``read(path: str, fmt: str) -> Snapshot``
READERS: dict[str, str] = {
    "torch-zip": "torch_zip",
    "torchscript": "torch_zip",
    "torch-legacy": "torch_legacy",
    "torch-tar": "torch_legacy",
    "pickle": "pickle_file",
    "safetensors": "safetensors",
    "keras-v3": "keras_v3",
    "hdf5": "keras_h5",
    "npy": "numpy_files",
    "npz": "numpy_files",
    "tf-checkpoint": "tf_bundle",
    "tf-savedmodel": "tf_savedmodel",
    "torch-dcp": "torch_dcp",
    "gguf": "gguf",
}


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Reading a header allocates one small object per tensor and no reference cycles; pausing the cyclic
    collector meanwhile saves a third of the time for a few thousand tensors (nothing is leaked: the
    collector runs again afterwards, and reference counting frees everything as usual)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read(path: str | os.PathLike[str]) -> Snapshot:
    """Read one model file into a Snapshot, without executing anything from it."""
    path = os.fspath(path)
    fmt = sniff(path)
    module = importlib.import_module(f"ckptdoctor.readers.{READERS[fmt]}")
    with _no_cyclic_gc():
        snap: Snapshot = module.read(path, fmt)
    if snap.file_size is None:
        snap.file_size = os.path.getsize(path)
    return snap


def read_path(path: str | os.PathLike[str]) -> list[Snapshot]:
    """Read a file, or every model file in a folder (sharded safetensors sets as one snapshot each)."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.isfile(path + ".index"):
        path += ".index"  # a TensorFlow checkpoint prefix, as tf.train.Checkpoint names it (``ckpt-1``)
    if not os.path.exists(path):
        raise InputError(F.PATH_NOT_FOUND.code, "no such file or directory", path)
    if os.path.isdir(path):
        from ckptdoctor.readers.folder import read_folder

        snaps = read_folder(path)
        if not snaps:
            raise InputError(F.NO_MODELS.code, "the folder holds no model file ckptdoctor can read", path,
                             "pass the folder with *.safetensors, *.bin, *.pt, *.keras or *.h5 files")
        return snaps
    return [read(path)]
