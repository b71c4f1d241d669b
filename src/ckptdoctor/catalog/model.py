"""The shape of one catalog entry (a known library message) and of one match of it in a text.

Entries are data: the patterns, texts and related codes are literals in ``entries_*.py``. The only code
attached to an entry is a list of named helpers in ``derive.py`` that compute extra variables (for
example "4 x 128 units" from an LSTM kernel shape) for the explanation templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ckptdoctor.diagnostics import Severity


@dataclass(frozen=True)
class Entry:
    code: str  # W101...: stable once released
    name: str  # kebab-case
    library: str  # keras | tf-keras | tensorflow | torch | safetensors | transformers | peft | accelerate
    versions: str  # which releases emit it, and with which wording
    severity: Severity  # as the library usually emits it (an exception is an error)
    summary: str  # one line
    patterns: tuple[str, ...]  # "loose" regexes (see compile_pattern): one per wording
    meaning: str  # templates: {variable} is replaced by what was extracted from the message
    harmless: str  # "yes", "no" or "for inference", then why
    cause: str
    fix: str  # text, code lines indented by 4 spaces
    related: tuple[str, ...]  # concept names, resolved to A/C/D/S/F codes in related.py
    examples: tuple[str, ...]  # verbatim messages (old and new wordings); tests match every one
    framework: str = ""  # what the library does when it prints this
    as_warning: Severity | None = None  # severity when the same text arrives as a warning
    context: tuple[str, ...] = ()  # loose regexes searched just before the match, for more variables
    details: tuple[str, ...] = ()  # loose regexes searched just after it (later lines of the same message)
    group_by: tuple[str, ...] | None = None  # variables that make two occurrences distinct (None: all)
    derive: tuple[str, ...] = ()  # helpers in derive.py, run in order
    subject: str = ""  # template for Diagnostic.subject
    expected: str = ""  # variable shown as "expected" (what the code/model has)
    found: str = ""  # variable shown as "found" (what the file has)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"W\d{3}", self.code):
            raise ValueError(f"catalog code {self.code!r} is not W + 3 digits")
        if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", self.name):
            raise ValueError(f"catalog name {self.name!r} is not kebab-case")


def compile_pattern(loose: str) -> re.Pattern[str]:
    """Turn a readable pattern into a tolerant regex.

    The text it runs on has every whitespace run collapsed to one space (or removed, for hard-wrapped
    logs), so a literal space in a pattern means "optional whitespace" and a backtick is optional
    (documentation and some versions drop them). Everything else is ordinary ``re`` syntax.
    """
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(loose):
        ch = loose[i]
        if ch == "\\" and i + 1 < len(loose):
            out.append(loose[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == " ":
            out.append(r"\s*")
        elif ch == "`":
            out.append("`?")
        else:
            out.append(ch)
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


@dataclass
class Finding:
    """One catalog entry found in a text (or in a watched event), with its variables and repeats."""

    entry: Entry
    variables: dict[str, Any]
    excerpt: str  # the matched text, normalised (ANSI removed, whitespace collapsed)
    count: int = 1  # how many times the same message (same distinguishing variables) appeared
    lines: list[int] = field(default_factory=list)  # 1-based line numbers in the input
    instances: list[dict[str, Any]] = field(default_factory=list)  # distinct variable sets merged here
    severity: Severity = Severity.INFO
    start: int = 0  # offset in the original text of the first occurrence

    @property
    def code(self) -> str:
        return self.entry.code

    @property
    def name(self) -> str:
        return self.entry.name
