"""Text output of ``explain``: per message, what it means, whether it is harmless, why, and the fix."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ckptdoctor.diagnostics import Severity

if TYPE_CHECKING:
    from rich.console import Console

    from ckptdoctor.catalog.explaining import Explanation
    from ckptdoctor.catalog.model import Finding

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def print_explanation(out: Console, result: Explanation) -> None:
    from ckptdoctor.catalog.docs import render
    from ckptdoctor.catalog.explaining import message_of
    from ckptdoctor.catalog.related import describe, resolve
    from ckptdoctor.report.text import escape

    for f in result.findings:
        e = f.entry
        style = STYLE[f.severity]
        times = f" x{f.count}" if f.count > 1 else ""
        where = _lines(f)
        out.print(f"[{style}]{f.severity}[{e.code}][/{style}] [bold]{e.name}[/bold]{times}  "
                  f"[dim]{escape(e.library)}{where}[/dim]")
        out.print(f"  [dim]message:[/dim] {escape(_short(f.excerpt, 300))}", soft_wrap=True)
        out.print(f"  [bold]What it means:[/bold] {escape(message_of(f))}")
        out.print(f"  [bold]Harmless?[/bold] {escape(render(e.harmless, f.variables))}")
        out.print(f"  [bold]Why:[/bold] {escape(render(e.cause, f.variables))}")
        fix = render(e.fix, f.variables)
        out.print("  [green bold]Fix:[/green bold] " + escape(fix).replace("\n", "\n  "))
        related = resolve(e.related)
        if related:
            out.print(f"  [dim]related: {escape(', '.join(describe(c) for c in related))}  "
                      f"(ckptdoctor explain {e.code})[/dim]")
        out.print()
    for u in result.unknown:
        # verbatim: never re-wrapped
        out.print(f"[magenta]not in catalog[/magenta] [dim](line {u.line})[/dim]: {escape(_short(u.text, 2000))}",
                  soft_wrap=True)
        if u.closest:
            near = ", ".join(f"{e.code} {e.name}" for e, _ in u.closest)
            out.print(f"  [dim]closest entries: {escape(near)}[/dim]")
    if not result.findings and not result.unknown:
        out.print("[green]No known save/load message found.[/green]")
        return
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in Severity}
    out.print(f"{len(result.findings)} known message(s): {counts[Severity.ERROR]} error(s), "
              f"{counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info"
              + (f"; {len(result.unknown)} not in catalog" if result.unknown else "") + ".")


def render_explanation(result: Explanation, *, width: int = 100) -> str:
    from rich.console import Console

    buf = io.StringIO()
    print_explanation(Console(file=buf, width=width, no_color=True, highlight=False, soft_wrap=True), result)
    return buf.getvalue()


def _lines(f: Finding) -> str:
    if not f.lines:
        return ""
    shown = ", ".join(str(n) for n in f.lines[:6]) + ("..." if len(f.lines) > 6 else "")
    return f", line{'s' if len(f.lines) > 1 else ''} {shown}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
