"""ckptdoctor: why saving or loading a model warned, failed, or silently lost weights.

The public API. Everything is imported lazily so ``import ckptdoctor`` costs milliseconds and works
without torch, keras or tensorflow installed.

    >>> import ckptdoctor
    >>> snap = ckptdoctor.inspect("model.pt")          # what the file holds, read without executing it
    >>> report = ckptdoctor.check(model, "model.pt")   # the file against a live model
    >>> report = ckptdoctor.lint(model)                # what a save would lose or fail to rebuild
    >>> ckptdoctor.explain("Unexpected key(s) in state_dict: ...")

Start-up is part of speed: the modules a header read needs (readers, snapshot, rules, reports, cli)
do not import ``typing`` (~5 ms) at run time. They declare ``TYPE_CHECKING = False`` themselves, which
type checkers treat as ``typing.TYPE_CHECKING``, and import typing names under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import importlib

from ckptdoctor._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see the docstring
if TYPE_CHECKING:
    from typing import Any

# public name -> "module:attribute"
_API: dict[str, str] = {
    "inspect": "ckptdoctor.inspection:inspect",
    "read": "ckptdoctor.readers:read",
    "check": "ckptdoctor.checking:check",
    "lint": "ckptdoctor.linting:lint",
    "roundtrip": "ckptdoctor.roundtripping:roundtrip",
    "explain": "ckptdoctor.catalog:explain",
    "watch": "ckptdoctor.watching:watch",
    "diff": "ckptdoctor.fixing.diff:diff",
    "convert": "ckptdoctor.fixing.convert:convert",
    "fix": "ckptdoctor.fixing.fix:fix",
    "Snapshot": "ckptdoctor.snapshot:Snapshot",
    "TensorInfo": "ckptdoctor.snapshot:TensorInfo",
    "Diagnostic": "ckptdoctor.diagnostics:Diagnostic",
    "Severity": "ckptdoctor.diagnostics:Severity",
    "ModelSpec": "ckptdoctor.spec:ModelSpec",
    "InputError": "ckptdoctor.errors:InputError",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'ckptdoctor' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
