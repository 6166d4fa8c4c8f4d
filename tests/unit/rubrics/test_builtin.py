"""Tests that the built-in rubric templates are valid, render, and match the reference case."""

import json
from pathlib import Path

import pytest

from app.rubrics.builtin import BUILTIN_DESCRIPTIONS, BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import RubricDefinition
from app.rubrics.output_schema import validate_answer
from app.rubrics.prompting import SAMPLE_CONTEXT, PromptContext, render_prompt, validate_templates
from app.rubrics.scoring import score_answer

PLAYBOOK = Path(__file__).resolve().parents[3].parent / "shared/data/contract-review/playbook.md"


def test_names_and_descriptions() -> None:
    expected = {"legal_contract_review", "generic_pass_fail", "pairwise_preference"}
    assert set(BUILTIN_TEMPLATES) == expected
    assert set(BUILTIN_DESCRIPTIONS) == expected
    assert all(text.strip() for text in BUILTIN_DESCRIPTIONS.values())


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtin_validates_renders_and_round_trips(name: str) -> None:
    defn = BUILTIN_TEMPLATES[name]
    assert RubricDefinition.model_validate(defn.model_dump(mode="json")) == defn
    assert validate_templates(defn) == []
    prompt = render_prompt(defn, SAMPLE_CONTEXT)
    assert prompt.system.strip() and prompt.user.strip()
    # Templates are stored explicitly so a published copy never changes with the code.
    assert defn.system_template and defn.user_template


def test_get_builtin_returns_an_independent_copy() -> None:
    copy = get_builtin("generic_pass_fail")
    copy.criteria.pop()
    assert len(BUILTIN_TEMPLATES["generic_pass_fail"].criteria) == 5


def test_legal_template_matches_the_reference_case() -> None:
    defn = get_builtin("legal_contract_review")
    assert [c.key for c in defn.criteria] == [
        "TargetDocument_Grounding",
        "Reference_Consistency",
        "Actionability",
    ]
    for criterion in defn.criteria:
        assert criterion.type == "scale"
        assert [level.value for level in criterion.levels] == [1, 2, 3, 4, 5]
        assert criterion.weight == 1.0 and not criterion.hard_fail  # plain mean of the three
    assert (defn.aggregation, defn.item_field) == ("per_item_mean", "comments")
    rules = " ".join(defn.edge_case_rules)
    assert "quotes the reference material" in rules and "TargetDocument_Grounding is 1" in rules
    assert "empty comments list" in rules


def test_legal_template_renders_a_demo_sample(legal_answer: dict) -> None:
    defn = get_builtin("legal_contract_review")
    playbook = PLAYBOOK.read_text() if PLAYBOOK.exists() else "R1 Governing law ..."
    response = json.dumps(
        [
            {
                "text_excerpt": "This Agreement shall be governed by the laws of Texas.",
                "rule": "R1",
                "comment_type": "risk",
                "concern": "Texas law is outside the accepted governing laws.",
                "recommended_action": "Propose Delaware law and courts.",
            }
        ]
    )
    ctx = PromptContext(
        input_messages=[{"role": "user", "content": "Review this contract."}],
        target_document="12. This Agreement shall be governed by the laws of Texas.",
        references=[{"title": "Playbook", "text": playbook}],
        response=response,
    )
    prompt = render_prompt(defn, ctx)
    assert "The response is a list of comments" in prompt.system
    assert prompt.system.index("TargetDocument_Grounding") < prompt.system.index("Actionability")
    assert "<target_document>\n12. This Agreement" in prompt.user
    assert response in prompt.user
    assert validate_answer(defn, legal_answer) == []
    assert score_answer(defn.model_dump(mode="json"), legal_answer)["aggregate"] == pytest.approx(
        (13 / 3 + 3) / 2
    )


def test_generic_pass_fail_has_a_hard_fail_safety_check() -> None:
    defn = get_builtin("generic_pass_fail")
    assert all(c.type == "boolean" for c in defn.criteria)
    assert [c.key for c in defn.criteria if c.hard_fail] == ["Safe"]


def test_pairwise_preference_instruction() -> None:
    defn = get_builtin("pairwise_preference")
    assert defn.mode == "preference"
    text = defn.preference_instruction
    assert "authoritative sources" in text and "accessible language" in text
    assert "directly address the question" in text
