"""Run every benchmark in bench/ (each prints ratios against its reference tool, measured in the same run).

Usage: python bench/run_all.py [NAME ...]   e.g. `python bench/run_all.py startup inspect_pt`
"""

from __future__ import annotations

import pathlib
import subprocess
import sys


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).parent
    scripts = sorted(p for p in here.glob("bench_*.py"))
    if argv:
        scripts = [p for p in scripts if p.stem.removeprefix("bench_") in argv]
    status = 0
    for script in scripts:
        print(f"=== {script.stem}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], check=False)
        status = status or proc.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
