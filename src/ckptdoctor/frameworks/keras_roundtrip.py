"""The Keras half of ``roundtrip``: save with ``model.save`` / ``save_weights``; in the fresh child,
``keras.models.load_model`` with no ``custom_objects`` unless given (or rebuild + ``load_weights``), then
compare every variable bit for bit and the outputs. Reference and I/O go through ``.npz`` (no pickle)."""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

from ckptdoctor.frameworks.keras_hazards import registered_imports
from ckptdoctor.frameworks.torch_roundtrip import SaveFailed, callable_target, class_target

FILES = {"keras": "model.keras", "h5": "model.h5", "weights": "model.weights.h5"}

__all__ = ["SaveFailed", "prepare", "run_child"]


def _variables(model: Any) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for i, v in enumerate(model.weights):
        name = getattr(v, "path", None) or f"{i}:{v.name}"
        out[name] = np.array(v.numpy())
    return out


def default_input(model: Any) -> Any | None:
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    inputs = getattr(model, "inputs", None)
    layers = [layer for layer in getattr(model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    first = layers[0] if layers else None
    if isinstance(first, keras.layers.Embedding):
        length = 8
        if inputs and len(inputs) == 1 and inputs[0].shape[1] is not None:
            length = int(inputs[0].shape[1])
        return rng.integers(0, first.input_dim, size=(2, length)).astype("int32")
    if inputs and len(inputs) == 1:
        shape = [2 if d is None else int(d) for d in inputs[0].shape]
        shape[0] = 2
        dtype = str(getattr(inputs[0], "dtype", "float32"))
        if "int" in dtype:
            return rng.integers(0, 10, size=shape).astype(dtype)
        return rng.standard_normal(shape).astype("float32")
    if isinstance(first, keras.layers.Dense) and getattr(first, "kernel", None) is not None:
        return rng.standard_normal((2, int(first.kernel.shape[0]))).astype("float32")
    return None


def _object_target(obj: Any) -> str:
    target, reason = class_target(obj)
    if target is None:
        from ckptdoctor.errors import UsageError

        raise UsageError(f"custom object {obj!r} cannot be imported by another process: {reason}")
    return target


def prepare(model: Any, workdir: str, save_as: str, sample_input: Any, rebuild: Any,
            model_args: tuple[list[Any], dict[str, Any]] | None, custom_objects: Any = None) -> dict[str, Any]:
    import warnings

    import keras
    import numpy as np

    path = os.path.join(workdir, FILES[save_as])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if save_as == "weights":
                model.save_weights(path)
            else:
                model.save(path)
    except Exception as exc:
        raise SaveFailed(exc) from exc
    np.savez(os.path.join(workdir, "reference.npz"), **_variables(model))
    job: dict[str, Any] = {
        "framework": "keras", "save_as": save_as, "file": path, "file_size": os.path.getsize(path),
        "keras_backend": keras.backend.backend(), "reference": os.path.join(workdir, "reference.npz"),
        "input": None, "origins": {}, "policy": keras.config.dtype_policy().name,
        "custom_objects": {k: _object_target(v) for k, v in (custom_objects or {}).items()},
        # an inference program imports the package that defines (and registers) its custom layers
        "imports": [t for t in (class_target(c)[0] for c in registered_imports(model)) if t],
    }
    if sample_input is None and model.built:
        sample_input = default_input(model)
    if sample_input is not None:
        try:
            live = np.asarray(keras.ops.convert_to_numpy(model(sample_input, training=False)))
            np.savez(os.path.join(workdir, "io.npz"), input=np.asarray(sample_input), output=live)
            job["input"] = os.path.join(workdir, "io.npz")
        except Exception as exc:  # the guessed input does not fit: compare variables only
            job["input_error"] = f"{type(exc).__name__}: {exc}"
    if save_as == "weights":
        if rebuild is not None:
            job["target"] = callable_target(rebuild)
        else:  # no builder given: rebuild from the model's own config, as `model_from_json` would
            with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as fh:
                fh.write(model.to_json())
            job["config"] = os.path.join(workdir, "config.json")
        args, kwargs = model_args or ([], {})
        job["args"], job["kwargs"] = list(args), dict(kwargs)
    return job


# -- child side ------------------------------------------------------------------------------------

def _error(stage: str, exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"stage": stage, "type": type(exc).__name__, "message": str(exc).strip()[:4000], "text": text[:6000]}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import keras
    import numpy as np

    from ckptdoctor.frameworks.target import resolve

    warnings.simplefilter("ignore")
    result: dict[str, Any] = {"loaded": False, "errors": [], "tensors": [], "output": None}
    custom: dict[str, Any] = {}
    imported = []
    for target in job.get("imports", []):
        try:
            resolve(target)
            imported.append(target.rsplit(":", 1)[0])
        except Exception as exc:
            result["errors"].append(_error(f"import {target}", exc))
    for key, target in job.get("custom_objects", {}).items():
        try:
            custom[key] = resolve(target)
        except Exception as exc:
            result["errors"].append(_error(f"import custom object {target}", exc))
            return result
    try:
        if job["save_as"] == "weights":
            if job.get("target"):
                model = resolve(job["target"])(*job.get("args", []), **job.get("kwargs", {}))
                how = f"{job['target']}() + load_weights"
            else:
                with open(job["config"], encoding="utf-8") as fh:
                    model = keras.models.model_from_json(fh.read(), custom_objects=custom or None)
                how = "model_from_json(model.to_json()) + load_weights"
            model.load_weights(job["file"])
        else:
            model = keras.models.load_model(job["file"], custom_objects=custom or None)
            how = "keras.models.load_model" + (f"(custom_objects={sorted(custom)})" if custom else "")
    except Exception as exc:
        stage = "load_weights" if job["save_as"] == "weights" else "keras.models.load_model"
        result["errors"].append(_error(stage, exc))
        return result
    if imported:
        how = f"import {', '.join(imported)}; {how}"
    result["loaded"], result["loaded_with"] = True, how
    reference = dict(np.load(job["reference"]))
    reloaded = _variables(model)
    by_position = not set(reference) & set(reloaded) and len(reference) == len(reloaded)
    if by_position:  # a rebuilt model numbers its layers afresh: pair the variables in order
        reloaded = dict(zip(reference, reloaded.values(), strict=True))
    for name, ref in reference.items():
        result["tensors"].append(_compare(name, ref, reloaded.get(name)))
    if job.get("input"):
        io = np.load(job["input"])
        try:
            out = np.asarray(keras.ops.convert_to_numpy(model(io["input"], training=False)))
            result["output"] = _compare("output", io["output"], out)
        except Exception as exc:
            result["errors"].append(_error("forward on the sample input", exc))
    result["policies"] = sorted({getattr(layer.dtype_policy, "name", "") for layer in model.layers})
    json.dumps(result)  # fail here, not in the parent, if something is not JSON
    return result


def _compare(name: str, ref: Any, got: Any) -> dict[str, Any]:
    import numpy as np

    entry: dict[str, Any] = {"name": name, "shape": list(ref.shape), "dtype": str(ref.dtype)}
    if got is None:
        return {**entry, "status": "missing"}
    if got.shape != ref.shape:
        return {**entry, "status": "shape", "found_shape": list(got.shape)}
    if got.dtype != ref.dtype:
        diff = float(np.max(np.abs(ref.astype("float64") - got.astype("float64")))) if ref.size else 0.0
        return {**entry, "status": "dtype", "found_dtype": str(got.dtype), "max_abs_diff": diff}
    if ref.tobytes() == got.tobytes():
        return {**entry, "status": "equal"}
    a, b = ref.astype("float64"), got.astype("float64")
    return {**entry, "status": "differs", "max_abs_diff": float(np.max(np.abs(a - b))),
            "n_diff": int(np.sum(ref != got)), "numel": int(ref.size)}
