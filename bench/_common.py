"""What the benchmarks share: the subprocess environment of an installed package, and /usr/bin/time."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable


def installed_env(pycache: str | None = None) -> dict[str, str]:
    """The environment for timed subprocesses: bytecode cached outside the source tree, as an installed
    package has it (with PYTHONDONTWRITEBYTECODE, set on this machine, every run would recompile every
    module and measure the compiler), and keras on the torch backend."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(KERAS_BACKEND="torch",
               PYTHONPYCACHEPREFIX=pycache or os.path.join(tempfile.gettempdir(), "ckptdoctor-bench-pyc"))
    return env


def child_cpu_seconds(fn: Callable[[], object]) -> float:
    """CPU time (user + sys) of the child processes ``fn`` runs: steadier than wall time on a busy
    machine (and it counts every thread of a multi-threaded child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def ckptdoctor_command() -> list[str]:
    """How a user runs ckptdoctor: the console script installed beside this interpreter (what
    ``pip install`` puts on PATH), or ``python -m ckptdoctor`` when there is none."""
    script = os.path.join(os.path.dirname(sys.executable), "ckptdoctor")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "ckptdoctor"]


_WALL = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)")
_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def time_v(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of ``cmd`` run under ``/usr/bin/time -v``."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                          env=env or installed_env())
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    wall, rss = _WALL.search(proc.stderr), _RSS.search(proc.stderr)
    assert wall and rss, proc.stderr
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return seconds, int(rss.group(1)) * 1024, proc.stdout.strip()
