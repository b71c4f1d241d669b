"""Which byte ranges of one storage overlap: tensors sharing bytes (tied weights, views of each other)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


def overlap_clusters(areas: list[tuple[int, int, T]], *, reach: str = "last") -> list[list[T]]:
    """Chain ``(start, stop, item)`` areas sorted by start while a start falls before the stop so far.

    ``reach="last"`` compares with the previous area's stop only, exactly as safetensors'
    ``_filter_shared_not_shared`` does (what save_file will refuse); ``reach="max"`` with the furthest stop
    of the cluster, so nothing that overlaps any member is left out (safe for choosing aliases)."""
    clusters: list[list[T]] = []
    last_stop = -1
    for start, stop, item in sorted(areas, key=lambda a: (a[0], a[1])):
        if clusters and start < last_stop:
            clusters[-1].append(item)
            last_stop = max(last_stop, stop) if reach == "max" else stop
        else:
            clusters.append([item])
            last_stop = stop
    return clusters
