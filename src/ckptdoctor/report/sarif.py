"""SARIF 2.1.0 output, so CI systems (GitHub code scanning, GitLab, Azure DevOps) show findings.

One run; the rule ids are the stable diagnostic codes (``A103``), each rule described from its own
documentation; each result points at the checked file (artifactLocation) and at the tensor or layer
it concerns (logicalLocations).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ckptdoctor._version import __version__
from ckptdoctor.diagnostics import Diagnostic, Severity, sort_key

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _rule_descriptor(code: str, name: str) -> dict[str, Any]:
    from ckptdoctor.rules.registry import get

    rule = get(code)
    out: dict[str, Any] = {"id": code, "name": name}
    if rule is not None:
        out["name"] = rule.name
        out["shortDescription"] = {"text": rule.summary}
        out["fullDescription"] = {"text": rule.documentation()}
        out["help"] = {"text": rule.documentation(), "markdown": rule.documentation()}
        out["defaultConfiguration"] = {"level": LEVEL[rule.severity]}
    else:
        out["shortDescription"] = {"text": name}
    return out


def sarif_log(diagnostics: Iterable[Diagnostic], artifact: str, *, command: str = "check") -> dict[str, Any]:
    diags = sorted(diagnostics, key=sort_key)
    rule_index: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for d in diags:
        if d.code not in rule_index:
            rule_index[d.code] = len(rules)
            rules.append(_rule_descriptor(d.code, d.name))
        text = d.message
        if d.fix:
            text += f" Fix: {d.fix}"
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": rule_index[d.code],
            "level": LEVEL[d.severity],
            "message": {"text": text},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": d.path or artifact}},
                **({"logicalLocations": [{"fullyQualifiedName": d.subject, "kind": "member"}]}
                   if d.subject and d.subject != (d.path or artifact) else {}),
            }],
            "properties": {k: v for k, v in d.to_json().items()
                           if k in ("name", "expected", "found", "framework_behavior", "fix", "fix_plan")},
        }
        results.append(result)
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ckptdoctor", "version": __version__, "semanticVersion": __version__,
                                "informationUri": "https://pypi.org/project/ckptdoctor/", "rules": rules}},
            "invocations": [{"executionSuccessful": True, "commandLine": f"ckptdoctor {command}"}],
            "artifacts": [{"location": {"uri": artifact}}],
            "results": results,
        }],
    }
