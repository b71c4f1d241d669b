"""A live Keras 3 model -> ModelSpec.

The state is listed exactly as Keras saves it: the ``.weights.h5`` path every variable will have
(``layers/lstm/cell/vars/0``), found by running Keras' own saving walk against a store that records
instead of writing. Loading walks the same object graph differently: an object is tried at EVERY path it
is reachable by until one load succeeds (an attribute ``self.emb`` and ``layers/embedding``), so the
graph itself is recorded too (``facts["keras_load_walk"]``, see ``record_load_walk``) and
``checking.behavior.keras_load_walk`` replays Keras' load over it. ``layers`` is the legacy-HDF5 topological order (``model.layers`` that own
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


def record_load_walk(model: Any, records: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object graph ``saving_lib._load_state`` walks, as plain data.

    Each KerasSaveable becomes one node (its own variables with their save paths and shapes, how it
    loads them) with its children in the order Keras' own ``_walk_saveable`` yields them; a list, dict
    or tuple child becomes the item list ``_load_container_state`` walks, with the snake_case names
    Keras gives the items. Which paths are actually tried depends on what loads, so that is left to
    the replay. A container already entered in the same chain is ``None``, as Keras skips it.
    """
    from keras.src.layers.layer import Layer
    from keras.src.optimizers.base_optimizer import BaseOptimizer
    from keras.src.saving import saving_lib
    from keras.src.saving.keras_saveable import KerasSaveable
    from keras.src.utils import naming

    save_path = {id(v): p for p, v in records}
    nodes: list[dict[str, Any]] = []
    index: dict[int, int] = {}
    keep: list[Any] = []  # holds every object seen so no id is reused while recording

    def node(obj: Any) -> int:
        if id(obj) in index:
            return index[id(obj)]
        keep.append(obj)
        index[id(obj)] = len(nodes)
        rec: dict[str, Any] = {"cls": type(obj).__name__, "label": type(obj).__name__, "load": "none",
                               "shapes": [], "vars": [], "var_names": [], "built": True, "name": ""}
        nodes.append(rec)
        if isinstance(obj, Layer):
            own = list(obj._trainable_variables) + list(obj._non_trainable_variables)
            rec.update(label=f"<{type(obj).__name__} name={obj.name}, built={bool(obj.built)}>", load="layer",
                       name=obj.name, built=bool(obj.built))
        elif isinstance(obj, BaseOptimizer):
            own = list(obj.variables)
            rec.update(load="optimizer", name=str(obj.name))
        else:  # a Metric, a Loss: no load_own_variables in Keras 3.15, or one we do not model
            own = []
            rec["load"] = "other" if hasattr(obj, "load_own_variables") else "none"
        rec["shapes"] = [list(_shape(v)) for v in own]
        rec["vars"] = [save_path.get(id(v), "") for v in own]
        rec["var_names"] = [str(getattr(v, "name", "")) for v in own]
        rec["var_paths"] = [str(getattr(v, "path", "")) for v in own]
        rec["var_dtypes"] = [_dtype(v) for v in own]
        children: list[dict[str, Any]] = []
        for attr, child in saving_lib._walk_saveable(obj):
            if isinstance(child, KerasSaveable):
                children.append({"name": attr, "node": node(child)})
            elif isinstance(child, (list, dict, tuple)):
                children.append({"name": attr, "items": container(child, set())})
        rec["children"] = children
        return index[id(obj)]

    def container(items: Any, seen: set[int]) -> list[dict[str, Any]] | None:
        if id(items) in seen:  # _load_container_state's visited_containers
            return None
        seen.add(id(items))
        keep.append(items)
        if isinstance(items, dict):
            items = list(items.values())
        used: dict[str, int] = {}
        out: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, KerasSaveable):
                name = saving_lib._get_unique_name(naming.to_snake_case(item.__class__.__name__), used)
                out.append({"name": name, "node": node(item)})
            elif isinstance(item, (list, dict, tuple)):
                name = saving_lib._get_unique_name("container", used)
                out.append({"name": name, "items": container(item, seen)})
        return out

    node(model)
    return {"nodes": nodes}


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
        "keras_load_walk": record_load_walk(model, records),
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
