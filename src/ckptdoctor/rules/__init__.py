"""Rules: pure functions from (Snapshot, ModelSpec, context) to Diagnostics, each with its documentation."""

from ckptdoctor.rules.registry import (
    Rule,
    get,
    load_all,
    model_check,
    run_model_checks,
    run_snapshot_checks,
    snapshot_check,
)

__all__ = ["Rule", "get", "load_all", "model_check", "run_model_checks", "run_snapshot_checks", "snapshot_check"]
