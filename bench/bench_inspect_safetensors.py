"""`ckptdoctor inspect` of a .safetensors file against `safetensors.safe_open` listing keys and shapes.

Generates a few-hundred-MB file with many tensors in /tmp, measures (median of N runs):
  * whole process: `ckptdoctor inspect F --format json` vs `python -c <safe_open, list keys + shapes>`
    (and a bare `python -c <read 8 bytes + json.loads>` for reference);
  * in process: `ckptdoctor.readers.read(F)` and `ckptdoctor.inspect(F)` vs safe_open listing;
prints the ratios (reference time / ckptdoctor time: above 1 means ckptdoctor is faster), then deletes
the file. Usage: python bench/bench_inspect_safetensors.py [--mb 300] [--tensors 2000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import child_cpu_seconds, ckptdoctor_command, installed_env

SAFE_OPEN_LIST = """
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="np") as f:
    out = [(k, f.get_slice(k).get_shape()) for k in f.keys()]
print(len(out))
"""
BARE_HEADER = """
import json, struct, sys
with open(sys.argv[1], "rb") as fh:
    (n,) = struct.unpack("<Q", fh.read(8))
    header = json.loads(fh.read(n))
print(len(header))
"""


def make_file(path: Path, total_mb: int, count: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    per = max(1, total_mb * (1 << 20) // 4 // count)
    side = int(per**0.5)
    rng = np.random.default_rng(0)
    block = rng.standard_normal(side * side, dtype=np.float32)
    tensors = {f"model.layers.{i // 8}.block.{i % 8}.weight": block.reshape(side, side) for i in range(count)}
    save_file(tensors, str(path), metadata={"format": "pt"})


def median_cpu(fn: Callable[[], object], runs: int) -> float:
    return statistics.median(child_cpu_seconds(fn) for _ in range(runs))


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(cmd: list[str]) -> Callable[[], object]:
    env = installed_env()

    def go() -> object:
        return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)

    go()  # warm: page cache and byte-code cache
    return go


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--tensors", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    fd, name = tempfile.mkstemp(suffix=".safetensors", dir="/tmp")
    os.close(fd)
    path = Path(name)
    try:
        make_file(path, args.mb, args.tensors)
        size = path.stat().st_size
        print(f"file: {path} {size / 2**20:.0f} MiB, {args.tensors} tensors, median of {args.runs} runs")
        py = sys.executable
        commands = {
            "ckptdoctor inspect --format json": [*ckptdoctor_command(), "inspect", str(path), "--format", "json"],
            "safe_open keys + shapes": [py, "-c", SAFE_OPEN_LIST, str(path)],
            "bare header read (python)": [py, "-c", BARE_HEADER, str(path)],
        }
        wall = {k: median_time(run(c), args.runs) for k, c in commands.items()}
        cpu = {k: median_cpu(run(c), args.runs) for k, c in commands.items()}
        ref_key = "safe_open keys + shapes"
        print("whole process (ratio = safe_open time / this time):")
        for k in commands:
            print(f"  {k:34s} wall {wall[k] * 1e3:7.1f} ms ({wall[ref_key] / wall[k]:5.2f}x)   "
                  f"cpu {cpu[k] * 1e3:7.1f} ms ({cpu[ref_key] / cpu[k]:5.2f}x)")

        from safetensors import safe_open

        import ckptdoctor
        from ckptdoctor.readers import read

        def ref() -> object:
            with safe_open(str(path), framework="np") as f:
                return [(k, f.get_slice(k).get_shape()) for k in f.keys()]  # noqa: SIM118

        def ours() -> object:
            return [(t.name, t.shape) for t in read(path).tensors]

        ref(), ours(), ckptdoctor.inspect(path)  # warm imports and page cache
        t_ref_in = median_time(ref, args.runs * 3)
        t_read = median_time(ours, args.runs * 3)
        t_inspect = median_time(lambda: ckptdoctor.inspect(path), args.runs * 3)
        print("in process (imports done):")
        print(f"  safe_open keys + shapes           {t_ref_in * 1e3:8.2f} ms")
        print(f"  ckptdoctor.readers.read           {t_read * 1e3:8.2f} ms   ratio {t_ref_in / t_read:5.2f}x")
        print(f"  ckptdoctor.inspect (with checks)  {t_inspect * 1e3:8.2f} ms   ratio {t_ref_in / t_inspect:5.2f}x")
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
