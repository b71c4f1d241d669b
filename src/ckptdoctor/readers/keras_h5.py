"""HDF5 model files: which Keras layout, and its tensors, layers, config and versions (read with h5py).

Layouts:
* ``keras-weights``: Keras 3 ``.weights.h5`` (``layers/<key>/vars/<i>``, root ``vars``, ``optimizer/vars``).
  Variables are stored by position; their names come from the config when there is one (``.keras``)
  and otherwise from the layer key (``dense_1`` is a Dense: kernel, bias).
* ``keras-h5``: the legacy format of Keras 2.x, tf.keras and Keras 3 ``model.save("x.h5")``: root attrs
  ``keras_version``, ``backend``, ``model_config``, ``training_config``; group ``model_weights`` (or the
  root, for legacy ``save_weights``) with attr ``layer_names`` and per layer ``weight_names``.
  Tensors are named by their ``weight_names`` entry (``dense_1/kernel:0``, ``sequential/lstm/lstm_cell/
  kernel``), the names Keras prints in its load errors.
Anything else is F108 (valid HDF5, not a Keras file). Nothing is executed: configs are parsed as JSON.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from ckptdoctor.diagnostics import Severity
from ckptdoctor.dtypes import ITEMSIZE, from_numpy
from ckptdoctor.errors import InputError
from ckptdoctor.readers import keras_config as kc
from ckptdoctor.readers.hdf5_guard import rehearsed
from ckptdoctor.rules import file_format as F
from ckptdoctor.snapshot import Snapshot, TensorInfo, numel

Opener = Callable[[], contextlib.AbstractContextManager[Any]]  # -> an open h5py.File


@rehearsed()
def read(path: str, fmt: str = "hdf5") -> Snapshot:
    import h5py

    def opener() -> Any:
        return h5py.File(path, "r")

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(F.TRUNCATED_FILE.code, f"HDF5 signature found but the file cannot be opened ({exc})",
                         path, "the file is damaged or truncated: save or download it again") from None
    with f:
        try:
            layout = detect_layout(f)
            if layout == "keras-weights":
                snap = Snapshot(path=path, format="keras-weights", framework="keras")
                read_keras3_weights(f, None, opener, snap)
                return snap
            if layout in ("legacy-model", "legacy-weights"):
                return read_legacy(f, path, opener, layout)
            top = sorted(f.keys())[:6]
        except (KeyError, ValueError, TypeError, RuntimeError, OSError) as exc:  # h5py on damaged structures
            raise InputError(F.CORRUPT_HEADER.code, f"the Keras HDF5 layout is damaged ({exc})", path) from None
    raise InputError(F.HDF5_NOT_KERAS.code,
                     "valid HDF5, but not a Keras model or weights file (no model_weights/layer_names, no "
                     f"layers/.../vars; top-level entries: {top})", path,
                     "check that this is the model file you meant")


def detect_layout(f: Any) -> str | None:
    import h5py

    attrs = f.attrs
    if "model_config" in attrs or isinstance(f.get("model_weights"), h5py.Group):
        return "legacy-model"
    if "layer_names" in attrs or "layer_names0" in attrs:
        return "legacy-weights"
    if isinstance(f.get("vars"), h5py.Group) or isinstance(f.get("layers"), h5py.Group):
        return "keras-weights"
    return None


# ------------------------------------------------------------------ values, dtypes
def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return text(value.item())
    return str(value)


def load_attr_list(group: Any, name: str) -> list[str]:
    """An attr that holds a list of names, possibly split as name0, name1 ... (Keras does that when the
    list exceeds the 64 KB HDF5 attribute limit)."""
    import numpy as np

    def as_list(value: Any) -> list[str]:
        arr = np.asarray(value)
        if arr.ndim == 0:
            return [text(arr.item())] if arr.dtype.kind in "SUO" else []
        if arr.size == 0 or arr.dtype.kind not in "SUO":
            return []
        return [text(v) for v in arr.tolist()]

    if name in group.attrs:
        return as_list(group.attrs[name])
    out: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out.extend(as_list(group.attrs[f"{name}{i}"]))
        i += 1
    return out


def dataset_dtype(ds: Any) -> str:
    """Canonical dtype of a dataset. Keras writes bfloat16/float8 as opaque ``|V1``/``|V2`` and (in
    ``.weights.h5``) an attr ``dtype``; legacy ``.h5`` files have no attr, and a 2-byte opaque type there
    is bfloat16, the only one Keras writes."""
    attr = ds.attrs.get("dtype") if hasattr(ds, "attrs") else None
    if attr is not None:
        name = from_numpy(text(attr))
        if name in ITEMSIZE:
            return name
    if ds.dtype.kind == "V" and ds.dtype.names is None:
        return {2: "bfloat16", 1: "float8_e4m3fn"}.get(ds.dtype.itemsize, f"void{ds.dtype.itemsize * 8}")
    return from_numpy(ds.dtype)


def _tensor(name: str, ds: Any, h5path: str, opener: Opener, attrs: dict[str, Any]) -> TensorInfo:
    dtype = dataset_dtype(ds)
    shape = tuple(int(d) for d in ds.shape)
    nbytes = numel(shape) * ITEMSIZE.get(dtype, ds.dtype.itemsize)
    return TensorInfo(name=name, shape=shape, dtype=dtype, nbytes=nbytes, attrs=attrs,
                      loader=_Loader(opener, h5path, dtype))


class _Loader:
    """Reads one dataset's values on request (the TensorInfo loader of every HDF5 tensor)."""

    def __init__(self, opener: Opener, h5path: str, dtype: str) -> None:
        self.opener = opener
        self.h5path = h5path
        self.dtype = dtype

    def __call__(self) -> Any:
        with self._dataset_errors(), self.opener() as f:
            arr = f[self.h5path][()]
        return self._typed(arr)

    def chunks(self, max_elements: int) -> Iterator[Any]:
        """The dataset's values in slabs of whole rows of at most ``max_elements`` (one row when a row is
        larger): h5py reads only each slab, so memory stays bounded for any dataset size."""
        with self._dataset_errors(), self.opener() as f:
            ds = f[self.h5path]
            if ds.ndim == 0 or ds.size <= max_elements:
                yield self._typed(ds[()])
                return
            rows = max(1, max_elements // max(1, ds.size // ds.shape[0]))
            for start in range(0, ds.shape[0], rows):
                yield self._typed(ds[start:start + rows])

    def _typed(self, arr: Any) -> Any:
        if arr.dtype.kind == "V" and self.dtype in ITEMSIZE:
            from ckptdoctor.dtypes import to_numpy

            arr = arr.view(to_numpy(self.dtype))
        return arr

    def touch(self, f: Any) -> None:
        """Reach the dataset's storage in the open file ``f`` (from ``opener``) without reading it all:
        its first element, and every entry of a chunk index (what a damaged file can crash on)."""
        with self._dataset_errors():
            ds = f[self.h5path]
            if ds.size:
                ds[(0,) * ds.ndim]
            if ds.chunks is not None:
                for i in range(ds.id.get_num_chunks()):
                    ds.id.get_chunk_info(i)

    @contextlib.contextmanager
    def _dataset_errors(self) -> Iterator[None]:
        try:
            yield
        except (KeyError, RuntimeError, OSError) as exc:  # h5py on a damaged dataset or group
            raise InputError(F.CORRUPT_HEADER.code, f"cannot read dataset {self.h5path!r}: {exc}") from None


def _natural(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.isdigit() else (1, key)


# ------------------------------------------------------------------ Keras 3 .weights.h5
def read_keras3_weights(f: Any, config: dict[str, Any] | None, opener: Opener, snap: Snapshot) -> None:
    """Fill ``snap.tensors`` (named by h5 path) and each layer's ``weights`` from a Keras 3 weights tree."""
    import h5py

    root_vars = f.get("vars")
    root_name = text(root_vars.attrs.get("name", "")) if isinstance(root_vars, h5py.Group) else ""
    root_name = root_name or (kc.layer_name(config) if config else "") or ""
    walker = _Keras3Walker(opener, snap)
    walker.visit(f, "", config, [root_name] if root_name else [], top=None, role="model")
    walker.report_extra_links()
    if not snap.layers and config is None:
        snap.layers = walker.layers_seen


class _Keras3Walker:
    def __init__(self, opener: Opener, snap: Snapshot) -> None:
        self.opener = opener
        self.snap = snap
        self.by_layer = {entry["name"]: entry for entry in snap.layers}
        self.layers_seen: list[dict[str, Any]] = []
        # group id (file + object number) -> its first path: a hard link back up the tree or a group linked
        # under many names is read once (Keras itself only opens the paths it expects)
        self.groups: dict[Any, str] = {}
        self.extra_links: list[tuple[str, str]] = []

    def report_extra_links(self) -> None:
        if not self.extra_links:
            return
        shown = ", ".join(f"{link or '/'!r} -> {first or '/'!r}" for link, first in self.extra_links[:3])
        more = f" and {len(self.extra_links) - 3} more" if len(self.extra_links) > 3 else ""
        self.snap.diagnostics.append(F.CORRUPT_HEADER.diag(
            f"{len(self.extra_links)} HDF5 group link(s) point to a group already read ({shown}{more}): hard "
            "links Keras never writes (the file was edited after saving); each group is read once",
            subject=self.extra_links[0][0], severity=Severity.WARNING, found=len(self.extra_links),
            framework_behavior="Keras opens only the paths it expects and ignores the extra links",
            fix="nothing for loading; re-save the file to drop them"))

    def visit(self, group: Any, h5path: str, node: dict[str, Any] | None, human: list[str],
              top: str | None, role: str) -> None:
        import h5py

        first = self.groups.setdefault(group.id, h5path)
        if first != h5path:
            self.extra_links.append((h5path, first))
            return
        cls = node.get("class_name") if isinstance(node, dict) else None
        cfg = node.get("config") if isinstance(node, dict) and isinstance(node.get("config"), dict) else None
        vars_g = group.get("vars")
        if isinstance(vars_g, h5py.Group):
            self._variables(vars_g, _join(h5path, "vars"), cls, cfg, human, top, role)
        keys = [k for k in self._names(group, h5path) if k != "vars"]
        for key in sorted(keys, key=_natural):
            child = group.get(key)
            if not isinstance(child, h5py.Group):
                continue
            path = _join(h5path, key)
            if key == "layers":
                self._container(child, path, node, human, top, role)
            elif h5path == "" and key == "optimizer":
                self.visit(child, path, None, [_vars_name(child) or "optimizer"], top=None, role="optimizer")
            else:
                sub = kc.subobject_config(cls, node, key)
                if sub is None:  # no config: the object's name ("gru_cell") or key tells its class
                    guess = kc.class_from_key(_vars_name(child) or key) or kc.class_from_key(key)
                    sub = {"class_name": guess, "config": {}} if guess else None
                self.visit(child, path, sub, [*human, _vars_name(child) or key], top, role)

    def _names(self, group: Any, h5path: str) -> list[str]:
        """The group's entry names. h5py returns a name that is not UTF-8 as bytes: no Keras version
        writes or looks one up, so it is a damaged entry, reported and skipped."""
        names = []
        for key in group:
            if isinstance(key, str):
                names.append(key)
                continue
            import h5py

            shown = _join(h5path, key.decode("utf-8", "replace"))
            entry = group.get(key)
            empty = isinstance(entry, h5py.Group) and len(entry) == 0
            self.snap.diagnostics.append(F.CORRUPT_HEADER.diag(
                f"HDF5 entry {shown!r} has a damaged name (not UTF-8)"
                + (": an empty group, nothing lost" if empty else ": skipped, with everything under it"),
                subject=shown, severity=Severity.WARNING if empty else None,
                framework_behavior="Keras looks entries up by their UTF-8 names and never finds this one"
                + ("" if empty else ": the variables under it are missing when loading"),
                fix="save or download the file again"))
        return names

    def _container(self, group: Any, h5path: str, node: dict[str, Any] | None, human: list[str],
                   top: str | None, role: str) -> None:
        configs = (kc.model_layers(node) if isinstance(node, dict) else None) or []
        by_name = {kc.layer_name(c): c for c in configs}
        by_key = _keys_by_position(node, configs)
        order = {kc.layer_name(c): i for i, c in enumerate(configs)}
        items = []
        for key in self._names(group, h5path):
            child = group.get(key)
            name = _vars_name(child) or key
            child_node = by_name.get(name) or by_key.get(key)
            if child_node is not None:
                name = kc.layer_name(child_node) or name
            items.append((order.get(name, len(order)), _natural(key), key, name, child_node))
        for _, _, key, name, child_node in sorted(items, key=lambda x: (x[0], x[1])):
            if child_node is None:
                guessed = kc.class_from_key(key)
                child_node = {"class_name": guessed, "config": {}} if guessed else None
                entry: dict[str, Any] = {"name": name, "class_name": guessed, "weights": []}
                if top is not None:
                    entry["parent"] = top
                self.layers_seen.append(entry)
            self.visit(group[key], _join(h5path, key), child_node, [*human, name],
                       top=top or name, role=role)

    def _variables(self, vars_g: Any, h5path: str, cls: str | None, cfg: dict[str, Any] | None,
                   human: list[str], top: str | None, role: str) -> None:
        import h5py

        keys = sorted((k for k in self._names(vars_g, h5path) if isinstance(vars_g.get(k), h5py.Dataset)),
                      key=_natural)
        names = kc.variable_names(cls, cfg, len(keys)) if role != "optimizer" else None
        for i, key in enumerate(keys):
            ds = vars_g[key]
            explicit = ds.attrs.get("keras_path") or ds.attrs.get("variable")
            var = text(explicit).rsplit("/", 1)[-1] if explicit is not None else (names[i] if names else key)
            keras_path = text(explicit) if ds.attrs.get("keras_path") is not None else "/".join([*human, var])
            attrs: dict[str, Any] = {"keras_path": keras_path, "variable": var}
            if top is not None:
                attrs["layer"] = top
            if role == "optimizer":
                attrs["role"] = "optimizer"
            t = _tensor(_join(h5path, key), ds, _join(h5path, key), self.opener, attrs)
            self.snap.tensors.append(t)
            owner = self.by_layer.get(top or "") or next(
                (x for x in self.layers_seen if x["name"] == top), None)
            if owner is not None and role != "optimizer":
                owner["weights"].append({"name": keras_path, "tensor": t.name, "shape": list(t.shape),
                                         "dtype": t.dtype})


def _keys_by_position(node: dict[str, Any] | None, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Keras 3 keys container children by class: ``dense``, ``dense_1`` ... in list order (Sequential
    leaves out its InputLayer)."""
    skip_input = isinstance(node, dict) and node.get("class_name") == "Sequential"
    used: dict[str, int] = {}
    out: dict[str, Any] = {}
    for c in configs:
        cls = c.get("class_name")
        if not isinstance(cls, str) or (skip_input and cls == "InputLayer"):
            continue
        key = kc.to_snake_case(cls)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        out[key] = c
    return out


def _vars_name(group: Any) -> str | None:
    import h5py

    v = group.get("vars") if isinstance(group, h5py.Group) else None
    if isinstance(v, h5py.Group) and "name" in v.attrs:
        return text(v.attrs["name"]) or None
    return None


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


# ------------------------------------------------------------------ legacy HDF5 (Keras 2.x, tf.keras, Keras 3 .h5)
def read_legacy(f: Any, path: str, opener: Opener, layout: str) -> Snapshot:
    import h5py

    snap = Snapshot(path=path, format="keras-h5", framework="keras")
    attrs = f.attrs
    model_config = _json_attr(attrs, "model_config", path)
    training_config = _json_attr(attrs, "training_config", path)
    weights = f["model_weights"] if layout == "legacy-model" and isinstance(f.get("model_weights"), h5py.Group) else f
    version = attrs.get("keras_version", weights.attrs.get("keras_version"))
    backend = attrs.get("backend", weights.attrs.get("backend"))
    snap.framework_version = text(version) if version is not None else None
    snap.metadata["layout"] = "legacy full model" if model_config is not None else "legacy weights only"
    if version is not None:
        snap.metadata["keras_version"] = text(version)
    if backend is not None:
        snap.metadata["backend"] = text(backend)
    snap.config = model_config
    snap.training_config = training_config
    if isinstance(model_config, dict):
        snap.classes.extend(kc.class_refs(model_config, "model_config"))
    if isinstance(training_config, dict):
        snap.classes.extend(kc.class_refs(training_config, "training_config"))
        for c in snap.classes:
            if c.path.startswith("training_config"):
                c.role = "keras-object"

    configs = _layer_configs(model_config)
    seen: set[str] = set()
    for index, lname in enumerate(load_attr_list(weights, "layer_names")):
        node = configs.get(lname)
        entry: dict[str, Any] = {"name": lname, "index": index,
                                 "class_name": node.get("class_name") if node else None}
        if node is not None:
            entry["module"] = node.get("module")
            entry["registered_name"] = node.get("registered_name")
            entry["hyperparameters"] = kc.layer_hyperparameters(node)
        entry["weights"] = []
        g = weights.get(lname)
        if isinstance(g, h5py.Group):
            for wname in load_attr_list(g, "weight_names"):
                ds = g.get(wname)
                if not isinstance(ds, h5py.Dataset):
                    entry.setdefault("missing_weights", []).append(wname)
                    continue
                name = wname if wname not in seen else f"{lname}/{wname}"
                seen.add(name)
                h5path = ds.name.lstrip("/")
                var = re.sub(r":\d+$", "", wname.rsplit("/", 1)[-1])
                t = _tensor(name, ds, h5path, opener, {"layer": lname, "variable": var, "h5_path": h5path})
                snap.tensors.append(t)
                entry["weights"].append({"name": name, "shape": list(t.shape), "dtype": t.dtype})
        else:
            entry["missing_group"] = True
        snap.layers.append(entry)

    opt = f.get("optimizer_weights")
    if isinstance(opt, h5py.Group):
        names = load_attr_list(opt, "weight_names")
        for wname in names:
            ds = opt.get(wname)
            if isinstance(ds, h5py.Dataset):
                h5path = ds.name.lstrip("/")
                snap.tensors.append(_tensor(f"optimizer_weights/{wname}", ds, h5path, opener,
                                            {"role": "optimizer", "h5_path": h5path}))
        snap.metadata["optimizer_weights"] = len(names)
    return snap


def _json_attr(attrs: Any, key: str, path: str) -> Any:
    if key not in attrs:
        return None
    raw = text(attrs[key])
    try:
        return json.loads(raw)
    except ValueError:
        raise InputError(F.CORRUPT_HEADER.code, f"the `{key}` attribute is not valid JSON", path) from None


def _layer_configs(model_config: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        for c in kc.model_layers(node) or []:
            name = kc.layer_name(c)
            if name is not None:
                out.setdefault(name, c)
            if kc.model_layers(c) is not None:
                walk(c)

    if isinstance(model_config, dict):
        walk(model_config)
    return out

