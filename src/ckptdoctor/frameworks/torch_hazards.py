"""Save hazards of a live ``torch.nn.Module``: what a save will lose, refuse, or fail to rebuild.

Also ``full_state``: every tensor the live object holds, saved or not, under stable names, so that
``roundtrip`` can show a value the save did not keep as a difference. torch is imported lazily.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules import custom_objects as C
from ckptdoctor.rules import dtypes as D

# Where a tensor of the live object lives, as seen by a save.
STATE = "state"                        # in state_dict(): saved
NON_PERSISTENT = "non-persistent-buffer"
PLAIN_ATTRIBUTE = "plain-attribute"
PLAIN_CONTAINER = "plain-container"    # a parameter/buffer of a module held in a list/dict


@dataclass
class LiveTensor:
    name: str
    tensor: Any
    origin: str
    owner_class: str = ""


def _internal_attrs() -> frozenset[str]:
    import torch

    return frozenset(vars(torch.nn.Module()))


def _container_items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return [(f"[{k!r}]", v) for k, v in value.items() if isinstance(k, (str, int))]
    return []


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def full_state(model: Any) -> dict[str, LiveTensor]:
    """state_dict tensors, non-persistent buffers, plain tensor attributes, and the parameters of
    modules held in plain containers, each named the way it is reached from the model."""
    import torch

    internal = _internal_attrs()
    out: dict[str, LiveTensor] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        if isinstance(value, torch.Tensor):
            out[key] = LiveTensor(key, value, STATE)
    for prefix, module in model.named_modules():
        for name in sorted(getattr(module, "_non_persistent_buffers_set", ())):
            buf = module._buffers.get(name)
            if buf is not None:
                key = _join(prefix, name)
                out[key] = LiveTensor(key, buf, NON_PERSISTENT, type(module).__name__)
        if type(module).__module__.startswith("torch."):
            continue  # torch's own modules keep caches (LSTM._flat_weights) that alias their parameters
        for attr, value in vars(module).items():
            if attr in internal:
                continue
            where = _join(prefix, attr)
            if isinstance(value, torch.Tensor):
                out[where] = LiveTensor(where, value, PLAIN_ATTRIBUTE, type(module).__name__)
                continue
            for suffix, item in _container_items(value):
                if isinstance(item, torch.Tensor):
                    out[where + suffix] = LiveTensor(where + suffix, item, PLAIN_ATTRIBUTE, type(module).__name__)
                elif isinstance(item, torch.nn.Module):
                    for key, t in item.state_dict(keep_vars=True).items():
                        if isinstance(t, torch.Tensor):
                            full = f"{where}{suffix}.{key}"
                            out[full] = LiveTensor(full, t, PLAIN_CONTAINER, type(item).__name__)
    registered = {id(t.tensor) for t in out.values() if t.origin in (STATE, NON_PERSISTENT)}
    return {k: t for k, t in out.items() if t.origin not in (PLAIN_ATTRIBUTE, PLAIN_CONTAINER)
            or id(t.tensor) not in registered}  # an alias of a registered tensor is saved through it


def _class_location(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _wrapper_prefix(model: Any) -> tuple[str, str] | None:
    import torch

    if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return type(model).__name__, "module."
    if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
        return "torch.compile (OptimizedModule)", "_orig_mod."
    return None


def lint_module(model: Any, save_as: str | None = None) -> list[Diagnostic]:
    """Every hazard of ``model``. ``save_as`` (torch, safetensors, module) turns the hazards of that
    save method into errors; without it they are warnings about what the method would do."""

    out: list[Diagnostic] = []
    wrapper = _wrapper_prefix(model)
    if wrapper is not None:
        kind, prefix = wrapper
        out.append(C.WRAPPER_PREFIX.diag(
            f"the model is wrapped by {kind}: every state_dict key starts with {prefix!r}",
            subject=type(model).__name__, expected="keys without prefix", found=f"{prefix}<key>",
            framework_behavior="load_state_dict into the unwrapped model: Missing key(s) for every key, "
                               "Unexpected key(s) for every prefixed one; strict=False loads nothing",
            fix=f"save model.{prefix.rstrip('.')}.state_dict() instead",
        ))
    state = full_state(model)
    out += _lost_state(state)
    out += _container_modules(model)
    out += _storage_hazards(model, save_as)
    out += _dtype_hazards(model)
    out += _pickling_hazards(model, save_as)
    return out


def _lost_state(state: dict[str, LiveTensor]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for t in state.values():
        shape = tuple(t.tensor.shape)
        dtype = str(t.tensor.dtype).removeprefix("torch.")
        if t.origin == PLAIN_ATTRIBUTE:
            out.append(D.PLAIN_TENSOR_ATTRIBUTE.diag(
                f"tensor {shape} {dtype} is a plain attribute of {t.owner_class}: not in state_dict, "
                "lost on save, not moved by .to()/.double()",
                subject=t.name, expected="nn.Parameter or register_buffer", found="plain torch.Tensor attribute",
                framework_behavior="state_dict() leaves it out silently; after a reload it has its __init__ value",
                fix=f"self.register_buffer({t.name.rsplit('.', 1)[-1].split('[')[0]!r}, ...) "
                    "(or nn.Parameter if it is trained)",
            ))
        elif t.origin == NON_PERSISTENT:
            out.append(D.NON_PERSISTENT_BUFFER.diag(
                f"buffer {shape} {dtype} of {t.owner_class} is registered with persistent=False: not saved",
                subject=t.name, expected="persistent=True", found="persistent=False",
                framework_behavior="not in state_dict(); after a reload it has its __init__ value",
                fix="register_buffer(..., persistent=True) if its value after training matters",
            ))
    return out


def _container_modules(model: Any) -> list[Diagnostic]:
    import torch

    internal = _internal_attrs()
    out: list[Diagnostic] = []
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr in internal:
                continue
            held = [(s, m) for s, m in _container_items(value) if isinstance(m, torch.nn.Module)]
            if not held:
                continue
            n_params = sum(p.numel() for _, m in held for p in m.parameters())
            kind = "nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList"
            out.append(D.PLAIN_MODULE_CONTAINER.diag(
                f"{len(held)} module(s) ({', '.join(sorted({type(m).__name__ for _, m in held}))}, "
                f"{n_params} parameters) are kept in a plain {type(value).__name__}: not saved, not trained, "
                "not moved by .to()",
                subject=_join(prefix, attr), expected=kind, found=type(value).__name__,
                framework_behavior="their parameters are missing from state_dict() and parameters(), silently",
                fix=f"self.{attr} = {kind}(...)",
            ))
    return out


def _storage_hazards(model: Any, save_as: str | None) -> list[Diagnostic]:
    import torch

    out: list[Diagnostic] = []
    sd = {k: v for k, v in model.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor)}
    meta = [k for k, v in sd.items() if v.is_meta]
    if meta:
        out.append(D.META_DEVICE.diag(
            f"{len(meta)} tensor(s) are on the meta device (no data)",
            subject=meta[0] if len(meta) == 1 else f"{meta[0]} and {len(meta) - 1} more",
            expected="cpu/cuda tensors", found="device='meta'",
            framework_behavior="torch.save writes no data; loading into a real model raises "
                               "'Cannot copy out of meta tensor; no data!'; safetensors raises on save",
            fix="model.to_empty(device='cpu') then load real weights, or load_state_dict(sd, assign=True)",
            details={"tensors": meta},
        ))
    real = {k: v for k, v in sd.items() if not v.is_meta}
    groups: dict[tuple[str, int], list[str]] = {}
    for key, t in real.items():
        storage = t.untyped_storage()
        groups.setdefault((str(t.device), storage.data_ptr()), []).append(key)
    safetensors = save_as == "safetensors"
    for (_, _), keys in groups.items():
        tensors = [real[k] for k in keys]
        storage_nbytes = tensors[0].untyped_storage().nbytes()
        spans = sorted((t.storage_offset() * t.element_size(),
                        t.storage_offset() * t.element_size() + _span_bytes(t)) for t in tensors)
        used = _union_length(spans)
        if len(keys) > 1:
            identical = len({(t.data_ptr(), tuple(t.shape), tuple(t.stride())) for t in tensors}) == 1
            what = "are the same tensor (tied)" if identical else "are views of one storage"
            out.append(D.TIED_PARAMETERS.diag(
                f"{', '.join(keys)} {what}",
                subject=keys[0], found=keys, expected="one name per storage",
                framework_behavior=("torch.save keeps the sharing; safetensors save_file raises 'Some tensors "
                                    "share memory'; save_model stores only one name (the alias is in the "
                                    "metadata) and load_state_dict(load_file(f)) then raises Missing key(s) "
                                    f"for {', '.join(keys[1:])}"),
                fix="save with safetensors.torch.save_model and load with load_model, or re-tie after "
                    "loading; .clone() one of them if they must differ",
                severity=Severity.ERROR if safetensors else None,
            ))
        wasted = storage_nbytes - used
        if wasted > 0:
            out.append(D.STORAGE_VIEW.diag(
                f"{', '.join(keys)} {'use' if len(keys) > 1 else 'uses'} {used} of the {storage_nbytes} bytes "
                f"of {'their' if len(keys) > 1 else 'its'} storage: torch.save "
                f"writes {wasted} bytes that no saved tensor uses",
                subject=keys[0], expected=used, found=storage_nbytes,
                framework_behavior="torch.save writes whole storages; safetensors stores only the tensor "
                                   "(but refuses slices that share memory)",
                fix=f"save {{k: v.clone() for k, v in sd.items()}} (or assign {keys[0]} = ....clone())",
                details={"wasted_bytes": wasted},
            ))
    for key, t in real.items():
        if not t.is_contiguous():
            out.append(D.NON_CONTIGUOUS.diag(
                f"{tuple(t.shape)} with strides {tuple(t.stride())} is not contiguous",
                subject=key, expected="contiguous", found=f"strides {tuple(t.stride())}",
                framework_behavior="safetensors raises 'You are trying to save a non contiguous tensor'; "
                                   "torch.save keeps the strides",
                fix=f"make {key} contiguous before saving: param.data = param.data.contiguous()",
                severity=Severity.ERROR if safetensors else None,
            ))
    return out


def _span_bytes(t: Any) -> int:
    if t.numel() == 0:
        return 0
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    return (last + 1) * t.element_size()


def _union_length(spans: list[tuple[int, int]]) -> int:
    total, end = 0, -1
    for lo, hi in spans:
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def _dtype_hazards(model: Any) -> list[Diagnostic]:
    counts: dict[str, int] = {}
    for _, p in model.named_parameters():
        if p.is_floating_point():
            name = str(p.dtype).removeprefix("torch.")
            counts[name] = counts.get(name, 0) + p.numel()
    if len(counts) < 2:
        return []
    found = ", ".join(f"{d}: {n} values" for d, n in sorted(counts.items()))
    return [D.MIXED_DTYPES.diag(
        f"parameters use {len(counts)} floating dtypes ({found})",
        subject=type(model).__name__, found=sorted(counts), expected="one dtype",
        framework_behavior="each tensor is saved in its own dtype; a model rebuilt in one dtype casts them "
                           "silently on load_state_dict (assign=True keeps the file's dtypes)",
        fix="make the mix deliberate after loading, or load with assign=True",
    )]


def _pickling_hazards(model: Any, save_as: str | None) -> list[Diagnostic]:
    internal = _internal_attrs()
    module_save = save_as == "module"
    sev = Severity.ERROR if module_save else None
    out: list[Diagnostic] = []
    main_classes: dict[str, list[str]] = {}
    local_classes: dict[str, list[str]] = {}
    for path, module in model.named_modules():
        cls = type(module)
        if cls.__module__.startswith("torch."):
            continue
        if "<locals>" in cls.__qualname__:
            local_classes.setdefault(_class_location(cls), []).append(path or "<root>")
        elif cls.__module__ == "__main__":
            main_classes.setdefault(_class_location(cls), []).append(path or "<root>")
        for attr, value in vars(module).items():
            if attr in internal or not isinstance(value, types.FunctionType):
                continue
            if "<lambda>" in value.__qualname__ or "<locals>" in value.__qualname__:
                out.append(C.TORCH_UNPICKLABLE_ATTRIBUTE.diag(
                    f"attribute holds {value.__qualname__!r}: a whole-module torch.save cannot pickle it",
                    subject=_join(path, attr), found=value.__qualname__, expected="a module-level function",
                    framework_behavior=f"torch.save(model) raises AttributeError: Can't pickle local object "
                                       f"'{value.__qualname__}'",
                    fix="use a module-level function or an nn.Module, or save model.state_dict()",
                    severity=sev,
                ))
    for where, paths in local_classes.items():
        out.append(C.TORCH_LOCAL_CLASS.diag(
            f"class {where} is defined inside a function: no other program can construct it",
            subject=", ".join(paths[:5]), found=where, expected="a module-level class",
            framework_behavior=f"torch.save(model) raises AttributeError: Can't pickle local object "
                               f"'{where.removeprefix('__main__.')}'; a state_dict cannot be loaded elsewhere "
                               "because the class cannot be built",
            fix="define the class at module level in an importable module",
            severity=sev,
        ))
    for where, paths in main_classes.items():
        name = where.removeprefix("__main__.")
        out.append(C.TORCH_CLASS_IN_MAIN.diag(
            f"class {name} is defined in __main__ (the training script): a whole-module save "
            f"stores the reference __main__.{name}",
            subject=", ".join(paths[:5]), found=where, expected="a class in an importable module",
            framework_behavior=(f"torch.load (weights_only=True) raises 'Unsupported global: GLOBAL {where}'; "
                                f"with weights_only=False another program raises AttributeError: Can't get "
                                f"attribute '{name}' on <module '__main__'>"),
            fix=f"save model.state_dict() and rebuild with `from <your module> import {name}` when loading",
            severity=sev,
        ))
    if module_save:
        classes = list(dict.fromkeys(_class_location(type(m)) for _, m in model.named_modules()))
        out.append(C.TORCH_WHOLE_MODULE.diag(
            f"torch.save(model) pickles {len(classes)} class reference(s); torch.load's default "
            "weights_only=True refuses them",
            subject=type(model).__name__, found=classes, expected="a state_dict",
            framework_behavior="torch.load raises UnpicklingError: Weights only load failed ... "
                               f"Unsupported global: GLOBAL {classes[0]}",
            fix="save model.state_dict(); or load with torch.serialization.safe_globals([...every class...])",
        ))
    return out
