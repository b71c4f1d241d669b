"""``ckptdoctor convert``: a checkpoint to safetensors, streaming, atomic, without unpickling."""

from __future__ import annotations

import os
import sys

from ckptdoctor.commands.common import add_format_argument, handle_errors, write_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ckptdoctor.fixing.convert import ConvertReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="The checkpoint to convert (torch, training checkpoint, Keras weights).")
    parser.add_argument("-o", "--output", dest="out", required=True, metavar="PATH",
                        help="The .safetensors file to write (refused if it exists, unless --force). (required)")
    parser.add_argument("--key", default=None, metavar="KEY",
                        help="Convert only this part of a training checkpoint, e.g. `model` for "
                             "{'model': ..., 'optimizer': ..., 'epoch': 3}; the `KEY.` prefix is removed from "
                             "names.")
    parser.add_argument("--force", action="store_true", help="Overwrite OUT if it exists (never the input file).")
    add_format_argument(parser, "text", "json")


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Convert a checkpoint to safetensors WITHOUT unpickling it.

    PATH is a PyTorch file (zip or legacy .pt/.pth/.bin), a training checkpoint (with --key), a Keras
    .keras / .weights.h5 / legacy .h5, or a safetensors file. Tensors are copied one by one in bounded
    chunks, so memory stays small whatever the file size. Tied weights follow
    safetensors.torch.save_model: one copy is stored and __metadata__ maps each dropped name to the
    kept one (load with safetensors.torch.load_model). bfloat16 and float8 are kept bit-exact. Keras
    files keep the reader's names; __metadata__["ckptdoctor.keras_paths"] maps them to the Keras
    variable paths and __metadata__["ckptdoctor.h5_paths"] to the HDF5 datasets.

    OUT is written to a temporary file in its folder, fsynced, read back and compared with the
    source, and only then renamed: an interrupted run never leaves a partial OUT.

    Examples:
      ckptdoctor convert pytorch_model.bin -o model.safetensors
      ckptdoctor convert checkpoint_epoch3.pt --key model -o model.safetensors
      ckptdoctor convert model.weights.h5 -o model.safetensors --format json

    Exit status: 0 written and verified, 2 the file cannot be read or expressed in safetensors.
    """
    from ckptdoctor.fixing.convert import convert

    report = convert(args.path, args.out, key=args.key, force=args.force)
    if args.fmt == "json":
        from ckptdoctor.report.json_report import envelope

        write_json(envelope({"path": os.fspath(args.path), "kind": "file", "output": args.out}, report.diagnostics,
                            convert=report.to_json()))
    else:
        _render(report)
    sys.exit(0)


def _render(r: ConvertReport) -> None:
    from ckptdoctor.report.text import console, escape, human_bytes

    out = console()
    key = f", key {escape(r.key)}" if r.key else ""
    out.print(f"[green]wrote[/green] [bold]{escape(r.output)}[/bold] from {escape(r.source)} "
              f"([cyan]{r.source_format}[/cyan]{key})")
    out.print(f"  tensors: {len(r.tensors)}   size: {human_bytes(r.bytes_written)}   "
              f"time: {r.seconds:.2f} s   verified: {'yes' if r.verified else 'no'}")
    if r.aliases:
        out.print(f"  shared storage kept once ({len(r.aliases)} alias(es) in __metadata__; "
                  "load with safetensors.torch.load_model):")
        for dropped, kept in sorted(r.aliases.items()):
            out.print(f"    {escape(dropped)} -> {escape(kept)}")
    if r.skipped:
        out.print(f"  left out (not under --key): {len(r.skipped)} tensor(s)")
    if r.made_contiguous:
        more = " ..." if len(r.made_contiguous) > 8 else ""
        out.print(f"  written contiguous: {', '.join(escape(n) for n in r.made_contiguous[:8])}{more}")
