"""Live torch / Keras models -> ModelSpec. The ONLY package that imports torch or keras."""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckptdoctor.snapshot import Snapshot
    from ckptdoctor.spec import ModelSpec


def ensure_keras_backend() -> None:
    """Keras defaults to the TensorFlow backend and fails to import without it: pick torch when TF is absent."""
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "torch"


def framework_of(obj: Any) -> str | None:
    """"pytorch", "keras" or None, judged from the class hierarchy (no framework import needed)."""
    cls = obj if isinstance(obj, type) else type(obj)
    mods = [c.__module__ for c in getattr(cls, "__mro__", ())]
    if any(m.startswith(("keras", "tf_keras", "tensorflow")) for m in mods):
        return "keras"
    if any(m.startswith("torch") for m in mods):
        return "pytorch"
    return None


def spec_from_object(obj: Any, snapshot: Snapshot | None = None) -> ModelSpec:
    """The ModelSpec of a live model object (torch ``nn.Module`` or Keras model)."""
    from ckptdoctor.errors import UsageError

    fw = framework_of(obj)
    if fw == "pytorch":
        from ckptdoctor.frameworks.torch_spec import spec_from_module

        return spec_from_module(obj)
    if fw == "keras":
        from ckptdoctor.frameworks.keras_spec import spec_from_keras

        return spec_from_keras(obj, snapshot)
    raise UsageError(f"{type(obj).__module__}.{type(obj).__qualname__} is neither a torch.nn.Module nor a Keras model")


def _factory_framework(factory: Any) -> str | None:
    fw = framework_of(factory) if isinstance(factory, type) else None
    if fw:
        return fw
    module = importlib.import_module(factory.__module__) if getattr(factory, "__module__", None) else None
    names = set()
    for value in vars(module).values() if module else ():
        mod = getattr(value, "__name__", "") if type(value).__name__ == "module" else getattr(value, "__module__", "")
        names.add(str(mod).split(".", 1)[0])
    if names & {"keras", "tensorflow", "tf_keras"}:
        return "keras"
    if "torch" in names:
        return "pytorch"
    return None


def build_from_target(target: str, model_args: str | None = None, snapshot: Snapshot | None = None, *,
                      meta: bool = True) -> tuple[Any, list[str]]:
    """Resolve TARGET, call it with ``--model-args``, return (model, notes). The one way every command
    (check, fix, lint, roundtrip) builds a model from a TARGET.

    With ``meta`` (check, fix: only names, shapes and dtypes matter) it is built as cheaply as possible:
    torch models on the meta device (no weight memory); Keras models normally (then built from their
    input spec or the file's shapes by ``keras_spec``). ``meta=False`` (lint, roundtrip: they inspect
    or save the real tensors) simply calls TARGET."""
    from ckptdoctor.errors import UsageError
    from ckptdoctor.frameworks.target import parse_model_args, resolve

    ensure_keras_backend()
    args, kwargs = parse_model_args(model_args)
    factory = resolve(target)
    fw = _factory_framework(factory) if meta else None
    if fw is None and snapshot is not None and snapshot.framework == "keras":
        fw = "keras"
    try:
        if fw == "keras" or not meta:
            return factory(*args, **kwargs), []
        from ckptdoctor.frameworks.torch_spec import build_module

        model, notes = build_module(factory, args, kwargs)
        return model, notes
    except UsageError:
        raise
    except Exception as exc:  # the user's constructor failed: say so in one line, no traceback
        raise UsageError(f"--model {target}: calling it raised {type(exc).__name__}: {exc}") from None
