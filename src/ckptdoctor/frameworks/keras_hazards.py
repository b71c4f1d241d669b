"""Save hazards of a live Keras 3 model: custom classes a loader cannot find, configs that do not
rebuild the same layer, Lambda layers, unbuilt models, mixed precision. keras is imported lazily."""

from __future__ import annotations

import inspect
import types
from typing import Any

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules import custom_objects as C
from ckptdoctor.rules import dtypes as D

_BUILTIN_PACKAGES = ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras")


def is_builtin(obj: Any) -> bool:
    owner = obj if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) else type(obj)
    module = getattr(owner, "__module__", "") or ""
    return module.split(".", 1)[0] in _BUILTIN_PACKAGES


def all_layers(model: Any) -> list[tuple[str, Any]]:
    """(path, layer) for the model and every nested layer, the model first."""
    out: list[tuple[str, Any]] = [(model.name, model)]
    seen = {id(model)}

    def walk(layer: Any, prefix: str) -> None:
        for sub in getattr(layer, "_layers", None) or getattr(layer, "layers", None) or []:
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            path = f"{prefix}/{sub.name}"
            out.append((path, sub))
            walk(sub, path)

    walk(model, model.name)
    return out


def registration(obj: Any) -> tuple[str | None, bool]:
    """(registered name, registered in this process) of a class or function."""
    from keras.src.saving import object_registration

    target = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
    name = object_registration.get_registered_name(target)
    registered = ">" in name and object_registration.GLOBAL_CUSTOM_OBJECTS.get(name) is target
    return name, registered


def _custom_class_finding(path: str, obj: Any, what: str) -> Diagnostic | None:
    target = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
    module, qual = target.__module__, target.__qualname__
    name, registered = registration(obj)
    local = "<locals>" in qual
    in_main = module == "__main__" or module.startswith("_ckptdoctor_target_")
    if registered and not local and not in_main:
        return None  # a fresh process finds it once `module` is imported
    package = name.split(">", 1)[0] if ">" in name else "my_package"
    decorator = f"@keras.saving.register_keras_serializable(package={package!r})"
    key = name if ">" in name else target.__name__
    if local:
        problem = f"{what} {qual} is defined inside a function: no loading program can import it"
    elif in_main:
        problem = (f"{what} {target.__name__} is defined in the training script ({module}): a loading program "
                   "cannot import it" + ("" if registered else ", and it is not registered"))
    else:
        problem = f"{what} {target.__name__} (module {module}) is not registered"
    return C.KERAS_CUSTOM_CLASS.diag(
        problem, subject=path, expected="registered and importable", found=f"{module}.{qual}",
        framework_behavior=f"load_model without custom_objects raises TypeError: Could not locate "
                           f"{'function' if isinstance(target, types.FunctionType) else 'class'} "
                           f"'{target.__name__}' (.keras) / ValueError: Unknown layer (.h5)",
        fix=(f"move it to an importable module, decorate it with {decorator} and import that module before "
             f"load_model; or load_model(path, custom_objects={{{key!r}: {target.__name__}}})"),
        details={"module": module, "registered_name": name, "registered": registered},
    )


def _config_hazards(path: str, layer: Any) -> list[Diagnostic]:
    try:
        config = layer.get_config()
    except NotImplementedError as exc:
        return [C.KERAS_NON_SERIALIZABLE_ARG.diag(
            f"{type(layer).__name__}.get_config() raises NotImplementedError: it was given a non-serialisable "
            "__init__ argument", subject=path, found="NotImplementedError", expected="a JSON-serialisable config",
            framework_behavior="model.save() raises NotImplementedError: ... must override `get_config()`",
            fix=f"override {type(layer).__name__}.get_config() to return serialisable values and rebuild the "
                "objects in from_config()",
            details={"exception": " ".join(str(exc).split())[:600]},
        )]
    except Exception:  # a broken get_config shows up in the round trip, with its real message
        return []
    captured = getattr(getattr(layer, "_auto_config", None), "config", None)
    args = dict(captured) if isinstance(captured, dict) else {}
    try:
        params = inspect.signature(type(layer).__init__).parameters
    except (TypeError, ValueError):
        return []
    out: list[Diagnostic] = []
    for pname, param in params.items():
        if pname == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or pname in config:
            continue
        value = args.get(pname, getattr(layer, pname, param.default))
        if value is param.empty:
            out.append(_missing_arg(path, layer, pname, value, "it has no default, so from_config fails"))
        elif param.default is not param.empty and not _same(value, param.default):
            out.append(_missing_arg(path, layer, pname, value, f"the reloaded layer gets the default "
                                                                  f"{param.default!r}"))
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and tensors: not comparable as a bool, so treat as different
        return False


def _missing_arg(path: str, layer: Any, pname: str, value: Any, effect: str) -> Diagnostic:
    cls = type(layer).__name__
    return C.KERAS_CONFIG_MISSES_ARG.diag(
        f"{cls} was created with {pname}={value!r} but get_config() does not return {pname!r}: {effect}",
        subject=path, expected=f"{pname!r} in get_config()", found="missing",
        framework_behavior="save and load succeed silently; load_model calls "
                           f"{cls}(**config) without {pname}",
        fix=f"in {cls}.get_config(): config.update({pname}=self.{pname})",
    )


def registered_imports(model: Any) -> list[Any]:
    """The registered custom classes (outside ``__main__``) an inference program would import first."""
    out: list[Any] = []
    for _, layer in all_layers(model):
        if is_builtin(layer):
            continue
        cls = type(layer)
        _, registered = registration(cls)
        if registered and "<locals>" not in cls.__qualname__ and cls.__module__ != "__main__" and cls not in out:
            out.append(cls)
    return out


def lint_keras(model: Any, save_as: str | None = None) -> list[Diagnostic]:
    import keras

    out: list[Diagnostic] = []
    if not model.built:
        out.append(C.KERAS_UNBUILT.diag(
            f"{type(model).__name__} {model.name!r} is not built: it has no weights yet",
            subject=model.name, expected="a built model", found="built=False",
            framework_behavior="model.save() warns 'You are saving a model that has not yet been built' and "
                               "stores no weights; load_weights into it raises",
            fix="start the model with keras.Input(shape=...), or call it once on data / model.build(shape)",
        ))
    mixed: dict[str, list[str]] = {}
    for path, layer in all_layers(model):
        if isinstance(layer, keras.layers.Lambda):
            fn = getattr(layer, "function", None)
            if isinstance(fn, types.FunctionType) and ("<lambda>" in fn.__qualname__ or "<locals>" in fn.__qualname__
                                                       or fn.__module__ == "__main__"):
                out.append(C.lambda_diagnostic(path))
        if not is_builtin(layer):
            found = _custom_class_finding(path, layer, "layer" if path != model.name else "model")
            if found is not None:
                out.append(found)
            out += _config_hazards(path, layer)
        activation = getattr(layer, "activation", None)
        if isinstance(activation, types.FunctionType) and not is_builtin(activation):
            found = _custom_class_finding(path, activation, "activation")
            if found is not None:
                out.append(found)
        policy = getattr(getattr(layer, "dtype_policy", None), "name", "")
        if policy.startswith("mixed_"):
            mixed.setdefault(policy, []).append(path)
    loss = getattr(model, "loss", None)
    if loss is not None and not isinstance(loss, str) and not is_builtin(loss):
        found = _custom_class_finding(f"{model.name} (loss)", loss, "loss")
        if found is not None:
            out.append(found)
    for policy, paths in mixed.items():
        compute = policy.removeprefix("mixed_")
        out.append(D.KERAS_MIXED_PRECISION.diag(
            f"{len(paths)} layer(s) use {policy!r}: variables are stored as float32, compute is {compute}",
            subject=", ".join(paths[:4]) + (" ..." if len(paths) > 4 else ""), expected="float32", found=policy,
            framework_behavior=f"the file stores float32 variables and the {policy!r} policy; load_model "
                               f"computes in {compute} again, a float32 model given load_weights computes in "
                               "float32 (outputs differ by ~1e-4)",
            fix=f"nothing is lost; call keras.config.set_dtype_policy({policy!r}) before building a model for "
                "load_weights",
        ))
    if save_as == "h5":
        out.append(C.KERAS_LEGACY_H5.diag(
            "model.save('*.h5') writes the legacy HDF5 format", subject=model.name, expected=".keras", found=".h5",
            framework_behavior="Keras logs 'You are saving your model as an HDF5 file ... considered legacy'",
            fix="model.save('model.keras') (or model.save_weights('model.weights.h5') for weights only)",
            severity=Severity.WARNING,
        ))
    return out
