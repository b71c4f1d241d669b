"""``ckptdoctor check FILE --model TARGET``: does this checkpoint fit the code that builds the model?"""

from __future__ import annotations

import sys

import click

from ckptdoctor.commands.common import exit_code, fail_on_option, format_option, handle_errors, write_json


@click.command("check")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--model", "target", required=True, metavar="TARGET",
              help="The model's code: 'package.module:callable' or 'path/to/file.py:callable' "
                   "(a model class or a factory function).")
@click.option("--model-args", default=None, metavar="JSON",
              help='Arguments for TARGET: a JSON object (keywords) or array (positional), e.g. \'{"vocab_size": 1000}\'.')
@click.option("--key", default=None, metavar="KEY",
              help="For a training checkpoint, the entry that holds the state_dict (default: found automatically).")
@format_option("text", "json", "sarif")
@fail_on_option
@click.option("-v", "--verbose", is_flag=True, help="Also list every tensor involved in each finding.")
@handle_errors
def check_command(path: str, target: str, model_args: str | None, key: str | None, fmt: str, fail_on: str,
                  verbose: bool) -> None:
    """Check a checkpoint FILE (or a Hugging Face style model folder) against the code that builds the model.

    Reports missing, unexpected and reshaped tensors, wrapper prefixes (module., _orig_mod.), renamed
    layers and changed hyperparameters, and says what load_state_dict / load_weights / load_model will
    do with this file: error, warning, or a silent partial load. Nothing in FILE is executed; TARGET
    (your own code) is imported and called, torch models on the meta device (no weight memory).

    \b
    Examples:
      ckptdoctor check chatbot.pth --model models.py:ChatbotModel --model-args '{"vocab_size": 1000}'
      ckptdoctor check v1.keras --model train.py:create_model_v2
      ckptdoctor check ./my-llama/ --model mymodels.py:TinyLlamaForCausalLM
      ckptdoctor check ckpt.pt --model mypkg.nets:Net --key model --format sarif > check.sarif
    """
    from ckptdoctor.checking import check
    from ckptdoctor.checking.hf import read_for_check
    from ckptdoctor.frameworks import build_from_target

    snap, read_notes = read_for_check(path)
    model, notes = build_from_target(target, model_args, snap)
    report = check(model, path, key=key, snapshot=snap)
    report.notes[:0] = read_notes + notes
    if fmt == "json":
        write_json(report.to_json())
    elif fmt == "sarif":
        from ckptdoctor.report.sarif import sarif_log

        write_json(sarif_log(report.diagnostics, path))
    else:
        from ckptdoctor.report.check_report import render_check

        render_check(report, verbose=verbose)
    sys.exit(exit_code(report.diagnostics, fail_on))
