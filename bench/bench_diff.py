"""``diff`` of two ~2 GB checkpoints: throughput as a fraction of ``cat a b > /dev/null`` from the page cache.

B is A with every tensor changed (epoch 3 against epoch 4), the worst case: every chunk goes through the
value statistics. A second run compares A with a byte-identical copy in another format (safetensors),
the conversion-check case. Aim: throughput >= 0.5 of cat's.

Each case runs cat and ckptdoctor alternately ``--runs`` times (after one warm-up run of each, which also
fills the byte-code cache, as an installed package has one) and prints medians: the machine is shared.

Usage: python bench/bench_diff.py [--gb 2.0] [--runs 5]
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

from _common import installed_env, time_v

GENERATE = """
import sys, torch
from safetensors.torch import save_file
torch.manual_seed(0)
total, n = int(float(sys.argv[4]) * 2**30), 16
per = total // n // 4
a = {f"layers.{i}.weight": torch.randn(per // 1024, 1024) for i in range(n)}
torch.save(a, sys.argv[1])
save_file(a, sys.argv[3])
for t in a.values():
    t.add_(torch.randn_like(t), alpha=1e-3)
torch.save(a, sys.argv[2])
"""

DIFF = "import sys, ckptdoctor; r = ckptdoctor.diff(sys.argv[1], sys.argv[2]); print(r.counts())"


def timed(cmd: list[str]) -> tuple[float, int, str]:
    return time_v(cmd, installed_env())


def cat_seconds(*paths: str) -> float:
    start = time.perf_counter()
    subprocess.run(["cat", *paths], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ckptdoctor-bench-diff-", dir="/tmp")
    try:
        if shutil.disk_usage(folder).free < args.gb * 4 * 2**30:
            print(f"not enough free space in /tmp for {args.gb} GB x 3")
            return 1
        a, b, a_st = (os.path.join(folder, n) for n in ("epoch3.pt", "epoch4.pt", "epoch3.safetensors"))
        subprocess.run([sys.executable, "-c", GENERATE, a, b, a_st, str(args.gb)], check=True)
        mib = 2**20
        for label, other in (("every tensor differs", b), ("identical, .pt vs .safetensors", a_st)):
            total = os.path.getsize(a) + os.path.getsize(other)
            cat_seconds(a, other)  # warm the page cache
            timed([sys.executable, "-c", DIFF, a, other])  # and the byte-code cache
            cats, runs = [], []
            for _ in range(args.runs):  # alternate: both see the same machine load
                cats.append(cat_seconds(a, other))
                runs.append(timed([sys.executable, "-c", DIFF, a, other]))
            cat, ours = statistics.median(cats), statistics.median(r[0] for r in runs)
            rss, counts = max(r[1] for r in runs), runs[0][2]
            print(f"{label}: {total / 2**30:.2f} GiB read  {counts}  (median of {args.runs})")
            print(f"  cat a b > /dev/null : {cat:6.2f} s  ({total / mib / cat:7.0f} MiB/s)")
            print(f"  ckptdoctor diff     : {ours:6.2f} s  ({total / mib / ours:7.0f} MiB/s)  peak RSS {rss / mib:.0f} MiB")
            print(f"  throughput ratio    : {cat / ours:.2f}  (aim >= 0.5)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
