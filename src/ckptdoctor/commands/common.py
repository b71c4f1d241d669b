"""Pieces every command shares: output format options, exit codes, and turning InputError into exit 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.errors import InputError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


def format_option(*choices: str) -> Callable[[F], F]:
    choices = choices or ("text", "json")
    return click.option("--format", "fmt", type=click.Choice(list(choices)), default="text",
                        show_default=True, help="Output format.")


fail_on_option = click.option(
    "--fail-on", type=click.Choice(["error", "warning", "info"]), default="error", show_default=True,
    help="Exit with status 1 when a finding at or above this severity is reported.",
)


def exit_code(diagnostics: Iterable[Diagnostic], fail_on: str = "error") -> int:
    threshold = Severity.parse(fail_on)
    return EXIT_FINDINGS if any(d.severity >= threshold for d in diagnostics) else EXIT_OK


def handle_errors(func: F) -> F:
    """Bad input and usage errors become one line on stderr and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            click.echo(exc.one_line(), err=True)
            sys.exit(EXIT_USAGE)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON that is always valid UTF-8: names and configs read from damaged or hostile files may hold
    lone surrogates (a JSON ``\\udc80`` escape, undecodable HDF5 strings); they become U+FFFD."""
    import json

    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        import re

        text = re.sub("[\ud800-\udfff]", "\ufffd", text)
    return text


def write_json(obj: Any) -> None:
    # Indented for a terminal; compact when piped, because indentation forces json's pure-Python
    # encoder, which for a few thousand tensors costs more than reading the whole file's header.
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json_text(obj, indent))
    sys.stdout.write("\n")
