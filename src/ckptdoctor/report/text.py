"""Text rendering of diagnostics with rich: the most important finding first, each with its fix."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ckptdoctor.diagnostics import Diagnostic, Severity, sort_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}

# Characters a terminal acts on rather than shows: C0/C1 controls except newline and tab (ESC starts
# sequences that clear the screen or, with OSC 52, write the clipboard; CR overwrites a line), DEL, and
# the bidirectional overrides that make a name read differently from what it is ("Trojan Source").
_UNSAFE = None


def printable(text: str) -> str:
    """``text`` with every terminal control character shown as an escape (``\\x1b``, ``\\u202e``).
    Names, paths and configs come from the file: a hostile one must not drive the user's terminal."""
    global _UNSAFE
    if _UNSAFE is None:
        import re

        _UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def escape(text: str) -> str:
    """rich.markup.escape of ``printable(text)``: safe to put in any rich string or table cell."""
    from rich.markup import escape as escape_markup

    return escape_markup(printable(text))


def escape_name(name: str) -> str:
    """``escape`` for a tensor or layer name, on one line: its newlines and tabs shown as ``\\n``, ``\\t``."""
    return escape(name.replace("\n", "\\n").replace("\t", "\\t"))


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render_diagnostics(out: Console, diagnostics: Iterable[Diagnostic], *, verbose: bool = False,
                       key: Callable[[Diagnostic], Any] = sort_key) -> None:

    diags = sorted(diagnostics, key=key)
    if not diags:
        out.print("[green]No findings.[/green]")
        return
    for d in diags:
        style = STYLE[d.severity]
        subject = f" [bold]{escape(d.subject)}[/bold]:" if d.subject else ""
        out.print(f"[{style}]{d.severity}[{d.code}][/{style}] [dim]{d.name}[/dim]{subject} {escape(d.message)}")
        if d.expected is not None or d.found is not None:
            out.print(f"    expected: {escape(_short(d.expected))}   found: {escape(_short(d.found))}")
        if d.framework_behavior:
            out.print(f"    [dim]on load:[/dim] {escape(d.framework_behavior)}")
        if d.fix:
            out.print(f"    [green]fix:[/green] {escape(d.fix)}")
        if verbose and d.details:
            for key, value in d.details.items():
                out.print(f"    [dim]{escape(str(key))}:[/dim] {escape(_short(value, 400))}")
    counts = {s: sum(1 for d in diags if d.severity == s) for s in Severity}
    out.print(
        f"\n{counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info. "
        "Run `ckptdoctor explain CODE` for details."
    )


def _short(value: object, limit: int = 160) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
