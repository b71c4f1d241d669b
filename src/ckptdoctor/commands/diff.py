"""``ckptdoctor diff``: two checkpoints, any formats, compared by structure and values (exit 1 if they differ)."""

from __future__ import annotations

import sys

from ckptdoctor.commands.common import add_format_argument, handle_errors, write_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ckptdoctor.fixing.diff import DiffReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="The first checkpoint (any format).")
    parser.add_argument("b", metavar="B", help="The second checkpoint (any format).")
    parser.add_argument("--tolerance", type=float, default=0.0, metavar="X",
                        help="Largest absolute difference per element still counted as equal (0: any difference "
                             "counts). Added, removed, reshaped or re-typed tensors and new NaN/Inf always count. "
                             "(default: 0.0)")
    parser.add_argument("--key", default=None, metavar="KEY",
                        help="Compare only this part of training checkpoints (e.g. `model`), in both files.")
    parser.add_argument("--key-a", default=None, metavar="KEY", help="Like --key, for A only.")
    parser.add_argument("--key-b", default=None, metavar="KEY", help="Like --key, for B only.")
    parser.add_argument("--hash", dest="hashes", action="store_true",
                        help="Also report each tensor's blake2b digest of its raw bytes in both files (slower).")
    add_format_argument(parser, "text", "json")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="One line per tensor, including identical ones.")


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Compare two checkpoints tensor by tensor, whatever their formats.

    Reports tensors added, removed, reshaped and re-typed, then for each tensor in both files the
    largest absolute difference, the relative L2 distance, the cosine similarity, whether the raw
    bytes are identical, and NaN/Inf that appeared. Values are streamed in chunks: memory stays small
    whatever the file size. safetensors alias metadata (tied weights saved by save_model) is resolved.

    Examples:
      ckptdoctor diff model.pt model.safetensors          same weights after a conversion?
      ckptdoctor diff epoch3.pt epoch4.pt -v               what changed between two epochs
      ckptdoctor diff fp32.safetensors bf16.safetensors --tolerance 1e-2
      ckptdoctor diff checkpoint.pt model.safetensors --key-a model
      ckptdoctor diff a.pt b.pt --format json | jq .diff.counts

    Exit status: 0 the files match (within --tolerance), 1 they differ, 2 usage or input error.
    """
    from ckptdoctor.fixing.diff import diff

    report = diff(args.a, args.b, args.tolerance, hashes=args.hashes, key_a=args.key_a or args.key,
                  key_b=args.key_b or args.key)
    if args.fmt == "json":
        from ckptdoctor.report.json_report import envelope

        write_json(envelope({"a": args.a, "b": args.b, "kind": "diff"}, report.diagnostics, diff=report.to_json()))
    else:
        render(report, verbose=args.verbose)
    sys.exit(report.exit_code)


def render(report: DiffReport, *, verbose: bool = False) -> None:
    from rich.table import Table

    from ckptdoctor.report.text import console, escape, escape_name, render_diagnostics

    out = console()
    out.print(f"[bold]A[/bold] {escape(report.a)} ([cyan]{report.format_a}[/cyan])")
    out.print(f"[bold]B[/bold] {escape(report.b)} ([cyan]{report.format_b}[/cyan])")
    rows = [t for t in report.tensors if verbose or t.status not in ("identical", "equal")]
    if rows:
        table = Table(show_edge=False, pad_edge=False, box=None)
        longest = max(len(t.name) + (len(t.name_b) + 13 if t.name_b else 0) for t in rows)
        table.add_column("tensor", overflow="fold", min_width=min(longest, 32))
        table.add_column("status", no_wrap=True)
        table.add_column("dtype\\[shape] A → B", overflow="fold", min_width=12)
        for col in ("max|a-b|", "rel L2", "cosine"):
            table.add_column(col, justify="right", no_wrap=True)
        show_nonfinite = any(t.nan_a + t.inf_a + t.nan_b + t.inf_b for t in rows)
        if show_nonfinite:
            table.add_column("NaN/Inf", no_wrap=True)
        for t in rows:
            name = t.name if not t.name_b else f"{t.name} (alias of {t.name_b} in B)"
            a, b = _desc(t.dtype_a, t.shape_a), _desc(t.dtype_b, t.shape_b)
            layout = a if a == b else f"{a} → {b}"
            style = "green" if not t.differs else "red"
            cells = [escape_name(name), f"[{style}]{t.status}[/{style}]", escape(layout), _num(t.max_abs_diff),
                     _num(t.rel_l2), f"{t.cosine:.6f}" if t.cosine is not None else ""]
            if show_nonfinite:
                cells.append(f"{t.nan_a + t.inf_a}→{t.nan_b + t.inf_b}" if t.max_abs_diff is not None else "")
            table.add_row(*cells)
        out.print(table)
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    verdict = "[red]differ[/red]" if report.differs else "[green]match[/green]"
    out.print(f"\n{len(report.tensors)} tensor(s): {summary}. The files {verdict}"
              f"{f' (tolerance {report.tolerance:g})' if report.tolerance else ''}.")
    if report.diagnostics and (verbose or report.differs):
        out.print()
        render_diagnostics(out, report.diagnostics, verbose=verbose)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _desc(dtype: str | None, shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else f"{dtype}[{','.join(map(str, shape))}]"
