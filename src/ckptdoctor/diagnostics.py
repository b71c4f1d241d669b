"""The one shape every finding takes (DESIGN.md invariant 3: no bare prints, no free-form warnings)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use error, warning or info") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass
class Fix:
    """A machine-applicable fix. ``kind`` names the operation; ``data`` is its JSON-serialisable plan.

    Kinds in use: ``rename-keys`` (data: {"mapping": {old: new}}), ``strip-prefix`` / ``add-prefix``
    (data: {"prefix": str}), ``drop-keys`` (data: {"keys": [...]}), ``cast`` (data: {"dtypes": {key: dtype}}),
    ``clone-aliases`` (data: {"keys": [...]}), ``transpose`` (data: {"keys": [...]}).
    """

    kind: str
    description: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.description, "data": self.data}


@dataclass
class Diagnostic:
    """One finding: what was expected and found, what the framework will do, and the fix.

    (Every dataclass here has a docstring: without one, ``@dataclass`` computes ``inspect.signature``
    at import time to make one, which costs start-up time.)"""

    code: str
    name: str
    severity: Severity
    message: str
    subject: str = ""
    expected: Any = None
    found: Any = None
    framework_behavior: str = ""
    fix: str = ""
    fix_plan: Fix | None = None
    path: str | None = None
    related: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "severity": str(self.severity),
            "subject": self.subject,
            "message": self.message,
            "expected": _jsonable(self.expected),
            "found": _jsonable(self.found),
            "framework_behavior": self.framework_behavior,
            "fix": self.fix,
        }
        if self.fix_plan is not None:
            out["fix_plan"] = self.fix_plan.to_json()
        if self.path is not None:
            out["path"] = self.path
        if self.related:
            out["related"] = list(self.related)
        if self.details:
            out["details"] = _jsonable(self.details)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    """True when any finding is at error level (what makes a report not ``ok``)."""
    return any(d.severity >= Severity.ERROR for d in diagnostics)


class FindingsReport:
    """``ok`` / ``codes()`` / ``by_code()`` for a report dataclass that holds its findings in ``diagnostics``."""

    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def codes(self) -> list[str]:
        return sorted({d.code for d in self.diagnostics})

    def by_code(self, code: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.code == code]


def sort_key(diag: Diagnostic) -> tuple[int, str, str]:
    """Most important first: severity, then code, then subject."""
    return (-int(diag.severity), diag.code, diag.subject)
