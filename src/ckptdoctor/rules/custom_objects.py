"""C1xx: custom objects and serialisability (the article's cause 2), for Keras and torch models.

C101-C109 are Keras (custom classes, get_config, Lambda, build state, file format), C111-C119 torch
whole-module pickling, C131 wrappers that rename keys, C150-C151 what a real round trip hit.
(C2xx, pickled classes found in files, belong to ``rules/security.py``.)

The file check here never imports the modules a file names: it locates them on ``sys.path`` with the
import machinery's finders and reads the source text, so a file cannot make ckptdoctor run code.
"""

from __future__ import annotations

import importlib.machinery
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.rules.registry import Rule, snapshot_check

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ckptdoctor.snapshot import ClassRef, Snapshot

KERAS_CUSTOM_CLASS = Rule("C101", "keras-custom-class-not-loadable", Severity.ERROR,
    "A custom Keras class is needed to load the model, and load_model cannot find it by itself.", """
    ## What it means
    The model config names a class that is not part of Keras (a custom layer, loss, metric,
    activation or model). `keras.models.load_model` never imports your modules: it only finds a custom
    class that is registered in the loading process (`@keras.saving.register_keras_serializable`, run
    when its module is imported) or passed in `custom_objects`.

    ## Why it happens
    The class is defined in the training script (`__main__`) or inside a function, is not decorated,
    or the inference program does not import the module that defines it before loading.

    ## What the framework does
    `.keras`: `TypeError: ... could not be deserialized properly ... Could not locate class 'Name'.
    Make sure custom classes and functions are decorated with
    @keras.saving.register_keras_serializable()`. Legacy `.h5`: `ValueError: Unknown layer: 'Name'`.

    ## Example
    ```python
    class Scale(keras.layers.Layer): ...        # in train.py, not registered
    model.save("m.keras")
    keras.models.load_model("m.keras")           # fails in any other process
    ```

    ## Fix
    Move the class to an importable module and decorate it:
    `@keras.saving.register_keras_serializable(package="my_pkg")`, then `import my_pkg.layers` before
    `load_model`. Or pass `custom_objects={"Scale": Scale}` to `load_model`.
""")

KERAS_CONFIG_MISSES_ARG = Rule("C102", "get-config-misses-init-arg", Severity.ERROR,
    "An __init__ argument is not returned by get_config(): the reloaded layer is built differently.", """
    ## What it means
    The layer was created with an argument (say `offset=1.0`) that its `get_config()` does not
    return. On load Keras calls `cls(**config)`, so the argument takes its default value.

    ## What the framework does
    Saving and loading succeed with no message. The reloaded layer computes something else; when
    the argument decides a weight's shape, `load_weights` fails with a shape error instead.

    ## Fix
    Return every `__init__` argument from `get_config()` (`config.update(offset=self.offset)`), or
    drop the override: Keras 3 captures JSON-serialisable `__init__` arguments by itself.
""")

KERAS_NON_SERIALIZABLE_ARG = Rule("C103", "non-serializable-init-arg", Severity.ERROR,
    "A layer was given a non-serialisable __init__ argument and does not override get_config().", """
    ## What it means
    Keras 3 records the `__init__` arguments of a layer that has no `get_config()` of its own, but
    only when they are JSON-serialisable. An object, a tensor or a function is not.

    ## What the framework does
    `model.save()` (and `layer.get_config()`) raise `NotImplementedError: Object X was created by
    passing non-serializable argument values in __init__(), and therefore the object must override
    get_config() in order to be serializable.`

    ## Fix
    Override `get_config()` to return a serialisable description (a name, a number, a nested config
    from `keras.saving.serialize_keras_object`) and rebuild the object in `from_config`.
""")

KERAS_LAMBDA = Rule("C104", "keras-lambda-layer", Severity.ERROR,
    "A Lambda layer holds Python bytecode: load_model refuses it unless safe_mode=False.", """
    ## What it means
    A `keras.layers.Lambda` wrapping a Python lambda is saved as marshalled bytecode.

    ## What the framework does
    `load_model` raises `ValueError: Requested the deserialization of a Lambda layer whose function
    is a Python lambda. This carries a potential risk of arbitrary code execution and thus it is
    disallowed by default.` Bytecode is also tied to the Python version that wrote it.

    ## Security
    `safe_mode=False` (or `keras.config.enable_unsafe_deserialization()`) runs code stored in the
    file. Only do it for files you made yourself.

    ## Fix
    Replace the Lambda by a small registered custom layer, or `load_model(path, safe_mode=False)`
    for a trusted file.
""")

KERAS_UNBUILT = Rule("C105", "keras-unbuilt-model", Severity.ERROR,
    "The model is not built: it has no weights yet, so a save stores none.", """
    ## What it means
    A Keras model whose input shape is unknown creates its variables on the first call.

    ## What the framework does
    `model.save()` warns `You are saving a model that has not yet been built. It might not contain any
    weights yet.` and writes a file with no weights; the reloaded model is unbuilt too.
    `load_weights` into an unbuilt model raises `You are loading weights into a model that has not
    yet been built`.

    ## Fix
    Give the input shape (`keras.Input(shape=...)` as first layer) or call the model once on data
    (or `model.build(input_shape)`) before saving.
""")

KERAS_LEGACY_H5 = Rule("C106", "keras-legacy-h5", Severity.WARNING,
    "The legacy HDF5 format (.h5) is chosen where the native .keras format would do.", """
    ## What it means
    Keras 3 still writes and reads full-model `.h5`, but calls it legacy.

    ## What the framework does
    `model.save("x.h5")` logs `WARNING:absl:You are saving your model as an HDF5 file via
    model.save() ... This file format is considered legacy.` Loading logs `No training configuration
    found in the save file, so the model was *not* compiled` for uncompiled models. Custom classes
    fail with `Unknown layer` instead of the clearer `.keras` message.

    ## Fix
    `model.save("x.keras")`, or `model.save_weights("x.weights.h5")` for weights only.
""")

TORCH_CLASS_IN_MAIN = Rule("C111", "torch-class-in-main", Severity.WARNING,
    "The model class lives in __main__: a whole-module torch.save cannot be loaded by another program.", """
    ## What it means
    `torch.save(model)` pickles a reference `__main__.ClassName`, not the class itself.

    ## What the framework does
    Any `torch.load` with the default `weights_only=True` (torch >= 2.6) refuses it: `Weights only
    load failed ... Unsupported global: GLOBAL __main__.Net`. With `weights_only=False`, another program
    raises `AttributeError: Can't get attribute 'Net' on <module '__main__'>`, or worse, silently uses
    a different `Net` that happens to exist in its `__main__`.

    ## Fix
    Save `model.state_dict()` (or safetensors) and rebuild the model from an importable module
    (`from chatbot.model import Net`) in the loading program.
""")

TORCH_LOCAL_CLASS = Rule("C112", "torch-local-class", Severity.WARNING,
    "The model class (or a sub-module's) is defined inside a function: nothing outside can rebuild it.", """
    ## What it means
    The class's `__qualname__` contains `<locals>`: it exists only while that function runs.

    ## What the framework does
    `torch.save(model)` raises `AttributeError: Can't pickle local object 'make.<locals>.Net'`.
    A state_dict saves, but no other program can construct the class to load it into.

    ## Fix
    Define the class at module level in an importable module.
""")

TORCH_UNPICKLABLE_ATTRIBUTE = Rule("C113", "torch-unpicklable-attribute", Severity.WARNING,
    "A module attribute is a lambda or local function: a whole-module torch.save fails.", """
    ## What it means
    The module keeps a lambda or a nested function as an attribute (`self.act = lambda x: x * 2`).

    ## What the framework does
    `torch.save(model)` raises `AttributeError: Can't pickle local object '...<lambda>'`. A
    state_dict save is not affected (functions are not state).

    ## Fix
    Use a module-level function or an `nn.Module` (`nn.ReLU()`), or save the state_dict.
""")

TORCH_WHOLE_MODULE = Rule("C114", "torch-whole-module-pickle", Severity.ERROR,
    "A whole-module pickle cannot be loaded with torch.load's default weights_only=True.", """
    ## What it means
    `torch.save(model)` stores the module object itself as a pickle that names its classes.

    ## What the framework does
    Since torch 2.6 `torch.load` defaults to `weights_only=True` and refuses any class it does not
    know: `Weights only load failed ... Unsupported global: GLOBAL mypkg.Net was not an allowed global
    by default.` Passing `weights_only=False` runs arbitrary code from the file.

    ## Fix
    Save `model.state_dict()` instead. If you must keep whole modules, load them with
    `torch.serialization.safe_globals([Net, ...])` listing every class the file names.
""")

WRAPPER_PREFIX = Rule("C131", "wrapper-prefixes-keys", Severity.WARNING,
    "The model is wrapped (DataParallel, DDP, torch.compile): its state_dict keys carry a prefix.", """
    ## What it means
    `nn.DataParallel` and `DistributedDataParallel` add `module.` to every key, `torch.compile`'s
    `OptimizedModule` adds `_orig_mod.`.

    ## What the framework does
    Loading such a file into the plain model with `strict=True` raises `Missing key(s) in state_dict`
    for every key and `Unexpected key(s)` for every prefixed one; `strict=False` loads nothing, silently.

    ## Fix
    Save the inner model: `model.module.state_dict()` (DataParallel/DDP) or
    `model._orig_mod.state_dict()` (torch.compile). For existing files: `ckptdoctor fix --strip-prefix`.
""")

ROUNDTRIP_RELOAD_FAILED = Rule("C150", "roundtrip-reload-failed", Severity.ERROR,
    "A fresh Python process could not load the saved model.", """
    ## What it means
    `ckptdoctor roundtrip` saved the model and reloaded it in a new process, the way an inference
    server would: without the training script's `__main__`, importing the model class from its module
    (or file), and with no `custom_objects` unless given. That failed; the real exception is quoted.

    ## Fix
    See the related rules (C101, C111, C112, C114, ...). Make the class importable and registered,
    or save a state_dict.
""")

ROUNDTRIP_SAVE_FAILED = Rule("C151", "roundtrip-save-failed", Severity.ERROR,
    "Saving the model raised an exception.", """
    ## What it means
    The save itself failed; the real exception is quoted. Typical causes: a non-serialisable Keras
    init argument (C103), tied or non-contiguous tensors with safetensors (D104, D106), a local class
    or a lambda with a whole-module pickle (C112, C113).

    ## Fix
    See the related rule.
""")


# -- file checks: custom Keras classes the config names ---------------------------------------------

KERAS_ROLES = {"keras-layer", "keras-model", "keras-object"}


@dataclass(frozen=True)
class KerasClass:
    """A class a Keras config names, and where in the config."""

    name: str
    module: str | None
    registered_name: str | None
    path: str


def _is_builtin_module(module: str | None) -> bool:
    if module is None:
        return False
    return module == "keras" or module.startswith(("keras.", "keras_hub", "keras_nlp", "keras_cv", "tf_keras"))


def walk_keras_config(node: Any, path: str = "") -> Iterator[KerasClass]:
    """Every ``{"class_name": ..., "config": ...}`` object of a Keras config tree."""
    if isinstance(node, dict):
        name = node.get("class_name")
        here = path
        if isinstance(name, str):
            cfg = node.get("config")
            layer = cfg.get("name") if isinstance(cfg, dict) else None
            here = f"{path}/{layer or name}"
            yield KerasClass(name, node.get("module"), node.get("registered_name"), here.lstrip("/"))
        for key, value in node.items():
            if key not in ("class_name", "module", "registered_name"):
                yield from walk_keras_config(value, here)
    elif isinstance(node, list):
        for value in node:
            yield from walk_keras_config(value, path)


def _custom_classes(snapshot: Snapshot) -> list[KerasClass]:
    refs: list[ClassRef] = [c for c in snapshot.classes if c.role in KERAS_ROLES]
    if not refs and not snapshot.config:
        return []
    from ckptdoctor.readers.keras_config import is_keras_op  # only for Keras files: keeps inspect's start-up

    if refs:  # keras.ops nodes are not custom code: F204 explains them
        return [KerasClass(c.name, c.module, c.registered_name, c.path) for c in refs
                if not c.builtin and not is_keras_op(c.name, c.module)]
    out = []
    for cls in walk_keras_config(snapshot.config):
        legacy_custom = (cls.module is None and cls.registered_name is None and not _is_legacy_builtin(cls.name)
                         and not is_keras_op(cls.name, None))
        if (cls.module is not None and not _is_builtin_module(cls.module)) or legacy_custom or (
                cls.registered_name and cls.registered_name != cls.name and ">" in cls.registered_name):
            out.append(cls)
    return out


def _is_legacy_builtin(name: str) -> bool:
    """Keras 2 configs carry no module: treat names Keras ships as built in (checked only if loaded)."""
    keras = sys.modules.get("keras")
    if keras is None:
        return True  # unknown without importing keras: do not claim a custom class
    return any(hasattr(getattr(keras, mod, None), name) for mod in ("layers", "losses", "metrics", "activations",
                                                                   "initializers", "regularizers",
                                                                   "constraints", "optimizers", "models"))


@dataclass(frozen=True)
class Locate:
    """Where a module named by a file is, found without importing (executing) it."""

    status: str  # "loaded", "found", "missing", "main"
    origin: str | None = None
    has_name: bool | None = None


def locate(module: str | None, name: str) -> Locate:
    if not module or module == "__main__":
        return Locate("main")
    loaded = sys.modules.get(module)
    if loaded is not None:
        return Locate("loaded", getattr(loaded, "__file__", None), hasattr(loaded, name.split(".")[0]))
    search: list[str] | None = None
    spec = None
    for part in module.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            return Locate("missing")
        search = list(spec.submodule_search_locations or [])
    origin = spec.origin if spec is not None else None
    return Locate("found", origin, _defines(origin, name.split(".")[0]))


def _defines(origin: str | None, name: str) -> bool | None:
    if not origin or not origin.endswith(".py") or not os.path.isfile(origin):
        return None
    try:
        with open(origin, encoding="utf-8", errors="replace") as fh:
            text = fh.read(2_000_000)
    except OSError:
        return None
    pattern = rf"^\s*(class|def)\s+{re.escape(name)}\b|^{re.escape(name)}\s*=|import .*\b{re.escape(name)}\b"
    return re.search(pattern, text, re.MULTILINE) is not None


def _registered_here(registered_name: str | None) -> bool | None:
    """Is the name registered in this process? Known only if keras is already imported."""
    if registered_name is None or "keras" not in sys.modules:
        return None
    try:
        from keras.src.saving import object_registration

        return registered_name in object_registration.GLOBAL_CUSTOM_OBJECTS
    except ImportError:
        return None


def custom_class_diagnostic(cls: KerasClass, *, file_format: str = "keras-v3") -> Diagnostic:
    """The C101 finding for one custom class named by a config, with the exact fix."""
    registered = bool(cls.registered_name and ">" in cls.registered_name)
    package = cls.registered_name.split(">", 1)[0] if registered and cls.registered_name else None
    where = locate(cls.module, cls.name)
    key = cls.registered_name if registered else cls.name
    custom_objects = f"custom_objects={{{key!r}: {cls.name}}}"
    h5 = file_format in ("keras-h5", "hdf5")
    error = (f"ValueError: Unknown layer: '{cls.name}'" if h5 else
             f"TypeError: ... Could not locate class '{cls.name}'. Make sure custom classes and functions "
             "are decorated with @keras.saving.register_keras_serializable()")
    decorator = f"@keras.saving.register_keras_serializable(package={package or 'my_package'!r})"
    importable = where.status in ("loaded", "found") and where.has_name is not False
    if where.status == "main":
        message = (f"custom class {cls.name!r} was defined in the training script (module "
                   f"{cls.module or '__main__'!r}): no other program can import it")
        fix = (f"move {cls.name} to an importable module, decorate it with {decorator}, import that module "
               f"before load_model; or pass {custom_objects} to load_model")
        severity = Severity.ERROR
    elif not importable:
        what = "cannot be found" if where.status == "missing" else f"does not define {cls.name!r}"
        message = f"custom class {cls.name!r}: module {cls.module!r} {what} in this environment"
        fix = (f"install or add to PYTHONPATH the code that defines {cls.module}.{cls.name}, then import it "
               f"before load_model, or pass {custom_objects}")
        severity = Severity.ERROR
    elif registered:
        state = _registered_here(cls.registered_name)
        now = " (registered in this process)" if state else ""
        message = (f"custom class {cls.name!r} is registered as {cls.registered_name!r} in module "
                   f"{cls.module!r}{now}: load_model finds it only after that module is imported")
        fix = f"`import {cls.module}` before keras.models.load_model(...), or pass {custom_objects}"
        severity = Severity.WARNING
    else:
        message = (f"custom class {cls.name!r} from module {cls.module!r} is not registered: "
                   "load_model fails without custom_objects")
        fix = (f"`from {cls.module} import {cls.name}` and load_model(path, {custom_objects}); or decorate the "
               f"class with {decorator} and import {cls.module} before loading")
        severity = Severity.ERROR
    return KERAS_CUSTOM_CLASS.diag(
        message, subject=cls.path or cls.name, severity=severity,
        expected="a registered or custom_objects-supplied class", found=cls.registered_name or cls.name,
        framework_behavior=f"load_model without custom_objects raises {error}",
        fix=fix,
        details={"module": cls.module, "registered_name": cls.registered_name, "located": where.status,
                 "origin": where.origin, "custom_objects": {key: f"{cls.module}.{cls.name}"}},
    )


@snapshot_check
def check_keras_custom_classes(snapshot: Snapshot) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple[str, str | None]] = set()
    for cls in _custom_classes(snapshot):
        if (cls.name, cls.module) in seen:
            continue
        seen.add((cls.name, cls.module))
        out.append(custom_class_diagnostic(cls, file_format=snapshot.format))
    return out


@snapshot_check
def check_keras_lambda_layers(snapshot: Snapshot) -> list[Diagnostic]:
    if not snapshot.config:
        return []
    lambdas = [c for c in walk_keras_config(snapshot.config)
               if c.name == "Lambda" and (c.module is None or _is_builtin_module(c.module))]
    return [lambda_diagnostic(c.path) for c in lambdas]


def lambda_diagnostic(subject: str) -> Diagnostic:
    return KERAS_LAMBDA.diag(
        "Lambda layer: its Python function is stored as bytecode; load_model refuses it by default",
        subject=subject, expected="safe_mode=True (default)", found="Lambda(<python function>)",
        framework_behavior="load_model raises ValueError: Requested the deserialization of a `Lambda` layer "
                           "whose `function` is a Python lambda ... disallowed by default",
        fix="replace it with a registered custom layer; for a file you made yourself: "
            "load_model(path, safe_mode=False) (this runs code stored in the file)",
    )
