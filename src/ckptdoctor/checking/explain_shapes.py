"""Infer layer hyperparameters from tensor shapes, to explain a shape mismatch in the user's terms:
"the file was saved with LSTM(units=128) (kernel 64x512 = 4x128), your code builds LSTM(units=64)".

Works on leaf names and shapes only (torch state_dict leaves or Keras variable names), so it serves the
file side (no code) and the model side alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Shape = tuple[int, ...]

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "LSTMCell": 4, "GRUCell": 3, "RNNCell": 1, "SimpleRNN": 1}
_TORCH_RNN_LEAF = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


@dataclass
class Inferred:
    class_name: str
    params: dict[str, int | bool] = field(default_factory=dict)
    evidence: str = ""  # "kernel 64x512 = 4x128"

    def call(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.class_name}({args})"


def _dims(shape: Shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def infer_torch(class_name: str, leaves: dict[str, Shape]) -> Inferred | None:
    """Hyperparameters of a torch module from its state_dict leaves ({"weight": (out, in), ...})."""
    if class_name in ("LSTM", "GRU", "RNN"):
        gates = GATES[class_name]
        layers: set[int] = set()
        bidir = False
        hidden = input_size = proj = None
        evidence = ""
        for leaf, shape in leaves.items():
            m = _TORCH_RNN_LEAF.match(leaf)
            if not m:
                continue
            kind, which, idx, rev = m.groups()
            layers.add(int(idx))
            bidir = bidir or bool(rev)
            if kind == "weight" and which == "ih" and idx == "0" and not rev and len(shape) == 2:
                hidden, input_size = shape[0] // gates, shape[1]
                evidence = f"weight_ih_l0 {_dims(shape)} = {gates}x{hidden} by {input_size}" if gates > 1 else \
                    f"weight_ih_l0 {_dims(shape)}"
            if kind == "weight" and which == "hr" and idx == "0" and not rev:
                proj = shape[0]
        if hidden is None:
            return None
        params: dict[str, int | bool] = {"input_size": input_size, "hidden_size": hidden, "num_layers": len(layers)}
        if bidir:
            params["bidirectional"] = True
        if proj:
            params["proj_size"] = proj
        return Inferred(class_name, params, evidence)
    w = leaves.get("weight")
    if class_name == "Linear" and w is not None and len(w) == 2:
        return Inferred("Linear", {"in_features": w[1], "out_features": w[0]}, f"weight {_dims(w)} = out x in")
    if class_name in ("Embedding", "EmbeddingBag") and w is not None and len(w) == 2:
        return Inferred(class_name, {"num_embeddings": w[0], "embedding_dim": w[1]},
                        f"weight {_dims(w)} = vocabulary x dimension")
    if class_name.startswith("Conv") and w is not None and len(w) >= 3:
        return Inferred(class_name, {"out_channels": w[0], "in_channels/groups": w[1]},
                        f"weight {_dims(w)} = out x in/groups x kernel")
    if class_name in ("LayerNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm") and w:
        key = "normalized_shape" if class_name in ("LayerNorm", "RMSNorm") else "num_features"
        return Inferred(class_name, {key: w[0]}, f"weight {_dims(w)}")
    return None


def infer_keras(class_name: str, variables: list[Shape]) -> Inferred | None:
    """Hyperparameters of a Keras layer from its variables in save order (kernel, recurrent_kernel, bias...)."""
    if not variables:
        return None
    k = variables[0]
    if class_name in ("LSTM", "GRU", "SimpleRNN") and len(k) == 2:
        gates = GATES[class_name]
        units = k[1] // gates
        ev = f"kernel {_dims(k)} = {k[0]} x {gates}x{units}" if gates > 1 else f"kernel {_dims(k)}"
        return Inferred(class_name, {"units": units}, ev)
    if class_name == "Dense" and len(k) == 2:
        return Inferred("Dense", {"units": k[1]}, f"kernel {_dims(k)} = inputs {k[0]} x units {k[1]}")
    if class_name == "Embedding" and len(k) == 2:
        return Inferred("Embedding", {"input_dim": k[0], "output_dim": k[1]}, f"embeddings {_dims(k)}")
    if class_name.startswith("Conv") and len(k) >= 3:
        return Inferred(class_name, {"filters": k[-1]}, f"kernel {_dims(k)}")
    return None


def describe_change(saved: Inferred | None, model: Inferred | None) -> str | None:
    """"the file was saved with LSTM(units=128) (kernel 64x512 = 4x128 ...), your code builds LSTM(units=64)"."""
    if saved is None or model is None or saved.class_name != model.class_name:
        return None
    changed = {k: (v, model.params.get(k)) for k, v in saved.params.items() if model.params.get(k) != v}
    if not changed:
        return None
    saved_args = ", ".join(f"{k}={v[0]}" for k, v in changed.items())
    model_args = ", ".join(f"{k}={v[1]}" for k, v in changed.items())
    return (f"the file was saved with {saved.class_name}({saved_args}) ({saved.evidence}), "
            f"your code builds {model.class_name}({model_args})")


def changed_values(saved: Inferred | None, model: Inferred | None) -> set[tuple[int, int]]:
    """(saved, model) pairs of changed integer hyperparameters, to recognise knock-on mismatches."""
    if saved is None or model is None:
        return set()
    out = set()
    for k, v in saved.params.items():
        w = model.params.get(k)
        if isinstance(v, int) and isinstance(w, int) and not isinstance(v, bool) and v != w:
            out.add((v, w))
    return out


def knock_on(file_shape: Shape, model_shape: Shape, changes: set[tuple[int, int]]) -> bool:
    """True when every differing dimension is explained by an upstream change (e.g. Dense kernel 128x2 vs
    64x2 after LSTM units 128 -> 64)."""
    if len(file_shape) != len(model_shape):
        return False
    diffs = [(a, b) for a, b in zip(file_shape, model_shape, strict=True) if a != b]
    return bool(diffs) and all(d in changes for d in diffs)


def vocab_change(file_shape: Shape, model_shape: Shape) -> tuple[int, int] | None:
    """(saved rows, model rows) when only the first dimension differs: an embedding or output head whose
    vocabulary was resized."""
    if len(file_shape) == len(model_shape) == 2 and file_shape[1] == model_shape[1] and file_shape[0] != model_shape[0]:
        return file_shape[0], model_shape[0]
    return None
