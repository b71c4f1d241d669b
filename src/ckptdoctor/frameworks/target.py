"""Resolve a TARGET (``package.module:callable`` or ``path/to/file.py:callable``) and call it.

This runs the user's own model code (that is the point of ``check --model``); it never runs code
from a checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ckptdoctor.errors import UsageError


def parse_model_args(text: str | None) -> tuple[list[Any], dict[str, Any]]:
    """``--model-args`` JSON: an object gives keyword arguments, an array positional ones."""
    if not text:
        return [], {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-args is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}") from None
    if isinstance(value, dict):
        return [], value
    if isinstance(value, list):
        return value, {}
    raise UsageError('--model-args must be a JSON object (keyword arguments) or array, e.g. \'{"vocab_size": 1000}\'')


def resolve(target: str) -> Callable[..., Any]:
    """The class or factory named by TARGET, imported the way the user's own code would import it."""
    if ":" not in target:
        raise UsageError(f"--model {target!r}: expected 'package.module:callable' or 'path/to/file.py:callable'")
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise UsageError(f"--model {target!r}: expected 'package.module:callable' or 'path/to/file.py:callable'")
    module = _import_file(where) if where.endswith(".py") or os.sep in where else _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = sorted(n for n in dir(module) if not n.startswith("_"))
            raise UsageError(f"--model {target!r}: {where} has no attribute {attr!r} "
                             f"(it defines: {', '.join(names[:20])})") from None
    if not callable(obj):
        raise UsageError(f"--model {target!r}: {attr} is not a class or a function")
    return obj


def _import_module(name: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(f"cannot import {name!r}: {exc}") from None


def _import_file(path: str) -> Any:
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"--model: no such file {path!r}")
    packaged = _package_module(path)
    if packaged is not None:
        return packaged
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file can import its neighbours, as when run as a script
    stem = os.path.splitext(os.path.basename(path))[0]
    # Import it under its own name, as `from stem import Model` in a separate program would, so classes
    # and pickles say `stem.Model`; fall back to a private name if that name is taken by another file.
    name = stem
    existing = sys.modules.get(stem)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == path:
        return existing
    if existing is not None or not stem.isidentifier():
        name = f"_ckptdoctor_target_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--model: cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"--model: importing {path} raised {type(exc).__name__}: {exc}") from None
    return module


def _package_module(path: str) -> Any:
    """A file inside a package (``src/pkg/models/net.py`` beside ``__init__.py`` files) is imported as
    ``pkg.models.net`` from the package's root, as the user's code imports it: its relative imports work,
    and its classes carry the module name their pickles use. None when the file is not in a package (or
    that package name already belongs to another folder), so it is imported as a plain script."""
    folder, stem = os.path.split(os.path.splitext(path)[0])
    parts = [stem]
    # up to two folders without __init__.py right above the file are namespace subpackages of a regular
    # package further up (facenet_pytorch/models/ has none); then climb while __init__.py files go on
    gaps = []
    while not os.path.isfile(os.path.join(folder, "__init__.py")) and len(gaps) < 2:
        folder, package = os.path.split(folder)
        gaps.insert(0, package)
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        return None
    parts = gaps + parts
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    if not all(p.isidentifier() for p in parts):
        return None
    name = ".".join(parts)
    loaded = sys.modules.get(parts[0])
    if loaded is not None and not (getattr(loaded, "__file__", "") or "").startswith(os.path.join(folder, parts[0])):
        return None  # another package of that name is already imported
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise UsageError(f"--model: importing {path} as {name} (from {folder}) raised {type(exc).__name__}: "
                         f"{exc}") from None
