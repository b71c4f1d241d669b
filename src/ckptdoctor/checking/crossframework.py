"""A Keras file checked against a PyTorch model: the same architecture stored in another layout.

Layers are paired in order by kind (Embedding-Embedding, Dense-Linear, LSTM-LSTM, GRU-GRU) and each
tensor gets a conversion step (reference/keras-tf-messages.md section 6, validated numerically):
Dense ``kernel [in, out]`` -> Linear ``weight [out, in]`` (transpose); LSTM ``kernel [in, 4u]`` ->
``weight_ih_l0 [4h, in]`` (transpose; gate order i, f, c, o equals torch's i, f, g, o), one Keras
bias -> ``bias_ih_l0`` with ``bias_hh_l0`` zero; GRU gates z, r, h -> torch r, z, n (reorder, then transpose).
"""

from __future__ import annotations

from typing import Any

from ckptdoctor.checking.compare import Comparison
from ckptdoctor.diagnostics import Fix
from ckptdoctor.rules import architecture as A
from ckptdoctor.snapshot import Snapshot
from ckptdoctor.spec import ModelSpec

KIND = {"Embedding": "Embedding", "Dense": "Linear", "LSTM": "LSTM", "GRU": "GRU"}


def _keras_layers(snap: Snapshot) -> list[dict[str, Any]]:
    return [layer for layer in snap.layers if layer.get("weights")]


def _steps(kcls: str, kweights: list[dict[str, Any]], tpath: str) -> list[dict[str, Any]] | None:
    def name(w: dict[str, Any]) -> str:
        return str(w.get("tensor") or w.get("name"))

    p = f"{tpath}." if tpath else ""
    if kcls == "Embedding" and len(kweights) == 1:
        return [{"source": name(kweights[0]), "target": f"{p}weight", "op": "copy"}]
    if kcls == "Dense" and len(kweights) in (1, 2):
        steps = [{"source": name(kweights[0]), "target": f"{p}weight", "op": "transpose"}]
        if len(kweights) == 2:
            steps.append({"source": name(kweights[1]), "target": f"{p}bias", "op": "copy"})
        return steps
    if kcls in ("LSTM", "GRU") and len(kweights) == 3:
        op = "transpose" if kcls == "LSTM" else "reorder-gates-transpose"
        gates = {} if kcls == "LSTM" else {"gates_from": ["z", "r", "h"], "gates_to": ["r", "z", "n"]}
        steps = [{"source": name(kweights[0]), "target": f"{p}weight_ih_l0", "op": op, **gates},
                 {"source": name(kweights[1]), "target": f"{p}weight_hh_l0", "op": op, **gates}]
        if kcls == "LSTM":
            steps += [{"source": name(kweights[2]), "target": f"{p}bias_ih_l0", "op": "copy"},
                      {"source": None, "target": f"{p}bias_hh_l0", "op": "zeros"}]
        else:  # reset_after=True: bias [2, 3u] = input and recurrent biases
            steps += [{"source": name(kweights[2]), "target": f"{p}bias_ih_l0", "op": "row-0-reorder-gates", **gates},
                      {"source": name(kweights[2]), "target": f"{p}bias_hh_l0", "op": "row-1-reorder-gates", **gates}]
        return steps
    return None


def compare_cross(snap: Snapshot, spec: ModelSpec) -> Comparison:
    out = Comparison()
    klayers = _keras_layers(snap)
    tlayers = [layer for layer in spec.layers if layer.weights]
    kinds_k = [KIND.get(str(k.get("class_name")), str(k.get("class_name"))) for k in klayers]
    kinds_t = [t.class_name for t in tlayers]
    steps: list[dict[str, Any]] = []
    problems: list[str] = []
    if kinds_k != kinds_t:
        problems.append(f"layer kinds differ: file {kinds_k}, model {kinds_t}")
    else:
        for k, t in zip(klayers, tlayers, strict=True):
            s = _steps(str(k.get("class_name")), k["weights"], t.path)
            if s is None:
                problems.append(f"no known conversion for {k.get('class_name')} {k.get('name')!r}")
            else:
                steps.extend(s)
    plan = Fix(kind="port-weights", description="convert Keras variables to the torch state_dict layout",
               data={"steps": steps}) if steps and not problems else None
    out.fix_plan = [plan] if plan else []
    out.diagnostics.append(A.CROSS_FRAMEWORK.diag(
        f"a Keras file ({snap.format}) checked against a PyTorch model: the layers "
        + ("correspond one to one; the weights need a layout conversion" if plan else "do not correspond: "
           + "; ".join(problems)),
        subject=snap.path, expected="a torch state_dict", found=f"Keras {snap.format}",
        framework_behavior="torch.load cannot read an HDF5 file (UnpicklingError ... Unsupported operand 72); "
                           "the names and layouts differ in any case",
        fix="convert with the plan (Dense kernel transposed, LSTM kernels transposed, bias_hh zero, GRU gates "
            "reordered), then load_state_dict" if plan else "port the architecture first",
        fix_plan=plan, path=snap.path, details={"steps": steps, "problems": problems}))
    return out
