"""The CLI's contract that does not depend on any reader: start-up imports, help, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "keras", "tensorflow", "numpy", "h5py", "rich", "safetensors", "ml_dtypes")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_and_version_do_not_import_frameworks() -> None:
    loaded = _modules_after(
        "import ckptdoctor\n"
        "from click.testing import CliRunner\n"
        "from ckptdoctor.cli import main\n"
        "r = CliRunner().invoke(main, ['--version'])\n"
        "assert r.exit_code == 0 and 'ckptdoctor' in r.output, r.output"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_help_lists_commands_without_importing_frameworks() -> None:
    loaded = _modules_after(
        "from click.testing import CliRunner\n"
        "from ckptdoctor.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0 and 'inspect' in r.output, r.output"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "ckptdoctor", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_every_listed_command_has_teaching_help() -> None:
    from click.testing import CliRunner

    from ckptdoctor.cli import COMMANDS, main

    runner = CliRunner()
    listed = main.list_commands(None)  # type: ignore[arg-type]
    assert "inspect" in listed and set(listed) <= set(COMMANDS)
    for name in listed:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output and len(result.output.splitlines()) > 5, name


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
