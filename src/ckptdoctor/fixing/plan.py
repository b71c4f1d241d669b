"""Turn what ``check`` found into ONE ordered plan over tensor names: for every tensor the model
expects, where its bytes come from and what happens to them on the way.

Order of the name steps (each works on the result of the previous): select the state_dict inside a
training checkpoint; drop the tensors ``check`` reported as unexpected (listed, never silent); rename
by the inferred layer mapping; strip or add the wrapper prefix; restore tied aliases. Then per tensor:
cast to the model's dtype (refused when lossy unless ``allow_lossy``), or, for a Keras file and a
torch model, the layout conversion (transpose, gate reorder, zero bias) from ``check``'s port plan.

Pure Python: names, shapes and dtypes in, a plan out. Values are touched only by ``values.py``-style
chunk sources built in ``fix.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptdoctor.dtypes import FLOATING, INTEGER
from ckptdoctor.errors import InputError
from ckptdoctor.rules import fix_rules as R

if TYPE_CHECKING:
    from ckptdoctor.checking import CheckReport
    from ckptdoctor.snapshot import TensorInfo

# dtype -> dtypes that hold every one of its values exactly
_EXACT: dict[str, set[str]] = {
    "float16": {"float32", "float64"},
    "bfloat16": {"float32", "float64"},
    "float32": {"float64"},
    "float8_e4m3fn": {"float16", "bfloat16", "float32", "float64"},
    "float8_e5m2": {"float16", "bfloat16", "float32", "float64"},
    "float8_e4m3fnuz": {"float16", "bfloat16", "float32", "float64"},
    "float8_e5m2fnuz": {"float16", "bfloat16", "float32", "float64"},
    "float8_e8m0fnu": {"float32", "float64"},
    "int8": {"int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"},
    "uint8": {"uint16", "uint32", "uint64", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"},
    "int16": {"int32", "int64", "float32", "float64"},
    "uint16": {"uint32", "uint64", "int32", "int64", "float32", "float64"},
    "int32": {"int64", "float64"},
    "uint32": {"uint64", "int64", "float64"},
    "bool": {"uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"},
}

# Keras -> torch layout steps ``fix`` knows; GRU is verified numerically against Keras after writing
PORT_OPS = {"copy", "transpose", "zeros", "reorder-gates-transpose", "row-0-reorder-gates", "row-1-reorder-gates"}


def cast_is_exact(src: str, dst: str) -> bool:
    return src == dst or dst in _EXACT.get(src, set())


def cast_kind(src: str, dst: str) -> str:
    """``exact``, ``narrow`` (float precision lost) or ``truncate`` (float into an integer)."""
    if cast_is_exact(src, dst):
        return "exact"
    if src in FLOATING and dst in INTEGER:
        return "truncate"
    return "narrow"


@dataclass
class OutTensor:
    """One tensor of the fixed file, in the model's order."""

    name: str  # the model's key
    dtype: str  # the model's dtype (what is written)
    shape: tuple[int, ...]  # the model's shape
    source: str | None  # the file's tensor name (None for a generated tensor)
    source_dtype: str | None = None
    op: str = "copy"  # copy | transpose | reorder-gates-transpose | row-N-reorder-gates | zeros
    alias_of: str | None = None  # restored tied alias: same values (and, in a .pt, same storage) as this key
    cast: str | None = None  # exact | narrow | truncate when source_dtype != dtype

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                               "source": self.source, "op": self.op}
        if self.source_dtype and self.source_dtype != self.dtype:
            out["cast"] = {"from": self.source_dtype, "to": self.dtype, "kind": self.cast}
        if self.alias_of:
            out["alias_of"] = self.alias_of
        return out


@dataclass
class FixPlan:
    source: str
    output_format: str  # safetensors | torch-zip
    key: str | None = None  # the training checkpoint entry holding the state_dict
    prefix: dict[str, str] | None = None  # {"action": strip|add, "prefix": ...}
    renames: dict[str, str] = field(default_factory=dict)  # file key -> model key (layer renames, conventions)
    dropped: list[str] = field(default_factory=list)  # file tensors check reported unexpected
    left_out: list[str] = field(default_factory=list)  # tensors outside the selected state_dict (optimizer...)
    tensors: list[OutTensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def casts(self) -> list[OutTensor]:
        return [t for t in self.tensors if t.cast and t.cast != "same"]

    @property
    def lossy(self) -> list[OutTensor]:
        return [t for t in self.tensors if t.cast in ("narrow", "truncate")]

    @property
    def aliases(self) -> dict[str, str]:
        return {t.name: t.alias_of for t in self.tensors if t.alias_of}

    @property
    def ported(self) -> list[OutTensor]:
        return [t for t in self.tensors if t.op != "copy"]

    def steps(self) -> list[str]:
        """The plan in order, one line per step, for the text renderer."""
        out = []
        if self.key:
            out.append(f"select the state_dict under {self.key!r} of the training checkpoint"
                       + (f" (leave out {len(self.left_out)} other tensor(s))" if self.left_out else ""))
        if self.dropped:
            out.append(f"drop {len(self.dropped)} tensor(s) the model does not have: " + ", ".join(self.dropped))
        if self.renames:
            out.append(f"rename {len(self.renames)} tensor(s): "
                       + ", ".join(f"{a} -> {b}" for a, b in self.renames.items()))
        if self.prefix:
            out.append(f"{self.prefix['action']} the prefix {self.prefix['prefix']!r} on every key")
        for t in self.tensors:
            if t.alias_of:
                how = "shared storage" if self.output_format == "torch-zip" else "a copy (safetensors has no sharing)"
                out.append(f"restore tied {t.name} = {t.alias_of} ({how})")
        for t in self.ported:
            out.append(f"{t.op} {t.source or '(nothing)'} -> {t.name} {list(t.shape)}")
        groups: dict[tuple[str, str, str], list[str]] = {}
        for t in self.casts:
            groups.setdefault((str(t.source_dtype), t.dtype, str(t.cast)), []).append(t.name)
        for (src, dst, kind), names in groups.items():
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
            out.append(f"cast {len(names)} tensor(s) {src} -> {dst} ({kind}): {shown}")
        if not out:
            out.append("nothing to change: the file already fits the model (it is rewritten as is)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "output_format": self.output_format, "key": self.key, "prefix": self.prefix,
            "renames": self.renames, "dropped": self.dropped, "left_out": self.left_out,
            "aliases": self.aliases, "casts": [t.to_json() for t in self.casts],
            "steps": self.steps(), "tensors": [t.to_json() for t in self.tensors], "notes": self.notes,
        }


def _fix_plans(report: CheckReport) -> list[Any]:
    plans = list(report.fix_plan)
    for d in report.diagnostics:
        if d.fix_plan is not None and d.fix_plan not in plans:
            plans.append(d.fix_plan)
    return plans


def build_plan(report: CheckReport, output_format: str, *, allow_lossy: bool = False) -> FixPlan:
    """The plan for a PyTorch model. Raises InputError (A401/A402/D560) when it must refuse."""
    snap, spec = report.snapshot, report.spec
    if spec.framework != "pytorch":
        raise InputError(R.NOT_MECHANICAL.code, "fix writes PyTorch state_dicts only for now; for a Keras model, "
                         "load the file, fix the layers in code and save_weights", snap.path)
    plan = FixPlan(source=snap.path, output_format=output_format, key=report.selected_key)
    fixes = _fix_plans(report)
    if snap.framework == "keras":
        return _port_plan(report, plan, fixes, allow_lossy)

    prefix = plan.key + "." if plan.key else ""
    file_tensors: dict[str, TensorInfo] = {}
    for t in snap.tensors:
        if not prefix or t.name.startswith(prefix):
            file_tensors[t.name[len(prefix):]] = t
        else:
            plan.left_out.append(t.name)

    drop: set[str] = set()
    copies: dict[str, str] = {}  # file key -> model key that gets the same values (an untied copy)
    for f in fixes:
        if f.kind == "copy-keys":
            copies.update({str(a): str(b) for a, b in f.data.get("mapping", {}).items()})
        elif f.kind == "drop-keys":
            drop.update(str(k) for k in f.data.get("keys", []))
        elif f.kind == "rename-keys":
            plan.renames.update({str(a): str(b) for a, b in f.data.get("mapping", {}).items()})
        elif f.kind in ("strip-prefix", "add-prefix"):
            plan.prefix = {"action": f.kind.split("-")[0], "prefix": str(f.data["prefix"])}
    plan.dropped = [n for n in file_tensors if n in drop]

    def model_key(name: str) -> str:
        if name in plan.renames:
            return plan.renames[name]
        if plan.prefix:
            p = plan.prefix["prefix"]
            if plan.prefix["action"] == "strip":
                return name[len(p):] if name.startswith(p) else name
            return p + name
        return name

    model = {e.name: e for e in spec.state if e.persistent and e.kind != "extra"}
    source_of: dict[str, str] = {}
    stray = []
    for name in file_tensors:
        if name in drop:
            continue
        m = model_key(name)
        if m in model and m not in source_of:
            source_of[m] = name
        else:
            stray.append(name)

    # tied aliases: the model ties m to `other` (same Parameter), or the file recorded m as an alias
    # (safetensors save_model's __metadata__ {dropped: kept})
    tied: dict[str, str] = dict(spec.facts.get("tied") or {})
    file_aliases = snap.metadata.get("aliases") if isinstance(snap.metadata.get("aliases"), dict) else {}
    for dropped, kept in (file_aliases or {}).items():
        tied.setdefault(model_key(str(dropped)), model_key(str(kept)))
    for a, b in list(tied.items()):
        tied.setdefault(b, a)
    for src_file, m in copies.items():  # one direction only: the copy is filled from the source
        tied.setdefault(m, model_key(src_file))

    problems = [f"{len(stray)} tensor(s) of the file fit no key of the model: {', '.join(stray[:4])}"] if stray else []
    lossy = []
    for m, e in model.items():
        src = source_of.get(m)
        alias = None
        if src is None:
            other = tied.get(m)
            if other in source_of:
                src, alias = source_of[other], other
            else:
                problems.append(f"{m!r} is not in the file (A101)")
                continue
        t = file_tensors[src]
        if tuple(t.shape) != tuple(e.shape) and not (e.shape == () and tuple(t.shape) == (1,)):
            problems.append(f"{m!r} has shape {list(t.shape)} in the file, {list(e.shape)} in the model (A103)")
            continue
        out = OutTensor(name=m, dtype=e.dtype, shape=tuple(e.shape), source=t.name, source_dtype=t.dtype,
                        alias_of=alias)
        if t.dtype != e.dtype:
            out.cast = cast_kind(t.dtype, e.dtype)
            if out.cast != "exact":
                lossy.append(out)
        plan.tensors.append(out)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} in all)" if len(problems) > 3 else "")
        raise InputError(R.NOT_MECHANICAL.code, f"cannot fix mechanically: {shown}", snap.path,
                         "run `ckptdoctor check` for the full story")
    _refuse_lossy(lossy, allow_lossy, snap.path, plan)
    return plan


def _refuse_lossy(lossy: list[OutTensor], allow_lossy: bool, path: str, plan: FixPlan) -> None:
    if not lossy:
        return
    kinds = sorted({f"{t.source_dtype} -> {t.dtype}" for t in lossy})
    names = ", ".join(t.name for t in lossy[:4]) + (" ..." if len(lossy) > 4 else "")
    if not allow_lossy:
        raise InputError(R.LOSSY_CAST_REFUSED.code,
                         f"{len(lossy)} tensor(s) need a lossy cast ({', '.join(kinds)}): {names}", path,
                         "pass --allow-lossy to cast anyway, or build the model in the file's dtype")
    plan.notes.append(f"lossy casts allowed by --allow-lossy ({', '.join(kinds)}): {names}; float -> integer "
                      "truncates toward zero, as load_state_dict does")


def _port_plan(report: CheckReport, plan: FixPlan, fixes: list[Any], allow_lossy: bool) -> FixPlan:
    """A Keras file for a torch model: the steps of ``check``'s port-weights plan, each checked."""
    snap, spec = report.snapshot, report.spec
    port = next((f for f in fixes if f.kind == "port-weights"), None)
    steps = port.data["steps"] if port is not None else _steps_by_kind(report, plan)
    if steps is None:
        problems = [p for d in report.diagnostics if d.code == "A113" for p in d.details.get("problems", [])]
        raise InputError(R.NO_VERIFIED_PORT.code, "no known Keras -> PyTorch conversion: "
                         + ("; ".join(problems) or "the layers of the file and of the model do not correspond"),
                         snap.path)
    layers = {str(w.get("tensor") or w.get("name")): layer for layer in snap.layers for w in layer.get("weights") or []}
    model = {e.name: e for e in spec.state if e.persistent and e.kind != "extra"}
    lossy = []
    for step in steps:
        op, target, source = step["op"], step["target"], step.get("source")
        layer = layers.get(str(source), {}) if source else {}
        _check_port_step(op, layer, snap.path)
        if op not in PORT_OPS:
            raise InputError(R.NO_VERIFIED_PORT.code, f"unknown conversion {op!r} for {target!r}", snap.path)
        e = model.get(target)
        if e is None:
            raise InputError(R.NO_VERIFIED_PORT.code, f"the port plan names {target!r}, which the model lacks",
                             snap.path)
        t = snap.tensor(source) if source else None
        shape = _ported_shape(op, tuple(t.shape)) if t is not None else tuple(e.shape)
        if shape != tuple(e.shape):
            raise InputError(R.NO_VERIFIED_PORT.code, f"{op} of {source} gives {list(shape)}, the model's {target} is "
                             f"{list(e.shape)} (a GRU with reset_after=False has no PyTorch equivalent)"
                             if "gates" in op else f"{op} of {source} gives {list(shape)}, the model's {target} is "
                             f"{list(e.shape)}", snap.path)
        out = OutTensor(name=target, dtype=e.dtype, shape=shape, source=source, op=op,
                        source_dtype=t.dtype if t is not None else e.dtype)
        if out.source_dtype != e.dtype:
            out.cast = cast_kind(str(out.source_dtype), e.dtype)
            if out.cast != "exact":
                lossy.append(out)
        plan.tensors.append(out)
    missing = [m for m in model if m not in {t.name for t in plan.tensors}]
    if missing:
        raise InputError(R.NO_VERIFIED_PORT.code, f"the port plan leaves {', '.join(missing[:4])} without values",
                         snap.path)
    used = {t.source for t in plan.tensors}
    plan.dropped = [t.name for t in snap.tensors if t.name not in used]
    _refuse_lossy(lossy, allow_lossy, snap.path, plan)
    plan.notes.append("Keras -> PyTorch layout conversion (reference/keras-tf-messages.md section 6); recurrent "
                      "layers are verified numerically against Keras after writing")
    return plan


def _steps_by_kind(report: CheckReport, plan: FixPlan) -> list[dict[str, Any]] | None:
    """A ``.weights.h5`` stores its layer groups sorted by name, not in model order, so ``check``'s
    pairing by position fails. Pair by kind instead: within a kind, Keras' auto-names (``dense``,
    ``dense_1``, ``dense_2``...) follow creation order. Only when every kind has as many layers in
    the file as in the model."""
    import re

    from ckptdoctor.checking.crossframework import KIND, _keras_layers, _steps

    snap, spec = report.snapshot, report.spec
    if snap.config is not None:
        return None  # the file knows its order; check's positional pairing is authoritative

    def order(layer: dict[str, Any]) -> tuple[str, int]:
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", str(layer.get("name", "")))
        return (m.group(1), int(m.group(2) or 0)) if m else (str(layer.get("name")), 0)

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for layer in sorted(_keras_layers(snap), key=order):
        by_kind.setdefault(KIND.get(str(layer.get("class_name")), "?"), []).append(layer)
    tlayers = [layer for layer in spec.layers if layer.weights]
    if sorted(by_kind) != sorted({t.class_name for t in tlayers}) or any(
            len(by_kind[k]) != sum(1 for t in tlayers if t.class_name == k) for k in by_kind):
        return None
    steps: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for t in tlayers:
        i = taken.get(t.class_name, 0)
        taken[t.class_name] = i + 1
        k = by_kind[t.class_name][i]
        s = _steps(str(k.get("class_name")), k["weights"], t.path)
        if s is None:
            return None
        steps.extend(s)
    plan.notes.append("a .weights.h5 stores no layer order: layers paired by kind, in the order of Keras' "
                      "auto-names (" + ", ".join(str(k.get("name")) for ks in by_kind.values() for k in ks) + ")")
    return steps


def _check_port_step(op: str, layer: dict[str, Any], path: str) -> None:
    """Refuse the recurrent layers whose Keras math differs from torch's (known only with a config)."""
    hp = layer.get("hyperparameters") or {}
    cls = layer.get("class_name")
    if cls in ("LSTM", "GRU"):
        for key, want in (("recurrent_activation", "sigmoid"), ("activation", "tanh")):
            got = hp.get(key)
            if got is not None and got != want:
                raise InputError(R.NO_VERIFIED_PORT.code, f"{cls} {layer.get('name')!r} uses {key}={got!r}; torch's "
                                 f"{cls} always uses {want}", path)
    if cls == "GRU" and hp.get("reset_after") is False:
        raise InputError(R.NO_VERIFIED_PORT.code, f"GRU {layer.get('name')!r} has reset_after=False (the Keras 2 "
                         "default): PyTorch's GRU has no equivalent", path)


def _ported_shape(op: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if op in ("transpose", "reorder-gates-transpose"):
        return tuple(reversed(shape)) if len(shape) == 2 else (-1,)
    if op.startswith("row-"):
        return shape[1:] if len(shape) == 2 and shape[0] == 2 else (-1,)
    return shape
