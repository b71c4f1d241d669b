"""``ckptdoctor lint``: what a save of this model will lose, refuse, or fail to rebuild."""

from __future__ import annotations

import sys

import click

from ckptdoctor.commands.common import exit_code, fail_on_option, format_option, handle_errors, write_json
from ckptdoctor.linting import SAVE_METHODS  # light: the framework work is imported lazily


@click.command("lint")
@click.option("--model", "target", required=True, metavar="TARGET",
              help="package.module:callable or path/to/file.py:callable that builds the model.")
@click.option("--model-args", default=None, metavar="JSON", help="Arguments for TARGET: a JSON object or array.")
@click.option("--save-as", type=click.Choice(SAVE_METHODS),
              default=None, help="The save method you use: its hazards become errors.")
@format_option("text", "json")
@fail_on_option
@handle_errors
def lint_command(target: str, model_args: str | None, save_as: str | None, fmt: str, fail_on: str) -> None:
    """Find what saving this model would lose, refuse, or make impossible to load elsewhere.

    \b
    PyTorch: tensors kept as plain attributes, non-persistent buffers, modules in plain lists,
    tied or viewed storage, non-contiguous or meta tensors, mixed dtypes, DataParallel/compile
    prefixes, classes in __main__ or local classes (whole-module pickles).
    Keras: unregistered custom classes, get_config() that misses __init__ arguments,
    non-serialisable arguments, Lambda layers, unbuilt models, mixed precision.

    \b
    Examples:
      ckptdoctor lint --model chatbot/model.py:ChatbotModel --model-args '{"vocab_size": 1000}'
      ckptdoctor lint --model mypkg.models:build --save-as safetensors --format json
    """
    from ckptdoctor.frameworks import build_from_target
    from ckptdoctor.linting import lint

    model, _ = build_from_target(target, model_args, meta=False)
    report = lint(model, save_as=save_as)
    if fmt == "json":
        write_json(report.to_json())
    else:
        from ckptdoctor.report.text import console, render_diagnostics

        out = console()
        out.print(f"[bold]lint[/bold] {report.module}.{report.class_name} ({report.framework})")
        render_diagnostics(out, report.diagnostics)
    sys.exit(exit_code(report.diagnostics, fail_on))
