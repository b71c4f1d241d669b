"""D family: dtypes and tensor storage (the article's cause 3).

D1xx are found on a live model by ``lint`` and ``roundtrip`` (state a save will not keep, storage a
save writes badly). D2xx compare a file's dtypes with the model's (``check``). D3xx need only the file.
The framework-touching inspection lives in ``frameworks/torch_hazards.py`` and ``keras_hazards.py``;
this module only declares the rules and runs the pure file checks.
"""

from __future__ import annotations

from ckptdoctor.diagnostics import Diagnostic, Fix, Severity
from ckptdoctor.dtypes import FLOATING, INTEGER, ITEMSIZE
from ckptdoctor.rules.registry import Rule, model_check, snapshot_check

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from ckptdoctor.snapshot import Snapshot
    from ckptdoctor.spec import ModelSpec

PLAIN_TENSOR_ATTRIBUTE = Rule("D101", "plain-tensor-attribute", Severity.ERROR,
    "A tensor is kept as a plain attribute: it is not saved and not moved by .to().", """
    ## What it means
    The module holds a `torch.Tensor` in an ordinary attribute (`self.x = torch.zeros(3)`), not as an
    `nn.Parameter` and not through `register_buffer`. torch does not know it belongs to the state.

    ## Why it happens
    Assigning a tensor to `self` looks like registering it, but only `nn.Parameter` values and
    `register_buffer` are tracked. This is what really "loses state" in the article's `torch.no_grad()`
    paragraph: creating a tensor under `no_grad` does not matter, how it is attached does.

    ## What the framework does
    `state_dict()` leaves it out with no warning, so `torch.save(model.state_dict())` and safetensors do
    not store it; after a reload it has the value `__init__` gives it. `.to(device)`, `.double()` and
    `.half()` do not convert it either, so it stays on the CPU in float32 while the rest moves.

    ## Example
    ```python
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)
            self.scale = torch.ones(2)        # D101: lost on save
    ```

    ## Fix
    `self.register_buffer("scale", torch.ones(2))` for state that is not trained, or
    `self.scale = nn.Parameter(torch.ones(2))` for state that is.
""")

NON_PERSISTENT_BUFFER = Rule("D102", "non-persistent-buffer", Severity.WARNING,
    "A buffer is registered with persistent=False: it is not saved.", """
    ## What it means
    `register_buffer(name, t, persistent=False)` keeps the tensor on the module (it moves with `.to()`)
    but leaves it out of `state_dict()`.

    ## Why it happens
    It is meant for caches that `__init__` can recompute (rotary tables, masks). It becomes a bug when
    the buffer is changed after `__init__` (running statistics, a vocabulary mask learnt in training).

    ## What the framework does
    Saving keeps no copy. After a reload the buffer has its `__init__` value, silently. Loading a
    state_dict that does contain the key with `strict=True` raises `Unexpected key(s) in state_dict`.
    `roundtrip` turns this into an error when the value really differs after the reload.

    ## Example
    ```python
    self.register_buffer("counts", torch.zeros(10), persistent=False)
    ...
    self.counts += batch_counts      # D102: training result not saved
    ```

    ## Fix
    Register it with `persistent=True` (the default) if its value matters after training.
""")

PLAIN_MODULE_CONTAINER = Rule("D103", "modules-in-plain-container", Severity.ERROR,
    "Modules are kept in a plain list or dict: their weights are not saved (or trained).", """
    ## What it means
    A Python `list`, `tuple` or `dict` attribute holds `nn.Module` objects. torch only registers
    sub-modules assigned directly or through `nn.ModuleList` / `nn.ModuleDict`.

    ## What the framework does
    Their parameters are missing from `state_dict()` and from `parameters()`: they are not saved, not
    given to the optimizer, and not moved by `.to()`. Nothing warns.

    ## Example
    ```python
    self.blocks = [nn.Linear(8, 8) for _ in range(3)]      # D103
    ```

    ## Fix
    `self.blocks = nn.ModuleList([...])` or `nn.ModuleDict({...})`.
""")

TIED_PARAMETERS = Rule("D104", "tied-parameters", Severity.WARNING,
    "Two state entries share one storage (tied weights): safetensors refuses or drops the alias.", """
    ## What it means
    Two names in the state point to the same memory, e.g. an embedding tied to the output layer
    (`self.out.weight = self.emb.weight`).

    ## What the framework does
    `torch.save` keeps the sharing (one storage, two names). `safetensors.torch.save_file` raises
    `RuntimeError: Some tensors share memory, this will lead to duplicate memory on disk ...`.
    `safetensors.torch.save_model` stores only one name and records the other in the metadata: the
    file loads back with `load_model`, but `model.load_state_dict(load_file(f))` raises
    `Missing key(s) in state_dict` for the dropped name.

    ## Fix
    Use `safetensors.torch.save_model` / `load_model` (not `save_file` + `load_state_dict`), or
    re-tie after loading. If the two must differ, `.clone()` one of them.
""")

STORAGE_VIEW = Rule("D105", "view-of-larger-storage", Severity.WARNING,
    "A tensor is a view of a larger storage: torch.save writes the whole storage.", """
    ## What it means
    The tensor is a slice of a bigger tensor (`big[2:5]`, a chunk of a fused weight). It uses only
    part of its storage.

    ## What the framework does
    `torch.save` writes the entire storage once, so the file carries bytes that no saved tensor uses.
    safetensors refuses a slice that shares memory with another saved tensor.

    ## Fix
    Save `t.clone()` (or `{k: v.clone() for k, v in sd.items()}`) when views are saved.
""")

NON_CONTIGUOUS = Rule("D106", "non-contiguous-tensor", Severity.WARNING,
    "A tensor is not contiguous: safetensors refuses it.", """
    ## What it means
    The tensor's strides do not describe a packed row-major layout (a transpose, `permute`, or a
    strided slice kept as a parameter).

    ## What the framework does
    `safetensors` raises `ValueError: You are trying to save a non contiguous tensor: ...`.
    `torch.save` stores it with its strides and it reloads non-contiguous.

    ## Fix
    `param.data = param.data.contiguous()` before saving, or save `{k: v.contiguous() ...}`.
""")

MIXED_DTYPES = Rule("D107", "mixed-parameter-dtypes", Severity.INFO,
    "Parameters use more than one floating dtype.", """
    ## What it means
    Some floating-point parameters are float32 and others float16/bfloat16 (a half-converted model,
    a layer kept in float32 on purpose).

    ## What the framework does
    The file stores each tensor in its own dtype. A model rebuilt in one dtype and loaded with
    `load_state_dict` casts silently to its own dtypes (see D201): intended mixed precision is lost.

    ## Fix
    Make it deliberate: convert after loading, or load with `assign=True` to keep the file's dtypes.
""")

META_DEVICE = Rule("D108", "meta-device-tensor", Severity.ERROR,
    "A parameter or buffer is on the meta device: it has no data.", """
    ## What it means
    The model (or part of it) was built with `device="meta"` / `init_empty_weights` and never
    materialised.

    ## What the framework does
    `torch.save` writes meta tensors without data; loading them into a real model raises
    `Cannot copy out of meta tensor; no data!`. safetensors raises `NotImplementedError` on save.

    ## Fix
    `model.to_empty(device="cpu")` and then load real weights, or `load_state_dict(sd, assign=True)`.
""")

ROUNDTRIP_TENSOR_DIFFERS = Rule("D150", "roundtrip-tensor-differs", Severity.ERROR,
    "After a save and a reload in a fresh process, a tensor differs from the live model.", """
    ## What it means
    `ckptdoctor roundtrip` saved the model, rebuilt it in a new Python process the way an inference
    program would, and compared every tensor bit for bit with the trained object. This one differs
    (or is missing). When a lint rule explains why (D101, D102, D103, ...), it is named in `related`.

    ## What the framework does
    Nothing warns: the saved file simply did not carry this value.

    ## Fix
    Apply the fix of the related rule; then run `ckptdoctor roundtrip` again.
""")

ROUNDTRIP_OUTPUT_DIFFERS = Rule("D151", "roundtrip-output-differs", Severity.ERROR,
    "After a save and a reload, the model's output on a sample input differs.", """
    ## What it means
    The reloaded model computes something else than the live one on the same input.

    ## Why it happens
    State that was not saved (D101, D102, D103), a different dtype policy, or a layer rebuilt from an
    incomplete config (C102).

    ## Fix
    See the other findings of the same run; they name the lost state.
""")

DTYPE_CAST_ON_LOAD = Rule("D201", "dtype-cast-on-load", Severity.WARNING,
    "The file stores a tensor in another dtype than the model: load_state_dict casts it silently.", """
    ## What it means
    The file and the model agree on a name and shape but not on the dtype.

    ## What the framework does
    torch `load_state_dict` copies into the model's own tensor, so the value is cast with no message:
    float16 or bfloat16 into float32 is exact (the file's precision is all you get), float32 into
    float16/bfloat16 rounds. `load_state_dict(sd, assign=True)` instead keeps the file's dtype, so the
    model ends up in the file's dtype. Keras `load_weights` casts to the variable's dtype.

    ## Example
    A float32 checkpoint loaded into `model.half()`: every weight is rounded to float16.

    ## Fix
    Decide which dtype you want: convert the model first (`model.to(torch.float16)`) or the file
    (`ckptdoctor convert`), or pass `assign=True` to keep the file's dtypes.
""")

FLOAT_INTO_INTEGER = Rule("D202", "float-into-integer", Severity.ERROR,
    "A floating tensor in the file goes into an integer tensor of the model: it is truncated.", """
    ## What it means
    The model has an integer parameter or buffer (a step counter, token ids, an index table) and the
    file stores floats under that name (or the other way round).

    ## What the framework does
    `load_state_dict` casts silently: `[1.7, 2.2, 3.9]` becomes `[1, 2, 3]` (truncation toward zero).
    Integers loaded into a float tensor are exact up to 2**24 (float32).

    ## Fix
    Find out why the file has floats there (an old version of the code?); fix the file with an
    explicit `torch.round(...).long()` if rounding is what you mean.
""")

KERAS_MIXED_PRECISION = Rule("D301", "keras-mixed-precision-policy", Severity.INFO,
    "Layers use a mixed precision policy: variables are stored in float32, compute is float16/bfloat16.", """
    ## What it means
    With `mixed_float16` or `mixed_bfloat16`, a layer keeps float32 variables and computes in the
    half type. The file stores the float32 variables and the policy name in the config.

    ## What the framework does
    `load_model` restores the `mixed_*` policies from the config whatever the current global policy,
    so the reloaded model computes in half precision again. A float32 model that calls `load_weights`
    on the same file gets the exact float32 weights but computes in float32: outputs differ by about
    1e-4 (measured 2.4e-4 on the torch backend). Nothing warns either way.

    ## Fix
    Nothing is lost. If a float32 model should behave like the trained one, build it under
    `keras.config.set_dtype_policy("mixed_float16")` before `load_weights`.
""")

KERAS_POLICY_DIFFERS = Rule("D302", "keras-policy-differs-from-global", Severity.INFO,
    "The file's layers use a dtype policy other than the current global policy.", """
    ## What it means
    The config stores a dtype policy per layer (e.g. `float16` or `mixed_float16`) and this process's
    global policy is different.

    ## What the framework does
    `load_model` uses the stored per-layer policies, not the global one. A model built from code under
    the global policy and filled with `load_weights` computes with the global policy instead.

    ## Fix
    Set the policy you want before building: `keras.config.set_dtype_policy(...)`.
""")

NUMPY_NO_BFLOAT16 = Rule("D303", "numpy-cannot-read-dtype", Severity.INFO,
    "The file holds bfloat16 or float8 tensors, which plain numpy cannot represent.", """
    ## What it means
    numpy has no bfloat16 or float8 dtype. Tools that read the file through numpy fail.

    ## What the framework does
    `safetensors.numpy.load_file` raises `TypeError: data type 'bfloat16' not understood`, unless
    something in the process imported `ml_dtypes` first (keras, jax and tensorflow do: it registers
    bfloat16 with numpy), so the same script can work in a notebook and fail in a small service.
    torch (`safetensors.torch.load_file`, `torch.load`) reads it fine.

    ## Fix
    Read it with torch, or with the `ml_dtypes` package (`ml_dtypes.bfloat16`), or convert the file
    to float32/float16 first (`ckptdoctor convert`).
""")


NON_NUMERIC_ARRAY = Rule("D304", "array-not-a-tensor", Severity.INFO,
    "A .npy/.npz array holds strings, dates, records, raw bytes or long doubles: listed, not a tensor.", """
    ## What it means
    numpy files often carry more than weights: a vocabulary as a `<U12` string array, timestamps as
    `datetime64`, a structured (record) array, raw `V` bytes, or `float128`. These are not tensors a
    framework can load into a layer, so ckptdoctor lists them here instead of in the tensor table
    (and `diff`, `convert` and `--values` leave them out).

    ## What the framework does
    `np.load` reads them (only object arrays need `allow_pickle=True`). `torch.from_numpy` refuses
    strings, dates and records (`TypeError: can't convert np.ndarray of type numpy.str_`), and
    `safetensors.numpy.save_file` has no dtype for them.

    ## Fix
    Nothing to fix if the array is side data (a vocabulary, a config). If a layer needs it, store
    numbers: token ids instead of strings, float32/float64 instead of float128.
""")


# -- file-only checks -----------------------------------------------------------------------------

_NUMPY_MISSING = {"bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                  "float8_e8m0fnu"}


@snapshot_check
def check_numpy_unreadable_dtypes(snapshot: Snapshot) -> list[Diagnostic]:
    """bf16/fp8 tensors: say which readers fail on them (safetensors.numpy, np.load)."""
    counts: dict[str, int] = {}
    for t in snapshot.tensors:
        if t.dtype in _NUMPY_MISSING:
            counts[t.dtype] = counts.get(t.dtype, 0) + 1
    if not counts:
        return []
    found = ", ".join(f"{n} {d}" for d, n in sorted(counts.items()))
    reader = ("`safetensors.numpy.load_file` raises `TypeError: data type 'bfloat16' not understood` in a "
              "process that has not imported ml_dtypes (keras, jax and tensorflow import it)"
              if snapshot.framework == "safetensors" or snapshot.format.startswith("safetensors")
              else "numpy-based readers cannot represent these dtypes")
    return [NUMPY_NO_BFLOAT16.diag(
        f"{found} tensor(s): plain numpy has no such dtype",
        subject=snapshot.path, found=sorted(counts), framework_behavior=reader + "; torch reads them.",
        fix="read with torch (safetensors.torch.load_file) or with ml_dtypes, or convert to float32",
    )]


def _policy_name(dtype_cfg: object) -> str | None:
    """The policy name of a Keras layer's ``dtype`` config entry (a string or a DTypePolicy dict)."""
    if isinstance(dtype_cfg, str):  # Keras 2 and simple configs: a float or mixed policy name
        return dtype_cfg if dtype_cfg.startswith("mixed_") or dtype_cfg in FLOATING else None
    if isinstance(dtype_cfg, dict) and "Policy" in str(dtype_cfg.get("class_name", "")):
        inner = dtype_cfg.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
    return None


def _walk_layer_policies(node: object, path: str, out: dict[str, list[str]]) -> None:
    if isinstance(node, dict):
        cfg = node.get("config")
        if isinstance(cfg, dict) and "class_name" in node:
            # an InputLayer's dtype is the input tensor's dtype (int32 tokens), not a policy
            name = None if node["class_name"] == "InputLayer" else _policy_name(cfg.get("dtype"))
            if name is not None:
                out.setdefault(name, []).append(f"{path}/{cfg.get('name', node['class_name'])}".lstrip("/"))
            here = f"{path}/{cfg.get('name', '')}".rstrip("/")
            for key, value in cfg.items():
                if key != "dtype":
                    _walk_layer_policies(value, here, out)
            return
        for value in node.values():
            _walk_layer_policies(value, path, out)
    elif isinstance(node, list):
        for value in node:
            _walk_layer_policies(value, path, out)


def _current_keras_policy() -> str | None:
    """The global policy of this process, known only if keras is already imported (never import it)."""
    import sys

    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.config.dtype_policy().name)
    except Exception:  # an old or partial keras: the policy is simply unknown
        return None


@snapshot_check
def check_keras_dtype_policies(snapshot: Snapshot) -> list[Diagnostic]:
    if not snapshot.config:
        return []
    policies: dict[str, list[str]] = {}
    _walk_layer_policies(snapshot.config, "", policies)
    out: list[Diagnostic] = []
    mixed = {name: layers for name, layers in policies.items() if name.startswith("mixed_")}
    for name, layers in sorted(mixed.items()):
        half = name.removeprefix("mixed_")
        stored = sorted({t.dtype for t in snapshot.tensors if t.dtype in FLOATING}) or ["float32"]
        out.append(KERAS_MIXED_PRECISION.diag(
            f"{len(layers)} layer(s) use the {name!r} policy: variables stored as {', '.join(stored)}, "
            f"compute in {half}",
            subject=", ".join(layers[:5]) + (" ..." if len(layers) > 5 else ""),
            found=name, expected="float32",
            framework_behavior=(f"load_model restores {name!r} from the config; a float32 model that calls "
                                "load_weights gets the same float32 weights but computes in float32 "
                                "(outputs differ by ~1e-4)"),
            fix=f"nothing is lost; build with keras.config.set_dtype_policy({name!r}) before load_weights "
                "to compute as in training",
            details={"layers": layers},
        ))
    current = _current_keras_policy()
    if current is not None:
        for name, layers in sorted(policies.items()):
            if name == current or name in mixed:  # mixed policies are explained by D301 already
                continue
            out.append(KERAS_POLICY_DIFFERS.diag(
                f"{len(layers)} layer(s) store policy {name!r}; this process's global policy is {current!r}",
                subject=", ".join(layers[:5]) + (" ..." if len(layers) > 5 else ""),
                expected=current, found=name,
                framework_behavior=f"load_model keeps {name!r} per layer; a model built from code "
                                   f"uses {current!r}",
                fix=f"keras.config.set_dtype_policy({name!r}) before building, if the model should "
                    "compute as saved",
            ))
    return out


# -- file against model ---------------------------------------------------------------------------

def _cast_kind(file_dtype: str, model_dtype: str) -> str:
    if file_dtype in FLOATING and model_dtype in INTEGER:
        return "truncate"
    if file_dtype in FLOATING and model_dtype in FLOATING:
        if ITEMSIZE.get(model_dtype, 0) < ITEMSIZE.get(file_dtype, 0) or {file_dtype, model_dtype} == {
                "float16", "bfloat16"}:
            return "narrow"
        return "widen"
    return "other"


@model_check
def check_file_vs_model_dtypes(snapshot: Snapshot, spec: ModelSpec) -> list[Diagnostic]:
    """Names present in both with different dtypes: say what load_state_dict / load_weights will do."""
    model = {e.name: e for e in spec.state}
    narrow: list[tuple[str, str, str]] = []
    widen: list[tuple[str, str, str]] = []
    out: list[Diagnostic] = []
    for t in snapshot.tensors:
        entry = model.get(t.name)
        if entry is None or entry.dtype == t.dtype:
            continue
        kind = _cast_kind(t.dtype, entry.dtype)
        if kind == "truncate":
            out.append(FLOAT_INTO_INTEGER.diag(
                f"the file stores {t.dtype}, the model's {entry.kind} is {entry.dtype}: values are truncated",
                subject=t.name, expected=entry.dtype, found=t.dtype,
                framework_behavior="load_state_dict casts silently toward zero: [1.7, 2.2, 3.9] -> [1, 2, 3]",
                fix=f"check why the file has {t.dtype} here; convert explicitly with torch.round(...).long() "
                    "if rounding is intended",
            ))
        elif kind == "narrow":
            narrow.append((t.name, t.dtype, entry.dtype))
        else:
            widen.append((t.name, t.dtype, entry.dtype))
    assign = "load_state_dict(sd, assign=True) keeps the file's dtype instead"
    for group, severity, what in ((narrow, Severity.WARNING, "rounds to the model's lower precision"),
                                  (widen, Severity.INFO, "is exact (the file's precision is all you get)")):
        if not group:
            continue
        pairs = sorted({(f, m) for _, f, m in group})
        label = ", ".join(f"{f} -> {m}" for f, m in pairs)
        names = [n for n, _, _ in group]
        out.append(DTYPE_CAST_ON_LOAD.diag(
            f"{len(group)} tensor(s) will be cast {label} on load; the cast {what}",
            subject=names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more",
            expected=sorted({m for _, _, m in group}), found=sorted({f for _, f, _ in group}),
            framework_behavior=f"torch load_state_dict casts silently into the model's dtype; {assign}. "
                               "Keras load_weights casts to the variable dtype.",
            fix="convert the model to the file's dtype first, or convert the file, or pass assign=True",
            fix_plan=Fix("cast", "cast the file's tensors to the model's dtypes",
                         {"dtypes": {n: m for n, _, m in group}}),
            severity=severity, details={"tensors": names},
        ))
    return out


@snapshot_check
def check_non_numeric_arrays(snapshot: Snapshot) -> list[Diagnostic]:
    """numpy arrays that are not tensors (strings, dates, records...): say they are there."""
    arrays = snapshot.metadata.get("unsupported_arrays") or []
    if not arrays:
        return []
    listed = ", ".join(f"{a.get('name')!r} {a.get('descr')} {a.get('shape')}" for a in arrays[:6])
    more = f" and {len(arrays) - 6} more" if len(arrays) > 6 else ""
    return [NON_NUMERIC_ARRAY.diag(
        f"{len(arrays)} array(s) that are not tensors: {listed}{more}",
        subject=str(arrays[0].get("name")), path=snapshot.path, found=[str(a.get("descr")) for a in arrays],
        framework_behavior="np.load reads them; torch.from_numpy raises `TypeError: can't convert np.ndarray of "
                           "type numpy.str_` (numpy.datetime64, numpy.void, ...); safetensors has no dtype for them",
        fix="nothing if they are side data (a vocabulary); store token ids or float32 if a layer needs them",
        details={"arrays": arrays})]
