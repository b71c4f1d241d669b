"""Every diagnostic code is a ``Rule`` declared beside the code that emits it.

A rule carries its own documentation (what it means, why it happens, what the framework does, an
example, the fix), which ``ckptdoctor explain CODE`` prints. Codes never change meaning once released.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ckptdoctor.diagnostics import Diagnostic, Fix, Severity

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ckptdoctor.snapshot import Snapshot
    from ckptdoctor.spec import ModelSpec

_RULES: dict[str, Rule] = {}
FAMILIES = {
    "A": "architecture",
    "C": "custom objects and serialisability",
    "D": "dtypes and storage",
    "S": "security (code the file would execute)",
    "F": "file format and I/O",
    "W": "a known library message, explained",
}


@dataclass(frozen=True)
class Rule:
    """A diagnostic code with its documentation (what ``ckptdoctor explain CODE`` prints)."""

    code: str
    name: str
    severity: Severity
    summary: str
    doc: str = ""

    def __post_init__(self) -> None:
        existing = _RULES.get(self.code)
        if existing is not None and existing.name != self.name:
            raise RuntimeError(f"rule code {self.code} declared twice ({existing.name}, {self.name})")
        _RULES[self.code] = self

    def diag(
        self,
        message: str,
        *,
        subject: str = "",
        expected: Any = None,
        found: Any = None,
        framework_behavior: str = "",
        fix: str = "",
        fix_plan: Fix | None = None,
        severity: Severity | None = None,
        path: str | None = None,
        related: list[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Diagnostic:
        return Diagnostic(
            code=self.code,
            name=self.name,
            severity=severity if severity is not None else self.severity,
            message=message,
            subject=subject,
            expected=expected,
            found=found,
            framework_behavior=framework_behavior,
            fix=fix,
            fix_plan=fix_plan,
            path=path,
            related=list(related or []),
            details=dict(details or {}),
        )

    def documentation(self) -> str:
        head = f"{self.code} {self.name} ({self.severity}, {FAMILIES.get(self.code[0], '?')})"
        import textwrap

        body = textwrap.dedent(self.doc).strip()
        return f"{head}\n\n{self.summary}\n\n{body}\n" if body else f"{head}\n\n{self.summary}\n"


# The modules of ckptdoctor.rules that declare rules, named here rather than found by a directory scan
# (pkgutil alone costs start-up time); tests/test_registry.py keeps both lists complete.
RULE_MODULES = ("architecture", "custom_objects", "dcp_files", "diff_rules", "dtypes", "file_format", "fix_rules",
                "keras_file", "keras_semantics", "security", "shards", "storage", "tf_files")
SNAPSHOT_CHECK_MODULES = ("custom_objects", "dtypes", "keras_file", "keras_semantics", "security", "storage",
                          "tf_files")  # the ones with @snapshot_check: all that ``inspect`` imports


def load_rules(modules: tuple[str, ...] = RULE_MODULES) -> None:
    """Import the rule modules: all A/C/D/S/F rules and their checks are declared."""
    for name in modules:
        importlib.import_module(f"ckptdoctor.rules.{name}")


def load_all() -> dict[str, Rule]:
    """Every rule, including the catalog's W rules (one per known library message)."""
    load_rules()
    importlib.import_module("ckptdoctor.catalog")
    return dict(sorted(_RULES.items()))


def get(code: str) -> Rule | None:
    code = code.strip().upper()
    if code not in _RULES:
        if code.startswith("W"):  # the catalog is large: import it only when a W code is asked for
            load_all()
        else:
            load_rules()
    return _RULES.get(code)


# Checks that need only a Snapshot (no model): run by ``inspect`` and ``check`` on every file read.
SnapshotCheck = Callable[["Snapshot"], list[Diagnostic]]
_SNAPSHOT_CHECKS: list[SnapshotCheck] = []


def snapshot_check(func: SnapshotCheck) -> SnapshotCheck:
    """Declare a function (Snapshot) -> list[Diagnostic] that runs on every file read."""
    _SNAPSHOT_CHECKS.append(func)
    return func


def run_snapshot_checks(snapshot: Snapshot) -> list[Diagnostic]:
    load_rules(SNAPSHOT_CHECK_MODULES)
    found: list[Diagnostic] = []
    for check in _SNAPSHOT_CHECKS:
        found.extend(check(snapshot))
    return found


# Checks that compare a file with the model's code: (Snapshot, ModelSpec) -> list[Diagnostic].
# ``check`` runs every declared model check after its own name alignment.
ModelCheck = Callable[["Snapshot", "ModelSpec"], list[Diagnostic]]
_MODEL_CHECKS: list[ModelCheck] = []


def model_check(func: ModelCheck) -> ModelCheck:
    """Declare a function (Snapshot, ModelSpec) -> list[Diagnostic] that ``check`` runs."""
    _MODEL_CHECKS.append(func)
    return func


def run_model_checks(snapshot: Snapshot, spec: ModelSpec) -> list[Diagnostic]:
    load_rules()
    found: list[Diagnostic] = []
    for check in _MODEL_CHECKS:
        found.extend(check(snapshot, spec))
    return found
