"""Compare a Keras file with a live Keras model.

Keras 3 loads ``.keras`` and ``.weights.h5`` by *path* (``layers/lstm/cell/vars/0``), walking the model's
object graph: an object is tried at every path it is reachable by (``emb`` and ``layers/embedding``)
until one fits, so it fails only when no such path fits; extra saved groups are ignored silently. A legacy ``.h5`` is loaded
*topologically*: the i-th model layer with weights gets the i-th saved one. ``load_model`` ignores the
code altogether. Every finding says which of these applies.
"""

from __future__ import annotations

import difflib
from typing import Any

from ckptdoctor.checking import behavior as B
from ckptdoctor.checking.compare import Comparison
from ckptdoctor.checking.explain_shapes import changed_values, describe_change, infer_keras, knock_on
from ckptdoctor.diagnostics import Fix
from ckptdoctor.rules import architecture as A
from ckptdoctor.snapshot import Snapshot, TensorInfo
from ckptdoctor.spec import ModelSpec

Shape = tuple[int, ...]
PATH_FORMATS = ("keras-v3", "keras-weights")


def _is_optimizer(t: TensorInfo) -> bool:
    return t.attrs.get("role") == "optimizer" or t.name.startswith(("optimizer/", "optimizer_weights/"))


def _source(snap: Snapshot) -> str:
    import os

    return os.path.basename(snap.path)


def compare_keras(snap: Snapshot, spec: ModelSpec) -> Comparison:
    if spec.framework != "keras":
        from ckptdoctor.checking.crossframework import compare_cross

        return compare_cross(snap, spec)
    if snap.format in PATH_FORMATS or any("/vars/" in t.name for t in snap.tensors):
        out = _compare_by_path(snap, spec)
    else:
        out = _compare_topological(snap, spec)
    _optimizer(snap, spec, out)
    if snap.config is not None and any(d.severity >= 2 for d in out.diagnostics):
        saved = _saved_model_class(snap)
        pred = B.keras_load_model(_source(snap), saved)
        out.predictions.append(pred)
        out.diagnostics.append(A.LOAD_MODEL.diag(
            "keras.models.load_model() on this file would not use your code: it rebuilds the saved "
            f"{saved or 'model'} from the file's config, so none of these mismatches would show, and you "
            "would get the old architecture",
            subject=_source(snap), expected="your model code", found="the architecture stored in the file",
            framework_behavior=pred.summary(),
            fix="to use your new code, build the model and call model.load_weights(path); to use the saved "
                "model as it was, use load_model and drop the new code", path=snap.path))
    return out


def _saved_model_class(snap: Snapshot) -> str | None:
    cfg = snap.config or {}
    return cfg.get("class_name") if isinstance(cfg, dict) else None


# ---- .keras / .weights.h5: by path ------------------------------------------------------------------
def _groups_from_tensors(tensors: list[TensorInfo]) -> dict[str, list[Shape]]:
    raw: dict[str, dict[int, Shape]] = {}
    for t in tensors:
        group, _, idx = ("", "", t.name[5:]) if t.name.startswith("vars/") else t.name.rpartition("/vars/")
        if not idx.isdigit():
            continue
        raw.setdefault(group, {})[int(idx)] = tuple(t.shape)
    return {g: [v[i] for i in sorted(v)] for g, v in raw.items()}


def _compare_by_path(snap: Snapshot, spec: ModelSpec) -> Comparison:
    out = Comparison()
    source = _source(snap)
    all_groups = _groups_from_tensors(snap.tensors)
    file_groups = _groups_from_tensors([t for t in snap.tensors if not _is_optimizer(t)])
    labels: dict[str, str] = spec.facts.get("saveable_labels", {})
    model_raw: dict[str, list[Shape]] = {}
    group_class: dict[str, str] = {}
    for e in spec.state:
        if e.kind == "optimizer":
            continue
        model_raw.setdefault(e.owner, []).append(tuple(e.shape))
        group_class.setdefault(e.owner, e.owner_class)
    model_groups = [B.KerasGroup(path=g, shapes=s, label=labels.get(g, "")) for g, s in model_raw.items()]
    graph = spec.facts.get("keras_load_walk") or B.flat_keras_walk(model_groups)
    walk = B.keras_load_walk(all_groups, graph)
    strict = B.keras_walk_prediction(walk, all_groups, source=source)
    loose = B.keras_walk_prediction(walk, all_groups, skip_mismatch=True, source=source)
    out.predictions = [strict, loose]
    failing = strict.details["failed_objects"]
    behaviour = strict.summary() if strict.outcome == B.ERROR else ""
    if failing:
        behaviour = (f"model.load_weights raises ValueError: A total of {len(failing)} objects could not be loaded "
                     f"({', '.join(failing)}); with skip_mismatch=True it only warns and those layers keep their "
                     "random initial values. Layers that load keep the loaded weights (no rollback).")
    changes: set[tuple[int, int]] = set()
    node_of_group = _nodes_by_save_group(graph)
    # every path a layer is tried at counts: a subclassed model's layers are also 'layers/<class>[_n]'
    alias_class = {a.path: group_class.get(g.path, "") for g in model_groups
                   for a in walk.attempts.get(node_of_group.get(g.path, -1), [])}
    shifted = _class_count_shift(list(file_groups), [g.path for g in model_groups] + list(alias_class),
                                 {**alias_class, **group_class})
    edges = _edge_groups(spec, model_groups)
    for n, g in _failed_in_save_order(walk, node_of_group, model_groups):
        cls = group_class.get(g.path, "") or str(walk.nodes[n].get("cls", ""))
        tried = walk.attempts.get(n, [])
        paths = list(dict.fromkeys(a.path for a in tried)) or [g.path]
        # the attempt that explains the failure: the last path where the file HAS a group for it (Keras' own
        # message is the last attempt's, often just "received 0 variables" from an alias path)
        decisive = next((a for a in reversed(tried) if a.saved), None)
        at = decisive.path if decisive else g.path
        where = f"{cls} at {at!r}" if cls else repr(at)
        if decisive and decisive.path != g.path:
            where += f" (saved by your model as {g.path!r})"
        shift = next((shifted[_base(p)] for p in [at, *paths] if _base(p) in shifted), "")
        if shift:
            where += f" ({shift})"
        if decisive is None:
            absent = (f"no group at any path Keras tries it at ({', '.join(repr(p) for p in paths)})" if len(paths) > 1
                      else f"no group {g.path!r}")
            out.diagnostics.append(A.MISSING.diag(
                f"{where}: the file has {absent} ({len(g.shapes)} variable(s) expected)"
                + _shift_hint(g, file_groups, model_raw),
                subject=g.path, expected=[list(s) for s in g.shapes], found=None,
                framework_behavior=behaviour + f" The message names it: Layer '{_name(g, walk, n)}' expected "
                                               f"{len(g.shapes)} variables, but received 0 variables during loading.",
                fix="build the layers the file was saved with (Keras names paths by class and position: adding or "
                    "removing a layer of the same class shifts dense -> dense_1)", path=snap.path,
                details={"paths_tried": paths}))
            continue
        saved = decisive.saved
        if len(saved) != len(g.shapes):
            out.diagnostics.append(A.WEIGHT_COUNT.diag(
                f"{where}: {len(saved)} saved variable(s), the model's layer has {len(g.shapes)}",
                subject=at, expected=len(g.shapes), found=len(saved), framework_behavior=behaviour,
                fix="build the layer with the options it was saved with (use_bias, layer type)", path=snap.path,
                details={"paths_tried": paths}))
            continue
        saved_h, model_h = infer_keras(cls, saved), infer_keras(cls, g.shapes)
        story = describe_change(saved_h, model_h)
        own = changed_values(saved_h, model_h)
        if story and own and own <= changes:
            story = None
        io = io_story(snap.path, cls, saved, g.shapes, first=g.path == edges[0], last=g.path == edges[1])
        if io:
            story = io[0]
        knock = not story and all(knock_on(f, m, changes) for f, m in zip(saved, g.shapes, strict=True) if f != m)
        changes |= own
        diffs = "; ".join(f"vars/{i}: file {list(f)}, model {list(m)}"
                          for i, (f, m) in enumerate(zip(saved, g.shapes, strict=True)) if f != m)
        if story:
            msg = f"{where}: {story}"
        elif knock:
            msg = f"{where}: changes shape only as a consequence of the change above ({diffs})"
        else:
            msg = f"{where}: other shapes ({diffs})"
        if decisive.assigned:
            msg += (f"; its first {decisive.assigned} variable(s) fit and ARE overwritten before the error "
                    "(no rollback)")
        out.diagnostics.append(A.SHAPE.diag(
            msg, subject=at, expected=[list(s) for s in g.shapes], found=[list(s) for s in saved],
            framework_behavior=behaviour,
            fix=(io[1] if io else f"build the layer as {saved_h.call()}" if story and saved_h else
                 "fix the upstream layer; this one follows" if knock else
                 "build the layer with the file's shapes, or retrain"),
            path=snap.path, details={"saved_hyperparameters": saved_h.params if saved_h else None,
                                     "model_hyperparameters": model_h.params if model_h else None,
                                     "knock_on": knock, "paths_tried": paths}))
    ignored = strict.details["ignored_groups"]
    if ignored:
        n = sum(len(file_groups[g]) for g in ignored)
        if strict.outcome in (B.OK, B.SILENT):
            out.diagnostics.append(A.SILENT_PARTIAL.diag(
                f"the file's {', '.join(repr(g) for g in ignored)} ({n} variable(s)) match nothing in your model: "
                "load_weights will succeed WITHOUT ANY MESSAGE and ignore them",
                subject=ignored[0], expected="every saved layer used", found=f"{len(ignored)} saved layer(s) unused",
                framework_behavior=strict.summary(),
                fix="add the missing layer(s) to the model; if dropping them is intended, re-save the smaller "
                    "model's weights (or `ckptdoctor fix` drops the unused groups) so the file says what loads",
                fix_plan=Fix(kind="drop-keys", description="drop the unused groups",
                             data={"keys": [t.name for t in snap.tensors if t.name.rpartition('/vars/')[0] in ignored]}),
                path=snap.path, details={"groups": ignored}))
        else:
            out.diagnostics.append(A.UNEXPECTED.diag(
                f"the file's {', '.join(repr(g) for g in ignored)} match nothing in your model and would be ignored",
                subject=ignored[0], found=ignored, framework_behavior="Keras ignores saved groups the model does "
                "not have (no message); here the load fails anyway because of the mismatches above",
                fix="build the layers the file was saved with", path=snap.path, details={"groups": ignored}))
    return out


def _base(path: str) -> str:
    """``layers/dense_1/cell`` -> ``layers/dense``: the path Keras derives from the class name."""
    import re

    parts = path.split("/")
    return "/".join([parts[0], re.sub(r"_\d+$", "", parts[1])]) if len(parts) > 1 else path


def _class_count_shift(file_paths: list[str], model_paths: list[str], group_class: dict[str, str]) -> dict[str, str]:
    """Keras names ``.weights.h5`` paths by class and position (dense, dense_1, ...): when the model has
    another number of layers of a class than the file, every later one of that class shifts."""
    out = {}
    for base in {_base(p) for p in model_paths}:
        n_model = len({p.split("/")[1] for p in model_paths if _base(p) == base and "/" in p})
        n_file = len({p.split("/")[1] for p in file_paths if _base(p) == base and "/" in p})
        if n_file and n_model != n_file:
            cls = next((group_class[p] for p in model_paths if _base(p) == base and group_class.get(p)), "layer")
            out[base] = (f"your model has {n_model} {cls} layer(s), the file {n_file}: Keras names the paths by class "
                         "and position, so the saved weights land on the wrong layer")
    return out


def _name(g: B.KerasGroup, walk: B.KerasWalk, n: int) -> str:
    return str(walk.nodes[n].get("name") or B._short_name(g.label or g.path))


def _edge_groups(spec: ModelSpec, model_groups: list[B.KerasGroup]) -> tuple[str, str]:
    """The save groups of the model's first and last layer with weights, in ``model.layers`` order (the save
    order puts a subclassed model's attributes first, alphabetically)."""
    owners = [w.rpartition("/vars/")[0] for layer in spec.layers for w in layer.weights[:1] if w]
    if owners:
        return owners[0], owners[-1]
    return (model_groups[0].path, model_groups[-1].path) if model_groups else ("", "")


def _nodes_by_save_group(graph: dict[str, Any]) -> dict[str, int]:
    """Save group (``layers/lstm/cell``) -> the node of the load walk that owns its variables."""
    out: dict[str, int] = {}
    for n, node in enumerate(graph["nodes"]):
        for var in node.get("vars", []):
            if var:
                out.setdefault(var.rpartition("/vars/")[0] if "/vars/" in var else "", n)
    return out


def _failed_in_save_order(walk: B.KerasWalk, node_of_group: dict[str, int],
                          model_groups: list[B.KerasGroup]) -> list[tuple[int, B.KerasGroup]]:
    """The objects the walk leaves failed, each with its save group: first those with variables, in save
    order, then any other (a layer without variables where the file has some), under its first path."""
    out: list[tuple[int, B.KerasGroup]] = []
    seen: set[int] = set()
    for g in model_groups:
        n = node_of_group.get(g.path)
        if n is not None and n in walk.errors and n not in seen:
            seen.add(n)
            out.append((n, g))
    for n in walk.errors:
        if n not in seen:
            node = walk.nodes[n]
            first = walk.attempts[n][0].path if walk.attempts.get(n) else ""
            out.append((n, B.KerasGroup(path=first, shapes=[tuple(s) for s in node.get("shapes", [])],
                                        label=walk.label(n))))
    return out


def _shift_hint(g: B.KerasGroup, file_groups: dict[str, list[Shape]], model_raw: dict[str, list[Shape]]) -> str:
    """Keras auto-names paths by class and position: say when another saved group has these shapes."""
    same = [p for p, s in file_groups.items() if s == g.shapes and p not in model_raw]
    if same:
        return f"; the file's {same[0]!r} has exactly these shapes (a layer was added, removed or renamed)"
    return ""


# ---- legacy .h5: topological -------------------------------------------------------------------------
def _file_h5_layers(snap: Snapshot) -> list[B.H5Layer]:
    out = []
    for layer in snap.layers:
        weights = layer.get("weights") or []
        if not weights:
            continue
        out.append(B.H5Layer(name=str(layer.get("name", "")), class_name=str(layer.get("class_name") or ""),
                             shapes=[tuple(w.get("shape") or ()) for w in weights],
                             weight_names=[str(w.get("name", "")) for w in weights]))
    if out or not snap.tensors:
        return out
    by_layer: dict[str, B.H5Layer] = {}
    for t in snap.tensors:  # no layer list: group the tensors by their layer attribute
        if _is_optimizer(t):
            continue
        name = str(t.attrs.get("layer") or t.name.split("/", 1)[0])
        by_layer.setdefault(name, B.H5Layer(name=name, shapes=[])).shapes.append(tuple(t.shape))
    return list(by_layer.values())


def _model_h5_layers(spec: ModelSpec) -> list[B.H5Layer]:
    return [B.H5Layer(name=layer.path, class_name=layer.class_name,
                      shapes=[tuple(s) for s in layer.params.get("_weight_shapes", [])],
                      weight_names=list(layer.params.get("_weight_paths", []))) for layer in spec.layers]


def _compare_topological(snap: Snapshot, spec: ModelSpec) -> Comparison:
    out = Comparison()
    source = _source(snap)
    flayers, mlayers = _file_h5_layers(snap), _model_h5_layers(spec)
    strict = B.keras_h5_load_weights(flayers, mlayers, source=source)
    loose = B.keras_h5_load_weights(flayers, mlayers, skip_mismatch=True, source=source)
    out.predictions = [strict, loose]
    behaviour = strict.summary()
    if len(flayers) != len(mlayers):
        fsig = [(f.class_name or "?", tuple(f.shapes)) for f in flayers]
        msig = [(m.class_name, tuple(m.shapes)) for m in mlayers]
        story = _sequence_story(fsig, msig, flayers, mlayers)
        out.diagnostics.append(A.LAYER_COUNT.diag(
            f"the file has {len(flayers)} layers with weights, your model {len(mlayers)}{story}",
            subject=source, expected=[m.name for m in mlayers], found=[f.name for f in flayers],
            framework_behavior=behaviour + " (skip_mismatch=True does not help: the layer count is checked first)",
            fix="build the same stack of layers as the saved model, or give layers explicit names and load with "
                "by_name=True (then check that every layer did load: unmatched names are skipped silently)",
            path=snap.path))
        return out
    changes: set[tuple[int, int]] = set()
    for k, (m, f) in enumerate(zip(mlayers, flayers, strict=True)):
        where = f"layer #{k} ({m.class_name} {m.name!r}, saved as {f.name!r})"
        if len(m.shapes) != len(f.shapes):
            out.diagnostics.append(A.WEIGHT_COUNT.diag(
                f"{where}: {len(f.shapes)} saved weight(s), the model's layer has {len(m.shapes)}",
                subject=m.name, expected=len(m.shapes), found=len(f.shapes), framework_behavior=behaviour,
                fix="build the layer with the options it was saved with", path=snap.path))
            continue
        if m.shapes == f.shapes:
            continue
        saved_h, model_h = infer_keras(m.class_name, f.shapes), infer_keras(m.class_name, m.shapes)
        if f.class_name and f.class_name != m.class_name:
            story = f"the saved layer is a {f.class_name}, yours a {m.class_name}"
        else:
            story = describe_change(saved_h, model_h) or ""
        own = changed_values(saved_h, model_h)
        if story and own and own <= changes:
            story = ""
        io = io_story(snap.path, m.class_name, f.shapes, m.shapes, first=k == 0, last=k == len(mlayers) - 1)
        if io and not (f.class_name and f.class_name != m.class_name):
            story = io[0]
        knock = not story and all(knock_on(a, b, changes) for a, b in zip(f.shapes, m.shapes, strict=True) if a != b)
        changes |= own
        diffs = "; ".join(f"{(m.weight_names[i] if i < len(m.weight_names) else i)}: file {list(a)}, model {list(b)}"
                          for i, (a, b) in enumerate(zip(f.shapes, m.shapes, strict=True)) if a != b)
        msg = (f"{where}: {story}" if story else
               f"{where}: changes shape only as a consequence of the change above ({diffs})" if knock else
               f"{where}: other shapes ({diffs})")
        out.diagnostics.append(A.SHAPE.diag(
            msg, subject=m.name, expected=[list(s) for s in m.shapes], found=[list(s) for s in f.shapes],
            framework_behavior=behaviour + "; with skip_mismatch=True each mismatched weight is skipped with a "
                                           "UserWarning and keeps its initial value",
            fix=(io[1] if io and story == io[0] else f"build the layer as {saved_h.call()}" if story and saved_h else
                 "fix the upstream layer; this one follows" if knock else "build the layer with the file's shapes"),
            path=snap.path, details={"saved_hyperparameters": saved_h.params if saved_h else None,
                                     "model_hyperparameters": model_h.params if model_h else None}))
    return out


def _sequence_story(fsig: list[Any], msig: list[Any], flayers: list[B.H5Layer], mlayers: list[B.H5Layer]) -> str:
    parts = []
    sm = difflib.SequenceMatcher(a=fsig, b=msig, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "insert":
            parts.append("your model adds " + ", ".join(f"{m.class_name} {m.name!r}" for m in mlayers[j1:j2]))
        elif op == "delete":
            parts.append("your model lacks the saved " + ", ".join(f"{f.class_name or 'layer'} {f.name!r}"
                                                                    for f in flayers[i1:i2]))
        elif op == "replace":
            parts.append("saved " + ", ".join(f.name for f in flayers[i1:i2]) + " became "
                         + ", ".join(f"{m.class_name} {m.name!r}" for m in mlayers[j1:j2]))
    return (": " + "; ".join(parts)) if parts else ""


# ---- the model's inputs and outputs ------------------------------------------------------------------
def io_story(path: str, cls: str, saved: list[Shape], model: list[Shape], *, first: bool,
             last: bool) -> tuple[str, str] | None:
    """(message, fix) when a Dense layer's size differs at the model's edge: the first layer's input
    dimension is the number of input features (a bag-of-words vocabulary), the last layer's units are the
    number of classes. Both change when the word or label list changes after training."""
    from ckptdoctor.checking.side_files import explain_size

    if cls != "Dense" or not saved or not model or len(saved[0]) != 2 or len(model[0]) != 2:
        return None
    (f_in, f_out), (m_in, m_out) = saved[0], model[0]
    parts, fixes = [], []
    if first and f_in != m_in:
        parts.append(f"the file was trained on {f_in} input features (Dense kernel {f_in}x{f_out}), your model has "
                     f"{m_in}: " + explain_size(path, f_in, m_in, "vocabulary", "words", "your input vocabulary or feature list "
                                                    "(e.g. words.pkl) changed since training"))
        fixes.append(f"build the input with the {f_in} features (the word list) the file was trained with, or "
                     "retrain on the new vocabulary: a first layer trained on other inputs cannot be reused")
    if last and f_out != m_out:
        parts.append(f"the file's output layer has {f_out} classes (Dense kernel {f_in}x{f_out}), your model has "
                     f"{m_out}: " + explain_size(path, f_out, m_out, "class list", "classes", "the list of classes (labels, intents; "
                                                      "e.g. classes.pkl) changed since training"))
        fixes.append(f"build the output layer with the file's {f_out} classes (the label list saved with it), or "
                     "retrain the output layer for the new classes (skip_mismatch=True leaves it random)")
    if not parts:
        return None
    return "; and ".join(parts), "; ".join(fixes)


# ---- optimizer state ---------------------------------------------------------------------------------
def _optimizer(snap: Snapshot, spec: ModelSpec, out: Comparison) -> None:
    saved = [t for t in snap.tensors if _is_optimizer(t)]
    if not saved:
        return
    live = spec.facts.get("optimizer")
    n_live = int(spec.facts.get("optimizer_variables") or 0)
    if live is None:
        out.diagnostics.append(A.OPTIMIZER.diag(
            f"the file holds {len(saved)} optimizer variable(s); your model has no optimizer, so they are not restored",
            subject="optimizer", expected="no optimizer", found=f"{len(saved)} optimizer variable(s)",
            framework_behavior="load_weights ignores them without a message; load_model(compile=True) restores them",
            fix="harmless for inference; to resume training, compile the model and build its optimizer before loading",
            path=snap.path))
        return
    if snap.format in PATH_FORMATS and n_live != len(saved):
        text = (f"Skipping variable loading for optimizer '{live.lower()}', because it has {n_live} variables whereas "
                f"the saved optimizer has {len(saved)} variables. ")
        out.diagnostics.append(A.OPTIMIZER.diag(
            f"optimizer state does not match ({n_live} live variable(s), {len(saved)} saved): the weights load, the "
            "optimizer starts fresh", subject="optimizer", expected=n_live, found=len(saved),
            framework_behavior=f"UserWarning: {text}", path=snap.path,
            fix="harmless for inference (load_model(..., compile=False)); to resume training call "
                "model.optimizer.build(model.trainable_variables) before loading"))
