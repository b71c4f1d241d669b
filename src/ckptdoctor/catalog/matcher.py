"""Finding catalog messages in arbitrary text: one message, a pasted traceback, or a whole training log.

The text is normalised twice, each time keeping a map back to the original offsets:

* **spaced**: ANSI escapes (real ones and pasted ``\\x1b[1m`` / ``\\033[0m`` spellings) removed, literal
  ``\\n``/``\\t`` from pasted reprs treated as whitespace, and every whitespace run collapsed to one
  space. Soft-wrapped lines, indentation and ``\\n\\t`` framing disappear.
* **joined**: the same, but a line break inside a word is removed instead of becoming a space, for
  logs hard-wrapped at a fixed width. Matches found only this way are added.

Every entry's patterns are searched in both; overlapping matches of one entry count once, and a
match lying inside a longer match of another entry is dropped (the outer message already explains
it, e.g. the shape error quoted inside "A total of 2 objects could not be loaded").
"""

from __future__ import annotations

import bisect
import re
from array import array
from dataclasses import dataclass
from typing import Any

from ckptdoctor.catalog.model import Entry, compile_pattern
from ckptdoctor.diagnostics import Severity

_ANSI = re.compile(r"(?:\x1b|\\x1b|\\033|\\u001b|\\e)\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|[\x00-\x08\x0b\x0e-\x1f\x7f]")
_LITERAL_WS = re.compile(r"\\[nt]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass
class Normalised:
    text: str
    offsets: array  # offsets[i] = index in the original text of text[i]

    def origin(self, i: int) -> int:
        if not self.offsets:
            return 0
        return self.offsets[min(i, len(self.offsets) - 1)]


def normalise(original: str, *, joined: bool = False) -> Normalised:
    # 1. mark what to drop: ANSI escapes; literal \n and \t count as whitespace
    drop = bytearray(len(original))
    for m in _ANSI.finditer(original):
        for i in range(m.start(), m.end()):
            drop[i] = 1
    as_space = bytearray(len(original))
    for m in _LITERAL_WS.finditer(original):
        as_space[m.start()] = as_space[m.start() + 1] = 1
    out: list[str] = []
    offs = array("l")
    pending_space = -1  # original offset of the first whitespace of the current run
    pending_break = False
    prev_word = False
    for i, ch in enumerate(original):
        if drop[i]:
            continue
        if as_space[i] or ch.isspace():
            if pending_space < 0:
                pending_space = i
            if ch in "\r\n" or (as_space[i] and original[i : i + 2] == "\\n"):
                pending_break = True
            continue
        if pending_space >= 0:
            # joined mode: a bare line break between two word characters is a hard wrap, not a space
            hard_wrap = (joined and pending_break and prev_word and (ch.isalnum() or ch == "_")
                         and _only_break(original, pending_space, i))
            if out and not hard_wrap:
                out.append(" ")
                offs.append(pending_space)
            pending_space = -1
            pending_break = False
        out.append(ch)
        offs.append(i)
        prev_word = ch.isalnum() or ch == "_"
    return Normalised("".join(out), offs)


def _only_break(text: str, start: int, end: int) -> bool:
    """The whitespace run is just a line break (no spaces or indentation around it)."""
    run = text[start:end]
    return run in ("\n", "\r\n", "\r")


@dataclass
class RawMatch:
    entry: Entry
    start: int  # original offsets
    end: int
    variables: dict[str, Any]
    excerpt: str
    head: int = -1  # original offset of a heading found by a context pattern (part of the message)

    @property
    def first(self) -> int:
        return self.head if 0 <= self.head < self.start else self.start


_COMPILED: dict[str, list[re.Pattern[str]]] = {}
_CONTEXT: dict[str, list[re.Pattern[str]]] = {}
_DETAILS: dict[str, list[re.Pattern[str]]] = {}
DETAIL_WINDOW = 6000  # normalised characters after a match searched for its later parts


def patterns_of(entry: Entry) -> list[re.Pattern[str]]:
    pats = _COMPILED.get(entry.code)
    if pats is None:
        pats = [compile_pattern(p) for p in entry.patterns]
        _COMPILED[entry.code] = pats
        _CONTEXT[entry.code] = [compile_pattern(p) for p in entry.context]
        _DETAILS[entry.code] = [compile_pattern(p) for p in entry.details]
    return pats


def _scan(norm: Normalised, entries: list[Entry]) -> list[RawMatch]:
    found: list[RawMatch] = []
    text = norm.text
    for entry in entries:
        for pat in patterns_of(entry):
            for m in pat.finditer(text):
                if m.end() == m.start():
                    continue
                variables = {k: _clean(v) for k, v in m.groupdict().items() if v is not None}
                start = m.start()
                for ctx in _CONTEXT[entry.code]:
                    base = max(0, m.start() - 600)
                    hits = list(ctx.finditer(text, base, m.start()))
                    if hits:
                        variables.update({k: _clean(v) for k, v in hits[-1].groupdict().items()
                                          if v is not None and k not in variables})
                        start = min(start, hits[-1].start())  # the heading is part of this message
                end = m.end()
                if _DETAILS[entry.code]:
                    limit = min(len(text), m.end() + DETAIL_WINDOW)
                    nxt = pat.search(text, m.end(), limit)
                    if nxt is not None:
                        limit = nxt.start()
                    for det in _DETAILS[entry.code]:
                        hit = det.search(text, m.end(), limit)
                        if hit is not None:
                            variables.update({k: _clean(v) for k, v in hit.groupdict().items()
                                              if v is not None and k not in variables})
                            end = max(end, hit.end())
                found.append(RawMatch(entry, norm.origin(m.start()), norm.origin(end - 1) + 1,
                                      variables, text[m.start():end], head=norm.origin(start)))
    return found


def _clean(value: str) -> str:
    return value.strip().strip(",;").strip()


def find(original: str, entries: list[Entry]) -> list[RawMatch]:
    """Every catalog message in ``original``, with spans in original offsets, outer messages kept."""
    spaced_norm = normalise(original)
    spaced = _scan(spaced_norm, entries)
    joined_norm = normalise(original, joined=True)
    extra: list[RawMatch] = []
    if joined_norm.text != spaced_norm.text:
        for m in _scan(joined_norm, entries):
            if not any(_overlaps(m, s) and s.entry.code == m.entry.code for s in spaced):
                extra.append(m)
    matches = spaced + extra
    # one entry, overlapping spans (two wordings both matching): keep the longest
    matches.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[RawMatch] = []
    for m in matches:
        if any(k.entry.code == m.entry.code and _overlaps(k, m) for k in kept):
            continue
        kept.append(m)
    # a match strictly inside a longer match of another entry is part of that message
    result = [
        m for m in kept
        if not any(o is not m and o.entry.code != m.entry.code and o.start <= m.start and m.end <= o.end
                   and (o.end - o.start) > (m.end - m.start) for o in kept)
    ]
    return result


def _overlaps(a: RawMatch, b: RawMatch) -> bool:
    return a.start < b.end and b.start < a.end


_WARNING_FRAME = re.compile(r"(?:Warning|WARNING|warning)\b[^\n]{0,60}$|\bW\d{4} [^\n]*\]\s*$|^\s*W\d{4}\b")
_ERROR_FRAME = re.compile(r"(?:Error|Exception|error|ERROR)\b[^\n]{0,60}$")


def framing(original: str, start: int) -> str:
    """How the message was printed, from the text just before it on the same line: warning or error."""
    line_start = original.rfind("\n", 0, start) + 1
    before = _ANSI.sub("", original[max(line_start, start - 200) : start])
    if _WARNING_FRAME.search(before):
        return "warning"
    if _ERROR_FRAME.search(before):
        return "error"
    return ""


def severity_for(entry: Entry, frame: str) -> Severity:
    if frame == "warning" and entry.as_warning is not None:
        return entry.as_warning
    return entry.severity


class LineIndex:
    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)


# --- lines that look like a warning or an error but match no entry --------------------------------

_MESSAGE_LINE = re.compile(
    r"(?:\b\w*(?:Warning|Error|Exception)\b:|\bWARNING\b|\bERROR\b|\bwarnings?\.warn|^\s*[WE]\d{4} )"
)
_NOISE_LINE = re.compile(r"^\s*(?:File \"|Traceback \(most recent call last\)|\^+\s*$|warnings\.warn\()")


def unknown_lines(original: str, spans: list[tuple[int, int]], limit: int = 20) -> list[tuple[int, str]]:
    """(line number, text) of warning- or error-like lines outside every matched span, de-duplicated."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    pos = 0
    for lineno, line in enumerate(original.splitlines(keepends=True), start=1):
        start, end = pos, pos + len(line)
        pos = end
        clean = _ANSI.sub("", line).strip()
        if not clean or not _MESSAGE_LINE.search(clean) or _NOISE_LINE.search(clean):
            continue
        if any(s < end and start < e for s, e in spans):
            continue
        key = re.sub(r"\d+", "#", clean)
        if key in seen:
            continue
        seen.add(key)
        out.append((lineno, clean))
        if len(out) >= limit:
            break
    return out


# --- the closest entries for a message the catalog does not know ---------------------------------

_STOP = set(["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for", "from", "has", "have", "if", "in", "into", "is", "it", "its", "not", "of", "on", "or", "so", "that", "the", "then", "this", "to", "was", "were", "will", "with", "you", "your", "which", "when", "while", "than", "these", "those", "warning", "error", "userwarning", "futurewarning", "valueerror", "runtimeerror", "typeerror"])


def _tokens(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z_][a-z0-9_]{2,}", text.lower()) if t not in _STOP}


def closest(message: str, entries: list[Entry], n: int = 3) -> list[tuple[Entry, float]]:
    """Entries sharing the most words with ``message`` (token overlap, then difflib as tie-break)."""
    import difflib

    words = _tokens(message)
    if not words:
        return []
    scored: list[tuple[float, float, Entry]] = []
    for entry in entries:
        ref = " ".join((entry.summary, *entry.examples))
        common = words & _tokens(ref)
        if not common:
            continue
        score = len(common) / len(words)
        ratio = difflib.SequenceMatcher(None, message[:300].lower(), entry.examples[0][:300].lower()).ratio()
        scored.append((score, ratio, entry))
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [(e, round(s, 2)) for s, _, e in scored[:n]]
