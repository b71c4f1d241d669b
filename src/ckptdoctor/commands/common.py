"""Pieces every command shares: output format options, exit codes, and turning InputError into exit 2."""

from __future__ import annotations

import functools
import sys

from ckptdoctor.diagnostics import Severity
from ckptdoctor.errors import InputError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable
    from typing import Any

    from ckptdoctor.diagnostics import Diagnostic

    Command = Callable[[argparse.Namespace], None]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

FAIL_ON_CHOICES = ("error", "warning", "info")
FAIL_ON_DEFAULT = "error"


def add_format_argument(parser: argparse.ArgumentParser, *choices: str) -> None:
    """``--format {text,json,...}`` (default text), stored as ``args.fmt``."""
    choices = choices or ("text", "json")
    parser.add_argument("--format", dest="fmt", choices=list(choices), default="text",
                        help="Output format. (default: text)")


def add_model_arguments(parser: argparse.ArgumentParser, builds: str = "builds the model") -> None:
    """``--model TARGET`` (required, as ``args.target``) and ``--model-args JSON``: the user's model code."""
    parser.add_argument("--model", dest="target", required=True, metavar="TARGET",
                        help=f"The code that {builds}: 'package.module:callable' or 'path/to/file.py:callable' "
                             "(a model class or a factory function). (required)")
    parser.add_argument("--model-args", default=None, metavar="JSON",
                        help="Arguments for TARGET: a JSON object (keywords) or array (positional), e.g. "
                             "'{\"vocab_size\": 1000}'.")


def add_fail_on_argument(parser: argparse.ArgumentParser, default: str | None = FAIL_ON_DEFAULT) -> None:
    """``--fail-on {error,warning,info}``, stored as ``args.fail_on``. ``default=None`` lets a command tell
    whether the option was given; it then applies FAIL_ON_DEFAULT itself."""
    parser.add_argument("--fail-on", dest="fail_on", choices=list(FAIL_ON_CHOICES), default=default,
                        help="Exit with status 1 when a finding at or above this severity is reported. "
                             f"(default: {FAIL_ON_DEFAULT})")


def exit_code(diagnostics: Iterable[Diagnostic], fail_on: str = FAIL_ON_DEFAULT) -> int:
    threshold = Severity.parse(fail_on)
    return EXIT_FINDINGS if any(d.severity >= threshold for d in diagnostics) else EXIT_OK


def echo_err(message: str) -> None:
    """One line on stderr (control characters from the file shown as escapes, never sent to the terminal)."""
    from ckptdoctor.report.text import printable

    sys.stderr.write(f"{printable(message)}\n")
    sys.stderr.flush()


def handle_errors(func: Command) -> Command:
    """Bad input and usage errors become one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> None:
        try:
            return func(args)
        except InputError as exc:
            echo_err(exc.one_line())
            _error_document(args, exc, "input", command)
            sys.exit(EXIT_USAGE)
        except UsageError as exc:
            echo_err(f"error: {exc}")
            _error_document(args, exc, "usage", command)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            echo_err("interrupted")
            sys.exit(130)

    command = func.__module__.rsplit(".", 1)[-1]
    return wrapper


def _error_document(args: argparse.Namespace, exc: Exception, kind: str, command: str) -> None:
    """With --format json or sarif, stdout still gets a document a pipeline can parse (the error in it)."""
    fmt = getattr(args, "fmt", "text")
    if fmt == "json":
        from ckptdoctor.report.error_report import error_json

        write_json(error_json(exc, kind))
    elif fmt == "sarif":
        from ckptdoctor.report.error_report import error_sarif

        write_json(error_sarif(exc, kind, command))


def json_indent() -> int | None:
    # Indented for a terminal; compact when piped, because indentation forces json's pure-Python
    # encoder, which for a few thousand tensors costs more than reading the whole file's header.
    return 2 if sys.stdout.isatty() else None


def write_json(obj: Any) -> None:
    from ckptdoctor.report.json_report import json_text

    sys.stdout.write(json_text(obj, json_indent()))
    sys.stdout.write("\n")
