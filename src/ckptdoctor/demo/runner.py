"""Runs the demo scenarios: each step is a subprocess in the output folder, shown as a user would see it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from importlib import resources

from ckptdoctor.demo import SCENARIOS, Scenario, Step


def run_demo(out_dir: str, only: set[str]) -> int:
    from rich.console import Console
    from rich.rule import Rule

    out = Console(highlight=False)
    os.makedirs(out_dir, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONWARNINGS": "ignore::DeprecationWarning",
           "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": os.environ.get("COLUMNS", "110")}
    failures: list[str] = []
    for scenario in SCENARIOS:
        if only and scenario.key not in only:
            continue
        _copy_script(scenario, out_dir)
        out.print(Rule(f"[bold]{scenario.title}[/bold]"))
        out.print(f"[dim]The article:[/dim] {scenario.claim}")
        out.print(f"[dim]What really happens:[/dim] {scenario.reality}\n")
        for step in scenario.steps:
            code = _run_step(out, step, out_dir, env)
            if code not in step.expect_exit:
                failures.append(f"scenario {scenario.key}: {step.title} (exit {code}, expected {step.expect_exit})")
        out.print()
    if failures:
        out.print("[bold red]Demo steps that did not behave as expected:[/bold red]")
        for f in failures:
            out.print(f"  {f}")
        return 1
    out.print(f"[green]All scenarios reproduced and diagnosed.[/green] Files are in {os.path.abspath(out_dir)}")
    return 0


def _copy_script(scenario: Scenario, out_dir: str) -> None:
    source = resources.files("ckptdoctor.demo").joinpath("scripts", scenario.script)
    with resources.as_file(source) as path:
        shutil.copyfile(path, os.path.join(out_dir, scenario.script))


def _run_step(out, step: Step, cwd: str, env: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    from ckptdoctor.report.text import escape

    argv = list(step.argv)
    shown = shlex.join(argv)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "ckptdoctor":
        argv = [sys.executable, "-m", "ckptdoctor", *argv[1:]]
    out.print(f"[bold cyan]$ {escape(shown)}[/bold cyan]   [dim]# {escape(step.title)}[/dim]")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    if step.log:
        with open(os.path.join(cwd, step.log), "w", encoding="utf-8") as fh:
            fh.write(text)
    for line in text.rstrip().splitlines():
        out.print("  " + escape(line), soft_wrap=True)
    if proc.returncode not in step.expect_exit:
        out.print(f"  [red](exit status {proc.returncode})[/red]")
    return proc.returncode
