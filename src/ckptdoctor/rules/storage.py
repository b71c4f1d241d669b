"""D family, file side: how tensors sit in their storages (device tags, views, sharing, layout)."""

from __future__ import annotations

from collections import defaultdict

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.report.text import human_bytes
from ckptdoctor.rules.registry import Rule, snapshot_check
from ckptdoctor.snapshot import Snapshot, TensorInfo

SAVED_ON_ACCELERATOR = Rule("D110", "saved-on-accelerator", Severity.INFO,
    "Tensors were saved from a GPU (or other accelerator) device.", """
    ## What it means
    PyTorch records the device of every storage (`cuda:0`, `mps`, ...). `torch.load` puts each tensor
    back on that device unless told otherwise.

    ## What the framework does
    On a machine without that device, `torch.load(path)` raises
    `RuntimeError: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False.`

    ## Example
    ```python
    torch.save(model.state_dict(), "chatbot.pth")   # model was on cuda:0
    torch.load("chatbot.pth")                        # on a laptop: RuntimeError
    ```

    ## Fix
    `torch.load(path, map_location="cpu")` (then `model.to(device)`), or save from CPU:
    `torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)`.
""")

VIEW_WASTES_BYTES = Rule("D111", "view-saves-whole-storage", Severity.WARNING,
    "A tensor in the file is a view, and the file carries its whole, larger storage.", """
    ## What it means
    `torch.save` writes whole storages. A tensor that is a slice of a larger tensor (`big[:10]`,
    `weight.T[0]`, `x.narrow(...)`) drags the entire storage into the file, although only the view is
    referenced.

    ## What the framework does
    `torch.load` restores the view and the whole storage behind it, silently: files and memory grow.
    safetensors `save_file` refuses views that share memory.

    ## Example
    ```python
    emb = torch.randn(32000, 4096)
    torch.save({"first_rows": emb[:10]}, "x.pt")     # writes all 500 MiB
    ```

    ## Fix
    Save a compact copy: `t.clone()` (or `t.contiguous().clone()`) before saving, or convert with
    `ckptdoctor convert FILE -o OUT.safetensors`, which writes only the bytes each tensor uses.
""")

SHARED_IN_FILE = Rule("D112", "shared-storage-in-file", Severity.INFO,
    "Several tensors in the file share one storage (tied weights or views of each other).", """
    ## What it means
    The tensors use the same bytes: tied weights (an embedding reused as the output projection) or views
    of one another. `torch.load` restores the sharing exactly.

    ## What the framework does
    safetensors `save_file` refuses them (`Some tensors share memory, this will lead to duplicate memory
    on disk`); `safetensors.torch.save_model` keeps one copy and records the alias in the metadata;
    transformers `save_pretrained` drops the tied copy and re-ties on load.

    ## Fix
    Nothing to do for `torch.save`/`torch.load`. To convert to safetensors, use
    `safetensors.torch.save_model(model, path)` or `ckptdoctor convert`, which both keep the alias.
""")

NON_CONTIGUOUS_IN_FILE = Rule("D113", "non-contiguous-in-file", Severity.INFO,
    "A tensor in the file is stored non-contiguous (transposed or strided).", """
    ## What it means
    The tensor's strides are not the row-major ones for its shape: it was saved as a transposed or
    strided view.

    ## What the framework does
    `torch.load` restores it non-contiguous, which costs a copy in many kernels. safetensors
    `save_file` refuses it (`You are trying to save a non contiguous tensor`).

    ## Fix
    `.contiguous()` before saving, or `ckptdoctor convert`, which writes row-major bytes.
""")


def _by_storage(snapshot: Snapshot) -> dict[str, list[TensorInfo]]:
    groups: dict[str, list[TensorInfo]] = defaultdict(list)
    for t in snapshot.tensors:
        if t.storage is not None:
            groups[t.storage].append(t)
    return groups


def _overlapping(tensors: list[TensorInfo]) -> list[list[TensorInfo]]:
    """Groups of tensors whose bytes overlap within one storage (tied weights, views of each other), as
    safetensors groups them (start, and start + numel bytes). Disjoint views of one storage (an LSTM's
    flattened cuDNN weights, ``torch.split`` pieces) share nothing: save_file writes them without complaint."""
    from ckptdoctor.overlaps import overlap_clusters

    areas = []
    for t in tensors:
        start = t.offset * (t.nbytes // t.numel) if t.numel else 0
        areas.append((start, start + t.nbytes, t))
    return [g for g in overlap_clusters(areas) if len(g) > 1]


@snapshot_check
def check_storage_layout(snapshot: Snapshot) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    devices = sorted({t.location for t in snapshot.tensors if t.location and t.location != "cpu"})
    if devices:
        count = sum(1 for t in snapshot.tensors if t.location in devices)
        out.append(SAVED_ON_ACCELERATOR.diag(
            f"{count} tensor(s) were saved on {', '.join(devices)}",
            subject=snapshot.path, expected="cpu", found=devices,
            framework_behavior=("torch.load(path) restores them on that device; without it: RuntimeError: "
                                "Attempting to deserialize object on a CUDA device"),
            fix='torch.load(path, map_location="cpu")'))
    for key, tensors in _by_storage(snapshot).items():
        if len(tensors) == 1 and tensors[0].offset == 0 and tensors[0].storage_nbytes == tensors[0].nbytes:
            continue  # the common case: one tensor that owns its whole storage
        used = _bytes_used(tensors)
        whole = tensors[0].storage_nbytes
        if whole is not None and used is not None and whole > used and whole - used >= 1024:
            names = ", ".join(t.name for t in tensors[:3]) + (" ..." if len(tensors) > 3 else "")
            out.append(VIEW_WASTES_BYTES.diag(
                f"storage {key} holds {human_bytes(whole)} but its tensor(s) use {human_bytes(used)}: "
                f"{human_bytes(whole - used)} wasted",
                subject=names, expected=used, found=whole,
                framework_behavior="torch.load restores the whole storage behind the view",
                fix="save t.clone() instead of the view, or `ckptdoctor convert` to safetensors",
                details={"storage": key, "wasted_bytes": whole - used}))
        for group in _overlapping(tensors) if len(tensors) > 1 else []:
            out.append(SHARED_IN_FILE.diag(
                f"{len(group)} tensors share the same bytes of storage {key}: "
                f"{', '.join(t.name for t in group[:4])}" + (" ..." if len(group) > 4 else ""),
                subject=group[0].name, found=[t.name for t in group],
                framework_behavior="torch.load keeps them shared; safetensors save_file refuses them",
                fix="safetensors.torch.save_model(model, path) or `ckptdoctor convert` keep the alias"))
    strided = [t for t in snapshot.tensors if not t.is_contiguous]
    if strided:
        out.append(NON_CONTIGUOUS_IN_FILE.diag(
            f"{len(strided)} tensor(s) are stored non-contiguous: "
            + ", ".join(f"{t.name} strides {t.strides}" for t in strided[:3]) + (" ..." if len(strided) > 3 else ""),
            subject=strided[0].name, found=[t.name for t in strided],
            framework_behavior="torch.load restores them strided; safetensors save_file refuses them",
            fix="call .contiguous() before saving, or `ckptdoctor convert`"))
    return out


def _bytes_used(tensors: list[TensorInfo]) -> int | None:
    """Bytes of the storage that the tensors reach: from their lowest to their highest element.

    One storage holds one dtype (torch refuses to save it under two), so element offsets compare directly.
    """
    spans = [(t.offset, t.offset + sum((d - 1) * s for d, s in zip(t.shape, t.strides, strict=True)) + 1,
              t.nbytes // t.numel)
             for t in tensors if t.strides is not None and t.numel]
    if not spans:
        return None
    lo = min(start for start, _, _ in spans)
    hi = max(end for _, end, _ in spans)
    return (hi - lo) * spans[0][2]
