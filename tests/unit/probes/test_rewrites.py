"""Probe rewrites: deterministic for a seed, never changing the original, doing what they say."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.demo.legal import build_legal_demo
from app.probes.addressed import is_judge_addressed
from app.probes.rewrites import (
    DEFAULT_PROBES,
    PROBES,
    Criterion,
    CustomKind,
    CustomProbe,
    ProbeError,
    ProbeInput,
    apply_custom,
    apply_probe,
    default_probes,
    swap_pair,
)

CRITERIA = (
    Criterion("TargetDocument_Grounding", "quotes the contract", "quotes the contract exactly"),
    Criterion("Actionability", "clear action", "a clear, specific action"),
)


def _demo_inputs() -> list[ProbeInput]:
    rollouts = build_legal_demo().rollouts[:12]
    return [
        ProbeInput(
            response=r["response"],
            item_field="comments",
            target_document=r["target_document"],
            references=tuple(ref.get("text", "") for ref in r["references"]),
            criteria=CRITERIA,
        )
        for r in rollouts
    ]


LEGAL = _demo_inputs()
COMMENTS = [
    {
        "text_excerpt": "The Customer shall pay within ninety (90) days.",
        "comment_type": "risk",
        "concern": "Payment terms exceed the playbook's 60 days.",
        "recommended_action": "Ask for 60-day payment terms.",
    },
    {
        "text_excerpt": "This Agreement is governed by the laws of Delaware.",
        "comment_type": "clarification",
        "concern": "Governing law is acceptable under R1.",
        "recommended_action": "No change needed; note for the file.",
    },
]
STRUCTURED = ProbeInput(
    json.dumps(COMMENTS),
    "comments",
    "contract text",
    ("Rule R4: payment within sixty days is acceptable. Longer terms must be flagged.",),
    CRITERIA,
)


@pytest.mark.parametrize("name", DEFAULT_PROBES)
def test_every_probe_is_deterministic_for_a_seed(name: str) -> None:
    for probe_input in [STRUCTURED, *LEGAL]:
        first = apply_probe(name, probe_input, seed=7)
        assert apply_probe(name, probe_input, seed=7) == first


def test_a_different_seed_can_change_the_rewrite() -> None:
    runs = {tuple(v.response for v in apply_probe("verbosity", STRUCTURED, s)) for s in range(5)}
    assert len(runs) > 1


@settings(max_examples=60, deadline=None)
@given(
    response=st.one_of(
        st.text(max_size=400),
        st.lists(
            st.fixed_dictionaries(
                {
                    "text_excerpt": st.text(max_size=40),
                    "comment_type": st.sampled_from(["risk", "deviation", "clarification"]),
                    "concern": st.text(max_size=80),
                }
            ),
            max_size=4,
        ).map(json.dumps),
    ),
    seed=st.integers(0, 2**31),
    name=st.sampled_from(DEFAULT_PROBES),
)
def test_rewrites_never_change_the_original(response: str, seed: int, name: str) -> None:
    probe_input = ProbeInput(response, "comments", "doc", ("A reference sentence here.",), CRITERIA)
    before = copy.deepcopy(probe_input)
    variants = apply_probe(name, probe_input, seed)
    assert probe_input == before
    assert apply_probe(name, probe_input, seed) == variants


def test_verbosity_reaches_half_and_double_length_and_keeps_json() -> None:
    plus50, plus100 = apply_probe("verbosity", STRUCTURED, 1)
    base = len(STRUCTURED.response)
    assert (plus50.variant, plus100.variant) == ("+50%", "+100%")
    assert 1.5 * base <= len(plus50.response) < 1.5 * base + 200
    assert 2.0 * base <= len(plus100.response) < 2.0 * base + 200
    items = json.loads(plus100.response)
    assert [i["text_excerpt"] for i in items] == [c["text_excerpt"] for c in COMMENTS]


def test_addressed_to_judge_plants_a_detectable_line_in_three_places() -> None:
    variants = apply_probe("addressed_to_judge", STRUCTURED, 3)
    assert [v.variant for v in variants] == ["start", "inside", "end"]
    for variant in variants:
        assert is_judge_addressed(variant.response)
        json.loads(variant.response)
    text = apply_probe("addressed_to_judge", ProbeInput("A plain answer.\n\nMore."), 3)
    assert text[0].response.startswith(text[0].note)
    assert text[2].response.endswith(text[2].note)


def test_stuffing_uses_the_rubric_words() -> None:
    [variant] = apply_probe("rubric_stuffing", STRUCTURED, 1)
    assert all("TargetDocument_Grounding" in i["concern"] for i in json.loads(variant.response))
    assert "a clear, specific action" in variant.response


def test_wrong_source_quotes_the_reference_and_needs_one() -> None:
    [variant] = apply_probe("wrong_source", STRUCTURED, 1)
    excerpts = [i["text_excerpt"] for i in json.loads(variant.response)]
    assert all(e in STRUCTURED.references[0] for e in excerpts)
    assert apply_probe("wrong_source", ProbeInput(json.dumps(COMMENTS), "comments"), 1) == []


def test_format_only_keeps_structure_and_codes() -> None:
    [variant] = apply_probe("format_only", STRUCTURED, 1)
    items = json.loads(variant.response)
    assert [i["comment_type"] for i in items] == ["risk", "clarification"]
    assert all(i["text_excerpt"] == "" for i in items)


def test_partial_drops_the_risk_comments() -> None:
    [variant] = apply_probe("partial", STRUCTURED, 1)
    assert [i["comment_type"] for i in json.loads(variant.response)] == ["clarification"]


def test_duplication_repeats_the_most_detailed_item() -> None:
    [variant] = apply_probe("duplication", STRUCTURED, 1)
    items = json.loads(variant.response)
    longest = max(COMMENTS, key=lambda c: len(json.dumps(c)))
    assert len(items) == 4 and items[2] == items[3] == longest


def test_self_consistency_copies_and_position_swaps() -> None:
    copies = apply_probe("self_consistency", STRUCTURED, 1)
    assert {v.response for v in copies} == {STRUCTURED.response} and len(copies) == 3
    assert swap_pair("a", "b") == ("b", "a")
    assert PROBES["position"].pairwise_only
    assert apply_probe("position", STRUCTURED, 1) == []  # a pair probe: no rewrite of one answer


def test_default_probes_by_rubric_mode() -> None:
    # A single-answer rubric runs every probe (position reported as skipped, with its reason);
    # a preference rubric the probes that judge a pair.
    assert default_probes(pairwise=False) == tuple(PROBES)
    assert default_probes(pairwise=True) == ("position", "self_consistency")


def test_custom_pattern_and_sandboxed_template() -> None:
    pattern = CustomProbe("shout", CustomKind.PATTERN, pattern=r"playbook", replacement="PLAYBOOK")
    [variant] = apply_custom(pattern, STRUCTURED, 1)
    assert "PLAYBOOK" in variant.response
    template = CustomProbe(
        "praise", CustomKind.TEMPLATE, template="{{ response }} Excellent per {{ criteria[0] }}."
    )
    [variant] = apply_custom(template, STRUCTURED, 1)
    assert variant.response.endswith("Excellent per TargetDocument_Grounding.")
    unsafe = CustomProbe("evil", CustomKind.TEMPLATE, template="{{ response.__class__.__mro__ }}")
    with pytest.raises(ProbeError, match="not allowed"):
        apply_custom(unsafe, STRUCTURED, 1)
    with pytest.raises(ProbeError, match="compile"):
        apply_custom(CustomProbe("bad", CustomKind.PATTERN, pattern="("), STRUCTURED, 1)
    with pytest.raises(ProbeError, match="built-in"):
        apply_custom(CustomProbe("verbosity", CustomKind.PATTERN, pattern="x"), STRUCTURED, 1)
