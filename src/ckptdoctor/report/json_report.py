"""The JSON contract: one object with ``tool``, ``subject`` and ``diagnostics`` (fields are only ever added)."""

from __future__ import annotations

from collections.abc import Iterable

from ckptdoctor._version import __version__
from ckptdoctor.diagnostics import Diagnostic, Severity, sort_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any


def tool_info() -> dict[str, str]:
    return {"name": "ckptdoctor", "version": __version__}


def summary(diagnostics: Iterable[Diagnostic]) -> dict[str, int]:
    counts = {str(s): 0 for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
    for d in diagnostics:
        counts[str(d.severity)] += 1
    return counts


def envelope(subject: dict[str, Any], diagnostics: Iterable[Diagnostic], **extra: Any) -> dict[str, Any]:
    diags = sorted(diagnostics, key=sort_key)
    out: dict[str, Any] = {
        "tool": tool_info(),
        "subject": subject,
        "diagnostics": [d.to_json() for d in diags],
        "summary": summary(diags),
    }
    out.update(extra)
    return out


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON that is always valid UTF-8: names and configs read from damaged or hostile files may hold
    lone surrogates (a JSON ``\\udc80`` escape, undecodable HDF5 strings); they become U+FFFD."""
    import json

    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        import re

        text = re.sub("[\ud800-\udfff]", "\ufffd", text)
    if not text.isascii():
        # json escapes C0 controls itself; C1 controls (U+009B is a CSI to some terminals) and bidi overrides
        # stay raw with ensure_ascii=False: escape them too (they only occur inside strings; same JSON value)
        import re

        text = re.sub("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]",
                      lambda m: f"\\u{ord(m[0]):04x}", text)
    return text
