"""``ckptdoctor.lint(model)``: what a save of this live model will lose, refuse, or fail to rebuild.

This package is framework-free: the inspection of torch modules and Keras models lives in
``frameworks/torch_hazards.py`` and ``frameworks/keras_hazards.py`` (the only places that import them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.diagnostics import Diagnostic, FindingsReport, sort_key
from ckptdoctor.errors import UsageError

TORCH_METHODS = ("torch", "safetensors", "module")  # the first is roundtrip's default
KERAS_METHODS = ("keras", "h5", "weights")
SAVE_METHODS = TORCH_METHODS + KERAS_METHODS


@dataclass
class LintReport(FindingsReport):
    """The findings for one live model. ``ok`` is True when nothing is at error level."""

    framework: str
    class_name: str
    module: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    save_as: str | None = None

    def subject(self) -> dict[str, Any]:
        return {"model": f"{self.module}.{self.class_name}", "framework": self.framework, "save_as": self.save_as}

    def to_json(self) -> dict[str, Any]:
        from ckptdoctor.report.json_report import envelope

        return envelope(self.subject(), self.diagnostics)

    def render(self) -> str:
        """The text report as a plain string (what ``ckptdoctor lint`` prints)."""
        from rich.console import Console

        from ckptdoctor.report.text import render_diagnostics

        out = Console(record=True, width=110, color_system=None, file=_Null())
        out.print(f"lint {self.module}.{self.class_name} ({self.framework})")
        render_diagnostics(out, self.diagnostics)
        return out.export_text()

    def __str__(self) -> str:
        return self.render()


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def framework_of(model: Any) -> str:
    """``pytorch`` or ``keras``, found from the class hierarchy without importing either framework."""
    roots = {c.__module__.split(".", 1)[0] for c in type(model).__mro__}
    # Keras first: with the torch backend every Keras layer is also a torch.nn.Module.
    if "keras" in roots or "tf_keras" in roots:
        return "keras"
    if "torch" in roots:
        return "pytorch"
    raise UsageError(f"{type(model).__qualname__} is neither a torch.nn.Module nor a Keras model")


def lint(model: Any, save_as: str | None = None) -> LintReport:
    """Every hazard of ``model``. With ``save_as`` (torch, safetensors, module, keras, h5, weights) the
    hazards of that save method become errors; without it they say what each method would do."""
    if save_as is not None and save_as not in SAVE_METHODS:
        raise UsageError(f"save_as={save_as!r}: use one of {', '.join(SAVE_METHODS)}")
    framework = framework_of(model)
    if framework == "pytorch":
        from ckptdoctor.frameworks.torch_hazards import lint_module

        diags = lint_module(model, save_as)
    else:
        from ckptdoctor.frameworks.keras_hazards import lint_keras

        diags = lint_keras(model, save_as)
    cls = type(model)
    return LintReport(framework, cls.__qualname__, cls.__module__, sorted(diags, key=sort_key), save_as)
