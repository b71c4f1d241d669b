"""Read HDF5 files first in a throw-away child process, because libhdf5 can crash or loop on damaged ones.

A single flipped byte in an HDF5 object header, heap or B-tree can make libhdf5 dereference a wild
pointer (SIGSEGV) or follow a cycle forever, inside one C call: no Python exception, signal handler or
thread can stop it, and ``h5py.File`` / Keras' ``load_weights`` die or hang the same way. So a reader
decorated with ``@rehearsed`` runs twice: first in a forked child that does exactly the same reading
(same code, same file, so a clean exit there means the parent's identical calls finish too) and also
touches every dataset's storage; then, only if the child exited normally in time, in this process.
A crash or a timeout becomes one F107 line instead of a dead or stuck process.

The rehearsal costs one fork plus one more metadata walk (milliseconds for model files). It is on by
default on Linux only: a forked child of a process that loaded macOS system frameworks can crash by
itself (which would be misreported as a damaged file), and Windows has no fork. ``CKPTDOCTOR_HDF5_TIMEOUT``
sets the time the child may take (seconds, default 30; setting it also turns the rehearsal on where
``os.fork`` exists); ``0`` turns it off.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from ckptdoctor.errors import InputError
from ckptdoctor.rules import file_format as F

R = TypeVar("R")

DEFAULT_TIMEOUT = 30.0
_inside_rehearsal = False


def timeout_seconds() -> float:
    """The rehearsal's time limit; 0 when there is no rehearsal (see the module documentation)."""
    setting = os.environ.get("CKPTDOCTOR_HDF5_TIMEOUT")
    if not hasattr(os, "fork") or (setting is None and not sys.platform.startswith("linux")):
        return 0.0
    try:
        return max(0.0, float(setting if setting is not None else DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def rehearsed(diagnose: Callable[[str], InputError | None] | None = None
              ) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorate ``reader(path, ...) -> Snapshot``: rehearse it in a child, then run it here. When the
    child crashes or hangs, ``diagnose(path)`` may name a more precise cause than "damaged HDF5"."""

    def decorate(reader: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(reader)
        def wrapper(path: str, *args: Any, **kwargs: Any) -> R:
            limit = timeout_seconds()
            if limit > 0 and not _inside_rehearsal:
                try:
                    rehearse(lambda: touch_storage(reader(path, *args, **kwargs)), path, limit)
                except InputError:
                    better = diagnose(path) if diagnose is not None else None
                    if better is not None:
                        raise better from None
                    raise
            return reader(path, *args, **kwargs)

        return wrapper

    return decorate


def touch_storage(snapshot: Any) -> None:
    """Open every tensor's dataset and read its first element, walking any chunk index: the parts of
    a dataset that metadata reading does not visit but reading values later will. The file is opened
    once per opener (one per file; opening costs more than touching)."""
    by_opener: dict[int, list[Any]] = {}
    for tensor in snapshot.tensors:
        if callable(getattr(tensor.loader, "touch", None)):
            by_opener.setdefault(id(tensor.loader.opener), []).append(tensor.loader)
    for loaders in by_opener.values():
        with loaders[0].opener() as f:
            for loader in loaders:
                loader.touch(f)


def rehearse(work: Callable[[], object], path: str, limit: float) -> None:
    """Run ``work`` in a forked child. Return when it exits normally (whatever it raised: the parent
    runs the same work and reports that itself); raise F107 when it crashes or outlives ``limit``."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about fork() with threads; the child only reads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage cannot follow it
        _child(work, write_end)
    os.close(write_end)
    try:
        status = _wait(pid, read_end, limit)
    except BaseException:  # Ctrl-C while waiting: no child may outlive us
        _kill(pid)
        raise
    finally:
        os.close(read_end)
    if status is None:
        raise InputError(F.CORRUPT_HEADER.code, f"reading the file's HDF5 metadata did not finish in {limit:g} s: "
                         "usually a damaged B-tree or heap that libhdf5 loops on (h5py and Keras hang on it too), "
                         "else a structure too large to walk in that time", path, "save or download the file "
                         "again; CKPTDOCTOR_HDF5_TIMEOUT=<seconds> allows more time for a huge, healthy file")
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise InputError(F.CORRUPT_HEADER.code, f"libhdf5 crashed ({name}) reading the file's HDF5 metadata: it "
                         "is damaged; h5py crashes on it too, and Keras may crash or load damaged values", path,
                         "save or download the file again")


def _child(work: Callable[[], object], write_end: int) -> None:  # pragma: no cover - runs in the child
    global _inside_rehearsal
    _inside_rehearsal = True
    try:
        import faulthandler

        faulthandler.disable()  # a crash here is the expected outcome, not worth a dump on stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        warnings.simplefilter("ignore")
        work()
    except BaseException:
        pass
    finally:
        try:
            os.write(write_end, b"done")
        finally:
            os._exit(0)


def _wait(pid: int, read_end: int, limit: float) -> int | None:
    """The child's wait status, or None after killing it at the deadline. The pipe becomes readable
    when the child finishes or dies (its end closes), so no polling is needed."""
    deadline = time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_end], [], [], max(0.0, left))
        if ready:
            os.read(read_end, 16)
            return os.waitpid(pid, 0)[1]
        if left <= 0:
            _kill(pid)
            return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
