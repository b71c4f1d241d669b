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


def keras_load_weights(file_groups: dict[str, list[Shape]], model_groups: list[KerasGroup], *,
                       skip_mismatch: bool = False, source: str = ".weights.h5") -> Prediction:
    """Keras 3 ``saving_lib._load_state``: walk the model's saveables, each loads its group by path.
    A failing saveable is recorded and the walk continues; extra saved groups are never looked at."""
    failed: list[tuple[KerasGroup, str]] = []
    for g in model_groups:
        saved = file_groups.get(g.path, [])
        name = g.label or g.path
        if len(saved) != len(g.shapes):
            failed.append((g, f"Layer '{_short_name(name)}' expected {len(g.shapes)} variables, but received "
                              f"{len(saved)} variables during loading."))
            continue
        for ms, fs in zip(g.shapes, saved, strict=True):
            if ms != fs:
                failed.append((g, "The shape of the target variable and the shape of the target value in "
                                  f"`variable.assign(value)` must match. variable.shape={_py(ms)}, "
                                  f"Received: value.shape={_tshape(fs)}."))
                break
    model_paths = {g.path for g in model_groups}
    ignored = [p for p in file_groups if p not in model_paths]
    call = f"model.load_weights('{source}'{', skip_mismatch=True' if skip_mismatch else ''})"
    details = {"failed_objects": [g.label or g.path for g, _ in failed], "ignored_groups": ignored}
    if failed:
        first_g, first_msg = failed[0]
        text = (f"A total of {len(failed)} objects could not be loaded. Example error message for object "
                f"{first_g.label or first_g.path}:\n\n{first_msg}\n\nList of objects that could not be loaded:\n"
                f"[{', '.join(g.label or g.path for g, _ in failed)}]")
        if skip_mismatch:
            return Prediction(call, WARNING, "UserWarning", text, details)
        return Prediction(call, ERROR, "ValueError", text, details)
    if ignored:
        return Prediction(call, SILENT, None, f"the saved groups {', '.join(ignored)} are ignored", details)
    return Prediction(call, OK, None, "", details)


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
