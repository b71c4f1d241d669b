"""A live Keras 3 model -> ModelSpec.

The state is listed exactly as Keras saves it: the ``.weights.h5`` path every variable will have
(``layers/lstm/cell/vars/0``), found by running Keras' own saving walk against a store that records
instead of writing. ``layers`` is the legacy-HDF5 topological order (``model.layers`` that own
weights), which is how a legacy ``.h5`` is loaded. keras is imported here only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ckptdoctor.errors import UsageError
from ckptdoctor.spec import LayerSpec, ModelSpec, StateEntry

if TYPE_CHECKING:
    from ckptdoctor.snapshot import Snapshot

HYPER = ("units", "input_dim", "output_dim", "filters", "kernel_size", "use_bias", "num_heads", "key_dim",
         "return_sequences", "reset_after", "activation", "recurrent_activation", "rate", "axis", "epsilon")


def _shape(v: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(v, "shape", ()))


def _dtype(v: Any) -> str:
    dt = getattr(v, "dtype", "")
    text = str(getattr(dt, "name", dt))
    return text.removeprefix("torch.")


def record_save_paths(model: Any) -> list[tuple[str, Any]]:
    """(``.weights.h5`` dataset path, variable) in the order ``save_weights`` writes them."""
    from keras.src.saving import saving_lib

    class RecordingStore(saving_lib.H5IOStore):  # type: ignore[misc]
        """Passes Keras' isinstance check; records the variables instead of writing HDF5."""

        def __init__(self) -> None:  # no file
            self.mode = "w"
            self.records: list[tuple[str, Any]] = []
            self.path = ""

        def make(self, path: str, metadata: Any = None) -> RecordingStore:
            self.path = path
            return self

        def __setitem__(self, key: str, value: Any) -> None:
            prefix = f"{self.path}/vars" if self.path else "vars"
            self.records.append((f"{prefix}/{key}", value))

        def keys(self) -> list[str]:
            return []

        def __bool__(self) -> bool:  # Keras tests ``if weights_store`` (H5IOStore asks its open file)
            return True

        def close(self) -> None:
            return None

    store = RecordingStore()
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    return store.records


def _ensure_built(model: Any, snapshot: Snapshot | None, notes: list[str]) -> None:
    if getattr(model, "built", False) and model.weights:
        return
    attempts: list[tuple[Any, str]] = []
    first = model.layers[0] if getattr(model, "layers", None) else None
    if first is not None and type(first).__name__ == "Embedding":
        attempts.append(((None, None), "a (batch, sequence) integer input, as its Embedding expects"))
    first_shape = _first_saved_shape(snapshot)
    if first_shape is not None and first is not None:
        name = type(first).__name__
        if name in ("LSTM", "GRU", "SimpleRNN", "Conv1D"):
            attempts.append(((None, None, first_shape[0]), f"the file's first kernel {first_shape}"))
        elif len(first_shape) >= 1:
            attempts.append(((None, first_shape[0]), f"the file's first kernel {first_shape}"))
    for shape, why in attempts:
        try:
            model.build(shape)
            if model.weights:
                notes.append(f"the model was not built; built it with input shape {shape} ({why})")
                return
        except Exception:  # try the next way of building it
            continue
    raise UsageError("the Keras model is not built (it has no weights yet) and could not be built from its "
                     "layers or the file; call model.build(input_shape) or call it on data in the factory")


def _first_saved_shape(snapshot: Snapshot | None) -> tuple[int, ...] | None:
    if snapshot is None:
        return None
    for t in snapshot.tensors:
        if not t.name.startswith("optimizer") and len(t.shape) >= 2:
            return tuple(t.shape)
    return None


def spec_from_keras(model: Any, snapshot: Snapshot | None = None) -> ModelSpec:
    import keras

    notes: list[str] = []
    _ensure_built(model, snapshot, notes)
    records = record_save_paths(model)
    owner_layer: dict[int, Any] = {}
    for layer in model.layers:
        for v in layer.weights:
            owner_layer.setdefault(id(v), layer)
    entries = []
    for path, v in records:
        layer = owner_layer.get(id(v))
        kind = "optimizer" if path.startswith("optimizer/") else "variable"
        entries.append(StateEntry(
            name=path, shape=_shape(v), dtype=_dtype(v), kind=kind,
            owner=path.rpartition("/vars/")[0],
            owner_class=type(layer).__name__ if layer is not None else "",
            trainable=bool(getattr(v, "trainable", True)),
        ))
    path_of = {id(v): p for p, v in records}
    layers = []
    for layer in model.layers:
        weights = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if not weights:
            continue
        params: dict[str, Any] = {}
        cfg = {}
        try:
            cfg = layer.get_config()
        except Exception:  # a custom layer whose get_config fails is reported by the C rules
            cfg = {}
        for k in HYPER:
            if k in cfg and isinstance(cfg[k], (int, float, str, bool, list, tuple)):
                params[k] = cfg[k]
        layers.append(LayerSpec(
            path=layer.name, class_name=type(layer).__name__, module=type(layer).__module__, params=params,
            weights=[path_of.get(id(w), "") for w in weights],
        ))
        layers[-1].params["_weight_paths"] = [w.path for w in weights]
        layers[-1].params["_weight_shapes"] = [list(_shape(w)) for w in weights]
    optimizer = getattr(model, "optimizer", None)
    spec = ModelSpec(framework="keras", class_name=type(model).__name__, module=type(model).__module__,
                     state=entries, layers=layers, notes=notes)
    spec.facts.update({
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "model_name": model.name,
        "optimizer": type(optimizer).__name__ if optimizer is not None else None,
        "optimizer_variables": len(optimizer.variables) if optimizer is not None else 0,
        "saveable_labels": _saveable_labels(model, records),
    })
    return spec


def _saveable_labels(model: Any, records: list[tuple[str, Any]]) -> dict[str, str]:
    """``layers/lstm/cell`` -> ``<LSTMCell name=lstm_cell, built=True>``, as Keras prints failed objects."""
    by_var: dict[int, Any] = {}

    def visit(obj: Any) -> None:
        for sub in getattr(obj, "_layers", []) or []:
            visit(sub)
        for v in getattr(obj, "_trainable_variables", []) + getattr(obj, "_non_trainable_variables", []):
            by_var.setdefault(id(v), obj)

    visit(model)
    for layer in model.layers:
        visit(layer)
        cell = getattr(layer, "cell", None)
        if cell is not None:
            visit(cell)
        for attr in ("forward_layer", "backward_layer"):
            sub = getattr(layer, attr, None)
            if sub is not None:
                visit(sub)
                if getattr(sub, "cell", None) is not None:
                    visit(sub.cell)
    out: dict[str, str] = {}
    for path, v in records:
        owner = by_var.get(id(v))
        group = path.rpartition("/vars/")[0]
        if owner is not None and group not in out:
            out[group] = f"<{type(owner).__name__} name={owner.name}, built={bool(owner.built)}>"
    return out
