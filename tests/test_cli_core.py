"""The CLI's contract that does not depend on any reader: start-up imports, help, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ckptdoctor._version import __version__
from ckptdoctor.cli import COMMANDS, available_commands
from cli_helpers import invoke

TESTS = Path(__file__).parent
HEAVY = ("torch", "keras", "tensorflow", "numpy", "h5py", "rich", "safetensors", "ml_dtypes")
# start-up cost: the CLI is argparse, and typing is not needed to run a command
SLOW_TO_IMPORT = ("click", "typing")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=TESTS).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _cli_modules_after(*args: str) -> tuple[set[str], str]:
    """The modules a whole ``ckptdoctor ARGS`` process imported, and its stdout (the command must exit 0)."""
    probe = ("import json, sys\n"
             "from ckptdoctor.cli import main\n"
             "try:\n"
             "    main(sys.argv[1:])\n"
             "except SystemExit as exc:\n"
             "    assert not exc.code, exc.code\n"
             "sys.stdout.write('\\n' + json.dumps(sorted(sys.modules)) + '\\n')\n")
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    output, _, modules = proc.stdout.rstrip("\n").rpartition("\n")
    return set(json.loads(modules)), output.rstrip("\n")


def test_import_and_version_do_not_import_frameworks() -> None:
    loaded = _modules_after(
        "import ckptdoctor\n"
        "from cli_helpers import invoke\n"
        "r = invoke(['--version'])\n"
        "assert r.exit_code == 0 and 'ckptdoctor' in r.output, r.output"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_version_imports_neither_click_nor_typing() -> None:
    loaded, output = _cli_modules_after("--version")
    assert output == f"ckptdoctor, version {__version__}"
    assert not {m for m in loaded if m.split(".")[0] in HEAVY + SLOW_TO_IMPORT}
    assert "ckptdoctor.commands" not in loaded


def test_help_lists_commands_without_importing_frameworks() -> None:
    loaded = _modules_after(
        "from cli_helpers import invoke\n"
        "r = invoke(['--help'])\n"
        "assert r.exit_code == 0 and 'inspect' in r.output, r.output"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    loaded, output = _cli_modules_after("--help")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY + SLOW_TO_IMPORT}
    assert not {m for m in loaded if m.startswith("ckptdoctor.commands.")}  # listed from COMMANDS alone
    for name, (_, summary) in COMMANDS.items():
        assert f"  {name}" in output and summary in output, name


def test_inspect_json_imports_neither_click_nor_typing(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "small.pt"
    torch.save({"w": torch.zeros(3, 4), "b": torch.ones(3)}, path)
    loaded, output = _cli_modules_after("inspect", "--format", "json", str(path))
    assert json.loads(output)["format"] == "torch-zip"
    assert not {m for m in loaded if m.split(".")[0] in SLOW_TO_IMPORT}
    assert not {m for m in loaded if m.split(".")[0] in ("torch", "keras", "tensorflow")}


def test_dataclasses_on_the_inspect_path_have_docstrings(tmp_path: Path) -> None:
    """Without a docstring, @dataclass builds one from inspect.signature() while the module is imported:
    start-up time on every run."""
    import dataclasses
    import importlib

    torch = pytest.importorskip("torch")
    path = tmp_path / "small.pt"
    torch.save({"w": torch.zeros(3)}, path)
    loaded, _ = _cli_modules_after("inspect", "--format", "json", str(path))
    ours = sorted(m for m in loaded if m.startswith("ckptdoctor"))
    assert "ckptdoctor.snapshot" in ours
    undocumented = []
    for name in ours:
        for obj in vars(importlib.import_module(name)).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == name
                    and obj.__dict__.get("__doc__", "").startswith(obj.__name__ + "(")):
                undocumented.append(f"{name}.{obj.__name__}")
    assert not undocumented


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not proc.stdout  # one line
    close = invoke(["insepct"])
    assert close.exit_code == 2 and "Did you mean 'inspect'?" in close.stderr and not close.stdout


def test_usage_errors_exit_2() -> None:
    for args in (["inspect"], ["inspect", "--format", "xml", "x.pt"], ["inspect", "--no-such-option", "x.pt"],
                 ["--no-such-option"], ["check", "x.pt"], ["diff", "a.pt"]):
        result = invoke(args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and result.exception is None, args
    assert invoke([]).exit_code == 2  # no command: the help, as a usage error
    assert "Commands:" in invoke([]).stderr


def test_python_m_entry_points() -> None:
    for module in ("ckptdoctor", "ckptdoctor.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.startswith("ckptdoctor, version "), (module, proc.stderr)


def test_every_listed_command_has_teaching_help() -> None:
    listed = available_commands()
    assert "inspect" in listed and set(listed) <= set(COMMANDS)
    for name in listed:
        result = invoke([name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output and len(result.output.splitlines()) > 5, name
        assert "\\b" not in result.output, name  # click's paragraph markers are gone


def test_every_rule_is_documented_and_codes_are_unique() -> None:
    from ckptdoctor.rules import load_all

    rules = load_all()
    assert rules, "no rules declared"
    names = [r.name for r in rules.values()]
    assert len(names) == len(set(names)), "two codes share a name"
    for code, rule in rules.items():
        assert code[0] in "ACDSFW" and code[1:].isdigit() and len(code) == 4, code
        assert rule.name == rule.name.lower() and " " not in rule.name, code
        assert rule.summary.strip(), code
        assert code in rule.documentation()


@pytest.mark.parametrize("folder", [False, True])
def test_inspect_json_text_encodes_shared_tensors_once_with_identical_output(tmp_path: Path, folder: bool) -> None:
    import torch

    from ckptdoctor.inspection import inspect
    from ckptdoctor.report.inspect_report import inspect_json, inspect_json_text
    from ckptdoctor.report.json_report import json_text

    torch.save({"a.weight": torch.ones(2, 3), "name\u00e9": torch.zeros(1)}, tmp_path / "one.pt")
    if folder:
        torch.save({"b": torch.ones(4)}, tmp_path / "two.pt")
    path = str(tmp_path if folder else tmp_path / "one.pt")
    snaps = inspect(path)
    compact = inspect_json_text(path, snaps, {}, None)
    assert compact == json_text(inspect_json(path, snaps, {}), None)
    doc = json.loads(compact)
    assert len(doc["files"]) == (2 if folder else 1)
    assert {t["name"] for t in doc["tensors"]} == ({"a.weight", "name\u00e9", "b"} if folder else {"a.weight", "name\u00e9"})
    assert inspect_json_text(path, snaps, {}, 2) == json_text(inspect_json(path, snaps, {}), 2)
