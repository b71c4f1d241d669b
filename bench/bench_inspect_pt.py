"""Metadata inspection of a large .pt against torch.load(mmap=True, weights_only=True).

Generates two checkpoints in /tmp with the same tensor count (default 1,000), ~100 MB and ~1 GB, and
measures, interleaving the two tools so that a noisy machine slows both alike:
  * whole process: `ckptdoctor inspect --format json FILE` vs a process that torch.load(mmap=True)s
    the file and lists names and shapes (aim: 20x faster);
  * in process, torch already imported: ``ckptdoctor.inspect(FILE)`` (read + file checks) vs
    ``torch.load`` listing names and shapes (aim: 5x);
  * flatness: ckptdoctor's time for the 1 GB file over the 100 MB one (same count; 1.0 = flat).
Each figure is the median of ``--repeat`` runs (min in brackets). Subprocesses run with bytecode
caching on (PYTHONPYCACHEPREFIX in the temp folder, one warm-up run each), as an installed package
would, even when the calling environment sets PYTHONDONTWRITEBYTECODE. Deletes its files afterwards.

    python bench/bench_inspect_pt.py [--count 1000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from _common import child_cpu_seconds, ckptdoctor_command, installed_env

TORCH_LIST = ("import sys, torch; sd = torch.load(sys.argv[1], mmap=True, weights_only=True); "
              "print(len([(k, tuple(v.shape)) for k, v in sd.items()]))")


def make(path: str, count: int, numel: int) -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    sd = {f"layers.{i // 4}.{['q', 'k', 'v', 'o'][i % 4]}.weight": torch.empty(numel).uniform_(generator=g)
          for i in range(count)}
    torch.save(sd, path)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Times of ``a`` and ``b``, alternating, after one warm-up run of each."""
    a()
    b()
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(timed(a))
        tb.append(timed(b))
    return ta, tb


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:8.1f} ms [{min(times) * 1000:7.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch

    import ckptdoctor

    tmp = tempfile.mkdtemp(prefix="ckptdoctor-bench-")
    env = installed_env(os.path.join(tmp, "pycache"))
    sizes = {"100MB": 100 * 2**20 // 4 // args.count, "1GB": 2**30 // 4 // args.count}
    paths = {k: os.path.join(tmp, f"ckpt_{k}.pt") for k in sizes}

    cpu: dict[str, list[float]] = {"ours": [], "torch": []}

    def run(cmd: list[str], who: str) -> None:
        cpu[who].append(child_cpu_seconds(
            lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)))

    try:
        for k, numel in sizes.items():
            make(paths[k], args.count, numel)
            print(f"{k}: {os.path.getsize(paths[k]) / 2**20:,.0f} MiB, {args.count} tensors")
        cli = [*ckptdoctor_command(), "inspect", "--format", "json"]
        results: dict[str, dict[str, list[float]]] = {}
        for k, path in paths.items():
            cpu["ours"].clear()
            cpu["torch"].clear()
            ours_proc, torch_proc = interleaved(lambda p=path: run([*cli, p], "ours"),
                                                lambda p=path: run([sys.executable, "-c", TORCH_LIST, p], "torch"),
                                                args.repeat)
            ours_in, torch_in = interleaved(
                lambda p=path: [(t.name, t.shape) for s in ckptdoctor.inspect(p) for t in s.tensors],
                lambda p=path: [(n, tuple(v.shape)) for n, v in torch.load(p, mmap=True, weights_only=True).items()],
                args.repeat)
            results[k] = {"ours_proc": ours_proc, "torch_proc": torch_proc, "ours_in": ours_in, "torch_in": torch_in,
                          "ours_cpu": cpu["ours"][1:], "torch_cpu": cpu["torch"][1:]}  # [0]: warm-up

        med = statistics.median
        print(f"\nmedian of {args.repeat} runs [min]; ratio = torch / ckptdoctor (medians)")
        for k, r in results.items():
            print(f"[{k}] whole process  ckptdoctor {fmt(r['ours_proc'])}   torch.load {fmt(r['torch_proc'])}"
                  f"   ratio {med(r['torch_proc']) / med(r['ours_proc']):5.1f}x (aim 20x)")
            print(f"[{k}] whole process  cpu (user+sys) ckptdoctor {med(r['ours_cpu']) * 1000:7.1f} ms   torch.load "
                  f"{med(r['torch_cpu']) * 1000:7.1f} ms   ratio {med(r['torch_cpu']) / med(r['ours_cpu']):5.1f}x")
            print(f"[{k}] in process     ckptdoctor {fmt(r['ours_in'])}   torch.load {fmt(r['torch_in'])}"
                  f"   ratio {med(r['torch_in']) / med(r['ours_in']):5.1f}x (aim 5x)")
        small, big = results["100MB"], results["1GB"]
        print(f"flatness, ckptdoctor 1GB / 100MB at {args.count} tensors (1.0 = flat): "
              f"whole process {med(big['ours_proc']) / med(small['ours_proc']):.2f}x, "
              f"in process {med(big['ours_in']) / med(small['ours_in']):.2f}x "
              f"(torch.load: {med(big['torch_proc']) / med(small['torch_proc']):.2f}x, "
              f"{med(big['torch_in']) / med(small['torch_in']):.2f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
