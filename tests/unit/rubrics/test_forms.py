"""The editor form <-> draft conversion and the readable problems of a draft."""

from __future__ import annotations

from typing import Any

import pytest

from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition
from app.rubrics.forms import check_draft, derive_key, draft_from_form, editor_state


def form_for(defn: RubricDefinition) -> dict[str, str]:
    """What the editor page posts for a definition (as the browser sends it: CRLF lines)."""
    state = editor_state(defn.model_dump(mode="json"), defn.mode)
    fields = {
        "title": state.title,
        "task_description": state.task_description,
        "preference_instruction": state.preference_instruction,
        "system_template": state.system_template.replace("\n", "\r\n"),
        "user_template": state.user_template.replace("\n", "\r\n"),
        "edge_case_rules": state.edge_case_rules.replace("\n", "\r\n"),
        "desired_behaviours": state.desired_behaviours,
        "discouraged_behaviours": state.discouraged_behaviours,
        "aggregation": state.aggregation,
        "item_field": state.item_field,
    }
    for i, c in enumerate(state.criteria):
        fields |= {
            f"c-{i}-key": c.key,
            f"c-{i}-name": c.name,
            f"c-{i}-description": c.description,
            f"c-{i}-type": c.type,
            f"c-{i}-weight": str(c.weight),
        }
        if c.hard_fail:
            fields[f"c-{i}-hard_fail"] = "on"
        for j, level in enumerate(c.levels):
            fields[f"c-{i}-l-{j}-value"] = str(level.value)
            fields[f"c-{i}-l-{j}-description"] = level.description
    return fields


@pytest.mark.parametrize(
    "name", ["legal_contract_review", "generic_pass_fail", "pairwise_preference"]
)
def test_posting_the_editor_form_unchanged_gives_back_the_same_definition(name: str) -> None:
    defn = get_builtin(name)
    draft = draft_from_form(form_for(defn), defn.mode)
    assert RubricDefinition.model_validate(draft) == defn.model_copy(update={"examples": []})


def test_criteria_follow_their_positions_not_the_field_order() -> None:
    form = {
        "title": "T",
        "c-1-name": "Second",
        "c-1-type": "boolean",
        "c-0-name": "First",
        "c-0-type": "scale",
        "c-0-l-1-value": "2",
        "c-0-l-1-description": "good",
        "c-0-l-0-value": "1",
        "c-0-l-0-description": "bad",
        "c-10-name": "Eleventh",
    }
    draft = draft_from_form(form, "rubric")
    assert [c["name"] for c in draft["criteria"]] == ["First", "Second", "Eleventh"]
    assert draft["criteria"][0]["levels"] == [
        {"value": 1, "description": "bad"},
        {"value": 2, "description": "good"},
    ]
    assert draft["criteria"][1]["hard_fail"] is False


def test_what_was_typed_is_kept_even_when_invalid() -> None:
    form = {
        "title": "T",
        "c-0-name": "Weighted",
        "c-0-weight": "heavy",
        "c-0-type": "scale",
        "c-0-l-0-value": "one",
        "c-0-l-0-description": "x",
        "aggregation": "minimum",
        "item_field": "comments",
    }
    draft = draft_from_form(form, "rubric")
    criterion = draft["criteria"][0]
    assert criterion["weight"] == "heavy" and criterion["levels"][0]["value"] == "one"
    assert draft["item_field"] is None  # only meaningful for per-item aggregation
    check = check_draft(draft)
    assert not check.ok and check.definition is None
    assert any(p.startswith("Criterion “Weighted” weight:") for p in check.problems)


def test_a_boolean_criterion_drops_levels_left_from_a_scale() -> None:
    form = {"title": "T", "c-0-name": "A", "c-0-type": "boolean", "c-0-l-0-value": "1"}
    assert draft_from_form(form, "rubric")["criteria"][0]["levels"] == []


def test_keys_are_derived_from_names_when_left_empty() -> None:
    form = {
        "title": "T",
        "c-0-name": "Grounded in the contract!",
        "c-1-name": "Grounded in the contract",
        "c-2-name": "2nd check",
        "c-3-key": "Explicit",
        "c-3-name": "Explicit",
    }
    keys = [c["key"] for c in draft_from_form(form, "rubric")["criteria"]]
    assert keys == [
        "Grounded_in_the_contract",
        "Grounded_in_the_contract_2",
        "C_2nd_check",
        "Explicit",
    ]
    assert derive_key("", set()) == "Criterion"


def test_lists_are_one_item_per_line_without_blanks() -> None:
    form = {"title": "T", "edge_case_rules": " If empty, score 0. \r\n\r\nIf prose, 1.\r\n"}
    assert draft_from_form(form, "rubric")["edge_case_rules"] == [
        "If empty, score 0.",
        "If prose, 1.",
    ]


def test_template_errors_are_checked_once_the_structure_is_valid() -> None:
    defn = get_builtin("generic_pass_fail")
    draft: dict[str, Any] = defn.model_dump(mode="json") | {
        "system_template": "ok\n{{ ''.__class__ }}"
    }
    check = check_draft(draft)
    assert check.definition is not None and not check.ok
    (error,) = check.template_errors
    assert (error.part, error.line) == ("system", 2)
    assert "not allowed in templates" in error.message
    assert check.all_messages() == [str(error)]


def test_editor_state_survives_odd_json() -> None:
    state = editor_state(
        {"criteria": [None, {"name": 3, "levels": "x", "type": "odd"}], "edge_case_rules": "no"},
        "rubric",
    )
    assert [c.name for c in state.criteria] == ["3"]
    assert state.criteria[0].type == "boolean" and state.criteria[0].levels == []
    assert state.edge_case_rules == "" and state.aggregation == "weighted_mean"
