"""Which A/C/D/S/F rule a library message is a symptom of: the one table to update when codes move.

Catalog entries name a *concept* (``"missing-tensor"``); this table maps it to the rule code that
``check``, ``lint`` and ``inspect`` report for the same problem. A code listed here that no module
declares yet is still shown (with the concept as its name), so the catalog never blocks on it.
"""

from __future__ import annotations

RELATED: dict[str, str] = {
    # A: the file and the code disagree about the architecture
    "missing-tensor": "A101",
    "unexpected-tensor": "A102",
    "shape-mismatch": "A103",
    "layer-count-mismatch": "A104",
    "key-prefix": "A105",
    "renamed-layer": "A106",
    "silent-partial-load": "A107",
    "optimizer-state": "A108",
    "unbuilt-model": "A109",
    # C: custom objects and serialisability
    "unregistered-custom-class": "C101",
    "main-module-class": "C102",
    "get-config-missing": "C103",
    "lambda-layer": "C104",
    "unpicklable-object": "C105",
    "incompatible-config": "C106",
    # D: dtypes and storage
    "dtype-cast": "D101",
    "shared-storage": "D102",
    "non-contiguous": "D103",
    "mixed-precision": "D104",
    "unsaved-state": "D105",
    "device-location": "D106",
    # S: code the file would execute
    "pickle-global": "S101",
    "code-execution": "S102",
    # F: the file itself (declared in rules/file_format.py)
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
