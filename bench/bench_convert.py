"""``convert`` of a generated ~2 GB ``.pt`` against ``torch.load(mmap=True)`` + ``safetensors.torch.save_file``.

Each side runs in its own process under ``/usr/bin/time -v`` (wall time and peak RSS); the file is in
the page cache for both. ckptdoctor also fsyncs and reads the output back to verify it, which the
baseline does not. Aim: peak RSS under 1/4 of the baseline's, and no slower.

Usage: python bench/bench_convert.py [--gb 2.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from _common import time_v

GENERATE = """
import sys, torch
torch.manual_seed(0)
total, n = int(float(sys.argv[2]) * 2**30), 16
per = total // n // 4
sd = {f"layers.{i}.weight": torch.randn(per // 1024, 1024) for i in range(n - 1)}
sd["layers.tied.weight"] = sd["layers.0.weight"]  # shared storage: stored once, as an alias
sd["small.bias"] = torch.randn(1000).to(torch.bfloat16)
torch.save(sd, sys.argv[1])
"""

OURS = "import sys, ckptdoctor; ckptdoctor.convert(sys.argv[1], sys.argv[2])"
BASELINE = """
import sys, torch
from safetensors.torch import save_model, save_file
sd = torch.load(sys.argv[1], mmap=True, weights_only=True)
sd.pop("layers.tied.weight")  # save_file refuses shared tensors; drop the alias as save_model would
save_file(sd, sys.argv[2], metadata={"layers.tied.weight": "layers.0.weight", "format": "pt"})
"""


def timed(code: str, *args: str) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of ``python -c code args`` in a fresh process."""
    seconds, rss, _ = time_v([sys.executable, "-c", code, *args])
    return seconds, rss


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ckptdoctor-bench-convert-", dir="/tmp")
    try:
        if shutil.disk_usage(folder).free < args.gb * 3.5 * 2**30:
            print(f"not enough free space in /tmp for {args.gb} GB x 3")
            return 1
        src = os.path.join(folder, "model.pt")
        subprocess.run([sys.executable, "-c", GENERATE, src, str(args.gb)], check=True)
        size = os.path.getsize(src)
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # page cache, for both sides
        out_ours, out_base = os.path.join(folder, "ours.safetensors"), os.path.join(folder, "base.safetensors")
        t_ours, rss_ours = timed(OURS, src, out_ours)
        os.remove(out_ours)
        t_base, rss_base = timed(BASELINE, src, out_base)
        os.remove(out_base)
        gib = 2**30
        print(f"input: {size / gib:.2f} GiB .pt, largest tensor {size / 15 / gib * 1024:.0f} MiB")
        print(f"ckptdoctor convert        : {t_ours:6.2f} s   peak RSS {rss_ours / 2**20:7.0f} MiB  (with fsync + verify)")
        print(f"torch.load(mmap)+save_file: {t_base:6.2f} s   peak RSS {rss_base / 2**20:7.0f} MiB")
        print(f"ratio time ours/baseline  : {t_ours / t_base:.2f}  (aim <= 1.0)")
        print(f"ratio RSS  ours/baseline  : {rss_ours / rss_base:.3f}  (aim < 0.25)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
