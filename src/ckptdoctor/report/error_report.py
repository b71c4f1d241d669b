"""What a command prints on stdout when it ends with exit status 2 and the user asked for JSON or SARIF.

The one line on stderr is for people; a pipeline (``ckptdoctor inspect x --format json | jq``) gets a
document it can parse: the usual envelope with the error as an F-family diagnostic and an ``error``
object, or a SARIF log whose invocation failed, so code scanning shows why instead of "no results".
"""

from __future__ import annotations

import os

from ckptdoctor.diagnostics import Diagnostic, Severity
from ckptdoctor.errors import InputError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any


def error_diagnostics(exc: Exception) -> list[Diagnostic]:
    """An InputError as its F-family diagnostic (a usage error has none: nothing was read)."""
    if not isinstance(exc, InputError):
        return []
    from ckptdoctor.rules.registry import get

    rule = get(exc.code)
    subject = exc.path or ""
    if rule is None:
        return [Diagnostic(code=exc.code, name="input-error", severity=Severity.ERROR, message=exc.message,
                           subject=subject, fix=exc.hint or "", path=exc.path)]
    return [rule.diag(exc.message, subject=subject, fix=exc.hint or "", path=exc.path,
                      severity=Severity.ERROR)]


def error_object(exc: Exception, kind: str) -> dict[str, Any]:
    """``{"kind": "input"|"usage"|"interrupted", "code", "message", "path", "fix"}``."""
    if isinstance(exc, InputError):
        return {"kind": kind, "code": exc.code, "message": exc.message, "path": exc.path, "fix": exc.hint or ""}
    return {"kind": kind, "code": None, "message": str(exc) or kind, "path": None, "fix": ""}


def error_json(exc: Exception, kind: str) -> dict[str, Any]:
    from ckptdoctor.report.json_report import envelope

    path = exc.path if isinstance(exc, InputError) else None
    subject: dict[str, Any] = {"path": path, "kind": _path_kind(path)} if path else {}
    return envelope(subject, error_diagnostics(exc), error=error_object(exc, kind))


def error_sarif(exc: Exception, kind: str, command: str) -> dict[str, Any]:
    from ckptdoctor.report.sarif import sarif_log

    path = exc.path if isinstance(exc, InputError) else None
    log = sarif_log(error_diagnostics(exc), path or "", command=command)
    run = log["runs"][0]
    if not path:
        run["artifacts"] = []
    message = exc.one_line() if isinstance(exc, InputError) else f"error: {exc}"
    run["invocations"] = [{
        "executionSuccessful": False,
        "exitCode": 2,
        "commandLine": f"ckptdoctor {command}",
        "toolExecutionNotifications": [{"level": "error", "message": {"text": message},
                                        **({"descriptor": {"id": exc.code}} if isinstance(exc, InputError) else {})}],
    }]
    return log


def _path_kind(path: str) -> str:
    if os.path.isdir(path):
        return "folder"
    return "file" if os.path.exists(path) else "missing"
