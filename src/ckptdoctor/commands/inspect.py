"""``ckptdoctor inspect``: what is in a model file, read without executing it."""

from __future__ import annotations

import sys

from ckptdoctor.commands.common import (
    add_fail_on_argument,
    add_format_argument,
    exit_code,
    handle_errors,
    json_indent,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ckptdoctor.snapshot import Snapshot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="A model file, or a folder of them.")
    add_format_argument(parser, "text", "json")
    parser.add_argument("--values", action="store_true", help="Add value statistics (min, max, mean, std, NaN/Inf) "
                        "per layer, or per tensor with -v (and in JSON), read in bounded windows; torch storages "
                        "are also checked against their zip CRC-32, which torch.load never does.")
    parser.add_argument("-v", "--verbose", action="store_true", help="One line per tensor instead of per layer.")
    add_fail_on_argument(parser)


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Show what a model file or folder holds: format, saving version, tensors grouped by layer,
    dtypes, parameter counts, the classes and globals it refers to, and any findings.

    PATH is a file (.pt .pth .bin .safetensors .keras .weights.h5 .h5 .npz .pkl ...) or a folder
    (a Hugging Face model folder, a sharded safetensors set). Formats are recognised by content.
    Nothing in the file is executed: pickles are read by a symbolic interpreter.

    Examples:
      ckptdoctor inspect chatbot.pth
      ckptdoctor inspect ./llama-7b/ --format json
      ckptdoctor inspect model.safetensors --values
    """
    from ckptdoctor.inspection import inspect

    snaps = inspect(args.path)
    stats = _stats(snaps) if args.values else {}
    diagnostics = [d for s in snaps for d in s.diagnostics]
    if args.fmt == "json":
        from ckptdoctor.report.inspect_report import inspect_json_text

        sys.stdout.write(inspect_json_text(args.path, snaps, stats, json_indent()) + "\n")
    else:
        from ckptdoctor.report.inspect_report import render_inspect

        render_inspect(snaps, stats, verbose=args.verbose)
    sys.exit(exit_code(diagnostics, args.fail_on))


def _stats(snaps: list[Snapshot]) -> dict:
    """Per-tensor statistics; a tensor whose bytes cannot be read is a finding, never a silent gap."""
    from ckptdoctor.errors import InputError
    from ckptdoctor.fixing.tensor_bytes import ByteLocator
    from ckptdoctor.readers.zip_errors import ZIP_READ_ERRORS
    from ckptdoctor.rules.file_format import CORRUPT_HEADER
    from ckptdoctor.values import tensor_stats

    out = {}
    for snap in snaps:
        failed: list[tuple[str, str]] = []
        locator = ByteLocator(snap)  # file-addressable tensors are read window by window (bounded memory)
        for t in snap.tensors:
            try:
                out[(snap.path, t.name)] = tensor_stats(t, locator)
            except InputError as exc:
                failed.append((t.name, exc.message))
            except (ValueError, EOFError, MemoryError, *ZIP_READ_ERRORS) as exc:
                failed.append((t.name, str(exc) or type(exc).__name__))
        _check_storage_crcs(snap)
        if failed:
            shown = "; ".join(f"{name!r}: {why}" for name, why in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            snap.diagnostics.append(CORRUPT_HEADER.diag(
                f"the values of {len(failed)} tensor(s) cannot be read ({shown}{more})",
                subject=failed[0][0], found=[name for name, _ in failed],
                framework_behavior="the framework's loader fails on the same bytes, or raises nothing: torch.load "
                                   "of a damaged deflated storage returns a tensor holding whatever memory the "
                                   "failed decompression left",
                fix="save or download the file again"))
    return out


def _check_storage_crcs(snap: Snapshot) -> None:
    """With --values every storage is read anyway: check its zip CRC-32, which torch.load never does."""
    from ckptdoctor.readers.torch_zip import crc_failure, storage_crc_errors
    from ckptdoctor.readers.zip_errors import ZIP_READ_ERRORS
    from ckptdoctor.rules.file_format import CORRUPT_HEADER

    try:
        damaged = storage_crc_errors(snap)
    except ZIP_READ_ERRORS:
        return  # an unreadable archive is reported by the reads themselves
    for member, names in damaged:
        snap.diagnostics.append(CORRUPT_HEADER.diag(
            crc_failure(member, names), subject=names[0], found=names,
            framework_behavior="torch.load does not check the CRC: it returns the changed values without an error",
            fix="get an intact copy (save or download the file again); compare copies with `ckptdoctor diff`"))
