"""``ckptdoctor check FILE --model TARGET``: does this checkpoint fit the code that builds the model?"""

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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="The checkpoint file, or a Hugging Face style model folder.")
    add_model_arguments(parser)
    parser.add_argument("--key", default=None, metavar="KEY",
                        help="For a training checkpoint, the entry that holds the state_dict (default: found "
                             "automatically).")
    add_format_argument(parser, "text", "json", "sarif")
    add_fail_on_argument(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Also list every tensor involved in each finding.")


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Check a checkpoint FILE (or a Hugging Face style model folder) against the code that builds the model.

    Reports missing, unexpected and reshaped tensors, wrapper prefixes (module., _orig_mod.), renamed
    layers and changed hyperparameters, and says what load_state_dict / load_weights / load_model will
    do with this file: error, warning, or a silent partial load. Nothing in FILE is executed; TARGET
    (your own code) is imported and called, torch models on the meta device (no weight memory).

    Examples:
      ckptdoctor check chatbot.pth --model models.py:ChatbotModel --model-args '{"vocab_size": 1000}'
      ckptdoctor check v1.keras --model train.py:create_model_v2
      ckptdoctor check ./my-llama/ --model mymodels.py:TinyLlamaForCausalLM
      ckptdoctor check ckpt.pt --model mypkg.nets:Net --key model --format sarif > check.sarif
    """
    from ckptdoctor.checking import check
    from ckptdoctor.checking.hf import read_for_check
    from ckptdoctor.frameworks import build_from_target

    snap, read_notes = read_for_check(args.path)
    model, notes = build_from_target(args.target, args.model_args, snap)
    report = check(model, args.path, key=args.key, snapshot=snap)
    report.notes[:0] = read_notes + notes
    if args.fmt == "json":
        write_json(report.to_json())
    elif args.fmt == "sarif":
        from ckptdoctor.report.sarif import sarif_log

        write_json(sarif_log(report.diagnostics, args.path))
    else:
        from ckptdoctor.report.check_report import render_check

        render_check(report, verbose=args.verbose)
    sys.exit(exit_code(report.diagnostics, args.fail_on))
