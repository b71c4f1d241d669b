"""The torch half of ``roundtrip``: save a live module, and (in the fresh child process) rebuild it the
way a separate inference program would, load the file, and compare with the live model's state.

Parent side: ``prepare`` writes the file, the reference state (every tensor of the live object, saved
or not) and the sample input into the work folder, and returns the job for the child. Child side:
``run_child`` reloads and compares; it returns plain JSON data, so the diagnosis is framework-free.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from ckptdoctor.frameworks import torch_hazards as H

FILES = {"torch": "model.pt", "safetensors": "model.safetensors", "module": "model_module.pt"}


class SaveFailed(Exception):
    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exc_type = type(exc).__name__
        self.text = str(exc).strip()


def class_target(cls: type) -> tuple[str | None, str]:
    """How a separate program would name ``cls``: ``module:Qual`` or ``file.py:Qual``; None if it cannot.

    The reason string says why (a class from an interactive ``__main__``, a class local to a function).
    """
    qual = cls.__qualname__
    if "<locals>" in qual:
        return None, f"{cls.__module__}.{qual} is defined inside a function"
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or cls.__module__.startswith("_ckptdoctor_target_"):
        if file and os.path.isfile(file):
            return f"{os.path.abspath(file)}:{qual}", f"imported from {file} under a non-main name"
        return None, f"{cls.__module__}.{qual} was defined interactively (no file to import it from)"
    return f"{cls.__module__}:{qual}", f"imported from module {cls.__module__}"


def callable_target(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    target, reason = class_target(obj)
    if target is None:
        from ckptdoctor.errors import UsageError

        raise UsageError(f"rebuild={obj!r} cannot be named for another process: {reason}")
    return target


def default_input(model: Any) -> Any | None:
    """A small sample input from the first leaf module: token ids for an Embedding, floats otherwise."""
    import torch

    gen = torch.Generator().manual_seed(0)
    for _, mod in model.named_modules():
        if next(mod.children(), None) is not None:
            continue
        if isinstance(mod, torch.nn.Embedding):
            return torch.randint(0, mod.num_embeddings, (2, 8), generator=gen)
        if isinstance(mod, torch.nn.Linear):
            return torch.randn(2, mod.in_features, generator=gen)
        if isinstance(mod, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)):
            return torch.randn(2, 5, mod.input_size, generator=gen)
        if isinstance(mod, torch.nn.Conv2d):
            return torch.randn(2, mod.in_channels, 16, 16, generator=gen)
        if isinstance(mod, torch.nn.Conv1d):
            return torch.randn(2, mod.in_channels, 16, generator=gen)
        if list(mod.parameters(recurse=False)):
            return None  # a layer whose input we cannot guess: skip the output comparison
    return None


def _inner(model: Any) -> Any:
    wrapped = H._wrapper_prefix(model)
    if wrapped is None:
        return model
    return model._orig_mod if wrapped[1] == "_orig_mod." else model.module


def prepare(model: Any, workdir: str, save_as: str, sample_input: Any, rebuild: Any,
            model_args: tuple[list[Any], dict[str, Any]] | None, custom_objects: Any = None) -> dict[str, Any]:
    import torch

    path = os.path.join(workdir, FILES[save_as])
    try:
        if save_as == "torch":
            torch.save(model.state_dict(), path)
        elif save_as == "safetensors":
            from safetensors.torch import save_file

            save_file(model.state_dict(), path)
        else:
            torch.save(model, path)
    except Exception as exc:
        raise SaveFailed(exc) from exc
    state = H.full_state(model)
    reference = {k: t.tensor.detach().to("cpu").clone().contiguous() for k, t in state.items()
                 if not t.tensor.is_meta}
    torch.save(reference, os.path.join(workdir, "reference.pt"))
    if sample_input is None:
        sample_input = default_input(model)
    job: dict[str, Any] = {
        "framework": "pytorch", "save_as": save_as, "file": path, "file_size": os.path.getsize(path),
        "reference": os.path.join(workdir, "reference.pt"), "origins": {k: t.origin for k, t in state.items()},
        "input": None, "live_output": None,
    }
    if sample_input is not None:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                live_out = model(sample_input)
        except Exception as exc:  # the guessed input does not fit: compare tensors only
            job["input_error"] = f"{type(exc).__name__}: {exc}"
            live_out = None
        finally:
            model.train(was_training)
        if live_out is not None:
            torch.save({"input": sample_input, "output": _first_tensor(live_out)},
                       os.path.join(workdir, "io.pt"))
            job["input"] = os.path.join(workdir, "io.pt")
    if rebuild is not None:
        job["target"], job["target_reason"] = callable_target(rebuild), "given with rebuild"
    else:
        job["target"], job["target_reason"] = class_target(type(_inner(model)))
    args, kwargs = model_args or ([], {})
    job["args"], job["kwargs"] = list(args), dict(kwargs)
    return job


def _first_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (tuple, list)) and value:
        return _first_tensor(value[0])
    if isinstance(value, dict) and value:
        return _first_tensor(next(iter(value.values())))
    return None


# -- child side ------------------------------------------------------------------------------------

def _error(stage: str, exc: BaseException) -> dict[str, Any]:
    tb = traceback.format_exception_only(type(exc), exc)
    return {"stage": stage, "type": type(exc).__name__, "message": str(exc).strip(), "text": "".join(tb).strip()}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from ckptdoctor.frameworks.target import resolve

    result: dict[str, Any] = {"loaded": False, "errors": [], "tensors": [], "output": None}
    model = None
    if job["save_as"] == "module":
        try:
            model = torch.load(job["file"])  # the default: weights_only=True
        except Exception as exc:
            result["errors"].append(_error("torch.load(weights_only=True)", exc))
            try:
                model = torch.load(job["file"], weights_only=False)
            except Exception as exc2:
                result["errors"].append(_error("torch.load(weights_only=False)", exc2))
                return result
        result["loaded_with"] = "torch.load"
    else:
        target = job.get("target")
        if target is None:
            result["errors"].append({"stage": "import", "type": "NoClass", "message": job["target_reason"],
                                     "text": job["target_reason"]})
            return result
        try:
            factory = resolve(target)
        except Exception as exc:
            result["errors"].append(_error(f"import {target}", exc))
            return result
        try:
            model = factory(*job["args"], **job["kwargs"])
        except Exception as exc:
            result["errors"].append(_error(f"construct {target}", exc))
            return result
        try:
            if job["save_as"] == "safetensors":
                from safetensors.torch import load_file

                sd = load_file(job["file"])
            else:
                sd = torch.load(job["file"])
            model.load_state_dict(sd, strict=True)
        except Exception as exc:
            result["errors"].append(_error("load_state_dict(strict=True)", exc))
            return result
        result["loaded_with"] = f"{target} + load_state_dict(strict=True)"
    result["loaded"] = True
    reference = torch.load(job["reference"])
    reloaded = {k: t.tensor for k, t in H.full_state(model).items()}
    for name, ref in reference.items():
        result["tensors"].append(_compare(name, ref, reloaded.get(name)))
    if job.get("input"):
        io = torch.load(job["input"])
        model.eval()
        try:
            with torch.no_grad():
                out = _first_tensor(model(io["input"]))
            result["output"] = _compare("output", io["output"], out)
        except Exception as exc:
            result["errors"].append(_error("forward on the sample input", exc))
    return result


def _compare(name: str, ref: Any, got: Any) -> dict[str, Any]:
    import torch

    entry: dict[str, Any] = {"name": name, "shape": list(ref.shape), "dtype": str(ref.dtype).removeprefix("torch.")}
    if got is None:
        return {**entry, "status": "missing"}
    if got.is_meta:
        return {**entry, "status": "meta"}
    got = got.detach().to("cpu").contiguous()
    if tuple(got.shape) != tuple(ref.shape):
        return {**entry, "status": "shape", "found_shape": list(got.shape)}
    if got.dtype != ref.dtype:
        entry["found_dtype"] = str(got.dtype).removeprefix("torch.")
        diff = _max_diff(ref, got.to(ref.dtype))
        return {**entry, "status": "dtype", "max_abs_diff": diff}
    if ref.numel() == 0 or torch.equal(ref.reshape(-1).view(torch.uint8), got.reshape(-1).view(torch.uint8)):
        return {**entry, "status": "equal"}
    a, b = ref.reshape(-1), got.reshape(-1)
    n_diff = int((a != b).sum()) if not a.is_floating_point() else int(((a != b) & ~(a.isnan() & b.isnan())).sum())
    return {**entry, "status": "differs", "max_abs_diff": _max_diff(ref, got), "n_diff": n_diff,
            "numel": int(ref.numel())}


def _max_diff(a: Any, b: Any) -> float | None:
    try:
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    except Exception:  # bool or complex: a count of differing elements says enough
        return None
