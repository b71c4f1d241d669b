"""Known warning and error messages of torch, keras, TensorFlow, transformers, safetensors, peft, numpy and
accelerate, as data. Each entry is a W rule that explains one message.

    >>> import ckptdoctor
    >>> result = ckptdoctor.explain(open("train.log").read())
    >>> for finding in result:
    ...     print(finding.code, finding.variables)

Importing this module declares one ``Rule`` per entry (``W101 keras-untraced-functions`` ...), whose
documentation is generated from the entry, so ``ckptdoctor explain W101`` prints it. Regexes are
compiled on first use, so the import stays cheap.
"""

from __future__ import annotations

from ckptdoctor.catalog import entries_hf, entries_keras, entries_numpy, entries_torch
from ckptdoctor.catalog.docs import documentation
from ckptdoctor.catalog.model import Entry, Finding
from ckptdoctor.rules.registry import Rule

CATALOG: list[Entry] = [*entries_keras.ENTRIES, *entries_torch.ENTRIES, *entries_hf.ENTRIES, *entries_numpy.ENTRIES]
BY_CODE: dict[str, Entry] = {e.code: e for e in CATALOG}

RULES: dict[str, Rule] = {
    e.code: Rule(e.code, e.name, e.severity, e.summary, documentation(e)) for e in CATALOG
}


def entry(code: str) -> Entry | None:
    return BY_CODE.get(code.strip().upper())


def __getattr__(name: str) -> object:
    # explain() pulls in the matcher; keep it out of the import that load_all() does
    if name in ("explain", "explain_event", "Explanation"):
        from ckptdoctor.catalog import explaining

        return getattr(explaining, name)
    raise AttributeError(name)


__all__ = ["BY_CODE", "CATALOG", "RULES", "Entry", "Explanation", "Finding", "entry", "explain", "explain_event"]
