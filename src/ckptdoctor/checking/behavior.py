"""What the framework itself will do with this file and this model, in the installed version:
error, warning, silent partial load, or a clean load. Reproduces the decision logic (and the message
texts) of torch 2.x ``load_state_dict`` and Keras 3 ``load_weights`` / ``load_model``, as measured in
``reference/measured-behaviour.md``. Pure Python: names and shapes in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]

OK = "ok"  # loads everything, no message
SILENT = "silent"  # loads, no message, but something was not loaded or not used
WARNING = "warning"
ERROR = "error"


@dataclass
class Prediction:
    call: str  # "model.load_state_dict(sd, strict=True)"
    outcome: str  # ok | silent | warning | error
    exception: str | None = None  # "RuntimeError"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if self.outcome == ERROR:
            first = self.message.splitlines()[0] if self.message else ""
            return f"{self.call} raises {self.exception}: {first}".rstrip(": ")
        if self.outcome == WARNING:
            first = self.message.splitlines()[0] if self.message else ""
            return f"{self.call} warns: {first}"
        if self.outcome == SILENT:
            return f"{self.call} succeeds with no message, but {self.message}"
        if self.message:
            return f"{self.call} succeeds silently and {self.message}"
        return f"{self.call} loads everything, no message"

    def to_json(self) -> dict[str, Any]:
        return {"call": self.call, "outcome": self.outcome, "exception": self.exception, "message": self.message,
                **self.details}


def _tshape(shape: Shape) -> str:
    return f"torch.Size([{', '.join(str(d) for d in shape)}])"


# ---- torch -------------------------------------------------------------------------------------------
def torch_size_mismatches(file_shapes: dict[str, Shape], model_shapes: dict[str, Shape]) -> list[str]:
    out = []
    for k, ms in model_shapes.items():
        fs = file_shapes.get(k)
        if fs is None or fs == ms:
            continue
        if ms == () and fs == (1,):  # 0.3-era special case: a 1-dim tensor loads into a 0-dim param
            continue
        out.append(k)
    return out


def torch_load_state_dict(file_shapes: dict[str, Shape], model_shapes: dict[str, Shape], class_name: str,
                          *, strict: bool) -> Prediction:
    """``load_state_dict`` decision: missing/unexpected only matter with strict; size mismatches always raise."""
    missing = [k for k in model_shapes if k not in file_shapes]
    unexpected = [k for k in file_shapes if k not in model_shapes]
    mismatched = torch_size_mismatches(file_shapes, model_shapes)
    msgs: list[str] = []
    if strict and missing:
        msgs.append("Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
    if strict and unexpected:
        msgs.append("Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
    for k in mismatched:
        msgs.append(f"size mismatch for {k}: copying a param with shape {_tshape(file_shapes[k])} from checkpoint, "
                    f"the shape in current model is {_tshape(model_shapes[k])}.")
    call = f"model.load_state_dict(sd, strict={strict})"
    details = {"missing_keys": missing, "unexpected_keys": unexpected, "size_mismatch": mismatched}
    if msgs:
        text = "Error(s) in loading state_dict for {}:\n\t{}".format(class_name, "\n\t".join(msgs))
        return Prediction(call, ERROR, "RuntimeError", text, details)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} model tensor(s) keep their initial values")
        if unexpected:
            parts.append(f"{len(unexpected)} saved tensor(s) are dropped")
        return Prediction(call, SILENT, None, " and ".join(parts) +
                          " (listed only in the returned _IncompatibleKeys)", details)
    return Prediction(call, OK, None, "", details)


def safetensors_load_model(file_shapes: dict[str, Shape], model_shapes: dict[str, Shape],
                           tie_groups: list[list[str]], class_name: str, *, source: str,
                           strict: bool = True) -> Prediction:
    """``safetensors.torch.load_model(model, path, strict)``: ``load_state_dict(strict=False)``, then the
    names the LIVE model shares are forgiven when missing, and counted as unexpected when the file has
    them but another name of the group was kept (safetensors 0.4-0.8 ``_remove_duplicate_names`` with
    the file's names preferred; the kept name is the first in sorted order)."""
    call = f"safetensors.torch.load_model(model, '{source}'{'' if strict else ', strict=False'})"
    if torch_size_mismatches(file_shapes, model_shapes):  # raised by the inner load_state_dict itself
        inner = torch_load_state_dict(file_shapes, model_shapes, class_name, strict=False)
        return Prediction(call, ERROR, "RuntimeError", inner.message, inner.details)
    missing = {k for k in model_shapes if k not in file_shapes}
    unexpected = [k for k in file_shapes if k not in model_shapes]
    for group in tie_groups:
        names = set(group)
        preferred = names & set(file_shapes)
        keep = sorted(preferred or names)[0]
        for name in sorted(names - {keep}):
            if name in missing:
                missing.discard(name)
            else:
                unexpected.append(name)
    details = {"missing_keys": sorted(missing), "unexpected_keys": sorted(unexpected), "size_mismatch": []}
    if strict and (missing or unexpected):
        text = f"Error(s) in loading state_dict for {class_name}:"
        if missing:
            text += "\n    Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in sorted(missing))
        if unexpected:
            text += "\n    Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in sorted(unexpected))
        return Prediction(call, ERROR, "RuntimeError", text, details)
    if missing or unexpected:
        return Prediction(call, SILENT, None, f"returns {len(missing)} missing and {len(unexpected)} unexpected "
                                              "name(s); nothing is raised", details)
    return Prediction(call, OK, None, "", details)


# ---- Keras 3 .keras / .weights.h5 ---------------------------------------------------------------------
@dataclass
class KerasGroup:
    """One saveable's variables in a ``.weights.h5`` (``layers/lstm/cell``): shapes in index order."""

    path: str
    shapes: list[Shape]
    label: str = ""  # "<LSTMCell name=lstm_cell, built=True>"


@dataclass
class KerasAttempt:
    """One ``load_own_variables`` call of the load walk: an object tried at one path."""

    path: str
    ok: bool
    saved: list[Shape]  # the file's variables at that path ([] when the group is absent or empty)
    message: str = ""  # the exception text Keras records when it fails
    assigned: int = 0  # variables assigned before it failed (Layer.load_own_variables assigns one by one)


@dataclass
class KerasWalk:
    """The replayed ``saving_lib._load_state``: what every object did, and the file groups it read."""

    nodes: list[dict[str, Any]]
    attempts: dict[int, list[KerasAttempt]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # error_msgs, in Keras' own order
    var_source: dict[str, str] = field(default_factory=dict)  # variable save path -> the file dataset it got
    used_groups: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def label(self, n: int) -> str:
        return str(self.nodes[n].get("label") or self.nodes[n].get("cls") or n)

    def loaded_at(self, n: int) -> str | None:
        """The path the object finally loaded from, None when it never loaded."""
        ok = [a.path for a in self.attempts.get(n, []) if a.ok]
        return ok[-1] if ok else None


def flat_keras_walk(groups: list[KerasGroup]) -> dict[str, Any]:
    """A load-walk graph with one path per group (for a spec recorded without the real graph)."""
    nodes: list[dict[str, Any]] = [{"cls": "Model", "label": "model", "load": "none", "shapes": [], "vars": [],
                                    "var_names": [], "built": True, "children": []}]
    for g in groups:
        nodes[0]["children"].append({"name": g.path, "node": len(nodes)})
        nodes.append({"cls": "", "label": g.label or g.path, "load": "layer", "shapes": [list(s) for s in g.shapes],
                      "vars": [f"{g.path}/vars/{i}" for i in range(len(g.shapes))],
                      "var_names": [str(i) for i in range(len(g.shapes))], "built": True,
                      "name": _short_name(g.label or g.path), "children": []})
    return {"nodes": nodes}


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def keras_load_walk(file_groups: dict[str, list[Shape]], graph: dict[str, Any]) -> KerasWalk:
    """Replay Keras 3.15 ``saving_lib._load_state`` / ``_load_container_state`` over the recorded graph.

    Mirrored exactly: every object is tried at each path it is reachable by, in ``_walk_saveable``
    order; it is marked visited only when its own load and its children's loads all succeeded, so an
    object that failed at one path is tried again at the next one and a later success clears its
    failure; a nested container whose group is absent is tried on the side and only warns. Both
    ``skip_mismatch`` values walk the same way (the exceptions are caught either way); only the final
    raise-or-warn differs (``keras_walk_prediction``).
    """
    nodes = graph["nodes"]
    walk = KerasWalk(nodes=nodes)
    visited: set[int] = set()
    on_stack: set[int] = set()  # Keras would recurse forever on a cycle of failing objects; we stop
    legacy = any(g.split("/", 1)[0] == "_layer_checkpoint_dependencies" for g in file_groups)

    def get(path: str) -> list[Shape]:  # H5IOStore.get: the group's vars, {} when absent
        if path in file_groups:
            return file_groups[path]
        if legacy and path:
            return file_groups.get(path.replace("layers", "_layer_checkpoint_dependencies"), [])
        return []

    def has_path(path: str) -> bool:
        return any(g == path or g.startswith(path + "/") for g in file_groups)

    def load_own(n: int, path: str) -> str | None:
        node = nodes[n]
        kind = node.get("load")
        shapes = [tuple(s) for s in node.get("shapes", [])]
        saved = get(path)
        if kind == "optimizer":
            if len(saved) != len(shapes):
                text = (f"Skipping variable loading for optimizer '{node.get('name', '')}', because it has "
                        f"{len(shapes)} variables whereas the saved optimizer has {len(saved)} variables. ")
                if not shapes:
                    text += "This is likely because the optimizer has not been called/built yet."
                walk.warnings.append(text)
                return None
            _assign(walk, node, path, len(shapes))
            walk.used_groups.add(path)
            return None
        if kind != "layer":
            return None
        attempt = KerasAttempt(path=path, ok=False, saved=list(saved))
        walk.attempts.setdefault(n, []).append(attempt)
        if len(saved) != len(shapes):
            if not shapes and not node.get("built", True):
                attempt.message = (f"Layer '{node.get('name', '')}' was never built and thus it doesn't have any "
                                   f"variables. However the weights file lists {len(saved)} variables for this layer.")
            else:
                attempt.message = (f"Layer '{node.get('name', '')}' expected {len(shapes)} variables, but received "
                                   f"{len(saved)} variables during loading. Expected: {node.get('var_names', [])!r}")
            return attempt.message
        for i, (ms, fs) in enumerate(zip(shapes, saved, strict=True)):
            if ms != fs:
                attempt.assigned = i
                _assign(walk, node, path, i)
                attempt.message = ("The shape of the target variable and the shape of the target value in "
                                   f"`variable.assign(value)` must match. variable.shape={_py(ms)}, "
                                   f"Received: value.shape={_tshape(fs)}.")
                var_paths, dtypes = node.get("var_paths") or [], node.get("var_dtypes") or []
                if i < len(var_paths) and i < len(dtypes):  # Keras prints the variable, its values too
                    attempt.message += (f" Target variable: <Variable path={var_paths[i]}, shape={_py(ms)}, "
                                        f"dtype={dtypes[i]}, value=...>")
                return attempt.message
        attempt.ok, attempt.assigned = True, len(shapes)
        _assign(walk, node, path, len(shapes))
        if shapes:
            walk.used_groups.add(path)
        return None

    def load_state(n: int, path: str, failed: set[int], errors: dict[int, str]) -> None:
        if n in visited or n in on_stack:
            return
        on_stack.add(n)
        error = load_own(n, path)
        if error is not None:
            failed.add(n)
            errors[n] = error
        before = len(failed)
        for child in nodes[n].get("children", []):
            child_path = _join(path, child["name"])
            if "node" in child:
                load_state(child["node"], child_path, failed, errors)
            else:
                load_container(child["items"], child_path, failed, errors)
        newly_failed = len(failed) - before
        if error is None:
            if newly_failed <= 0:
                visited.add(n)
            if n in failed:
                failed.remove(n)
                errors.pop(n)
        on_stack.discard(n)

    def load_container(items: list[dict[str, Any]] | None, path: str, failed: set[int],
                       errors: dict[int, str]) -> None:
        if items is None:  # already entered in this chain
            return
        for item in items:
            item_path = _join(path, item["name"])
            if "node" in item:
                load_state(item["node"], item_path, failed, errors)
            elif not has_path(item_path):
                side_failed: set[int] = set()
                load_container(item["items"], item_path, side_failed, {})
                if side_failed:
                    walk.warnings.append(
                        f"Skipping nested container at '{item_path}': no matching group found in the saved file. "
                        "This usually means the file was saved with a Keras version that did not serialize "
                        "sublayers nested inside containers. Affected layers will retain their "
                        "freshly-initialized weights.")
            else:
                load_container(item["items"], item_path, failed, errors)

    load_state(0, "", set(), walk.errors)
    return walk


def _assign(walk: KerasWalk, node: dict[str, Any], path: str, count: int) -> None:
    for i, var in enumerate(node.get("vars", [])[:count]):
        if var:
            walk.var_source[var] = f"{path}/vars/{i}" if path else f"vars/{i}"


def keras_walk_prediction(walk: KerasWalk, file_groups: dict[str, list[Shape]], *, skip_mismatch: bool = False,
                          source: str = ".weights.h5") -> Prediction:
    """What ``model.load_weights(file[, skip_mismatch=True])`` reports after the replayed walk
    (``saving_lib._raise_loading_failure``). Saved groups nothing loaded from are never looked at
    again: Keras says nothing about them (optimizer state is reported on its own)."""
    failed = list(walk.errors)
    # a group a failing object tried is reported with that failure; one tried by an object that then loaded
    # from another path is as unused as any other
    tried = {a.path for n in walk.errors for a in walk.attempts.get(n, []) if a.saved}
    ignored = [p for p, s in file_groups.items() if s and p not in walk.used_groups and p not in tried
               and p.split("/", 1)[0] not in ("optimizer", "optimizer_weights")]
    call = f"model.load_weights('{source}'{', skip_mismatch=True' if skip_mismatch else ''})"
    details: dict[str, Any] = {"failed_objects": [walk.label(n) for n in failed], "ignored_groups": ignored,
                               "loaded_from": {walk.label(n): walk.loaded_at(n) for n in walk.attempts
                                               if walk.nodes[n].get("shapes") and walk.loaded_at(n) is not None}}
    if failed:
        first = failed[0]
        text = (f"A total of {len(failed)} objects could not be loaded. Example error message for object "
                f"{walk.label(first)}:\n\n{walk.errors[first]}\n\nList of objects that could not be loaded:\n"
                f"[{', '.join(walk.label(n) for n in failed)}]")
        if skip_mismatch:
            return Prediction(call, WARNING, "UserWarning", "\n".join([*walk.warnings, text]), details)
        return Prediction(call, ERROR, "ValueError", text, details)
    if walk.warnings:
        details["warnings"] = list(walk.warnings)
        return Prediction(call, WARNING, "UserWarning", "\n".join(walk.warnings), details)
    if ignored:
        return Prediction(call, SILENT, None, f"the saved groups {', '.join(ignored)} are ignored", details)
    return Prediction(call, OK, None, "", details)


def keras_load_weights(file_groups: dict[str, list[Shape]], model_groups: list[KerasGroup], *,
                       skip_mismatch: bool = False, source: str = ".weights.h5") -> Prediction:
    """Keras 3 ``load_weights`` for a model known only by one path per group (no recorded graph)."""
    walk = keras_load_walk(file_groups, flat_keras_walk(model_groups))
    return keras_walk_prediction(walk, file_groups, skip_mismatch=skip_mismatch, source=source)


def _short_name(label: str) -> str:
    # "<LSTMCell name=lstm_cell, built=True>" -> "lstm_cell"
    if "name=" in label:
        return label.split("name=", 1)[1].split(",", 1)[0]
    return label.rsplit("/", 1)[-1]


def _py(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---- Keras 3 legacy .h5 (topological) -------------------------------------------------------------------
@dataclass
class H5Layer:
    name: str
    shapes: list[Shape]
    weight_names: list[str] = field(default_factory=list)
    class_name: str = ""


def keras_h5_load_weights(file_layers: list[H5Layer], model_layers: list[H5Layer], *,
                          skip_mismatch: bool = False, source: str = ".h5") -> Prediction:
    """``legacy_h5_format.load_weights_from_hdf5_group``: layers with weights are paired by position."""
    file_layers = [f for f in file_layers if f.shapes]
    model_layers = [m for m in model_layers if m.shapes]
    call = f"model.load_weights('{source}'{', skip_mismatch=True' if skip_mismatch else ''})"
    details: dict[str, Any] = {"model_layers": len(model_layers), "saved_layers": len(file_layers)}
    if len(file_layers) != len(model_layers):
        return Prediction(call, ERROR, "ValueError",
                          "Layer count mismatch when loading weights from file. Model expected "
                          f"{len(model_layers)} layers, found {len(file_layers)} saved layers.", details)
    warnings: list[str] = []
    for k, (m, f) in enumerate(zip(model_layers, file_layers, strict=True)):
        if len(m.shapes) != len(f.shapes):
            if skip_mismatch:
                warnings.append(f"Skipping loading of weights for layer #{k} (named {m.name}) due to mismatch in "
                                f"number of weights. Layer expects {len(m.shapes)} weight(s). Received "
                                f"{len(f.shapes)} saved weight(s)")
                continue
            return Prediction(call, ERROR, "ValueError",
                              f"Weight count mismatch for layer #{k} (named {m.name} in the current model, {f.name} "
                              f"in the save file). Layer expects {len(m.shapes)} weight(s). Received "
                              f"{len(f.shapes)} saved weight(s)", details)
        for i, (ms, fs) in enumerate(zip(m.shapes, f.shapes, strict=True)):
            if ms == fs:
                continue
            wname = m.weight_names[i] if i < len(m.weight_names) else str(i)
            if skip_mismatch:
                warnings.append(f"Skipping loading weights for layer #{k} (named {m.name})due to mismatch in shape "
                                f"for weight {wname}. Weight expects shape {_py(ms)}. Received saved weight with "
                                f"shape {_py(fs)}")
                continue
            return Prediction(call, ERROR, "ValueError",
                              f"Shape mismatch in layer #{k} (named {m.name})for weight {wname}. Weight expects "
                              f"shape {_py(ms)}. Received saved weight with shape {_py(fs)}", details)
    if warnings:
        details["warnings"] = warnings
        return Prediction(call, WARNING, "UserWarning", "\n".join(warnings), details)
    return Prediction(call, OK, None, "", details)


def keras_load_model(source: str, saved_class: str | None) -> Prediction:
    """``keras.models.load_model(path)``: the architecture comes from the file; the user's code is unused."""
    what = f"the saved {saved_class}" if saved_class else "the saved model"
    return Prediction(f"keras.models.load_model('{source}')", OK, None,
                      f"returns {what}, rebuilt from the config stored in the file; your model code is not used",
                      {"uses_your_code": False})
