"""``ckptdoctor lint``: what a save of this model will lose, refuse, or fail to rebuild."""

from __future__ import annotations

import sys

from ckptdoctor.commands.common import (
    add_fail_on_argument,
    add_format_argument,
    add_model_arguments,
    exit_code,
    handle_errors,
    write_json,
)
from ckptdoctor.linting import SAVE_METHODS  # light: the framework work is imported lazily

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--save-as", choices=list(SAVE_METHODS), default=None,
                        help="The save method you use: its hazards become errors.")
    add_format_argument(parser, "text", "json")
    add_fail_on_argument(parser)


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Find what saving this model would lose, refuse, or make impossible to load elsewhere.

    PyTorch: tensors kept as plain attributes, non-persistent buffers, modules in plain lists,
    tied or viewed storage, non-contiguous or meta tensors, mixed dtypes, DataParallel/compile
    prefixes, classes in __main__ or local classes (whole-module pickles).
    Keras: unregistered custom classes, get_config() that misses __init__ arguments,
    non-serialisable arguments, Lambda layers, unbuilt models, mixed precision.

    Examples:
      ckptdoctor lint --model chatbot/model.py:ChatbotModel --model-args '{"vocab_size": 1000}'
      ckptdoctor lint --model mypkg.models:build --save-as safetensors --format json
    """
    from ckptdoctor.frameworks import build_from_target
    from ckptdoctor.linting import lint

    model, _ = build_from_target(args.target, args.model_args, meta=False)
    report = lint(model, save_as=args.save_as)
    if args.fmt == "json":
        write_json(report.to_json())
    else:
        from ckptdoctor.report.text import console, render_diagnostics

        out = console()
        out.print(f"[bold]lint[/bold] {report.module}.{report.class_name} ({report.framework})")
        render_diagnostics(out, report.diagnostics)
    sys.exit(exit_code(report.diagnostics, args.fail_on))
