"""``ckptdoctor demo``: reproduce the source article's three chatbot scenarios and diagnose each."""

from __future__ import annotations

import sys

import click

from ckptdoctor.commands.common import handle_errors


@click.command("demo")
@click.option("--out", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the scripts, the saved models and the logs (created; files in it are replaced).")
@click.option("--scenario", "only", multiple=True, type=click.Choice(["1", "2", "3"]),
              help="Run only these scenarios (repeatable). Default: all three.")
@handle_errors
def demo_command(out_dir: str, only: tuple[str, ...]) -> None:
    """Reproduce the article "Why am I getting a warning when saving my chatbot model?" and
    diagnose it.

    For each of the article's three examples, the demo writes the article's code to OUT, runs it
    (save, then load) so you see what Keras and PyTorch really print, then runs the ckptdoctor
    commands that explain it. Needs torch and keras (KERAS_BACKEND=torch is set for you).

    Exit status: 0 when every step behaved as expected, 1 otherwise.
    """
    from ckptdoctor.demo.runner import run_demo

    sys.exit(run_demo(out_dir, set(only)))
