"""Which A/C/D/S/F rule a library message is a symptom of: the one table to update when codes move.

Catalog entries name a *concept* (``"missing-tensor"``); this table maps it to the rule code that
``check``, ``lint`` and ``inspect`` report for the same problem. Every code here must be a declared
rule (tests/test_catalog.py checks it).
"""

from __future__ import annotations

RELATED: dict[str, str] = {
    # A: the file and the code disagree about the architecture (rules/architecture.py)
    "missing-tensor": "A101",
    "unexpected-tensor": "A102",
    "shape-mismatch": "A103",
    "key-prefix": "A104",
    "renamed-layer": "A105",
    "layer-count-mismatch": "A106",
    "silent-partial-load": "A107",
    "optimizer-state": "A108",
    # C: custom objects and serialisability (rules/custom_objects.py, rules/security.py)
    "unregistered-custom-class": "C101",
    "get-config-missing": "C103",
    "lambda-layer": "C104",
    "unbuilt-model": "C105",
    "main-module-class": "C201",
    "unpicklable-object": "C113",
    "incompatible-config": "F203",
    # D: dtypes and storage (rules/dtypes.py, rules/storage.py)
    "unsaved-state": "D101",
    "shared-storage": "D104",
    "non-contiguous": "D106",
    "device-location": "D110",
    "dtype-cast": "D201",
    "mixed-precision": "D301",
    # S: code the file would execute (rules/security.py)
    "code-execution": "S101",
    "pickle-global": "S103",
    # F: the file itself (rules/file_format.py)
    "truncated-file": "F103",
    "not-a-model-file": "F104",
    "git-lfs-pointer": "F105",
    "html-page": "F106",
    "corrupt-header": "F107",
}


def resolve(concepts: tuple[str, ...]) -> list[str]:
    """Concept names -> rule codes, in order, without duplicates. Unknown concepts raise (a typo)."""
    out: list[str] = []
    for concept in concepts:
        code = RELATED[concept]
        if code not in out:
            out.append(code)
    return out


def describe(code: str) -> str:
    """``"A101 missing-tensor"``: the declared rule's name when it exists, else the concept name."""
    from ckptdoctor.rules.registry import _RULES

    rule = _RULES.get(code)
    if rule is not None:
        return f"{code} {rule.name}"
    for concept, c in RELATED.items():
        if c == code:
            return f"{code} {concept}"
    return code
