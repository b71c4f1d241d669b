"""``ckptdoctor inspect``: what is in a model file, read without executing it."""

from __future__ import annotations

import sys

import click

from ckptdoctor.commands.common import exit_code, fail_on_option, format_option, handle_errors, write_json


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@format_option("text", "json")
@click.option("--values", is_flag=True, help="Add per-tensor statistics (min, max, mean, std, NaN/Inf), "
              "read tensor by tensor with bounded memory.")
@click.option("-v", "--verbose", is_flag=True, help="One line per tensor instead of per layer.")
@fail_on_option
@handle_errors
def inspect_command(path: str, fmt: str, values: bool, verbose: bool, fail_on: str) -> None:
    """Show what a model file or folder holds: format, saving version, tensors grouped by layer,
    dtypes, parameter counts, the classes and globals it refers to, and any findings.

    PATH is a file (.pt .pth .bin .safetensors .keras .weights.h5 .h5 .npz .pkl ...) or a folder
    (a Hugging Face model folder, a sharded safetensors set). Formats are recognised by content.
    Nothing in the file is executed: pickles are read by a symbolic interpreter.

    \b
    Examples:
      ckptdoctor inspect chatbot.pth
      ckptdoctor inspect ./llama-7b/ --format json
      ckptdoctor inspect model.safetensors --values
    """
    from ckptdoctor.inspection import inspect

    snaps = inspect(path)
    stats = _stats(snaps) if values else {}
    diagnostics = [d for s in snaps for d in s.diagnostics]
    if fmt == "json":
        from ckptdoctor.report.inspect_report import inspect_json

        write_json(inspect_json(path, snaps, stats))
    else:
        from ckptdoctor.report.inspect_report import render_inspect

        render_inspect(snaps, stats, verbose=verbose)
    sys.exit(exit_code(diagnostics, fail_on))


def _stats(snaps: list) -> dict:
    from ckptdoctor.values import tensor_stats

    out = {}
    for snap in snaps:
        for t in snap.tensors:
            try:
                out[(snap.path, t.name)] = tensor_stats(t)
            except ValueError:
                continue
    return out
