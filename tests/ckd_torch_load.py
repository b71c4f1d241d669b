"""What the REAL ``load_state_dict`` does (strict and not), and the assertion that ``check``'s prediction
matches it: shared by the torch and Hugging Face ``check`` tests."""

from __future__ import annotations


def actual_load_state_dict(model, sd: dict, strict: bool) -> tuple[str, object]:
    """What torch really does: ("error", message) / ("silent", (missing, unexpected)) / ("ok", None)."""
    try:
        res = model.load_state_dict(dict(sd), strict=strict)
    except RuntimeError as exc:
        return "error", str(exc)
    if res.missing_keys or res.unexpected_keys:
        return "silent", (sorted(res.missing_keys), sorted(res.unexpected_keys))
    return "ok", None


def assert_state_dict_predictions(report, model, sd: dict) -> None:
    """``report``'s load_state_dict predictions (strict=True and False) against the real call on ``model``."""
    for strict in (True, False):
        pred = report.prediction(f"load_state_dict(sd, strict={strict})")
        outcome, info = actual_load_state_dict(model, sd, strict)
        assert pred.outcome == outcome, (strict, pred.outcome, outcome, info)
        if outcome == "error":
            # same sections of the RuntimeError, and the same key lists inside them
            assert pred.message.splitlines()[0] == info.splitlines()[0]
            assert sorted(pred.message.splitlines()[1:]) == sorted(info.splitlines()[1:])
        if outcome == "silent":
            assert (sorted(pred.details["missing_keys"]), sorted(pred.details["unexpected_keys"])) == info
