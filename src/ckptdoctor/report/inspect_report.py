"""Rendering of ``inspect``: a JSON object per the contract, or a rich table grouped by layer."""

from __future__ import annotations

import os
from collections import OrderedDict

from ckptdoctor.report.json_report import envelope, json_text
from ckptdoctor.report.text import console, human_bytes, render_diagnostics
from ckptdoctor.snapshot import Snapshot, TensorInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any


def inspect_json(path: str, snaps: list[Snapshot], stats: dict[tuple[str, str], Any]) -> dict[str, Any]:
    files = []
    for snap in snaps:
        item = snap.to_json()
        if stats:
            for tj in item["tensors"]:
                st = stats.get((snap.path, tj["name"]))
                tj["values"] = st.to_json() if st is not None else None
        files.append(item)
    single = files[0] if len(files) == 1 else None
    subject = {"path": os.fspath(path), "kind": "folder" if os.path.isdir(path) else "file"}
    diagnostics = [d for s in snaps for d in s.diagnostics]
    frameworks = sorted({s.framework for s in snaps})
    tensors: list[dict[str, Any]] = []
    for f in files:
        for tj in f["tensors"]:
            tensors.append(tj if single else {**tj, "file": f["path"]})
    return envelope(
        subject,
        diagnostics,
        format=single["format"] if single else "folder",
        framework=frameworks[0] if len(frameworks) == 1 else "mixed",
        framework_version=single["framework_version"] if single else None,
        tensors=tensors,
        files=files,
    )


def inspect_json_text(path: str, snaps: list[Snapshot], stats: dict[tuple[str, str], Any],
                      indent: int | None) -> str:
    """``inspect_json`` as text. A single file's tensors appear twice in it (top-level ``tensors`` and
    ``files[0].tensors``); compact output encodes them once and splices the text into both places
    (a fifth of the run for thousands of tensors)."""
    doc = inspect_json(path, snaps, stats)
    if indent is not None or len(doc["files"]) != 1:
        return json_text(doc, indent)
    tensors = doc["tensors"]
    token = "\0" + os.urandom(8).hex()  # unguessable: the file's own strings cannot contain it
    doc["tensors"] = doc["files"][0]["tensors"] = token
    return json_text(doc, None).replace(json_text(token, None), json_text(tensors, None))


def group_name(name: str) -> str:
    """The layer/module a tensor belongs to: its name without the last component."""
    for sep in ("/", "."):
        if sep in name:
            return name.rsplit(sep, 1)[0]
    return ""


def render_inspect(snaps: list[Snapshot], stats: dict[tuple[str, str], Any], *, verbose: bool = False) -> None:
    from rich.table import Table

    from ckptdoctor.report.text import escape, escape_name

    out = console()
    for snap in snaps:
        version = f" {snap.framework_version}" if snap.framework_version else ""
        out.print(f"[bold]{escape(snap.path)}[/bold]")
        out.print(f"  format: [cyan]{snap.format}[/cyan]   framework: {snap.framework}{escape(version)}   "
                  f"size: {human_bytes(snap.file_size)}")
        optimizer = sum(t.numel for t in snap.tensors if _is_optimizer_state(t))
        params = f"{snap.parameter_count - optimizer:,} (+ {optimizer:,} optimizer state)" if optimizer else \
            f"{snap.parameter_count:,}"
        out.print(f"  tensors: {len(snap.tensors)}   parameters: {params}   "
                  + "   ".join(f"{dt}: {human_bytes(n)}" for dt, n in snap.bytes_per_dtype().items()))
        for key in ("model_class", "saved_by", "keras_version", "backend", "date_saved", "layout",
                    "architectures", "model_type", "torch_dtype", "shards", "aliases"):
            if key in snap.metadata:
                out.print(f"  {key}: {escape(str(snap.metadata[key]))}")
        if snap.tensors:
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            table.add_column("layer" if not verbose else "tensor")
            table.add_column("shape(s)")
            table.add_column("dtype")
            table.add_column("params", justify="right")
            table.add_column("bytes", justify="right")
            if stats:
                table.add_column("min / max / mean / std")
                table.add_column("NaN/Inf", justify="right")
            classes = {x.get("name"): x.get("class_name") for x in snap.layers if x.get("class_name")}
            rows = _rows(snap.tensors, verbose)
            for label, tensors in rows[:MAX_TABLE_ROWS]:
                kind = f" ({classes[label]})" if not verbose and label in classes else ""
                row = [escape_name((label or "(root)") + kind),
                       escape(_shapes(tensors)),
                       ", ".join(sorted({t.dtype for t in tensors})),
                       f"{sum(t.numel for t in tensors):,}",
                       human_bytes(sum(t.nbytes for t in tensors))]
                if stats:
                    row.extend(_stat_cells([(stats.get((snap.path, t.name)), t.numel) for t in tensors]))
                table.add_row(*row)
            if len(rows) > MAX_TABLE_ROWS:
                rest = rows[MAX_TABLE_ROWS:]
                count = sum(len(ts) for _, ts in rest)
                table.add_row(f"… {len(rest):,} more {'tensors' if verbose else 'layers'}", "", "",
                              f"{sum(t.numel for _, ts in rest for t in ts):,}",
                              human_bytes(sum(t.nbytes for _, ts in rest for t in ts)),
                              *([f"{count:,} tensors: --format json lists all", ""] if stats else []))
            out.print(table)
        if snap.structure is not None and not isinstance(snap.structure, str):
            out.print("  structure: " + escape(_structure_summary(snap.structure)))
        custom = [c for c in snap.classes if not c.builtin]
        if snap.classes:
            out.print(f"  classes: {len(snap.classes)} referenced, {len(custom)} not from the framework")
            for c in custom:
                mod = f"{c.module}." if c.module else ""
                reg = f" (registered as {c.registered_name})" if c.registered_name and c.registered_name != c.name else ""
                out.print(f"    {escape(mod + c.name)}{escape(reg)}  [dim]{escape(c.path)}[/dim]")
        if snap.globals:
            names = sorted({g.qualname for g in snap.globals})
            out.print(f"  globals: {escape(', '.join(names))}")
        out.print()
    render_diagnostics(out, [d for s in snaps for d in s.diagnostics], verbose=verbose)


# a terminal table beyond this many rows is slow to lay out and unread; JSON lists everything
MAX_TABLE_ROWS = 1000


def _rows(tensors: list[TensorInfo], verbose: bool) -> list[tuple[str, list[TensorInfo]]]:
    if verbose:
        return [(t.name, [t]) for t in tensors]
    groups: OrderedDict[str, list[TensorInfo]] = OrderedDict()
    for t in tensors:
        groups.setdefault(_group_of(t), []).append(t)
    return list(groups.items())


# the top-level key a training checkpoint keeps its optimizer under: {"optimizer": opt.state_dict(), ...}
_OPTIMIZER_KEYS = ("optimizer", "optimizer_state", "optimizer_state_dict", "optim", "optim_state", "opt_state",
                   "optimizers", "optimizer_states")


def _is_optimizer_state(t: TensorInfo) -> bool:
    """Adam moments and step counters, not the model's parameters (Keras/TF readers mark them; in a torch
    training checkpoint they sit under an ``optimizer`` key)."""
    if t.attrs.get("role") == "optimizer":
        return True
    return t.name.startswith("optim") and t.name.split(".", 1)[0] in _OPTIMIZER_KEYS


def _group_of(t: TensorInfo) -> str:
    """Readers that know the owning layer say so (Keras: ``attrs["layer"]``); otherwise the name's prefix."""
    if t.attrs.get("role") == "optimizer":
        return "(optimizer)"
    layer = t.attrs.get("layer")
    return layer if isinstance(layer, str) else group_name(t.name)


def _shapes(tensors: list[TensorInfo], limit: int = 6) -> str:
    text = ", ".join(_shape(t) for t in tensors[:limit])
    return text if len(tensors) <= limit else f"{text}, … ({len(tensors)} tensors)"


def _shape(t: TensorInfo) -> str:
    return str(tuple(t.shape))  # Python's spelling: (512,) for one dimension, () for a scalar


def _stat_cells(items: list[tuple[Any, int]]) -> list[str]:
    """One tensor's statistics, or a layer's: its tensors' values taken together."""
    from ckptdoctor.values import combined_stats

    present = [(s, numel) for s, numel in items if s is not None]
    if not present:
        return ["-", "-"]
    s = present[0][0] if len(present) == 1 else combined_stats(present)
    text = "-" if s.min is None else f"{s.min:.4g} / {s.max:.4g} / {s.mean:.4g} / {s.std:.4g}"
    return [text, f"{s.nan}/{s.inf}"]


def _structure_summary(structure: Any, depth: int = 0) -> str:
    if isinstance(structure, dict):
        if depth >= 2:
            return "{…}"
        parts = [f"{k}: {_structure_summary(v, depth + 1)}" for k, v in list(structure.items())[:12]]
        more = ", …" if len(structure) > 12 else ""
        return "{" + ", ".join(parts) + more + "}"
    if isinstance(structure, list):
        return f"[{len(structure)} items]"
    return str(structure)
