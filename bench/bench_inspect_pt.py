"""Metadata inspection of a large .pt against torch.load(mmap=True, weights_only=True).

Generates two checkpoints in /tmp with the same 1,000 tensors, ~100 MB and ~1 GB, and measures:
  * whole process: `ckptdoctor inspect --format json` vs a process that torch.load(mmap=True)s the
    file and lists names and shapes (aim: 20x faster);
  * in process, torch already imported: ckptdoctor.readers.read vs torch.load (aim: 5x);
  * that ckptdoctor's time stays flat when the tensors grow 10x at the same count.
Prints ratios measured in this run. Deletes the files afterwards.

    python bench/bench_inspect_pt.py [--count 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

TORCH_LIST = ("import sys, torch; sd = torch.load(sys.argv[1], mmap=True, weights_only=True); "
              "print(len([(k, tuple(v.shape)) for k, v in sd.items()]))")


def make(path: str, count: int, numel: int) -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    sd = {f"layers.{i // 4}.{['q', 'k', 'v', 'o'][i % 4]}.weight": torch.empty(numel).uniform_(generator=g)
          for i in range(count)}
    torch.save(sd, path)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch

    from ckptdoctor.readers import read

    tmp = tempfile.mkdtemp(prefix="ckptdoctor-bench-")
    sizes = {"100MB": 100 * 2**20 // 4 // args.count, "1GB": 2**30 // 4 // args.count}
    paths = {k: os.path.join(tmp, f"ckpt_{k}.pt") for k in sizes}
    try:
        for k, numel in sizes.items():
            make(paths[k], args.count, numel)
            print(f"{k}: {os.path.getsize(paths[k]) / 2**20:,.0f} MiB, {args.count} tensors")
        cli = [sys.executable, "-m", "ckptdoctor.cli", "inspect", "--format", "json"]
        results = {}
        for k, path in paths.items():
            ours_proc = best(lambda p=path: run([*cli, p]), args.repeat)
            torch_proc = best(lambda p=path: run([sys.executable, "-c", TORCH_LIST, p]), args.repeat)
            ours_in = best(lambda p=path: [(t.name, t.shape) for t in read(p).tensors], args.repeat)
            torch_in = best(lambda p=path: [(n, tuple(v.shape)) for n, v in
                                            torch.load(p, mmap=True, weights_only=True).items()], args.repeat)
            results[k] = (ours_proc, torch_proc, ours_in, torch_in)
            print(f"[{k}] whole process: ckptdoctor {ours_proc * 1000:7.1f} ms   torch.load {torch_proc * 1000:7.1f} ms"
                  f"   ratio {torch_proc / ours_proc:5.1f}x (aim 20x)")
            print(f"[{k}] in process:    ckptdoctor {ours_in * 1000:7.1f} ms   torch.load {torch_in * 1000:7.1f} ms"
                  f"   ratio {torch_in / ours_in:5.1f}x (aim 5x)")
        small, big = results["100MB"], results["1GB"]
        print(f"flatness (1GB / 100MB, same tensor count): whole process {big[0] / small[0]:.2f}x, "
              f"in process {big[2] / small[2]:.2f}x (1.0 = flat)")
    finally:
        for p in paths.values():
            if os.path.exists(p):
                os.remove(p)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
