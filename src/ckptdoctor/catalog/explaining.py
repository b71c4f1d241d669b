"""``ckptdoctor.explain(text)``: every known message in a text, de-duplicated, most important first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.catalog import CATALOG
from ckptdoctor.catalog import derive as derive_mod
from ckptdoctor.catalog.docs import render
from ckptdoctor.catalog.matcher import LineIndex, closest, find, framing, severity_for, unknown_lines
from ckptdoctor.catalog.model import Entry, Finding
from ckptdoctor.catalog.related import describe, resolve
from ckptdoctor.diagnostics import Diagnostic

EXCERPT_LIMIT = 600


@dataclass
class Unknown:
    """A message the catalog does not know, with the entries that look most like it."""

    text: str
    line: int
    closest: list[tuple[Entry, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "line": self.line,
                "closest": [{"code": e.code, "name": e.name, "score": s} for e, s in self.closest]}


@dataclass
class Explanation:
    """The result of ``explain``: iterate it for the findings; ``.diagnostics`` for W-code diagnostics."""

    findings: list[Finding]
    unknown: list[Unknown]
    source: str = "text"

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, i: int) -> Finding:
        return self.findings[i]

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [to_diagnostic(f) for f in self.findings]

    def to_json(self, subject: dict[str, Any] | None = None) -> dict[str, Any]:
        from ckptdoctor.report.json_report import envelope

        return envelope(subject or {"source": self.source}, self.diagnostics,
                        findings=[finding_json(f) for f in self.findings],
                        unknown=[u.to_json() for u in self.unknown])

    def render(self, *, width: int = 100) -> str:
        from ckptdoctor.catalog.text import render_explanation

        return render_explanation(self, width=width)


def explain(text: str, *, source: str = "text") -> Explanation:
    """Find every catalog message in ``text`` (one message, a traceback or a whole log)."""
    raw = find(text, CATALOG)
    lines = LineIndex(text)
    groups: dict[tuple[Any, ...], Finding] = {}
    for m in sorted(raw, key=lambda r: r.start):
        e = m.entry
        keep = m.variables if e.group_by is None else {k: m.variables.get(k) for k in e.group_by}
        key = (e.code, tuple(sorted((k, str(v)) for k, v in keep.items())))
        line = lines.line_of(m.start)
        sev = severity_for(e, framing(text, m.start))
        existing = groups.get(key)
        if existing is None:
            groups[key] = Finding(entry=e, variables=derive_mod.run(e.derive, m.variables),
                                  excerpt=_excerpt(m.excerpt), lines=[line], instances=[dict(m.variables)],
                                  severity=sev, start=m.start)
            continue
        existing.count += 1
        if line not in existing.lines:
            existing.lines.append(line)
        if m.variables not in existing.instances:
            existing.instances.append(dict(m.variables))
        existing.severity = max(existing.severity, sev)
    findings = sorted(groups.values(), key=lambda f: (-int(f.severity), f.start))
    unknown: list[Unknown] = []
    if not findings and "\n" not in text.strip():
        if text.strip():
            unknown.append(Unknown(text.strip(), 1))
    else:
        spans = [(m.first, m.end) for m in raw]
        unknown = [Unknown(t, n) for n, t in unknown_lines(text, spans)]
        if not findings and not unknown and text.strip():
            unknown.append(Unknown(text.strip()[:2000], 1))
    for u in unknown:
        u.closest = closest(u.text, CATALOG)
    return Explanation(findings, unknown, source)


def explain_event(message: str, *, kind: str) -> list[Finding]:
    """Findings for one captured event; ``kind`` ("warning", "log", "exception") sets the severity."""
    result = explain(message, source=kind)
    if kind in ("warning", "log"):
        for f in result.findings:
            f.severity = f.entry.as_warning or f.entry.severity
    else:
        for f in result.findings:
            f.severity = f.entry.severity
    return result.findings


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 3] + "..."


def message_of(f: Finding) -> str:
    e = f.entry
    if len(f.instances) > 1 and e.group_by is not None:
        parts = [render(e.meaning, derive_mod.run(e.derive, inst)) for inst in f.instances[:8]]
        more = f" (+{len(f.instances) - 8} more)" if len(f.instances) > 8 else ""
        return " | ".join(parts) + more
    return render(e.meaning, f.variables)


def to_diagnostic(f: Finding, *, path: str | None = None) -> Diagnostic:
    e = f.entry
    v = f.variables
    return Diagnostic(
        code=e.code,
        name=e.name,
        severity=f.severity,
        message=message_of(f),
        subject=render(e.subject, v),
        expected=v.get(e.expected) if e.expected else None,
        found=v.get(e.found) if e.found else None,
        framework_behavior=render(e.framework, v) or render(e.harmless, v),
        fix=render(e.fix, v),
        path=path,
        related=resolve(e.related),
        details={
            "library": e.library,
            "versions": e.versions,
            "harmless": render(e.harmless, v),
            "cause": render(e.cause, v),
            "count": f.count,
            "lines": f.lines,
            "excerpt": f.excerpt,
            "variables": {k: val for k, val in v.items() if not k.startswith("_")},
        },
    )


def finding_json(f: Finding) -> dict[str, Any]:
    e = f.entry
    return {
        "code": e.code,
        "name": e.name,
        "severity": str(f.severity),
        "library": e.library,
        "count": f.count,
        "lines": f.lines,
        "variables": {k: v for k, v in f.variables.items()},
        "instances": f.instances,
        "excerpt": f.excerpt,
        "meaning": message_of(f),
        "harmless": render(e.harmless, f.variables),
        "cause": render(e.cause, f.variables),
        "fix": render(e.fix, f.variables),
        "related": [describe(c) for c in resolve(e.related)],
    }
