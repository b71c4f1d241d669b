"""``ckptdoctor demo``: reproduce the source article's three chatbot scenarios and diagnose each."""

from __future__ import annotations

import os
import sys

from ckptdoctor.commands.common import handle_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def _folder(value: str) -> str:
    """A folder path: may not exist yet, but must not be a file."""
    if os.path.isfile(value):
        import argparse

        raise argparse.ArgumentTypeError(f"Directory {value!r} is a file.")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", dest="out_dir", default="demo-out", type=_folder, metavar="DIRECTORY",
                        help="Folder for the scripts, the saved models and the logs (created; files in it are "
                             "replaced). (default: demo-out)")
    parser.add_argument("--scenario", dest="only", action="append", choices=["1", "2", "3"],
                        help="Run only these scenarios (repeatable). Default: all three.")


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Reproduce the article "Why am I getting a warning when saving my chatbot model?" and
    diagnose it.

    For each of the article's three examples, the demo writes the article's code to OUT, runs it
    (save, then load) so you see what Keras and PyTorch really print, then runs the ckptdoctor
    commands that explain it. Needs torch and keras (KERAS_BACKEND=torch is set for you).

    Exit status: 0 when every step behaved as expected, 1 otherwise.
    """
    from ckptdoctor.demo.runner import run_demo

    sys.exit(run_demo(args.out_dir, set(args.only or ())))
