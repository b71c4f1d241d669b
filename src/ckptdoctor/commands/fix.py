"""``ckptdoctor fix FILE --model TARGET -o OUT``: apply the mechanical fixes ``check`` found, and prove it."""

from __future__ import annotations

import sys

from ckptdoctor.commands.common import add_format_argument, add_model_arguments, handle_errors, write_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ckptdoctor.fixing.fix import FixReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="The checkpoint to fix (never modified: the fixed copy goes to -o).")
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", dest="out", default=None, metavar="PATH",
                        help="The fixed file: .safetensors, or .pt/.pth/.bin/.ckpt for a torch zip checkpoint "
                             "(PyTorch model); .weights.h5 (Keras model).")
    parser.add_argument("--key", default=None, metavar="KEY",
                        help="For a training checkpoint, the entry that holds the state_dict (default: found "
                             "automatically).")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan and write nothing.")
    parser.add_argument("--allow-lossy", action="store_true",
                        help="Allow casts that lose information (float32 -> float16/bfloat16, float -> integer).")
    parser.add_argument("--force", action="store_true", help="Overwrite OUT if it exists (never the input file).")
    add_format_argument(parser, "text", "json")


@handle_errors
def run(args: argparse.Namespace) -> None:
    """Write a corrected copy of FILE that loads STRICTLY into the model TARGET builds.

    Applies what `ckptdoctor check` can fix mechanically, as one plan: select the state_dict of a
    training checkpoint; drop the tensors check reported as unexpected (each one listed); rename
    renamed layers; strip or add a wrapper prefix (module., _orig_mod.); restore tied aliases (shared
    storage in a .pt, a copy in .safetensors); cast to the model's dtypes (lossy casts only with
    --allow-lossy); port Keras Embedding/Dense/LSTM/GRU weights to a torch model's layout. Anything
    else (missing tensors, other shapes) is refused with one line and exit status 2.

    For a Keras model (TARGET builds a Keras 3 model) OUT must end in .weights.h5: a Keras 3 weights
    file laid out as model.save_weights writes it. Sources: a legacy Keras 2 / tf.keras .h5 (paired
    layer by layer as Keras' legacy loader pairs them: the Keras 2 -> 3 migration), a .keras or
    .weights.h5 whose layer paths changed (paired by class and shapes), or a PyTorch state_dict
    (Embedding, Linear -> Dense, LSTM, GRU). The file's optimizer state is dropped.

    Outputs by extension of OUT:
      .safetensors               safetensors (PyTorch model)
      .pt .pth .bin .ckpt        torch zip checkpoint for torch.load(weights_only=True), no torch needed
      .weights.h5                Keras 3 weights for model.load_weights (Keras model)

    Tensors are streamed one by one into a temporary file beside OUT; before it is renamed to OUT it
    is read back, checked against the model, and loaded by the framework in a fresh process
    (torch: load_state_dict(strict=True); Keras: load_weights with no warning and every variable
    equal to the file's). FILE is never modified; OUT is never overwritten without --force.

    Examples:
      ckptdoctor fix ddp.pt --model net.py:Net -o fixed.pt
      ckptdoctor fix ckpt.pt --model net.py:Net --dry-run --format json
      ckptdoctor fix model.weights.h5 --model port.py:TorchNet -o ported.safetensors
      ckptdoctor fix chatbot_model.h5 --model train.py:build -o chatbot.weights.h5

    Exit status: 0 written and verified (or --dry-run), 1 written file failed verification (OUT not
    created), 2 refused (not mechanical, lossy cast, OUT exists) or bad input.
    """
    from ckptdoctor.fixing.fix import fix

    report = fix(args.target, args.path, args.out, model_args=args.model_args, key=args.key, dry_run=args.dry_run,
                 allow_lossy=args.allow_lossy, force=args.force)
    if args.fmt == "json":
        from ckptdoctor.report.json_report import envelope

        write_json(envelope({"path": args.path, "kind": "file", "model": args.target, "output": args.out},
                            [*report.diagnostics, *report.check_after], fix=report.to_json()))
    else:
        _render(report)
    sys.exit(0 if report.ok else 1)


def _render(r: FixReport) -> None:
    from ckptdoctor.report.text import console, escape, human_bytes

    con = console()
    plan = r.plan
    head = "plan (dry run, nothing written)" if r.dry_run else "plan"
    con.print(f"[bold]{head}[/bold] for {escape(r.source)} -> {escape(r.output or '-')} "
              f"([cyan]{plan.output_format}[/cyan], {len(plan.tensors)} tensor(s))")
    for i, step in enumerate(plan.steps(), 1):
        con.print(f"  {i}. {escape(step)}")
    for note in plan.notes:
        con.print(f"  [dim]note: {escape(note)}[/dim]")
    if r.dry_run:
        return
    for d in r.diagnostics:
        con.print(f"[red]error[{d.code}][/red] {escape(d.message)}")
    if r.written:
        con.print(f"[green]wrote[/green] [bold]{escape(str(r.output))}[/bold] ({human_bytes(r.bytes_written)}, "
                  f"{r.seconds:.2f} s)")
        con.print("  check on the fixed file: " + ("clean" if not r.check_after else
                  ", ".join(sorted({f'{d.code} ({d.severity})' for d in r.check_after}))))
    if r.load:
        if r.load.get("ok"):
            con.print(f"  loads: {escape(str(r.load.get('call')))} in a {r.load.get('process')} [green]ok[/green]")
        for c in r.load.get("recurrent", []):
            con.print(f"  {c['kind']} {escape(c['module'])}: torch vs Keras max abs diff "
                      f"{c.get('max_abs_diff', float('nan')):.2g}")
