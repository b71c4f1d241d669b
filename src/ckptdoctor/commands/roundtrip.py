"""``ckptdoctor roundtrip``: save a model, reload it in a fresh process, compare bit for bit."""

from __future__ import annotations

import sys

import click

from ckptdoctor.commands.common import exit_code, fail_on_option, format_option, handle_errors, write_json
from ckptdoctor.linting import SAVE_METHODS  # light: the framework work is imported lazily


@click.command("roundtrip")
@click.option("--model", "target", required=True, metavar="TARGET",
              help="package.module:callable or path/to/file.py:callable that builds (or loads) the model.")
@click.option("--model-args", default=None, metavar="JSON", help="Arguments for TARGET: a JSON object or array.")
@click.option("--save-as", type=click.Choice(SAVE_METHODS),
              default=None, help="Save method (default: torch state_dict, or .keras for Keras).")
@click.option("--rebuild", default=None, metavar="TARGET",
              help="What the fresh process calls to build the model before loading (default: the model's "
                   "own class with --model-args).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the fresh process.")
@format_option("text", "json")
@fail_on_option
@handle_errors
def roundtrip_command(target: str, model_args: str | None, save_as: str | None, rebuild: str | None,
                      timeout: float, fmt: str, fail_on: str) -> None:
    """Save the model, reload it in a FRESH Python process the way an inference program would
    (no training-script __main__, class imported from its module or file, load_state_dict(strict=True)
    or keras.models.load_model), and compare every tensor bit for bit and the outputs on a sample input.

    From the command line the model is freshly built by TARGET, so its "trained" state is its initial
    state (or whatever TARGET returns: a factory can load or train it first). The Python API is the
    main use: ckptdoctor.roundtrip(trained_model) or ckptdoctor.testing.assert_roundtrip(model).

    \b
    Examples:
      ckptdoctor roundtrip --model chatbot/model.py:ChatbotModel --model-args '[1000, 64, 128]'
      ckptdoctor roundtrip --model mypkg.keras_models:build --save-as h5
    """
    from ckptdoctor.frameworks import build_from_target
    from ckptdoctor.frameworks.target import parse_model_args
    from ckptdoctor.roundtripping import roundtrip

    model, _ = build_from_target(target, model_args, meta=False)
    args = parse_model_args(model_args)
    # the fresh process builds the model with the same TARGET and arguments, as the loading program would
    report = roundtrip(model, save_as=save_as, rebuild=rebuild or target, model_args=args, timeout=timeout)
    if fmt == "json":
        write_json(report.to_json())
    else:
        from ckptdoctor.report.text import console, render_diagnostics

        out = console()
        for line in report.summary_lines():
            out.print(line, markup=False)
        render_diagnostics(out, report.diagnostics)
    sys.exit(exit_code(report.diagnostics, fail_on))
