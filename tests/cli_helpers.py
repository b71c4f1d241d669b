"""Run the ``ckptdoctor`` CLI in-process, the way a user's shell would see it: stdout, stderr, exit status."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass

from ckptdoctor.cli import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr interleaved, as on a terminal
    exception: BaseException | None = None


class _Stream(io.StringIO):
    """A captured stream that also copies what it receives into the shared, interleaved output."""

    def __init__(self, shared: io.StringIO) -> None:
        super().__init__()
        self._shared = shared

    def write(self, s: str) -> int:
        self._shared.write(s)
        return super().write(s)


def invoke(args: list[str], *, input: str | None = None, catch_exceptions: bool = True) -> Result:
    """``ckptdoctor ARGS`` with ``input`` on stdin (empty when None, never a terminal). An exception other
    than SystemExit is re-raised, or with ``catch_exceptions`` recorded with exit status 1."""
    shared = io.StringIO()
    out, err = _Stream(shared), _Stream(shared)
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode("utf-8")), encoding="utf-8")
    code: int = 0
    exception: BaseException | None = None
    old_stdin = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    sys.stderr.write(f"{exc.code}\n")
                    code = 1
            except Exception as exc:
                if not catch_exceptions:
                    raise
                exception, code = exc, 1
    finally:
        sys.stdin = old_stdin
    return Result(code, out.getvalue(), err.getvalue(), shared.getvalue(), exception)


def run_with_memory_limit(args: list[str], limit: int, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``ckptdoctor ARGS`` in a fresh process whose address space is capped at ``limit`` bytes: what a
    reader allocates from an untrusted size, or a whole-tensor copy, fails there instead of passing."""
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))\n"
            "from ckptdoctor.cli import main\n"
            "main(sys.argv[2:])\n")
    return subprocess.run([sys.executable, "-c", code, str(limit), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
