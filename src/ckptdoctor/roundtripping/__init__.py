"""``ckptdoctor.roundtrip(model)``: save the trained model, reload it in a FRESH Python process the way
an inference program would, and compare every tensor bit for bit and the outputs on a sample input.

Every difference gets a diagnostic that names its cause with the lint rules (D101 plain attribute,
D102 non-persistent buffer, C101 custom class, ...). The framework work happens in
``frameworks/torch_roundtrip.py`` and ``frameworks/keras_roundtrip.py``; the child process is
``ckptdoctor.roundtripping.child``. This module only orchestrates and diagnoses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.diagnostics import Diagnostic, FindingsReport, Severity, sort_key
from ckptdoctor.errors import UsageError
from ckptdoctor.linting import KERAS_METHODS, TORCH_METHODS, framework_of, lint
from ckptdoctor.rules import custom_objects as C
from ckptdoctor.rules import dtypes as D

DESCRIBE = {
    "torch": "torch.save(model.state_dict())", "safetensors": "safetensors.torch.save_file(model.state_dict())",
    "module": "torch.save(model)", "keras": "model.save('model.keras')", "h5": "model.save('model.h5')",
    "weights": "model.save_weights('model.weights.h5')",
}
# where a live tensor lived -> the lint rule that explains why the save did not keep it
ORIGIN_RULE = {"plain-attribute": D.PLAIN_TENSOR_ATTRIBUTE, "non-persistent-buffer": D.NON_PERSISTENT_BUFFER,
               "plain-container": D.PLAIN_MODULE_CONTAINER}
ORIGIN_TEXT = {"plain-attribute": "the plain tensor attribute {name} was not saved",
               "non-persistent-buffer": "the non-persistent buffer {name} was not saved",
               "plain-container": "{name} belongs to a module kept in a plain list/dict and was not saved",
               "state": "{name} was saved but reloaded differently"}
ORIGIN_FIX = {"plain-attribute": "register it: self.register_buffer(name, tensor) or nn.Parameter(tensor)",
              "non-persistent-buffer": "register_buffer(name, tensor, persistent=True) (the default)",
              "plain-container": "hold the modules in nn.ModuleList / nn.ModuleDict"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class RoundtripReport(FindingsReport):
    framework: str
    model: str
    save_as: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    file_size: int | None = None
    loaded: bool = False
    loaded_with: str = ""
    compared: int = 0
    identical: int = 0
    output: dict[str, Any] | None = None

    def summary_lines(self) -> list[str]:
        lines = [f"roundtrip {self.model} ({self.framework}) via {DESCRIBE.get(self.save_as, self.save_as)}"
                 + (f": {self.file_size} bytes" if self.file_size is not None else "")]
        if self.loaded:
            lines.append(f"  fresh process: {self.loaded_with}: loaded")
            lines.append(f"  tensors: {self.identical}/{self.compared} bit-identical with the live model")
            if self.output is None:
                lines.append("  output: not compared (no sample input)")
            else:
                status = self.output.get("status")
                lines.append("  output: identical" if status == "equal" else
                             f"  output: {status} (max abs diff {self.output.get('max_abs_diff')})")
        else:
            lines.append("  fresh process: the model could not be reloaded")
        return lines

    def to_json(self) -> dict[str, Any]:
        from ckptdoctor.report.json_report import envelope

        subject = {"model": self.model, "framework": self.framework, "save_as": self.save_as}
        return envelope(subject, self.diagnostics, roundtrip={
            "file_size": self.file_size, "loaded": self.loaded, "loaded_with": self.loaded_with,
            "tensors_compared": self.compared, "tensors_identical": self.identical, "output": self.output})

    def render(self) -> str:
        from rich.console import Console

        from ckptdoctor.report.text import render_diagnostics

        out = Console(record=True, width=110, color_system=None, file=open(os.devnull, "w"))  # noqa: SIM115
        for line in self.summary_lines():
            out.print(line, highlight=False, markup=False)
        render_diagnostics(out, self.diagnostics)
        text = out.export_text()
        out.file.close()
        return text

    def __str__(self) -> str:
        return self.render()


def roundtrip(model: Any, save_as: str | None = None, sample_input: Any = None, rebuild: Any = None,
              model_args: Any = None, custom_objects: dict[str, Any] | None = None,
              timeout: float = 600.0) -> RoundtripReport:
    """Save ``model`` (the trained object) and reload it in a fresh process; see the module docstring.

    ``save_as``: torch (state_dict, the default for torch), safetensors, module (whole-module pickle),
    keras (the default for Keras), h5, weights. ``rebuild``: a class/factory or ``pkg.mod:callable``
    TARGET the fresh process calls to build the model (default: the model's own class with
    ``model_args``, a dict of keyword arguments or a list of positional ones). ``custom_objects``:
    passed to ``keras.models.load_model`` in the fresh process (the classes must be importable).
    """
    framework = framework_of(model)
    methods = TORCH_METHODS if framework == "pytorch" else KERAS_METHODS
    save_as = save_as or methods[0]
    if save_as not in methods:
        raise UsageError(f"save_as={save_as!r} is not a {framework} save method: use {', '.join(methods)}")
    args = _model_args(model_args)
    cls = type(model)
    report = RoundtripReport(framework, f"{cls.__module__}.{cls.__qualname__}", save_as)
    lint_diags = lint(model, save_as=save_as).diagnostics
    workdir = tempfile.mkdtemp(prefix="ckptdoctor-roundtrip-")
    try:
        if framework == "pytorch":
            from ckptdoctor.frameworks import torch_roundtrip as fw
        else:
            from ckptdoctor.frameworks import keras_roundtrip as fw  # type: ignore[no-redef]
        try:
            job = fw.prepare(model, workdir, save_as, sample_input, rebuild, args, custom_objects)
        except fw.SaveFailed as exc:
            report.diagnostics = sorted([*lint_diags, _save_failed(exc, save_as, lint_diags)], key=sort_key)
            return report
        report.file_size = job.get("file_size")
        result = _run_child(job, workdir, timeout)
        report.diagnostics = sorted(lint_diags + diagnose(job, result, lint_diags, report), key=sort_key)
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _model_args(value: Any) -> tuple[list[Any], dict[str, Any]]:
    if value is None:
        return [], {}
    if isinstance(value, dict):
        return [], dict(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and isinstance(value[0], (list, tuple)) and isinstance(value[1], dict):
            return list(value[0]), dict(value[1])
        return list(value), {}
    raise UsageError("model_args must be a dict of keyword arguments or a list of positional ones")


def _run_child(job: dict[str, Any], workdir: str, timeout: float) -> dict[str, Any]:
    job = {**job, "sys_path": [p for p in sys.path if p and os.path.isdir(p)]}
    job_path = os.path.join(workdir, "job.json")
    result_path = os.path.join(workdir, "result.json")
    with open(job_path, "w", encoding="utf-8") as fh:
        json.dump(job, fh, default=str)
    env = dict(os.environ)
    if job.get("keras_backend"):
        env["KERAS_BACKEND"] = job["keras_backend"]
    env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [sys.executable, "-m", "ckptdoctor.roundtripping.child", job_path, result_path]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"loaded": False, "tensors": [], "output": None, "errors": [{
            "stage": "child", "type": "TimeoutExpired", "message": f"no answer after {timeout:.0f} s",
            "text": f"the fresh process did not finish within {timeout:.0f} s (does importing the model's "
                    "module start training? guard it with `if __name__ == '__main__':`)"}]}
    if not os.path.exists(result_path):
        tail = (proc.stderr or "").strip()[-2000:]
        return {"loaded": False, "tensors": [], "output": None, "errors": [{
            "stage": "child", "type": f"exit status {proc.returncode}", "message": tail, "text": tail}]}
    with open(result_path, encoding="utf-8") as fh:
        result: dict[str, Any] = json.load(fh)
    result["stderr"] = (proc.stderr or "")[-4000:]
    return result


def _related(lint_diags: list[Diagnostic], *codes: str) -> list[str]:
    present = {d.code for d in lint_diags}
    return [c for c in codes if c in present]


def _save_failed(exc: Any, save_as: str, lint_diags: list[Diagnostic]) -> Diagnostic:
    related = _related(lint_diags, "D104", "D105", "D106", "D108", "C103", "C112", "C113", "C105")
    return C.ROUNDTRIP_SAVE_FAILED.diag(
        f"{DESCRIBE[save_as]} raised {exc.exc_type}: {_first_line(exc.text)}",
        subject=save_as, found=exc.exc_type, framework_behavior=exc.text,
        fix="see " + ", ".join(related) if related else "see the exception text",
        related=related, details={"exception": exc.text},
    )


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _key_line(text: str) -> str:
    """The informative part of a long message: Keras nests the real cause after 'Exception encountered:'."""
    text = _ANSI.sub("", text)
    inner = re.search(r"Exception encountered: (.*?)(?: Full object config|$)", text, re.DOTALL)
    if inner:
        return _first_line(inner.group(1))
    weights_only = re.search(r"WeightsUnpickler error: (.*?)(?:\n|$)", text)
    if weights_only:
        return "Weights only load failed: " + _first_line(weights_only.group(1))
    return _first_line(text)


def _quote(text: str, limit: int = 1500) -> str:
    text = _ANSI.sub("", text).strip()
    if len(text) <= limit:
        return text
    inner = text.find("Exception encountered:")
    if inner > limit // 2:  # keep the head and the real cause, drop the config dump between them
        return text[: limit // 2] + " ... " + text[inner: inner + limit // 2] + " ..."
    return text[:limit] + " ..."


def diagnose(job: dict[str, Any], result: dict[str, Any], lint_diags: list[Diagnostic],
             report: RoundtripReport) -> list[Diagnostic]:
    """Turn the child's JSON result into diagnostics, each naming its cause."""
    out: list[Diagnostic] = []
    report.loaded = bool(result.get("loaded"))
    report.loaded_with = str(result.get("loaded_with", ""))
    for err in result.get("errors", []):
        out.append(_load_error(job, err, lint_diags, loaded=report.loaded))
    origins: dict[str, str] = job.get("origins", {})
    causes: list[str] = []
    for entry in result.get("tensors", []):
        report.compared += 1
        if entry["status"] == "equal":
            report.identical += 1
            continue
        name = entry["name"]
        origin = origins.get(name, "state")
        rule = ORIGIN_RULE.get(origin)
        related = [rule.code] if rule is not None else []
        causes += related
        what = ORIGIN_TEXT.get(origin, ORIGIN_TEXT["state"]).format(name=name)
        status = entry["status"]
        if status == "missing":
            found = "absent after reload"
            detail = "it does not exist on the reloaded model"
        elif status == "dtype":
            found = entry.get("found_dtype")
            detail = f"reloaded as {found} instead of {entry['dtype']} (max abs diff {entry.get('max_abs_diff')})"
        elif status == "shape":
            found = entry.get("found_shape")
            detail = f"reloaded with shape {found}"
        elif status == "meta":
            found = "meta tensor"
            detail = "reloaded without data (meta device)"
        else:
            found = f"{entry.get('n_diff')} of {entry.get('numel')} values differ"
            detail = (f"after the reload {entry.get('n_diff')} of {entry.get('numel')} values differ "
                      f"(max abs diff {entry.get('max_abs_diff')})"
                      + ("; it has its __init__ value again" if origin != "state" else ""))
        fix = ORIGIN_FIX.get(origin, "compare the save and load code paths for this tensor")
        out.append(D.ROUNDTRIP_TENSOR_DIFFERS.diag(
            f"{what}: {detail}", subject=name, expected=f"{entry['dtype']} {tuple(entry['shape'])} as trained",
            found=found, related=related,
            framework_behavior="the save did not keep this value and nothing warned",
            fix=fix, details={k: v for k, v in entry.items() if k not in ("name",)},
        ))
    output = result.get("output")
    report.output = output
    if output is not None and output.get("status") != "equal":
        related = sorted(set(causes)) + _related(lint_diags, "D301", "C102", "D107")
        out.append(D.ROUNDTRIP_OUTPUT_DIFFERS.diag(
            f"the reloaded model's output differs ({output.get('status')}, max abs diff "
            f"{output.get('max_abs_diff')})",
            subject="output", expected="identical output", found=output.get("max_abs_diff"),
            related=related,
            framework_behavior="the reloaded model computes something else, silently",
            fix="fix the causes named in related (" + ", ".join(related) + ")" if related else
                "compare the layers' configs and dtypes before and after the reload",
            details=output,
        ))
    return out


def _load_error(job: dict[str, Any], err: dict[str, Any], lint_diags: list[Diagnostic],
                loaded: bool) -> Diagnostic:
    stage = err.get("stage", "")
    text = err.get("text") or f"{err.get('type')}: {err.get('message')}"
    related = _related(lint_diags, "C101", "C104", "C111", "C112", "C113", "C114", "C131", "D108", "C102")
    fix = "see " + ", ".join(related) if related else "make the model's code importable by the loading program"
    severity = Severity.ERROR
    if stage.startswith("construct"):
        fix = ("the fresh process could not construct the model with these arguments: pass rebuild=... "
               "(--rebuild TARGET) or model_args=... (--model-args JSON)")
    elif stage == "torch.load(weights_only=True)":
        related = ["C114", *(r for r in related if r != "C114")]
        fix = ("save model.state_dict() instead; a trusted file can be loaded with weights_only=False or "
               "torch.serialization.safe_globals([...])")
    message = f"{stage} failed in a fresh process: {err.get('type')}: {_key_line(err.get('message', ''))}"
    if loaded:
        message += " (a later fallback did load it)"
    return C.ROUNDTRIP_RELOAD_FAILED.diag(
        message, subject=(os.path.basename(job.get("file", "")) if job.get("save_as") == "module"
                          else job.get("target") or os.path.basename(job.get("file", ""))), found=err.get("type"),
        expected="the model reloads", framework_behavior=_quote(text), fix=fix, related=related,
        severity=severity, details={"stage": stage, "exception": _quote(text, 4000)},
    )
