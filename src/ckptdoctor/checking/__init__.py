"""``check``: a checkpoint file against the code that builds the model (the article's cause 1).

    >>> report = ckptdoctor.check(model, "chatbot.pth")     # a live torch or Keras model, or a ModelSpec
    >>> report.ok, report.diagnostics, report.predictions

Reads the file without executing it, describes the model (torch on the meta device when built from a
TARGET), aligns names, and reports every disagreement with what the framework will do on load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.checking.behavior import Prediction
from ckptdoctor.diagnostics import Diagnostic, Fix, has_errors, sort_key
from ckptdoctor.snapshot import Snapshot
from ckptdoctor.spec import ModelSpec


@dataclass
class CheckReport:
    path: str
    snapshot: Snapshot
    spec: ModelSpec
    diagnostics: list[Diagnostic] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    fix_plan: list[Fix] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    selected_key: str | None = None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def codes(self) -> list[str]:
        return [d.code for d in sorted(self.diagnostics, key=sort_key)]

    def prediction(self, call_fragment: str) -> Prediction | None:
        return next((p for p in self.predictions if call_fragment in p.call), None)

    def subject_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "format": self.snapshot.format,
            "framework": self.snapshot.framework,
            "framework_version": self.snapshot.framework_version,
            "model": {"class": self.spec.class_name, "module": self.spec.module, "framework": self.spec.framework,
                      "tensors": len([e for e in self.spec.state if e.persistent])},
            "file_tensors": len(self.snapshot.tensors),
            "state_dict_key": self.selected_key,
            # a folder argument: the weights file (or shard index) that was compared
            "weights_file": self.snapshot.path if self.snapshot.path != self.path else None,
        }

    def to_json(self) -> dict[str, Any]:
        from ckptdoctor.report.json_report import envelope

        return envelope(self.subject_json(), self.diagnostics,
                        framework_behavior=[p.to_json() for p in self.predictions],
                        fix_plan=[f.to_json() for f in self.fix_plan], notes=list(self.notes))


def check(model: Any, path: str | os.PathLike[str], *, key: str | None = None,
          snapshot: Snapshot | None = None) -> CheckReport:
    """Compare the file at ``path`` with ``model`` (a torch ``nn.Module``, a Keras model, or a ModelSpec).

    ``path`` may be a Hugging Face style folder (config.json + model.safetensors, sharded safetensors
    with their index, or pytorch_model.bin): the weights are picked as from_pretrained picks them.

    ``key`` selects the state_dict inside a training checkpoint (``ckpt["model"]``); by default it is
    found automatically. Raises ``ckptdoctor.InputError`` for an unreadable file.
    """
    from ckptdoctor.rules import run_model_checks, run_snapshot_checks

    path = os.fspath(path)
    read_notes: list[str] = []
    if snapshot is None:
        from ckptdoctor.checking.hf import read_for_check

        snapshot, read_notes = read_for_check(path)
    if isinstance(model, ModelSpec):
        spec = model
    else:
        from ckptdoctor.frameworks import spec_from_object

        spec = spec_from_object(model, snapshot)
    report = CheckReport(path=path, snapshot=snapshot, spec=spec, notes=read_notes + list(spec.notes))
    report.diagnostics.extend(snapshot.diagnostics)
    report.diagnostics.extend(run_snapshot_checks(snapshot))
    report.diagnostics.extend(spec.diagnostics)

    if snapshot.framework == "keras" or spec.framework == "keras":
        from ckptdoctor.checking.compare_keras import compare_keras

        cmp = compare_keras(snapshot, spec)
    else:
        from ckptdoctor.checking.compare import compare_torch

        cmp = compare_torch(snapshot, spec, key)
    report.diagnostics.extend(cmp.diagnostics)
    report.predictions = cmp.predictions
    report.fix_plan = cmp.fix_plan
    report.notes.extend(cmp.notes)
    report.selected_key = cmp.selected_key
    report.diagnostics.extend(run_model_checks(snapshot, spec))
    report.diagnostics = _dedupe(report.diagnostics)
    return report


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for d in diags:
        k = (d.code, d.subject, d.message)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


__all__ = ["CheckReport", "check"]
