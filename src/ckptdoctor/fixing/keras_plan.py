"""The plan for a Keras 3 model: every variable ``model.load_weights(OUT.weights.h5)`` will read, named by
its ``.weights.h5`` path (``layers/lstm/cell/vars/0``), and where its values come from.

Three kinds of source file:

* a legacy ``.h5`` (Keras 2.x, tf.keras, Keras 3 ``model.save("x.h5")``): paired exactly as Keras' own
  legacy loader pairs it (``legacy_h5_format.load_weights_from_hdf5_group``): the saved layers that have
  weights, in ``layer_names`` order, with the model's layers that have weights, in ``model.layers``
  order; within a layer, weight by weight (trainable then non-trainable), shape by shape. Where Keras
  would raise, ``fix`` refuses (A401) with the same count or shape.
* a ``.keras`` / ``.weights.h5`` (loaded by path): the same path with the same shapes is taken as is;
  the groups left over (auto-names shifted ``dense`` -> ``dense_1``, a Sequential rewritten as a
  subclassed model) are paired by layer class and shapes, in save order, only when that is unambiguous.
* a PyTorch state_dict: modules paired in order with the model's layers, each by a known conversion
  (Embedding copy, Linear -> Dense transposed, LSTM transposed with ``bias_ih + bias_hh``, GRU gates
  r,z,n -> z,r,h with ``reset_after=True``); anything else is A402.

Optimizer state of the file is never written: the model's own (fresh) optimizer variables are, so
``load_weights`` neither warns nor skips. Pure Python; values are produced in ``keras_h5_writer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptdoctor.errors import InputError
from ckptdoctor.fixing.plan import FixPlan, OutTensor, cast_kind
from ckptdoctor.rules import fix_rules as R

if TYPE_CHECKING:
    from ckptdoctor.checking import CheckReport
    from ckptdoctor.snapshot import Snapshot, TensorInfo
    from ckptdoctor.spec import ModelSpec, StateEntry

Shape = tuple[int, ...]


@dataclass
class KerasOut(OutTensor):
    """A variable of the output: ``op`` may combine several file tensors (``extra``: e.g. ``bias_hh_l0``)."""

    extra: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.extra:
            out["extra_sources"] = list(self.extra)
        return out


def _refuse(code: str, message: str, path: str, hint: str | None = None) -> InputError:
    return InputError(code, message, path, hint or "run `ckptdoctor check FILE --model TARGET` for the full story")


def _model_entries(spec: ModelSpec) -> dict[str, StateEntry]:
    return {e.name: e for e in spec.state if e.kind != "optimizer"}


def build_keras_plan(report: CheckReport, *, key: str | None = None, allow_lossy: bool = False) -> FixPlan:
    """The plan for a Keras model and a ``.weights.h5`` output. Raises InputError (A401/A402/D560)."""
    snap, spec = report.snapshot, report.spec
    plan = FixPlan(source=snap.path, output_format="keras-weights")
    if snap.framework == "keras" and snap.format == "keras-h5":
        sources = _legacy(snap, spec, plan)
    elif snap.framework == "keras":
        sources = _by_path(snap, spec, plan)
    else:
        sources = _from_torch(snap, spec, plan, key)
    entries = _model_entries(spec)
    missing = [n for n in entries if n not in sources]
    if missing:
        raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {len(missing)} variable(s) of the model get no "
                      f"value from the file: {', '.join(missing[:4])} (A101)", snap.path)
    lossy = []
    for name, e in entries.items():
        out = sources[name]
        out.dtype, out.shape = e.dtype, tuple(e.shape)
        if out.source_dtype and out.source_dtype != e.dtype:
            out.cast = cast_kind(out.source_dtype, e.dtype)
            if out.cast != "exact":
                lossy.append(out)
        plan.tensors.append(out)
    for e in spec.state:
        if e.kind == "optimizer":
            plan.tensors.append(KerasOut(name=e.name, dtype=e.dtype, shape=tuple(e.shape), source=None, op="fresh"))
    if any(e.kind == "optimizer" for e in spec.state):
        plan.notes.append("the model's optimizer variables are written as the model has them now (fresh state), so "
                          "load_weights restores them without a warning; the file's optimizer state is not kept")
    used = {t.source for t in plan.tensors} | {x for t in plan.tensors for x in getattr(t, "extra", [])}
    plan.dropped = [t.name for t in snap.tensors if t.name not in used]
    from ckptdoctor.fixing.plan import _refuse_lossy

    _refuse_lossy(lossy, allow_lossy, snap.path, plan)
    return plan


# ---- legacy .h5: topological, as Keras' legacy loader ------------------------------------------------------
def _legacy(snap: Snapshot, spec: ModelSpec, plan: FixPlan) -> dict[str, KerasOut]:
    flayers = [layer for layer in snap.layers if layer.get("weights")]
    mlayers = [layer for layer in spec.layers if layer.weights]
    if len(flayers) != len(mlayers):
        raise _refuse(R.NOT_MECHANICAL.code, "cannot fix mechanically: Layer count mismatch: the model has "
                      f"{len(mlayers)} layers with weights ({', '.join(m.class_name for m in mlayers)}), the file "
                      f"{len(flayers)} ({', '.join(str(f.get('class_name') or f.get('name')) for f in flayers)}) (A107)",
                      snap.path)
    out: dict[str, KerasOut] = {}
    for k, (f, m) in enumerate(zip(flayers, mlayers, strict=True)):
        where = f"layer #{k} ({m.class_name} {m.path!r}, saved as {f.get('name')!r})"
        fcls = f.get("class_name")
        if fcls and fcls != m.class_name:
            raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {where}: the saved layer is a {fcls}, "
                          f"yours a {m.class_name}", snap.path)
        fweights = f["weights"]
        if len(fweights) != len(m.weights):
            raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {where}: {len(fweights)} saved weight(s), "
                          f"the model's layer has {len(m.weights)} (A105)", snap.path)
        for i, (w, target) in enumerate(zip(fweights, m.weights, strict=True)):
            t = snap.tensor(str(w.get("tensor") or w["name"]))
            e = spec.entry(target) if target else None
            if e is None:
                raise _refuse(R.NOT_MECHANICAL.code, f"{where}: weight {i} is not saved by save_weights", snap.path)
            if tuple(t.shape) != tuple(e.shape):
                raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {where}: {t.name} has shape "
                              f"{list(t.shape)} in the file, the model's {target} {list(e.shape)} (A103)", snap.path)
            out[target] = KerasOut(name=target, dtype=e.dtype, shape=tuple(e.shape), source=t.name,
                                   source_dtype=t.dtype)
    plan.notes.append(f"legacy HDF5: {len(mlayers)} layer(s) with weights paired in order, as Keras' legacy "
                      "load_weights pairs them (layer_names order with model.layers order), every shape checked")
    return out


# ---- .keras / .weights.h5: by path, then by class and shapes ---------------------------------------------
def _order(path: str) -> tuple[Any, ...]:
    """``layers/dense_10/vars`` after ``layers/dense_2/vars``: Keras' auto-names count up."""
    key: list[Any] = []
    for seg in path.split("/"):
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", seg)
        key.append((m.group(1), int(m.group(2) or 0)) if m else (seg, 0))
    return tuple(key)


def _by_path(snap: Snapshot, spec: ModelSpec, plan: FixPlan) -> dict[str, KerasOut]:
    from ckptdoctor.checking.compare_keras import _is_optimizer

    cls_of_layer = {str(layer.get("name")): layer.get("class_name") for layer in snap.layers}
    fgroups: dict[str, list[TensorInfo]] = {}
    fclass: dict[str, str | None] = {}
    for t in snap.tensors:
        if _is_optimizer(t):
            continue
        group, _, idx = t.name.rpartition("/vars/")
        if not idx.isdigit():
            continue
        fgroups.setdefault(group, []).append(t)
        fclass.setdefault(group, cls_of_layer.get(str(t.attrs.get("layer"))))
    for g in fgroups.values():
        g.sort(key=lambda t: int(t.name.rpartition("/")[2]))
    mgroups: dict[str, list[StateEntry]] = {}
    mclass: dict[str, str] = {}
    for e in spec.state:
        if e.kind != "optimizer":
            mgroups.setdefault(e.owner, []).append(e)
            mclass.setdefault(e.owner, e.owner_class)

    def shapes(items: list[Any]) -> list[Shape]:
        return [tuple(x.shape) for x in items]

    pairs: dict[str, str] = {}  # model group -> file group
    for g, entries in mgroups.items():
        if g in fgroups and shapes(fgroups[g]) == shapes(entries):
            pairs[g] = g
    left_f = sorted((g for g in fgroups if g not in pairs.values()), key=_order)
    moved = []
    for g, entries in mgroups.items():
        if g in pairs:
            continue
        cls = mclass.get(g)
        fits = [f for f in left_f if shapes(fgroups[f]) == shapes(entries) and fclass.get(f) in (None, cls)]
        peers = [m for m in mgroups if m not in pairs and shapes(mgroups[m]) == shapes(entries)
                 and mclass.get(m) == cls]
        if not fits:
            near = [f for f in fgroups if f == g or _order(f)[:-1] == _order(g)[:-1]]
            got = f"; the file's {near[0]!r} has {[list(s) for s in shapes(fgroups[near[0]])]}" if near else ""
            raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {cls} {g!r} "
                          f"{[list(s) for s in shapes(entries)]} has no saved group with these shapes{got} (A103)",
                          snap.path)
        if len(fits) != len(peers):
            raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {cls} {g!r} could be any of the saved "
                          f"{', '.join(repr(f) for f in fits)} (ambiguous)", snap.path)
        pairs[g] = fits[0]  # equal shapes and class: Keras' auto-names follow creation order
        left_f.remove(fits[0])
        moved.append(f"{fits[0]} -> {g}")
    if moved:
        plan.renames.update(dict(m.split(" -> ") for m in moved))
        plan.notes.append("groups whose path changed are paired by layer class and shapes, in save order: "
                          + ", ".join(moved))
    out: dict[str, KerasOut] = {}
    for g, entries in mgroups.items():
        for e, t in zip(entries, fgroups[pairs[g]], strict=True):
            out[e.name] = KerasOut(name=e.name, dtype=e.dtype, shape=tuple(e.shape), source=t.name,
                                   source_dtype=t.dtype)
    return out


# ---- a PyTorch state_dict into a Keras model ----------------------------------------------------------------
_RNN = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


def _from_torch(snap: Snapshot, spec: ModelSpec, plan: FixPlan, key: str | None) -> dict[str, KerasOut]:
    prefix = f"{key}." if key else ""
    modules: dict[str, dict[str, TensorInfo]] = {}
    for t in snap.tensors:
        if prefix and not t.name.startswith(prefix):
            plan.left_out.append(t.name)
            continue
        mod, _, leaf = t.name[len(prefix):].rpartition(".")
        modules.setdefault(mod, {})[leaf] = t
    mlayers = [layer for layer in spec.layers if layer.weights]
    if len(modules) != len(mlayers):
        raise _refuse(R.NO_VERIFIED_PORT.code, f"no known PyTorch -> Keras conversion: the file has {len(modules)} "
                      f"module(s) with tensors ({', '.join(modules)}), the model {len(mlayers)} layer(s) with weights "
                      f"({', '.join(m.class_name for m in mlayers)})", snap.path)
    out: dict[str, KerasOut] = {}
    for (mod, tensors), layer in zip(modules.items(), mlayers, strict=True):
        entries = [spec.entry(p) for p in layer.weights]
        for step in _port_layer(mod, tensors, layer.class_name, layer.params, entries, snap.path):
            out[step.name] = step
        plan.notes.append(f"{mod} -> {layer.class_name} {layer.path!r}")
    plan.notes.append("PyTorch -> Keras layout conversion; recurrent layers are verified numerically against "
                      "torch after writing")
    return out


def _port_layer(mod: str, t: dict[str, TensorInfo], cls: str, params: dict[str, Any], entries: list[StateEntry],
                path: str) -> list[KerasOut]:
    names = set(t)

    def step(e: StateEntry, src: TensorInfo, op: str, shape: Shape, extra: list[str] | None = None) -> KerasOut:
        if tuple(shape) != tuple(e.shape):
            raise _refuse(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {mod}.{src.name.rpartition('.')[2]} "
                          f"{list(src.shape)} gives {list(shape)} by {op}, the model's {cls} {e.name} is "
                          f"{list(e.shape)} (A103)", path)
        return KerasOut(name=e.name, dtype=e.dtype, shape=tuple(e.shape), source=src.name, op=op,
                        source_dtype=src.dtype, extra=extra or [])

    def rev(s: Shape) -> Shape:
        return tuple(reversed(s))

    if cls == "Embedding" and names == {"weight"} and len(entries) == 1:
        return [step(entries[0], t["weight"], "copy", tuple(t["weight"].shape))]
    if cls == "Dense" and names in ({"weight"}, {"weight", "bias"}) and len(entries) == len(names):
        steps = [step(entries[0], t["weight"], "transpose", rev(t["weight"].shape))]
        if "bias" in t:
            steps.append(step(entries[1], t["bias"], "copy", tuple(t["bias"].shape)))
        return steps
    if cls in ("LSTM", "GRU") and names == _RNN and len(entries) == 3:
        for k, want in (("recurrent_activation", "sigmoid"), ("activation", "tanh")):
            if params.get(k, want) != want:
                raise _refuse(R.NO_VERIFIED_PORT.code, f"{cls} for {mod!r} uses {k}={params.get(k)!r}; torch's {cls} "
                              f"always uses {want}", path)
        gates = 4 if cls == "LSTM" else 3
        wih, whh, bih, bhh = (t[n] for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
        if wih.shape[0] != gates * whh.shape[1]:
            raise _refuse(R.NO_VERIFIED_PORT.code, f"{mod!r} has {wih.shape[0]} gate rows for hidden size "
                          f"{whh.shape[1]}: not a torch {cls}", path)
        if cls == "LSTM":
            return [step(entries[0], wih, "transpose", rev(wih.shape)),
                    step(entries[1], whh, "transpose", rev(whh.shape)),
                    step(entries[2], bih, "add", tuple(bih.shape), [bhh.name])]
        if params.get("reset_after") is False:
            raise _refuse(R.NO_VERIFIED_PORT.code, f"GRU for {mod!r} has reset_after=False: torch's GRU applies the "
                          "reset gate after the recurrent matmul, which is reset_after=True", path)
        return [step(entries[0], wih, "reorder-gates-transpose", rev(wih.shape)),
                step(entries[1], whh, "reorder-gates-transpose", rev(whh.shape)),
                step(entries[2], bih, "stack-reorder-gates", (2, *bih.shape), [bhh.name])]
    raise _refuse(R.NO_VERIFIED_PORT.code, f"no known PyTorch -> Keras conversion for module {mod!r} "
                  f"({', '.join(sorted(names))}) into {cls} {entries[0].owner if entries else ''!r} (known: Embedding, "
                  "Linear -> Dense, single-layer unidirectional LSTM/GRU)", path)
