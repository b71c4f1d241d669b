"""The ``ckptdoctor`` command line: thin. It parses arguments and hands over to ``commands/``.

Each subcommand is a click command defined in its own module and imported only when it runs (or when
``--help`` lists it), so ``ckptdoctor --version`` imports neither numpy, h5py, rich nor any framework.
"""

from __future__ import annotations

import importlib
import sys

import click

from ckptdoctor._version import __version__

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "inspect": "ckptdoctor.commands.inspect:inspect_command",
    "check": "ckptdoctor.commands.check:check_command",
    "lint": "ckptdoctor.commands.lint:lint_command",
    "roundtrip": "ckptdoctor.commands.roundtrip:roundtrip_command",
    "explain": "ckptdoctor.commands.explain:explain_command",
    "run": "ckptdoctor.commands.run:run_command",
    "fix": "ckptdoctor.commands.fix:fix_command",
    "convert": "ckptdoctor.commands.convert:convert_command",
    "diff": "ckptdoctor.commands.diff:diff_command",
    "demo": "ckptdoctor.commands.demo:demo_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that command is not part of this build
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="ckptdoctor")
def main() -> None:
    """Why did saving or loading my model warn, fail, or silently lose weights?

    ckptdoctor reads PyTorch (.pt/.pth/.bin, zip and legacy, TorchScript, distributed checkpoints),
    safetensors, Keras (.keras, .weights.h5), legacy HDF5 (.h5), TensorFlow checkpoints and
    SavedModels, GGUF and Hugging Face folders WITHOUT running any code from them, compares them
    with the code that builds your model, and tells you what the framework will do and how to fix
    it.

    \b
    Start here:
      ckptdoctor inspect model.pt                 what is in the file
      ckptdoctor check model.pt --model net.py:Net   does it fit my code?
      ckptdoctor explain training.log             what do these warnings mean?
      ckptdoctor explain A101                     documentation of a finding

    Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage or input error.
    """


def run() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    main()
