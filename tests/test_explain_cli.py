"""``ckptdoctor explain``: a message, a log file, stdin or a code; text and JSON; exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import invoke

LOGS = Path(__file__).parent / "data" / "logs"
MISSING = ('RuntimeError: Error(s) in loading state_dict for Net:\n\tMissing key(s) in state_dict: "head.weight", '
           '"head.bias". \n\tUnexpected key(s) in state_dict: "fc.weight", "fc.bias". ')


def run(*args: str, stdin: str | None = None):
    return invoke(["explain", *args], input=stdin)


def test_explain_message_text() -> None:
    res = run("WARNING:absl:No training configuration found in the save file, so the model was *not* compiled.")
    assert res.exit_code == 0, res.output  # info only: nothing at or above the default --fail-on error
    assert "W104" in res.output and "keras-no-training-configuration" in res.output
    assert "compile=False" in res.output


def test_explain_log_file_json_contract() -> None:
    res = run(str(LOGS / "keras_chatbot.log"), "--format", "json")
    assert res.exit_code == 1  # the log has an error
    data = json.loads(res.output)
    assert data["tool"]["name"] == "ckptdoctor"
    assert data["subject"] == {"source": "file", "path": str(LOGS / "keras_chatbot.log")}
    codes = [d["code"] for d in data["diagnostics"]]
    assert codes[0] == "W107"  # errors first
    assert set(codes) == {"W107", "W102", "W101", "W104"}
    for d in data["diagnostics"]:
        assert set(d) >= {"code", "name", "severity", "subject", "message", "expected", "found",
                          "framework_behavior", "fix"}
    w107 = next(d for d in data["diagnostics"] if d["code"] == "W107")
    assert (w107["expected"], w107["found"]) == ("(64, 256)", "(64, 512)")
    assert "A103" in w107["related"]
    w102 = next(f for f in data["findings"] if f["code"] == "W102")
    assert w102["count"] == 3


def test_explain_stdin_and_fail_on() -> None:
    res = run("-", stdin=MISSING)
    assert res.exit_code == 1
    assert "W201" in res.output and "'fc' in the file is 'head'" in res.output
    info_only = "Compiled the loaded model, but the compiled metrics have yet to be built."
    assert run("-", stdin=info_only).exit_code == 0
    assert run("-", "--fail-on", "info", stdin=info_only).exit_code == 1


def test_explain_unknown_message_shows_closest() -> None:
    res = run("Skipping variable loading for optimizer because something else happened")
    assert res.exit_code == 0
    assert "not in catalog" in res.output
    assert "Skipping variable loading for optimizer because something else happened" in res.output
    assert "W105" in res.output
    data = json.loads(run("totally unrelated text about cats", "--format", "json").output)
    assert data["diagnostics"] == [] and data["unknown"][0]["text"] == "totally unrelated text about cats"


def test_explain_code_any_family() -> None:
    res = run("W107")
    assert res.exit_code == 0
    assert res.output.startswith("W107 keras-objects-not-loaded")
    assert "## Fix" in res.output and "## Example" in res.output
    f101 = run("f101")
    assert f101.exit_code == 0 and f101.output.startswith("F101 path-not-found")
    data = json.loads(run("W205", "--format", "json").output)
    assert data["rule"]["name"] == "torch-weights-only-unsupported-global"


def test_explain_unknown_code_is_a_usage_error() -> None:
    res = run("W999")
    assert res.exit_code == 2
    assert "unknown code W999" in res.output
    assert "Traceback" not in res.output


def test_explain_list_and_help() -> None:
    res = run("--list")
    assert res.exit_code == 0 and res.output.count("\n") >= 50
    from ckptdoctor.rules import load_all

    listed = {line.split()[0] for line in res.output.splitlines() if line.startswith("  ")}
    assert listed == set(load_all())  # every family's codes, not only the W codes
    helptext = run("--help").output
    assert "Examples:" in helptext and "ckptdoctor explain W107" in helptext
