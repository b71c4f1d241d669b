"""Cold start of `ckptdoctor --version` and which heavy modules it imports (aim: < 0.3 s, none).

    python bench/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import ckptdoctor_command, installed_env

HEAVY = ("torch", "keras", "tensorflow", "numpy", "h5py", "rich", "safetensors", "ml_dtypes", "click", "typing")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    env = installed_env()
    cmd = ckptdoctor_command()
    subprocess.run([*cmd, "--version"], check=True, stdout=subprocess.DEVNULL, env=env)  # warm the cache
    times, bare = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--version"], check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        bare.append(time.perf_counter() - t0)
    script_args = cmd[1:] if cmd[0] == sys.executable else cmd
    proc = subprocess.run([sys.executable, "-X", "importtime", *script_args, "--version"],
                          capture_output=True, text=True, check=True, env=env)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    heavy = sorted(m for m in HEAVY if m in imported)
    print(f"ckptdoctor --version: best {min(times) * 1000:.0f} ms (bare python {min(bare) * 1000:.0f} ms; "
          f"aim < 300 ms) -> {'OK' if min(times) < 0.3 else 'SLOW'}")
    print(f"heavy modules imported: {heavy or 'none'}")
    print(f"ratio to bare interpreter start: {min(times) / min(bare):.1f}x")


if __name__ == "__main__":
    main()
