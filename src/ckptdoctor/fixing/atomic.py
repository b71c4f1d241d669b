"""Atomic output: a file appears under its final name complete and verified, or not at all.

The bytes go to a hidden temporary file in the target folder (same filesystem, so the final rename is
atomic), which is flushed and fsynced, read back and verified, and only then linked or renamed to OUT;
the folder is fsynced so that the new name survives a crash. A process killed at any moment leaves
either no OUT or the complete one: at worst a temporary file whose name can never be mistaken for OUT
(``.<name>.ckptdoctor-tmp-<pid>-<token>``), which the next write to the same OUT removes.

Verification runs on the temporary file *before* the rename, so a file that fails it never gets the
final name; after the rename we check that OUT is the very file (inode and size) that was verified.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from ckptdoctor.errors import UsageError

TMP_MARKER = ".ckptdoctor-tmp-"


class VerificationError(Exception):
    """The file read back differs from what was written. OUT is left untouched."""


def temp_path(out: str) -> str:
    folder, base = os.path.split(os.path.abspath(out))
    return os.path.join(folder, f".{base}{TMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return TMP_MARKER in os.path.basename(name)


def check_output_path(out: str, *, force: bool = False, inputs: Iterable[str] = ()) -> str:
    """The absolute OUT path, after refusing what must never happen (exit 2 through UsageError)."""
    out_abs = os.path.abspath(out)
    folder = os.path.dirname(out_abs)
    if not os.path.isdir(folder):
        raise UsageError(f"{out}: the output folder {folder} does not exist")
    if os.path.isdir(out_abs):
        raise UsageError(f"{out}: is a folder; give the output file's name")
    for src in inputs:
        # Never write over an input, not even with --force: the input is what we would verify against.
        if os.path.exists(src) and os.path.exists(out_abs) and os.path.samefile(src, out_abs):
            raise UsageError(f"{out}: is the input file itself; write to another path")
        if os.path.abspath(src) == out_abs:
            raise UsageError(f"{out}: is the input file itself; write to another path")
    if os.path.lexists(out_abs) and not force:
        raise UsageError(f"{out}: already exists; pass --force to overwrite it")
    return out_abs


def remove_stale_temps(out: str) -> list[str]:
    """Remove temporary files left for OUT by writers that were killed (their pid is gone)."""
    folder, base = os.path.split(os.path.abspath(out))
    prefix = f".{base}{TMP_MARKER}"
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: str, out: str, force: bool) -> None:
    if force:
        os.replace(tmp, out)
        return
    # Without --force, link() fails if OUT appeared meanwhile: no window in which we could clobber it.
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise UsageError(f"{out}: appeared while writing; pass --force to overwrite it") from None
    except OSError:
        if os.path.lexists(out):  # filesystem without hard links: check, then rename
            raise UsageError(f"{out}: already exists; pass --force to overwrite it") from None
        os.rename(tmp, out)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_output(
    out: str,
    *,
    force: bool = False,
    inputs: Iterable[str] = (),
    verify: Callable[[str], None] | None = None,
) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on normal exit make it OUT, atomically and verified.

    ``verify(path)`` reads the finished temporary file back and raises (e.g. VerificationError) if it is
    wrong. On any exception, including KeyboardInterrupt, the temporary file is removed and OUT is not
    touched.
    """
    out_abs = check_output_path(out, force=force, inputs=list(inputs))
    remove_stale_temps(out_abs)
    tmp = temp_path(out_abs)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    fh = os.fdopen(fd, "wb")
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        if verify is not None:
            verify(tmp)
        st = os.stat(tmp)
        _publish(tmp, out_abs, force)
        fsync_dir(os.path.dirname(out_abs))
        final = os.stat(out_abs)
        if (final.st_ino, final.st_dev, final.st_size) != (st.st_ino, st.st_dev, st.st_size):
            raise VerificationError(f"{out}: changed while being published")
    except BaseException:
        fh.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
