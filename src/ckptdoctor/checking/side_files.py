"""Word and label lists saved next to a model file (``words.pkl``, ``classes.pkl``, ``labels.json``).

Small scripts (the python-chatbot tutorial and its many copies) build the input layer from a pickled
vocabulary and the output layer from a pickled list of classes. When a model's first or last layer has
another size than the file, the list beside it usually says why: it changed after training. The lists
are read with the non-executing pickle reader (never ``pickle.load``) or as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

SIDE_SUFFIXES = (".pkl", ".pickle", ".json")
MAX_SIDE_BYTES = 4 << 20  # word lists are small; anything bigger is not one
MAX_SIDE_FILES = 32


@dataclass(frozen=True)
class SideList:
    name: str  # file name, e.g. "words.pkl"
    length: int


def side_lists(model_path: str) -> list[SideList]:
    """Lists of strings stored next to ``model_path`` (same folder), with their lengths."""
    folder = os.path.dirname(os.path.abspath(model_path))
    try:
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(SIDE_SUFFIXES))
    except OSError:
        return []
    out = []
    for name in names[:MAX_SIDE_FILES]:
        full = os.path.join(folder, name)
        if full == os.path.abspath(model_path) or name == "config.json":
            continue
        try:
            if not os.path.isfile(full) or os.path.getsize(full) > MAX_SIDE_BYTES:
                continue
            length = _string_list_length(full)
        except Exception:  # a side file we cannot read is simply not evidence
            continue
        if length is not None:
            out.append(SideList(name, length))
    return out


def _string_list_length(path: str) -> int | None:
    if path.lower().endswith(".json"):
        with open(path, "rb") as fh:
            value = json.loads(fh.read())
    else:
        from ckptdoctor.readers.pickle_file import read

        snap = read(path)
        if snap.tensors:
            return None
        value = snap.structure
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return len(value)
    return None


def explain_size(model_path: str, saved: int, model: int, noun: str, what: str, default: str) -> str:
    """Why a size at the model's edge differs, from the lists next to the file; ``default`` when none
    of them has either size."""
    lists = side_lists(model_path)
    for s in lists:
        if s.length == model != saved:
            return f"your {noun} ({s.name}, now {s.length} {what}) changed since training (the file has {saved})"
    for s in lists:
        if s.length == saved != model:
            return f"{s.name} next to the file still lists {s.length} {what}, as the file: build the model from it"
    return default
