"""``ckptdoctor run -- python train.py ARGS``: run a script under ``watch()`` and report at the end.

The script runs in a child Python process started as ``python [options] -c BOOTSTRAP REPORT -- script
args``. The bootstrap enters ``ckptdoctor.watch()``, runs the script with ``runpy`` as ``__main__``
(sys.argv and sys.path[0] as Python would set them) and writes the report as JSON to a temporary
file. The script's stdout and stderr are the child's own and pass through untouched; ckptdoctor
prints its report afterwards (to stderr, or to ``--report FILE``) and exits with the script's status.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

from ckptdoctor.commands.common import (
    EXIT_FINDINGS,
    FAIL_ON_DEFAULT,
    add_fail_on_argument,
    add_format_argument,
    echo_err,
    handle_errors,
)
from ckptdoctor.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# Everything from the first positional argument on is the script's command line, options included
# (`ckptdoctor run python train.py --format x`): the CLI parses this command's options with parse_args,
# not parse_intermixed_args.
PASS_THROUGH = True

# options of the python executable that take a value (``-W error``, ``-X dev``)
_VALUE_OPTIONS = {"-W", "-X", "--check-hash-based-pycs"}

BOOTSTRAP = """\
import sys
_src, _report = sys.argv[1], sys.argv[2]
sys.path.insert(0, _src)
try:
    from ckptdoctor.watching import run_main as _run_main
finally:
    sys.path.remove(_src)
_run_main(_report, sys.argv[4:])
"""


def _file(value: str) -> str:
    """A file path: may not exist yet, but must not be a folder."""
    if os.path.isdir(value):
        import argparse

        raise argparse.ArgumentTypeError(f"File {value!r} is a directory.")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import argparse

    parser.usage = "%(prog)s [--format {text,json}] [--report FILE] [--fail-on {error,warning,info}] [-h] -- COMMAND..."
    # REMAINDER: the script's arguments pass through untouched, even those that look like ours
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="python [OPTIONS] script.py ARGS, python -m package ARGS, or script.py ARGS.")
    add_format_argument(parser, "text", "json")
    parser.add_argument("--report", dest="report_file", type=_file, default=None, metavar="FILE",
                        help="Write the report to this file instead of stderr.")
    # default None: only an explicit --fail-on changes the exit status (the default is applied in run())
    add_fail_on_argument(parser, default=None)


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Run a Python script under ckptdoctor.watch() and explain every save/load warning and error.

    Everything after `--` is the command: `python script.py ARGS` or `python -m package ARGS`
    (python options such as `-u` or `-W error` are kept). The script's own output is untouched and
    its exit status is kept; the report is printed to stderr at the end, or written with --report.

    Examples:
      ckptdoctor run -- python train.py --epochs 3
      ckptdoctor run --format json --report report.json -- python -m chatbot.train
      ckptdoctor run -- train.py          # same as: python train.py (this interpreter)

    The exit status is the script's. With --fail-on given explicitly, a script that succeeded but
    produced findings at or above that severity exits 1.
    """
    python, options, target = _split(list(args.command))
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = os.path.dirname(src)  # the folder that contains the ckptdoctor package
    fd, report_path = tempfile.mkstemp(prefix="ckptdoctor-run-", suffix=".json")
    os.close(fd)
    try:
        argv = [python, *options, "-c", BOOTSTRAP, src, report_path, "--", *target]
        try:
            status = subprocess.call(argv)
        except OSError as exc:
            raise UsageError(f"cannot start {python!r}: {exc.strerror or exc}") from None
        except KeyboardInterrupt:
            status = 130
        data = _load(report_path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(report_path)
    if status < 0:  # killed by a signal: report it the way a shell would
        status = 128 - status
    if data is None:
        echo_err("ckptdoctor run: the script ended before the report could be written")
        sys.exit(status)
    from ckptdoctor.watching import WatchReport

    report = WatchReport.from_json(data)
    from ckptdoctor.report.json_report import json_text

    text = json_text(data) + "\n" if args.fmt == "json" else report.render()
    if args.report_file:
        _write_atomic(args.report_file, text)
    else:
        sys.stderr.write(("\n" if args.fmt == "text" else "") + text)
        sys.stderr.flush()
    explicit = args.fail_on is not None
    if status == 0 and explicit:
        from ckptdoctor.commands.common import exit_code

        if exit_code(report.diagnostics, args.fail_on or FAIL_ON_DEFAULT) == EXIT_FINDINGS:
            status = EXIT_FINDINGS
    sys.exit(status)


def _split(command: list[str]) -> tuple[str, list[str], list[str]]:
    """``python -u train.py a b`` -> ("python", ["-u"], ["train.py", "a", "b"])."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("give the command after `--`, e.g. ckptdoctor run -- python train.py")
    first = command[0]
    if first.endswith(".py") or first == "-m":
        python, rest = sys.executable, command
    elif os.path.basename(first).startswith(("python", "pypy")):
        python, rest = first, command[1:]
    else:
        raise UsageError(f"ckptdoctor run runs Python scripts: expected `python script.py ...`, got {first!r}")
    options: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("-m", "-c") or not arg.startswith("-") or arg == "-":
            break
        options.append(arg)
        if arg in _VALUE_OPTIONS and i + 1 < len(rest):
            options.append(rest[i + 1])
            i += 1
        i += 1
    target = rest[i:]
    if not target:
        raise UsageError("no script given: ckptdoctor run -- python train.py [ARGS]")
    return python, options, target


def _load(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ckptdoctor-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
