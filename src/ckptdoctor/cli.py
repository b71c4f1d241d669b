"""The ``ckptdoctor`` command line: thin. It parses arguments and hands over to ``commands/``.

Each subcommand lives in its own module, imported only when it runs: ``ckptdoctor --version`` and
``ckptdoctor --help`` import no command module, no argparse, and neither numpy, h5py, rich nor any
framework. A command module exposes ``add_arguments(parser)`` (argparse) and ``run(args)``, whose
docstring is the command's ``--help`` description.
"""

from __future__ import annotations

import sys

from ckptdoctor._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import ModuleType

PROG = "ckptdoctor"

# command name -> (module that defines add_arguments() and run(), one-line summary for `ckptdoctor --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("ckptdoctor.commands.inspect",
                "Show what a model file or folder holds: format, tensors, dtypes, findings."),
    "check": ("ckptdoctor.commands.check",
              "Check a checkpoint FILE (or model folder) against the code that builds the model."),
    "lint": ("ckptdoctor.commands.lint",
             "Find what saving this model would lose, refuse, or make impossible to load."),
    "roundtrip": ("ckptdoctor.commands.roundtrip",
                  "Save the model, reload it in a FRESH Python process, compare bit for bit."),
    "explain": ("ckptdoctor.commands.explain",
                "Explain save/load warnings and errors, or print the documentation of a code."),
    "run": ("ckptdoctor.commands.run",
            "Run a Python script under ckptdoctor.watch() and explain its save/load warnings."),
    "fix": ("ckptdoctor.commands.fix",
            "Write a corrected copy of FILE that loads STRICTLY into the model TARGET builds."),
    "convert": ("ckptdoctor.commands.convert", "Convert a checkpoint to safetensors WITHOUT unpickling it."),
    "diff": ("ckptdoctor.commands.diff", "Compare two checkpoints tensor by tensor, whatever their formats."),
    "demo": ("ckptdoctor.commands.demo",
             "Reproduce the article's three chatbot scenarios and diagnose them."),
}

USAGE = f"Usage: {PROG} [-h] [-V] COMMAND [ARGS]..."

DESCRIPTION = """\
Why did saving or loading my model warn, fail, or silently lose weights?

ckptdoctor reads PyTorch (.pt/.pth/.bin, zip and legacy, TorchScript, distributed checkpoints),
safetensors, Keras (.keras, .weights.h5), legacy HDF5 (.h5), TensorFlow checkpoints and
SavedModels, GGUF and Hugging Face folders WITHOUT running any code from them, compares them
with the code that builds your model, and tells you what the framework will do and how to fix
it.

Start here:
  ckptdoctor inspect model.pt                 what is in the file
  ckptdoctor check model.pt --model net.py:Net   does it fit my code?
  ckptdoctor explain training.log             what do these warnings mean?
  ckptdoctor explain A101                     documentation of a finding

Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage or input error."""

HELP_OPTION = "Show this message and exit."
EXIT_USAGE = 2


def available_commands() -> list[str]:
    """The commands of this build, in help order (a command whose module is absent is left out).
    Nothing is imported: the modules are only looked up."""
    from importlib.util import find_spec

    return [name for name, (module, _) in COMMANDS.items() if find_spec(module) is not None]


def help_text() -> str:
    width = max(len(name) for name in COMMANDS)
    commands = "\n".join(f"  {name:<{width}}  {COMMANDS[name][1]}" for name in available_commands())
    return (f"{USAGE}\n\n{DESCRIPTION}\n\n"
            "Options:\n"
            "  -V, --version  Show the version and exit.\n"
            f"  -h, --help     {HELP_OPTION}\n\n"
            f"Commands:\n{commands}\n\n"
            f"Run '{PROG} COMMAND --help' for the options of a command.\n")


def _usage_error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(EXIT_USAGE)


def _no_such_command(name: str) -> None:
    import difflib

    close = difflib.get_close_matches(name, available_commands(), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else f" See '{PROG} --help'."
    _usage_error(f"No such command '{name}'.{hint}")


def _load(name: str) -> ModuleType | None:
    entry = COMMANDS.get(name)
    if entry is None:
        return None
    import importlib

    module_name = entry[0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # that command is not part of this build
            return None
        raise


def _description(module: ModuleType) -> str:
    """The docstring of the command's run(), dedented; its line breaks are kept (examples blocks)."""
    import inspect  # already loaded by dataclasses; textwrap would be one more import per run

    return inspect.cleandoc(getattr(module.run, "__doc__", None) or "")


def _terminal_columns() -> int:
    """shutil.get_terminal_size() without importing shutil (it pulls in bz2, lzma and fnmatch, and
    argparse builds a formatter for every add_argument call)."""
    import os

    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    """The argparse parser of one command: its own arguments, then -h/--help."""
    import argparse

    class HelpFormatter(argparse.RawDescriptionHelpFormatter):
        """Keeps the description's line breaks; 'Usage:', 'Arguments:' and 'Options:' headings; at most
        100 columns."""

        def __init__(self, prog: str) -> None:
            width = max(min(_terminal_columns(), 100) - 2, 50)
            super().__init__(prog, max_help_position=32, width=width)

        def add_usage(self, usage, actions, groups, prefix=None):
            super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)

        def start_section(self, heading):
            heading = "Arguments" if heading == "positional arguments" else heading
            super().start_section(heading[:1].upper() + heading[1:] if heading else heading)

        def _format_action_invocation(self, action):
            # `-o, --output PATH` rather than `-o PATH, --output PATH` (as Python 3.13's argparse does)
            if not action.option_strings or action.nargs == 0:
                return super()._format_action_invocation(action)
            value = self._format_args(action, self._get_default_metavar_for_optional(action))
            return f"{', '.join(action.option_strings)} {value}"

    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=_description(module),
                                     formatter_class=HelpFormatter, add_help=False, allow_abbrev=False)
    module.add_arguments(parser)
    parser.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS, help=HELP_OPTION)
    return parser


def _dispatch(argv: list[str]) -> None:
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        option = argv[i]
        if option in ("-h", "--help"):
            sys.stdout.write(help_text())
            return
        if option in ("-V", "--version"):
            sys.stdout.write(f"{PROG}, version {__version__}\n")
            return
        if option == "--":
            i += 1
            break
        _usage_error(f"No such option: {option} (see '{PROG} --help')")
    if i >= len(argv):  # no command: the help, as a usage error
        sys.stderr.write(help_text())
        sys.exit(EXIT_USAGE)
    name, rest = argv[i], argv[i + 1:]
    module = _load(name)
    if module is None:
        _no_such_command(name)
        return
    parser = build_parser(name, module)
    # Options may come between positional arguments (`explain some words --format json more words`),
    # except for a command that passes everything after its first positional through (`run`).
    if getattr(module, "PASS_THROUGH", False):
        args = parser.parse_args(rest)
    else:
        args = parser.parse_intermixed_args(rest)
    module.run(args)


def main(argv: list[str] | None = None) -> None:
    """The ``ckptdoctor`` console script. Exits with the command's status (SystemExit)."""
    try:
        _dispatch(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()
    except BrokenPipeError:
        # `ckptdoctor explain --list | head`: the reader went away; say nothing more, exit 1 as click did
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(1)


def run() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    main()
