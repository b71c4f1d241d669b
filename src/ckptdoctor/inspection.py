"""``inspect``: read files (or folders) into Snapshots and run the checks that need no model."""

from __future__ import annotations

import os

from ckptdoctor.readers import read_path
from ckptdoctor.rules import run_snapshot_checks
from ckptdoctor.snapshot import Snapshot


def inspect(path: str | os.PathLike[str]) -> list[Snapshot]:
    """Every model file at ``path`` as a Snapshot, with file-level diagnostics attached.

    Nothing from the file is executed. Raises ``ckptdoctor.InputError`` for bad input.
    """
    snaps = read_path(path)
    for snap in snaps:
        snap.diagnostics.extend(run_snapshot_checks(snap))
    return snaps
