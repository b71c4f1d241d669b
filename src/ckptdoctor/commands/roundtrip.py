"""``ckptdoctor roundtrip``: save a model, reload it in a fresh process, compare bit for bit."""

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
    add_model_arguments(parser, "builds (or loads) the model")
    parser.add_argument("--save-as", choices=list(SAVE_METHODS), default=None,
                        help="Save method (default: torch state_dict, or .keras for Keras).")
    parser.add_argument("--rebuild", default=None, metavar="TARGET",
                        help="What the fresh process calls to build the model before loading (default: the "
                             "model's own class with --model-args).")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="FLOAT",
                        help="Seconds to wait for the fresh process. (default: 600.0)")
    add_format_argument(parser, "text", "json")
    add_fail_on_argument(parser)


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Save the model, reload it in a FRESH Python process the way an inference program would
    (no training-script __main__, class imported from its module or file, load_state_dict(strict=True)
    or keras.models.load_model), and compare every tensor bit for bit and the outputs on a sample input.

    From the command line the model is freshly built by TARGET, so its "trained" state is its initial
    state (or whatever TARGET returns: a factory can load or train it first). The Python API is the
    main use: ckptdoctor.roundtrip(trained_model) or ckptdoctor.testing.assert_roundtrip(model).

    Examples:
      ckptdoctor roundtrip --model chatbot/model.py:ChatbotModel --model-args '[1000, 64, 128]'
      ckptdoctor roundtrip --model mypkg.keras_models:build --save-as h5
    """
    from ckptdoctor.frameworks import build_from_target
    from ckptdoctor.frameworks.target import parse_model_args
    from ckptdoctor.roundtripping import roundtrip

    model, _ = build_from_target(args.target, args.model_args, meta=False)
    model_args = parse_model_args(args.model_args)
    # the fresh process builds the model with the same TARGET and arguments, as the loading program would
    report = roundtrip(model, save_as=args.save_as, rebuild=args.rebuild or args.target, model_args=model_args,
                       timeout=args.timeout)
    if args.fmt == "json":
        write_json(report.to_json())
    else:
        from ckptdoctor.report.text import console, render_diagnostics

        out = console()
        for line in report.summary_lines():
            out.print(line, markup=False)
        render_diagnostics(out, report.diagnostics)
    sys.exit(exit_code(report.diagnostics, args.fail_on))
