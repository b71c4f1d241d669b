"""``ckptdoctor explain``: what a warning, an error or a whole log means, or the documentation of a code."""

from __future__ import annotations

import os
import re
import sys

from ckptdoctor.commands.common import (
    add_fail_on_argument,
    add_format_argument,
    exit_code,
    handle_errors,
    write_json,
)
from ckptdoctor.errors import InputError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

_CODE = re.compile(r"^[ACDSFW]\d{3}$", re.IGNORECASE)
MAX_INPUT = 64 * 1024 * 1024  # a log larger than this is read from its end


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="*", metavar="WHAT",
                        help="A code (A101), a log file, - for stdin, or the message text itself.")
    add_format_argument(parser, "text", "json")
    parser.add_argument("--list", dest="list_all", action="store_true",
                        help="List every code (A/C/D/S/F rules and the W codes of known messages) and exit.")
    add_fail_on_argument(parser)


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Explain save/load warnings and errors, or print the documentation of a finding code.

    WHAT is a message (quoted), the path of a log file, `-` for stdin, or a code such as A101 or
    W107. In a log, every known message is found (through ANSI colours, `WARNING:absl:` prefixes,
    tracebacks and wrapped lines), repeats are counted once, and the most important come first.
    Each is explained: what it means, whether it is harmless, why it happens, and the fix, using
    the names and shapes from your message. Unknown warnings are shown as "not in catalog" with
    the closest known entries.

    Examples:
      ckptdoctor explain "Found untraced functions such as lstm_cell_layer_call_fn"
      python train.py 2>&1 | ckptdoctor explain -
      ckptdoctor explain training.log --format json
      ckptdoctor explain W107            # documentation of one message
      ckptdoctor explain --list          # every code, rules and known messages

    Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage or input error.
    """
    what, fmt = tuple(args.what), args.fmt
    if args.list_all:
        _list(fmt)
        return
    if not what:
        if sys.stdin.isatty():
            raise UsageError("give a message, a log file, '-' for stdin, or a code (see --help)")
        what = ("-",)
    if len(what) == 1 and _CODE.match(what[0].strip()):
        _code(what[0].strip().upper(), fmt)
        return
    text, subject = _read(what)
    from ckptdoctor.catalog.explaining import explain

    result = explain(text, source=subject["source"])
    if fmt == "json":
        write_json(result.to_json(subject))
    else:
        from ckptdoctor.catalog.text import print_explanation
        from ckptdoctor.report.text import console

        print_explanation(console(), result)
    sys.exit(exit_code(result.diagnostics, args.fail_on))


def _read(what: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    if what == ("-",):
        data = sys.stdin.buffer.read()
        return _decode(data), {"source": "stdin"}
    if len(what) == 1 and "\n" not in what[0] and len(what[0]) < 4096 and os.path.isfile(what[0]):
        path = what[0]
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                if size > MAX_INPUT:
                    fh.seek(size - MAX_INPUT)
                data = fh.read()
        except OSError as exc:
            raise InputError("F110", f"cannot read the log: {exc.strerror or exc}", path) from None
        return _decode(data), {"source": "file", "path": path}
    if len(what) == 1 and os.path.isdir(what[0]):
        raise InputError("F104", "is a folder; give a log file, a message or a code", what[0])
    return " ".join(what), {"source": "text"}


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _code(code: str, fmt: str) -> None:
    from ckptdoctor.rules.registry import get

    rule = get(code)
    if rule is None:
        raise UsageError(f"unknown code {code}: no rule has this code (`ckptdoctor explain --list` lists every code)")
    if fmt == "json":
        from ckptdoctor.report.json_report import tool_info

        write_json({"tool": tool_info(), "subject": {"code": rule.code}, "diagnostics": [],
                    "rule": {"code": rule.code, "name": rule.name, "severity": str(rule.severity),
                             "summary": rule.summary, "documentation": rule.documentation()}})
    else:
        _echo(rule.documentation())


def _list(fmt: str) -> None:
    """Every code: the A/C/D/S/F rules ckptdoctor reports, then the W codes of known library messages."""
    from ckptdoctor.catalog import BY_CODE
    from ckptdoctor.rules import load_all
    from ckptdoctor.rules.registry import FAMILIES

    rules = load_all()
    if fmt == "json":
        write_json([{"code": r.code, "name": r.name, "family": FAMILIES.get(r.code[0], ""),
                     "severity": str(r.severity), "summary": r.summary,
                     **({"library": BY_CODE[r.code].library} if r.code in BY_CODE else {})}
                    for r in rules.values()])
        return
    family = ""
    for r in rules.values():
        if r.code[0] != family:
            family = r.code[0]
            _echo(f"\n{family}: {FAMILIES.get(family, '')}")
        origin = f"[{BY_CODE[r.code].library}] " if r.code in BY_CODE else ""
        _echo(f"  {r.code}  {r.name:<44} {r.severity!s:<8} {origin}{r.summary}")


def _echo(text: str) -> None:
    sys.stdout.write(f"{text}\n")
