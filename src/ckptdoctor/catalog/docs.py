"""Rendering entry templates: with the variables of a match, or with ``<placeholders>`` for the docs."""

from __future__ import annotations

import re
from typing import Any

from ckptdoctor.catalog.model import Entry
from ckptdoctor.catalog.related import describe, resolve


class _Vars(dict):  # type: ignore[type-arg]
    """Missing variables render as ``<name>`` (docs) or as nothing (explanations)."""

    def __init__(self, values: dict[str, Any], placeholders: bool) -> None:
        super().__init__(values)
        self.placeholders = placeholders

    def __missing__(self, key: str) -> str:
        return f"<{key}>" if self.placeholders else ""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key) if key in self else self.__missing__(key)
        if value is None:
            return self.__missing__(key)
        if isinstance(value, (list, tuple, set)):
            items = [str(v) for v in value]
            return ", ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")
        return value


_EMPTY_BITS = re.compile(r" \(\s*\)| ''| ``")


def render(template: str, variables: dict[str, Any] | None = None, *, placeholders: bool = False) -> str:
    if not template:
        return ""
    try:
        text = template.format_map(_Vars(variables or {}, placeholders))
    except (ValueError, IndexError, KeyError, AttributeError):  # a brace in a template: show it raw
        return template
    if not placeholders:
        text = _EMPTY_BITS.sub(lambda m: " " if m.group(0).strip() == "" else "", text)
    return text.strip()


def _example(text: str) -> str:
    shown = text.replace("\x1b", "\\x1b")
    return "\n".join("    " + line for line in shown.splitlines())


def documentation(e: Entry) -> str:
    """The rule's documentation page, in the project's section style."""
    from ckptdoctor.catalog.derive import DOC_HELPERS, run

    # helpers that also describe the general case fill their sentences in (others stay <placeholders>)
    v = run(tuple(n for n in e.derive if n in DOC_HELPERS), {})
    parts = [
        "## What it means\n" + render(e.meaning, v, placeholders=True),
        "## Is it harmless?\n" + render(e.harmless, v, placeholders=True),
        "## Why it happens\n" + render(e.cause, v, placeholders=True),
    ]
    if e.framework:
        parts.append("## What the framework does\n" + render(e.framework, v, placeholders=True))
    example = "## Example\n" + _example(e.examples[0])
    if len(e.examples) > 1:
        example += "\n\nOther wordings:\n" + "\n\n".join(_example(x) for x in e.examples[1:])
    parts.append(example)
    parts.append("## Fix\n" + render(e.fix, v, placeholders=True))
    parts.append(f"## Emitted by\n{e.library}: {e.versions}")
    related = resolve(e.related)
    if related:
        parts.append("## Related\n" + ", ".join(describe(c) for c in related))
    return "\n\n".join(parts)
