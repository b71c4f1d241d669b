"""``ckptdoctor run -- python script.py``: the script's output and exit status are kept, and the report
explains what torch printed. torch is imported by the script itself, inside the watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    print("script stdout", sys.argv[1:])
    print("script stderr", file=sys.stderr)
    torch.save(torch.nn.Linear(2, 3).state_dict(), sys.argv[1])
    try:
        torch.nn.Linear(2, 4).load_state_dict(torch.load(sys.argv[1]))
    except RuntimeError:
        print("caught", file=sys.stderr)
    sys.exit(3)
""")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KERAS_BACKEND="torch")
    return subprocess.run([sys.executable, "-m", "ckptdoctor.cli", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_run_keeps_output_and_status_and_reports(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    ckpt = tmp_path / "m.pt"
    proc = _run("--", sys.executable, str(script), str(ckpt), cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == f"script stdout ['{ckpt}']\n"  # the script's stdout, untouched
    assert proc.stderr.startswith("script stderr\ncaught\n")
    report = proc.stderr.split("caught\n", 1)[1]
    assert "torch-size-mismatch" in report and "W203" in report
    assert f"{script}:8" in report  # the user's call site: the load_state_dict line
    assert f"saved: {ckpt}" in report
    assert ckpt.exists()


def test_run_json_report_to_file(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "report.json"
    proc = _run("--format", "json", "--report", str(out), "--", str(script), str(tmp_path / "m.pt"), cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr == "script stderr\ncaught\n"  # the report went to the file
    data = json.loads(out.read_text())
    assert data["tool"]["name"] == "ckptdoctor"
    assert data["diagnostics"][0]["code"] == "W203"
    kinds = [e["kind"] for e in data["events"]]
    assert kinds == ["save", "exception"]


def test_run_usage_errors(tmp_path: Path) -> None:
    proc = _run("--", "ls", "-l", cwd=tmp_path)
    assert proc.returncode == 2 and "runs Python scripts" in proc.stderr
    assert "Examples:" in _run("--help", cwd=tmp_path).stdout
