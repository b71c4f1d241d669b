"""The registry names its rule modules instead of scanning the package: the lists must stay complete."""

from __future__ import annotations

from pathlib import Path

import ckptdoctor.rules as rules_pkg
from ckptdoctor.rules import registry


def test_rule_modules_are_every_module_of_the_rules_package() -> None:
    on_disk = {p.stem for p in Path(rules_pkg.__file__).parent.glob("*.py")} - {"__init__", "registry"}
    assert set(registry.RULE_MODULES) == on_disk


def test_snapshot_check_modules_are_exactly_those_declaring_snapshot_checks() -> None:
    registry.load_rules()
    declaring = {check.__module__.rsplit(".", 1)[-1] for check in registry._SNAPSHOT_CHECKS}
    assert declaring == set(registry.SNAPSHOT_CHECK_MODULES)


def test_every_rule_module_declares_a_rule() -> None:
    for name in registry.RULE_MODULES:
        module = __import__(f"ckptdoctor.rules.{name}", fromlist=["_"])
        assert any(isinstance(v, registry.Rule) for v in vars(module).values()), name
