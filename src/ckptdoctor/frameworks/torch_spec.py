"""A live ``torch.nn.Module`` -> ModelSpec: the state_dict the code expects, and the hyperparameters
that explain each shape. torch is imported here (and only in ``frameworks/``), lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ckptdoctor.spec import LayerSpec, ModelSpec, StateEntry


def is_torch_module(obj: Any) -> bool:
    cls = type(obj)
    # Cheap test first: never import torch just to find out an object is not a module.
    if not any(c.__module__.startswith("torch") for c in cls.__mro__):
        return False
    import torch

    return isinstance(obj, torch.nn.Module)


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def spec_from_module(model: Any) -> ModelSpec:
    """Describe ``model`` the way ``load_state_dict`` sees it: every key of ``state_dict()``, plus the
    non-persistent buffers (present on the module, never saved, never expected on load)."""
    import torch

    state = model.state_dict(keep_vars=True)
    modules = dict(model.named_modules(remove_duplicate=False))
    entries: list[StateEntry] = []
    seen_ids: dict[int, str] = {}
    tied: dict[str, str] = {}
    for key, value in state.items():
        owner = key.rpartition(".")[0]
        mod = modules.get(owner)
        if isinstance(value, torch.nn.Parameter):
            kind = "parameter"
        elif isinstance(value, torch.Tensor):
            kind = "buffer"
        else:  # ``_extra_state`` from get_extra_state(): any picklable object
            kind = "extra"
        if isinstance(value, torch.Tensor):
            shape = tuple(int(d) for d in value.shape)
            dtype = dtype_name(value.dtype)
            if id(value) in seen_ids:
                tied[key] = seen_ids[id(value)]
            else:
                seen_ids[id(value)] = key
        else:
            shape, dtype = (), "object"
        entries.append(StateEntry(
            name=key, shape=shape, dtype=dtype, kind=kind, persistent=True, owner=owner,
            owner_class=type(mod).__name__ if mod is not None else "",
            trainable=bool(getattr(value, "requires_grad", False)),
        ))
    for path, mod in modules.items():
        for name in sorted(getattr(mod, "_non_persistent_buffers_set", ())):
            buf = mod._buffers.get(name)
            if buf is None:
                continue
            key = f"{path}.{name}" if path else name
            entries.append(StateEntry(name=key, shape=tuple(int(d) for d in buf.shape), dtype=dtype_name(buf.dtype),
                                      kind="buffer", persistent=False, owner=path,
                                      owner_class=type(mod).__name__, trainable=False))

    layers: list[LayerSpec] = []
    by_owner: dict[str, list[str]] = {}
    for e in entries:
        if e.persistent:
            by_owner.setdefault(e.owner, []).append(e.name)
    for path, mod in modules.items():
        if path not in by_owner and path != "":
            continue
        cls = type(mod)
        layers.append(LayerSpec(path=path, class_name=cls.__name__, module=cls.__module__,
                                params=hyperparameters(mod), weights=by_owner.get(path, [])))

    devices = {str(t.device) for t in state.values() if isinstance(t, torch.Tensor)}
    custom = sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in modules.values()
                     if not type(m).__module__.startswith("torch.")})
    spec = ModelSpec(framework="pytorch", class_name=type(model).__name__, module=type(model).__module__,
                     state=entries, layers=layers)
    spec.facts.update({"hf_model": hasattr(model, "resize_token_embeddings"), "tied": tied, "devices": sorted(devices), "custom_classes": custom,
                       "torch_version": torch.__version__})
    return spec


def hyperparameters(mod: Any) -> dict[str, Any]:
    """The constructor arguments that decide the shapes of a module's tensors (known torch classes)."""
    import torch.nn as nn

    def pick(*names: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in names:
            v = getattr(mod, n, None)
            if isinstance(v, (int, float, bool, str)) or v is None:
                out[n] = v
            elif isinstance(v, (tuple, list)) and all(isinstance(x, (int, float)) for x in v):
                out[n] = list(v)
        return out

    if isinstance(mod, nn.Linear):
        return {**pick("in_features", "out_features"), "bias": mod.bias is not None}
    if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
        return pick("num_embeddings", "embedding_dim", "padding_idx")
    if isinstance(mod, nn.RNNBase):
        return pick("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional",
                    "proj_size")
    if isinstance(mod, nn.modules.conv._ConvNd):
        return {**pick("in_channels", "out_channels", "kernel_size", "stride", "padding", "groups"),
                "bias": mod.bias is not None}
    if isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
        return pick("normalized_shape", "num_groups", "num_channels", "eps", "elementwise_affine")
    if isinstance(mod, nn.modules.batchnorm._NormBase):
        return pick("num_features", "eps", "momentum", "affine", "track_running_stats")
    if isinstance(mod, nn.MultiheadAttention):
        return pick("embed_dim", "num_heads", "kdim", "vdim", "batch_first")
    # A custom module: its plain int attributes often are the constructor arguments.
    return {k: v for k, v in vars(mod).items()
            if not k.startswith("_") and isinstance(v, (int, bool)) and k != "training"}


def build_module(factory: Any, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """Call a torch model factory on the meta device (no weight memory). If the code refuses (it
    calls ``.numpy()``, touches values, ...), fall back to CPU and say so."""
    import torch

    notes: list[str] = []
    try:
        with torch.device("meta"), _no_init():
            model = factory(*args, **kwargs)
        if is_torch_module(model):
            notes.append("model built on the meta device (no weights allocated)")
            return model, notes
    except Exception as exc:  # the user's code may do anything; CPU is the honest fallback
        notes.append(f"building on the meta device failed ({type(exc).__name__}: {exc}); built on CPU instead")
    model = factory(*args, **kwargs)
    return model, notes


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Skip ``torch.nn.init`` while building on the meta device: there are no values to initialise, and
    the per-tensor init calls dominate the build time of large models (transformers does the same)."""
    import torch.nn.init as init

    names = [n for n in ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "xavier_uniform_",
                         "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_") if hasattr(init, n)]
    saved = {n: getattr(init, n) for n in names}

    def skip(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    try:
        for n in names:
            setattr(init, n, skip)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)
