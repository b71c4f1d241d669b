"""The message catalog as data: every entry matches its own verbatim texts (old and new wordings), the
variable parts are extracted, framing/ANSI/wrapping do not matter, and unrelated warnings match nothing.

TensorFlow, transformers, peft and accelerate are not installed here, so their entries are tested
against the verbatim texts of ``/work/shared/reference`` (copied into each entry's ``examples``).
"""

from __future__ import annotations

import re
import string
import textwrap
from pathlib import Path

import pytest

from ckptdoctor.catalog import CATALOG, RULES
from ckptdoctor.catalog.docs import render
from ckptdoctor.catalog.explaining import explain
from ckptdoctor.catalog.related import RELATED, resolve
from ckptdoctor.diagnostics import Severity
from ckptdoctor.rules.registry import get

LOGS = Path(__file__).parent / "data" / "logs"
EXAMPLES = [(e.code, i, text) for e in CATALOG for i, text in enumerate(e.examples)]


def test_catalog_size_and_identity() -> None:
    assert len(CATALOG) >= 50
    codes = [e.code for e in CATALOG]
    names = [e.name for e in CATALOG]
    assert len(set(codes)) == len(codes)
    assert len(set(names)) == len(names)
    for e in CATALOG:
        assert re.fullmatch(r"W\d{3}", e.code)
        assert e.patterns and e.examples and e.meaning and e.cause and e.fix and e.harmless and e.versions
        resolve(e.related)  # every related concept is in the one table (raises on a typo)


def test_every_entry_is_a_rule_with_generated_documentation() -> None:
    for e in CATALOG:
        rule = get(e.code)
        assert rule is RULES[e.code]
        assert rule.name == e.name
        doc = rule.documentation()
        for section in ("## What it means", "## Is it harmless?", "## Why it happens", "## Example", "## Fix"):
            assert section in doc, (e.code, section)
        assert e.library in doc
        # every template is a valid format string (a stray brace would show the raw template)
        for template in (e.meaning, e.cause, e.fix, e.harmless, e.framework, e.subject):
            list(string.Formatter().parse(template))
            if "{" in template:
                assert render(template, placeholders=True) != template.strip() or "{{" not in template


@pytest.mark.parametrize(("code", "index", "text"), EXAMPLES, ids=[f"{c}-{i}" for c, i, _ in EXAMPLES])
def test_each_verbatim_text_is_identified_as_its_entry(code: str, index: int, text: str) -> None:
    result = explain(text)
    assert result.codes[:1] == [code], result.codes
    # the message itself, and not a neighbouring entry, explains it
    assert result.codes.count(code) == 1


def _vars(text: str, code: str) -> dict:
    result = explain(text)
    found = [f for f in result if f.code == code]
    assert found, result.codes
    return found[0].variables


def test_variable_parts_are_extracted_from_verbatim_texts() -> None:
    by = {e.code: e for e in CATALOG}
    v = _vars(by["W101"].examples[0], "W101")
    assert v["total"] == "5" and v["untraced_layers"] == "lstm_cell"
    v = _vars(by["W105"].examples[0], "W105")
    assert (v["optimizer"], v["live_count"], v["saved_count"]) == ("adam_1", "2", "14")
    assert "never built" in v["optimizer_story"]
    v = _vars(by["W107"].examples[0], "W107")
    assert (v["expected_shape"], v["found_shape"]) == ("(64, 256)", "(64, 512)")
    assert "LSTM(units=128)" in v["shape_story"] and "LSTM(units=64)" in v["shape_story"]
    assert v["failed_objects"] == ["LSTMCell lstm_cell", "Dense dense_2"]
    v = _vars(by["W107"].examples[1], "W107")
    assert (v["layer"], v["received_vars"]) == ("gru_cell", "0")
    v = _vars(by["W110"].examples[0], "W110")
    assert (v["index"], v["layer"], v["variable"]) == ("1", "lstm_4", "sequential_4/lstm_4/lstm_cell/kernel")
    v = _vars(by["W114"].examples[1], "W114")
    assert v["class_name"] == "Policy" and "mixed-precision" in v["class_note"]
    v = _vars(by["W205"].examples[1], "W205")
    assert v["global"] == "numpy.core.multiarray._reconstruct"
    assert "numpy._core.multiarray._reconstruct" in v["allow_call"]
    assert "'numpy.core.multiarray._reconstruct')" in v["allow_call"]
    v = _vars(by["W205"].examples[0], "W205")
    assert v["global"] == "__main__.Net" and "__main__" in v["global_note"]
    v = _vars(by["W404"].examples[0], "W404")
    assert v["model_class"] == "BertForSequenceClassification" and v["source"] == "bert-base-uncased"
    assert v["missing_rows"] == ["classifier.weight", "classifier.bias"]
    assert v["unexpected_rows"] == ["cls.predictions.bias", "cls.seq_relationship.weight"]
    v = _vars(by["W402"].examples[0], "W402")
    assert v["name_list"] == ["classifier.bias", "classifier.weight"]
    v = _vars(by["W408"].examples[0], "W408")
    assert (v["attribute"], v["value"], v["flag"]) == ("temperature", "0.9", "do_sample")
    v = _vars(by["W501"].examples[1], "W501")
    assert "resized" in v["reason"]
    v = _vars(by["W206"].examples[0], "W206")
    assert v["operand"] == "72" and "HDF5" in v["operand_meaning"]


def test_torch_key_lists_and_prefix_inference() -> None:
    text = ('RuntimeError: Error(s) in loading state_dict for Chat:\n\tMissing key(s) in state_dict: "a.weight", '
            '"b.bias". \n\tUnexpected key(s) in state_dict: "module.a.weight", "module.b.bias". ')
    result = explain(text)
    assert result.codes == ["W201"]  # the Unexpected line is part of the same message
    v = result[0].variables
    assert v["model_class"] == "Chat"
    assert v["missing_keys"] == ["a.weight", "b.bias"]
    assert "'module.'" in v["prefix_story"] and "DataParallel" in v["prefix_story"]
    renamed = explain('Missing key(s) in state_dict: "head.weight", "head.bias". Unexpected key(s) in state_dict: '
                      '"fc.weight", "fc.bias". ')[0].variables
    assert "'fc' in the file is 'head'" in renamed["prefix_story"]


def _ansi(text: str) -> str:
    return "\x1b[33m" + text.replace(" ", " \x1b[0m", 3) + "\x1b[0m"


@pytest.mark.parametrize("code", ["W101", "W102", "W107", "W110", "W201", "W203", "W205", "W301", "W402", "W404"])
def test_tolerant_to_framing_ansi_wrapping_and_reprs(code: str) -> None:
    text = next(e for e in CATALOG if e.code == code).examples[0]
    variants = {
        "absl": "WARNING:absl:" + text,
        "tensorflow": "WARNING:tensorflow:" + text,
        "userwarning": "/x/y.py:12: UserWarning: " + text + "\n  warnings.warn(\n",
        "traceback": "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n" + text,
        "ansi": _ansi(text),
        "soft-wrapped": "\n".join(textwrap.wrap(text, 70)),
        "hard-wrapped": "\n".join(text[i : i + 80] for i in range(0, len(text), 80)),
        "repr": repr(text)[1:-1],
        "indented": textwrap.indent(text, "    | "),
    }
    expected = explain(text)[0].variables
    for name, variant in variants.items():
        result = explain(variant)
        assert code in result.codes, (name, result.codes)
        got = next(f for f in result if f.code == code).variables
        for key in ("expected_shape", "found_shape", "global", "total", "model_class", "layer"):
            if key in expected and name not in ("hard-wrapped", "indented"):
                assert got.get(key) == expected[key], (name, key)


def test_no_false_matches_on_unrelated_warnings() -> None:
    result = explain((LOGS / "unrelated.log").read_text())
    assert result.codes == []
    assert len(result.unknown) >= 10  # shown as "not in catalog"
    assert all(u.line > 0 for u in result.unknown)


LOG_EXPECTATIONS = {
    "keras_chatbot.log": {"W107": 1, "W102": 3, "W101": 1, "W104": 1},
    "torch_train.log": {"W201": 1, "W205": 1, "W204": 1, "W211": 2},
    "hf_v4.log": {"W408": 1, "W401": 1, "W402": 1, "W406": 1, "W501": 1},
    "hf_v5.log": {"W405": 1, "W408": 1, "W407": 1, "W404": 1},
}


@pytest.mark.parametrize("name", sorted(LOG_EXPECTATIONS))
def test_realistic_logs(name: str) -> None:
    result = explain((LOGS / name).read_text())
    assert {f.code: f.count for f in result} == LOG_EXPECTATIONS[name]
    # errors first, then warnings, then info
    severities = [int(f.severity) for f in result]
    assert severities == sorted(severities, reverse=True)
    assert result[0].severity == Severity.ERROR
    # every warning line of these logs is explained, except TensorRT's unrelated one
    assert [u.text for u in result.unknown if "TF-TRT" not in u.text] == []


def test_log_variables() -> None:
    keras = {f.code: f for f in explain((LOGS / "keras_chatbot.log").read_text())}
    assert keras["W107"].variables["variable"] == "sequential_1/lstm_1/lstm_cell/kernel"
    assert "LSTM(units=128)" in keras["W107"].variables["shape_story"]
    text = (LOGS / "keras_chatbot.log").read_text()
    assert keras["W102"].lines == [n for n, line in enumerate(text.split("\n"), 1) if "as an HDF5 file" in line]
    torch_log = {f.code: f for f in explain((LOGS / "torch_train.log").read_text())}
    assert torch_log["W201"].variables["model_class"] == "ChatbotModel"
    assert torch_log["W201"].variables["missing_count"] == 7
    assert torch_log["W205"].variables["global"] == "numpy.core.multiarray._reconstruct"  # hard-wrapped
    hf5 = {f.code: f for f in explain((LOGS / "hf_v5.log").read_text())}
    assert hf5["W404"].variables["mismatch_rows"] == ["model.embed_tokens.weight"]
    assert hf5["W408"].variables["attribute"] == "top_p"


def test_severity_follows_framing() -> None:
    text = next(e for e in CATALOG if e.code == "W107").examples[0].removeprefix("ValueError: ")
    assert explain("ValueError: " + text)[0].severity == Severity.ERROR
    assert explain("/k/saving_lib.py:710: UserWarning: " + text)[0].severity == Severity.WARNING


def test_unknown_message_gets_closest_entries() -> None:
    result = explain("Skipping variable loading for optimizer because the counts differ somehow")
    assert result.codes == []
    assert result.unknown[0].text.startswith("Skipping variable loading")
    assert result.unknown[0].closest[0][0].code == "W105"


def test_related_table_names_declared_rules() -> None:
    from ckptdoctor.rules import load_all

    rules = load_all()
    for concept, code in RELATED.items():
        assert re.fullmatch(r"[ACDSF]\d{3}", code), concept
        assert code in rules, f"{concept} -> {code}: no such rule"
