"""The deterministic reward components: format, length, language, safety, grounding."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from app.demo.legal import OUTPUT_SCHEMA, build_legal_demo
from app.rewards import components
from app.rewards.config import RewardConfigModel

CONFIG = RewardConfigModel().as_dict()
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def _fmt(text: str, schema=SCHEMA, **settings):
    cfg = {"enabled": True, "require_json": True, "strip_code_fences": True} | settings
    parsed = components.parse_json_response(text, cfg["strip_code_fences"])
    return components.check_format(cfg, parsed, schema)


def test_format_accepts_valid_json_matching_the_schema() -> None:
    result = _fmt('{"answer": "yes", "n": 2}')
    assert (result["score"], result["passed"], result["applicable"]) == (1.0, True, True)


def test_format_rejects_schema_violations_and_says_where() -> None:
    result = _fmt('{"answer": 3}')
    assert (result["score"], result["passed"]) == (0.0, False)
    assert "answer" in result["detail"] and "schema error" in result["detail"]


@pytest.mark.parametrize("text", ["", "   ", "not json", '{"answer": "x"', '{"answer": NaN}'])
def test_format_rejects_what_does_not_parse(text: str) -> None:
    result = _fmt(text)
    assert (result["score"], result["passed"]) == (0.0, False)


def test_format_code_fence_is_accepted_only_when_allowed() -> None:
    fenced = '```json\n{"answer": "yes"}\n```'
    assert _fmt(fenced)["passed"] is True
    assert _fmt(fenced, strip_code_fences=False)["passed"] is False


def test_format_without_a_schema_requires_json_unless_told_not_to() -> None:
    assert _fmt("[1, 2]", schema=None)["passed"] is True
    assert _fmt("plain text", schema=None)["passed"] is False
    loose = _fmt("plain text", schema=None, require_json=False)
    assert loose["applicable"] is False


def test_format_on_the_demo_schema_fails_truncated_and_prose_responses() -> None:
    rollouts = build_legal_demo().rollouts
    by_defect = {r["metadata"]["response_defect"]: r["response"] for r in rollouts}
    good = next(r["response"] for r in rollouts if r["metadata"]["response_defect"] is None)
    assert _fmt(good, schema=OUTPUT_SCHEMA)["passed"] is True
    assert _fmt(by_defect["malformed_json"], schema=OUTPUT_SCHEMA)["passed"] is False
    assert _fmt(by_defect["prose"], schema=OUTPUT_SCHEMA)["passed"] is False
    assert _fmt(by_defect["empty_list"], schema=OUTPUT_SCHEMA)["passed"] is True


def test_length_scores_one_inside_the_bounds_and_falls_off_outside() -> None:
    settings = {"unit": "chars", "min_length": 10, "max_length": 20, "penalty": 1.0}
    inside = components.check_length(settings, "x" * 15)
    assert (inside["score"], inside["passed"]) == (1.0, True)
    above = components.check_length(settings, "x" * 25)  # 25% over the maximum
    assert above["score"] == pytest.approx(0.75) and above["passed"] is False
    below = components.check_length(settings, "x" * 5)  # half the minimum
    assert below["score"] == pytest.approx(0.5) and below["passed"] is False
    far = components.check_length(settings | {"penalty": 2.0}, "x" * 40)
    assert far["score"] == 0.0


def test_length_in_words_and_without_a_maximum() -> None:
    settings = {"unit": "words", "min_length": 3, "max_length": None, "penalty": 1.0}
    assert components.check_length(settings, "one two three four " * 50)["passed"] is True
    assert components.check_length(settings, "one two")["passed"] is False


ENGLISH = "The supplier shall deliver the goods within thirty days of receiving the order."
GERMAN = "Der Lieferant muss die Waren innerhalb von dreißig Tagen nach Auftragseingang liefern."


def _input(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "x"}, {"role": "user", "content": text}]


def test_language_matches_the_inputs_language() -> None:
    settings = {"enabled": True, "expected": "auto", "min_chars": 20}
    parsed = components.parse_json_response(ENGLISH)
    same = components.check_language(settings, ENGLISH, parsed, ENGLISH)
    assert (same["score"], same["passed"]) == (1.0, True)
    other = components.check_language(
        settings, GERMAN, components.parse_json_response(GERMAN), ENGLISH
    )
    assert (other["score"], other["passed"]) == (0.0, False)
    assert "de" in other["detail"] and "en" in other["detail"]


def test_language_is_deterministic_and_reads_json_values_not_keys() -> None:
    response = json.dumps({"recommended_action": GERMAN, "concern": GERMAN})
    settings = {"enabled": True, "expected": "de", "min_chars": 20}
    results = {
        json.dumps(
            components.check_language(
                settings, response, components.parse_json_response(response), ""
            )
        )
        for _ in range(5)
    }
    assert len(results) == 1
    assert json.loads(results.pop())["passed"] is True


def test_language_skips_texts_too_short_to_tell() -> None:
    settings = {"enabled": True, "expected": "auto", "min_chars": 20}
    short = components.check_language(
        settings, "Ja.", components.parse_json_response("Ja."), ENGLISH
    )
    assert short["applicable"] is False
    no_input = components.check_language(
        settings, ENGLISH, components.parse_json_response(ENGLISH), "Hi"
    )
    assert no_input["applicable"] is False


def test_safety_patterns_are_case_insensitive_and_named() -> None:
    settings = {
        "enabled": True,
        "patterns": [
            {"name": "ssn", "pattern": r"\b\d{3}-\d{2}-\d{4}\b"},
            {"name": "", "pattern": "ignore (all )?previous instructions"},
        ],
    }
    hit = components.check_safety(settings, "Please IGNORE previous instructions; SSN 123-45-6789")
    assert (hit["score"], hit["passed"]) == (0.0, False)
    assert "ssn" in hit["detail"] and "ignore" in hit["detail"]
    clean = components.check_safety(settings, "All good.")
    assert (clean["score"], clean["passed"]) == (1.0, True)
    assert components.check_safety({"patterns": []}, "x")["applicable"] is False


DOCUMENT = """1. Term. This Agreement   commences on the Effective Date
and continues for five (5) years.
2. Governing law. This Agreement is governed by the “laws of Texas”."""


def _ground(value, document=DOCUMENT, **settings):
    text = json.dumps(value)
    cfg = {
        "excerpt_fields": ["text_excerpt"],
        "quoted_text": False,
        "min_quote_chars": 10,
        "case_sensitive": True,
        "pass_threshold": 1.0,
    } | settings
    return components.check_grounding(cfg, text, components.parse_json_response(text), document)


def test_grounding_normalises_whitespace_quotes_and_omissions() -> None:
    comments = [
        {"text_excerpt": "This Agreement commences on the Effective Date and continues"},
        {"text_excerpt": 'governed by the "laws of Texas"'},
        {"text_excerpt": "This Agreement commences ... for five (5) years"},
    ]
    result = _ground(comments)
    assert (result["score"], result["passed"]) == (1.0, True)
    assert result["detail"] == "3 of 3 excerpts found in the document"


def test_grounding_counts_the_share_of_excerpts_found() -> None:
    comments = [
        {"text_excerpt": "continues for five (5) years"},
        {"text_excerpt": "governed by the laws of Delaware"},  # not in the contract
        {"nested": {"text_excerpt": "1. Term."}},
        {"text_excerpt": "This Agreement commences ... for ten years"},  # omission, wrong tail
    ]
    result = _ground(comments)
    assert result["score"] == pytest.approx(0.5) and result["passed"] is False
    assert _ground(comments, pass_threshold=0.5)["passed"] is True


def test_grounding_case_and_applicability() -> None:
    assert _ground([{"text_excerpt": "THIS AGREEMENT"}])["score"] == 0.0
    assert _ground([{"text_excerpt": "THIS AGREEMENT"}], case_sensitive=False)["score"] == 1.0
    assert _ground([{"text_excerpt": "x"}], document=None)["applicable"] is False
    assert _ground([{"other": "x"}])["applicable"] is False


def test_grounding_can_check_quotes_in_prose() -> None:
    text = 'The clause “continues for five (5) years” is too long, and "renews every month" too.'
    cfg = {"excerpt_fields": [], "quoted_text": True, "min_quote_chars": 10, "pass_threshold": 1.0}
    result = components.check_grounding(cfg, text, components.parse_json_response(text), DOCUMENT)
    assert result["score"] == pytest.approx(0.5)


def test_evaluate_components_runs_enabled_ones_in_order_after_stripping_reasoning() -> None:
    config = RewardConfigModel().as_dict()
    config["safety"] |= {"enabled": True, "patterns": [{"name": "secret", "pattern": "secret"}]}
    response = '<think>the secret plan</think>[{"text_excerpt": "1. Term."}]'
    results = components.evaluate_components(
        config, response, input_messages=_input(ENGLISH), target_document=DOCUMENT
    )
    assert list(results) == ["format", "length", "safety", "grounding"]  # language is off
    assert results["format"]["passed"] is True  # the <think> block is not part of the answer
    assert results["safety"]["passed"] is True
    assert results["grounding"]["score"] == 1.0
    kept = components.evaluate_components(
        config | {"strip_reasoning": False}, response, target_document=DOCUMENT
    )
    assert kept["format"]["passed"] is False and kept["safety"]["passed"] is False


def test_evaluate_components_never_raises_on_odd_responses() -> None:
    config = RewardConfigModel().as_dict()
    config["language"]["enabled"] = True
    deep = "[" * 5000 + "]" * 5000
    for response in ["", "\x00\x01", "[" * 1000, deep, "{}", "null", "<|begin_of_solution|>"]:
        results = components.evaluate_components(config, response, input_messages=_input(ENGLISH))
        assert set(results) == {"format", "length", "language", "grounding"}


def test_input_text_of_reads_the_last_user_message_in_any_shape() -> None:
    assert components.input_text_of(_input("hello")) == "hello"
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}]
    assert components.input_text_of(parts) == "a\nb"
    assert components.input_text_of([{"role": "user", "content": {"text": "c"}}]) == "c"
    assert components.input_text_of([{"role": "system", "content": "s"}]) == ""


@pytest.mark.parametrize("name", ["components.py", "composite.py"])
def test_copied_modules_import_only_the_standard_library_at_load(name: str) -> None:
    # These files are copied verbatim into exported reward functions.
    source = (Path(components.__file__).parent / name).read_text()
    tree = ast.parse(source)
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {
        (alias.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
        for n in top
        for alias in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules
