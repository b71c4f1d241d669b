"""Text rendering of a ``check`` report: what the file and the model are, what each load call will do,
then the findings (most important first; one line per tensor only with --verbose)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptdoctor.report.text import STYLE, console, render_diagnostics

if TYPE_CHECKING:
    from rich.console import Console

    from ckptdoctor.checking import CheckReport

OUTCOME_STYLE = {"error": "bold red", "warning": "yellow", "silent": "bold magenta", "ok": "green"}


def render_check(report: CheckReport, *, verbose: bool = False) -> None:
    from ckptdoctor.report.text import escape

    out = console()
    snap, spec = report.snapshot, report.spec
    n_model = len([e for e in spec.state if e.persistent])
    version = f" {snap.framework_version}" if snap.framework_version else ""
    out.print(f"[bold]{escape(report.path)}[/bold] ({snap.format}{escape(version)}, {len(snap.tensors)} tensors) "
              f"vs [bold]{escape(spec.class_name)}[/bold] ({spec.framework}, {n_model} tensors)")
    if report.selected_key:
        out.print(f"  [dim]comparing the state_dict under key {report.selected_key!r}[/dim]")
    for note in report.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")
    if report.predictions:
        out.print("\n[bold]What the framework will do with this file:[/bold]")
        for p in report.predictions:
            style = OUTCOME_STYLE.get(p.outcome, "")
            out.print(f"  [{style}]{p.outcome:>7}[/{style}]  {escape(p.summary())}")
            if verbose and p.message and p.outcome in ("error", "warning"):
                for line in p.message.splitlines()[1:12]:
                    out.print(f"           [dim]{escape(line.strip())}[/dim]")
    out.print()
    # severity first, then the order the comparison found them in: a root cause before its knock-on effects
    render_diagnostics(out, report.diagnostics, verbose=False, key=lambda d: -int(d.severity))
    if verbose:
        _per_tensor(out, report)
    if report.fix_plan:
        kinds = ", ".join(f.kind for f in report.fix_plan)
        out.print(f"[dim]Machine-applicable fix plan: {kinds} (see --format json, \"fix_plan\").[/dim]")


def _per_tensor(out: Console, report: CheckReport) -> None:
    """--verbose: one line per tensor involved in each finding."""
    from ckptdoctor.report.text import escape

    lines = []
    for d in sorted(report.diagnostics, key=lambda d: -int(d.severity)):
        style = STYLE[d.severity]
        tensors = d.details.get("tensors")
        if isinstance(tensors, dict):
            for name, shapes in tensors.items():
                lines.append(f"[{style}]{d.code}[/{style}] {escape(name)}: file {shapes.get('file')}, "
                             f"model {shapes.get('model')}")
        for key in ("keys", "groups"):
            for name in d.details.get(key) or []:
                lines.append(f"[{style}]{d.code}[/{style}] {escape(str(name))}")
        for old, new in (d.details.get("mapping") or {}).items():
            lines.append(f"[{style}]{d.code}[/{style}] {escape(old)} -> {escape(new)}")
    if lines:
        out.print("\n[bold]Tensors involved:[/bold]")
        for line in lines:
            out.print("  " + line)
