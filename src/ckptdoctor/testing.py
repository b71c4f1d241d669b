"""pytest helpers: ``assert_roundtrip(model)`` fails a test with the rendered roundtrip report.

    from ckptdoctor.testing import assert_roundtrip

    def test_model_survives_save():
        model = train_a_little(Net())
        assert_roundtrip(model)                       # torch.save(state_dict) -> fresh process
        assert_roundtrip(model, save_as="safetensors")
"""

from __future__ import annotations

from typing import Any


def assert_roundtrip(model: Any, *, fail_on: str = "error", **kwargs: Any) -> Any:
    """Run ``ckptdoctor.roundtrip(model, **kwargs)``; raise AssertionError with the report when a finding
    is at or above ``fail_on`` (error, warning or info). Returns the report otherwise."""
    from ckptdoctor.diagnostics import Severity
    from ckptdoctor.roundtripping import roundtrip

    report = roundtrip(model, **kwargs)
    threshold = Severity.parse(fail_on)
    if any(d.severity >= threshold for d in report.diagnostics):
        raise AssertionError("the model does not survive a save and a reload in a fresh process:\n"
                             + report.render())
    return report
