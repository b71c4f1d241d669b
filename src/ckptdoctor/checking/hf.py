"""Hugging Face style model folders for ``check``: which file holds the weights, and what config.json
says about them (``tie_word_embeddings``, ``vocab_size``).

A folder such as ``save_pretrained`` writes (``config.json`` + ``model.safetensors``, or sharded
``model-0000N-of-0000M.safetensors`` + ``model.safetensors.index.json``, or ``pytorch_model.bin``)
is read with ``readers.read_path``; a sharded set is one snapshot. ``check`` compares ONE snapshot with
the model, chosen as transformers chooses (safetensors first), and says which.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ckptdoctor.snapshot import Snapshot

# the file names from_pretrained looks for, in its order of preference
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")
CONFIG_BYTES = 1 << 24  # a config.json is small: never read more


def read_for_check(path: str) -> tuple[Snapshot, list[str]]:
    """The snapshot ``check`` compares: the file itself, or the weights of a model folder."""
    from ckptdoctor.readers import read, read_path

    if not os.path.isdir(path):
        return read(path), []
    return pick_weights(read_path(path), path)


def pick_weights(snaps: list[Snapshot], folder: str) -> tuple[Snapshot, list[str]]:
    from ckptdoctor.errors import InputError
    from ckptdoctor.rules import file_format as F

    usable = [s for s in snaps if s.format != "unreadable" and s.tensors]
    if not usable:
        bad = next((s for s in snaps if s.diagnostics), None)
        why = bad.diagnostics[0].message if bad is not None else "no tensors in any file"
        raise InputError(F.NO_MODELS.code, f"the folder has no readable weights ({why})", folder,
                         "pass the folder that holds model.safetensors, its shards, or pytorch_model.bin")

    def rank(s: Snapshot) -> tuple[int, int]:
        name = os.path.basename(s.path)
        return (WEIGHT_FILES.index(name) if name in WEIGHT_FILES else len(WEIGHT_FILES), -len(s.tensors))

    chosen = min(usable, key=rank)
    rel = os.path.relpath(chosen.path, folder)
    what = f"the sharded set {rel} ({len(chosen.metadata.get('shards') or [])} shards)" \
        if chosen.format.endswith("-sharded") else rel
    notes = [f"folder: checking {what}, {len(chosen.tensors)} tensors"]
    others = [os.path.relpath(s.path, folder) for s in usable if s is not chosen]
    if others:
        notes.append(f"folder: also holds {', '.join(others[:4])}{' ...' if len(others) > 4 else ''}; "
                     "not checked (from_pretrained prefers safetensors as well); pass a file to check it")
    return chosen, notes


def hf_config(snap: Snapshot) -> dict[str, Any] | None:
    """The transformers ``config.json`` beside the weights, or None (absent, unreadable, not transformers)."""
    folder = os.path.dirname(os.path.abspath(snap.path))
    try:
        with open(os.path.join(folder, "config.json"), "rb") as fh:
            cfg = json.loads(fh.read(CONFIG_BYTES))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or not ({"model_type", "architectures"} & cfg.keys()):
        return None
    return cfg


def ties_word_embeddings(cfg: dict[str, Any] | None) -> bool | None:
    """config.json's ``tie_word_embeddings`` (transformers' PretrainedConfig default is True; some model
    configs nest it in ``text_config``). None without a transformers config."""
    if cfg is None:
        return None
    if "tie_word_embeddings" in cfg:
        return bool(cfg["tie_word_embeddings"])
    text = cfg.get("text_config")
    if isinstance(text, dict) and "tie_word_embeddings" in text:
        return bool(text["tie_word_embeddings"])
    return True


def architecture(cfg: dict[str, Any] | None) -> str | None:
    archs = (cfg or {}).get("architectures")
    return str(archs[0]) if isinstance(archs, list) and archs else None


def prefix_story(prefix: str, action: str, cfg: dict[str, Any] | None, model_class: str) -> tuple[str, str]:
    """(what the prefix means, what transformers does about it) for the Hugging Face / PEFT prefixes."""
    saved = architecture(cfg)
    saved_as = f" ({saved})" if saved else ""
    if prefix == "model.":
        if action == "strip":
            return (f"the file was saved from a task model{saved_as} that holds the backbone as `.model` "
                    "(keys model.layers.0...), your model is the bare backbone (keys layers.0...)",
                    " transformers from_pretrained handles this itself: it strips base_model_prefix and ignores "
                    "the head's keys; load_state_dict does not.")
        return (f"the file holds the bare backbone{saved_as} (keys layers.0...), your model {model_class} is a task "
                "model that holds it as `.model` (keys model.layers.0...)",
                " transformers from_pretrained adds base_model_prefix itself and newly initialises the head "
                "(with a 'Some weights ... were not initialized' warning, unless the head is tied); load_state_dict "
                "does not.")
    if prefix.startswith("base_model.model."):
        if action == "strip":
            return ("the file is a PEFT PeftModel's state_dict (keys base_model.model.<your keys>), your model is "
                    "the plain model",
                    " PeftModel.from_pretrained expects only adapter keys; a full PeftModel state_dict does not load "
                    "into the base model.")
        return ("your model is a PEFT PeftModel (keys base_model.model.<...>), the file holds the plain model",
                " load the file into the base model before wrapping it with get_peft_model / PeftModel.")
    return "", ""
