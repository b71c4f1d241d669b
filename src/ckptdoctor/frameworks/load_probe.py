"""Prove that a fixed file loads: build the model for real (CPU) and ``load_state_dict(..., strict=True)``.

``fix`` runs this in a fresh subprocess (``python -m ckptdoctor.frameworks.load_probe JSON``) so that
the proof does not depend on anything the fixing process imported or patched; the result is one JSON
line on stdout. For Keras recurrent layers ported to torch, each layer is also run in Keras (from the
file's own variables) and in torch (from the loaded state) on the same random input, and the outputs
compared: that is what "the conversion is right" means, not just "the shapes fit".

For a Keras model (format ``keras-weights``) the proof is ``model.load_weights(OUT)`` with KERAS_BACKEND
=torch: it must raise nothing and warn nothing, and afterwards every variable the model saves must
equal the file's dataset at its path (no variable silently left at its initial value). PyTorch LSTM/GRU
modules ported into Keras are run in torch (from the source file's tensors) and in the loaded Keras
layer on the same random input, and the outputs compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

TOLERANCE = 1e-5


def probe_in_subprocess(target: str, model_args: str | None, path: str, fmt: str,
                        recurrent: list[dict[str, Any]], timeout: float = 600) -> dict[str, Any]:
    request = {"target": target, "model_args": model_args, "path": os.path.abspath(path), "format": fmt,
               "recurrent": recurrent}
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "torch")
    try:
        proc = subprocess.run([sys.executable, "-m", "ckptdoctor.frameworks.load_probe", json.dumps(request)],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"the load check did not finish within {timeout:.0f} s", "process": "subprocess"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"the load check crashed (exit {proc.returncode}): {tail}",
                "process": "subprocess"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process"] = "subprocess"
    return result


def probe_object(model: Any, path: str, fmt: str, recurrent: list[dict[str, Any]]) -> dict[str, Any]:
    """The same check in this process, on a copy of a live model (the API was given an object)."""
    import copy

    if fmt == "keras-weights":
        return _probe_keras_object(model, path, recurrent)
    try:
        target = copy.deepcopy(model)
        if any(p.is_meta for p in target.parameters()):
            target = target.to_empty(device="cpu")
    except Exception as exc:  # a model that cannot be copied: load into it directly would change it
        return {"ok": False, "error": f"cannot copy the model to test the load: {type(exc).__name__}: {exc}",
                "process": "in-process"}
    result = _load(target, path, fmt, recurrent)
    result["process"] = "in-process"
    return result


def _read_state(path: str, fmt: str) -> tuple[Any, str]:
    if fmt == "safetensors":
        from safetensors.torch import load_file

        return load_file(path), "safetensors.torch.load_file"
    import torch

    return torch.load(path, weights_only=True, map_location="cpu"), "torch.load(weights_only=True)"


def _load(model: Any, path: str, fmt: str, recurrent: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        state, loader = _read_state(path, fmt)
    except Exception as exc:
        return {"ok": False, "error": f"reading the file failed: {type(exc).__name__}: {exc}"}
    try:
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        return {"ok": False, "loader": loader, "error": f"load_state_dict(strict=True) raised {type(exc).__name__}: "
                                                       + (text[:400] + " ..." if len(text) > 400 else text)}
    result: dict[str, Any] = {"ok": True, "loader": loader, "call": f"model.load_state_dict({loader}, strict=True)",
                              "tensors": len(state)}
    if recurrent:
        checks = [_compare_recurrent(model, r) for r in recurrent]
        result["recurrent"] = checks
        bad = [c for c in checks if not c.get("ok")]
        if bad:
            result["ok"] = False
            result["error"] = "; ".join(c.get("error", "") for c in bad)
    return result


def _compare_recurrent(model: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the Keras layer (file's variables) and the torch module (loaded state) on one input."""
    import numpy as np
    import torch

    from ckptdoctor.frameworks import ensure_keras_backend
    from ckptdoctor.readers import read

    ensure_keras_backend()
    out: dict[str, Any] = {"module": spec["module"], "kind": spec["kind"]}
    try:
        import keras
    except Exception as exc:  # no Keras to compare with: the port is not verified
        out.update(ok=False, error=f"{spec['kind']} {spec['module']!r}: Keras is needed to verify the port ({exc})")
        return out
    snap = read(spec["file"])
    src = spec["sources"]
    kernel, recurrent, bias = (np.asarray(snap.tensor(src[k]).read(), dtype=np.float32)
                               for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0"))
    units = recurrent.shape[0]
    module = model.get_submodule(spec["module"])
    layer_cls = keras.layers.GRU if spec["kind"] == "GRU" else keras.layers.LSTM
    kwargs = {"reset_after": True} if spec["kind"] == "GRU" else {}
    layer = layer_cls(units, return_sequences=True, **kwargs)
    x = np.random.default_rng(0).standard_normal((2, 5, kernel.shape[0])).astype(np.float32)
    layer.build(x.shape)
    layer.set_weights([kernel, recurrent, bias])
    expected = np.asarray(keras.ops.convert_to_numpy(layer(x)))
    xt = torch.from_numpy(x if getattr(module, "batch_first", False) else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        got = module(xt.to(next(module.parameters()).dtype))[0].float().numpy()
    if not getattr(module, "batch_first", False):
        got = got.transpose(1, 0, 2)
    diff = float(np.abs(expected - got).max())
    out["max_abs_diff"] = diff
    out["ok"] = diff <= TOLERANCE
    if not out["ok"]:
        out["error"] = f"{spec['kind']} {spec['module']!r}: torch and Keras outputs differ by {diff:.3g}"
    return out


def _probe_keras_object(model: Any, path: str, recurrent: list[dict[str, Any]]) -> dict[str, Any]:
    """A live Keras model: load into a clone (never into the caller's model)."""
    try:
        import keras

        clone = keras.models.clone_model(model)
    except Exception as exc:  # a subclassed model without get_config: no way to copy it
        return {"ok": False, "process": "in-process",
                "error": f"cannot copy the Keras model to test the load ({type(exc).__name__}: {exc}); pass a "
                         "TARGET so that the load is tried in a fresh process"}
    result = _load_keras(clone, path, recurrent)
    result["process"] = "in-process"
    return result


def _load_keras(model: Any, path: str, recurrent: list[dict[str, Any]]) -> dict[str, Any]:
    import shutil
    import tempfile
    import warnings

    import h5py
    import numpy as np
    from keras import ops

    from ckptdoctor.frameworks.keras_spec import _ensure_built, record_save_paths
    from ckptdoctor.readers import read

    call = "model.load_weights(OUT)"
    folder = tempfile.mkdtemp(prefix="ckptdoctor-probe-")
    try:
        _ensure_built(model, read(path), [])
        # Keras picks the reader by the name's ending; the file being verified still has its temporary name
        link = os.path.join(folder, "fixed.weights.h5")
        os.symlink(os.path.abspath(path), link)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(link)
    except Exception as exc:
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        return {"ok": False, "call": call, "error": f"load_weights raised {type(exc).__name__}: {text[:400]}"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    warned = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if warned:
        return {"ok": False, "call": call, "error": f"load_weights warned: {warned[0][:400]}"}
    records = record_save_paths(model)
    with h5py.File(path, "r") as f:
        for name, v in records:
            ds = f.get(name)
            if ds is None:
                return {"ok": False, "call": call, "error": f"{name} is not in the file: that variable was not loaded"}
            got = np.asarray(ops.convert_to_numpy(v))
            if got.tobytes() != np.asarray(ds[()]).tobytes():
                return {"ok": False, "call": call, "error": f"{name}: the loaded variable differs from the file"}
    result: dict[str, Any] = {"ok": True, "call": call, "loader": "keras load_weights", "variables": len(records)}
    if recurrent:
        checks = [_compare_torch_rnn(model, records, r) for r in recurrent]
        result["recurrent"] = checks
        bad = [c for c in checks if not c.get("ok")]
        if bad:
            result["ok"] = False
            result["error"] = "; ".join(c.get("error", "") for c in bad)
    return result


def _compare_torch_rnn(model: Any, records: list[tuple[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """The source torch LSTM/GRU (built from the file's tensors) against the loaded Keras layer."""
    import numpy as np
    import torch
    from keras import ops

    from ckptdoctor.readers import read

    out: dict[str, Any] = {"module": spec["module"], "kind": spec["kind"], "group": spec["group"]}
    var_ids = {id(v) for p, v in records if p.startswith(spec["group"] + "/vars/")}
    layer = next((la for la in model.layers if any(id(w) in var_ids for w in la.weights)), None)
    if layer is None:
        out.update(ok=False, error=f"no layer of the model owns {spec['group']!r}")
        return out
    snap = read(spec["file"])
    state = {k: torch.from_numpy(np.array(snap.tensor(n).read(), dtype=np.float32)) for k, n in spec["sources"].items()}
    hidden, inputs = state["weight_hh_l0"].shape[1], state["weight_ih_l0"].shape[1]
    rnn = getattr(torch.nn, spec["kind"])(inputs, hidden, batch_first=True)
    rnn.load_state_dict(state, strict=True)
    x = np.random.default_rng(0).standard_normal((2, 5, inputs)).astype(np.float32)
    got = layer(x)
    got = np.asarray(ops.convert_to_numpy(got[0] if isinstance(got, (list, tuple)) else got), dtype=np.float32)
    with torch.no_grad():
        seq = rnn(torch.from_numpy(x))[0].numpy()
    expected = seq if got.ndim == 3 else seq[:, -1]
    diff = float(np.abs(expected - got).max()) if expected.shape == got.shape else float("inf")
    out["max_abs_diff"] = diff
    out["ok"] = diff <= TOLERANCE
    if not out["ok"]:
        out["error"] = f"{spec['kind']} {spec['module']!r}: Keras and torch outputs differ by {diff:.3g}"
    return out


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    try:
        from ckptdoctor.frameworks import ensure_keras_backend
        from ckptdoctor.frameworks.target import parse_model_args, resolve

        ensure_keras_backend()
        args, kwargs = parse_model_args(request.get("model_args"))
        model = resolve(request["target"])(*args, **kwargs)  # on CPU: real tensors to load into
        if request["format"] == "keras-weights":
            result = _load_keras(model, request["path"], request.get("recurrent") or [])
        else:
            result = _load(model, request["path"], request["format"], request.get("recurrent") or [])
    except Exception as exc:  # report, never a traceback: the parent prints one line
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
