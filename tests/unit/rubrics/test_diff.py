"""Tests for comparing two rubric definitions."""

from app.rubrics.builtin import get_builtin
from app.rubrics.definition import Criterion, Level
from app.rubrics.diff import DiffRow, FieldChange, diff_definitions, side_by_side
from app.rubrics.prompting import materialize_templates


def test_identical_definitions_have_an_empty_diff() -> None:
    a = get_builtin("legal_contract_review")
    result = diff_definitions(a, get_builtin("legal_contract_review"))
    assert result.is_empty
    assert not result.templates_changed
    assert all(row.kind == "equal" for row in result.system_rows)
    assert result.system_rows[0].left_no == 1


def test_criteria_added_removed_and_changed_per_field() -> None:
    a = get_builtin("legal_contract_review")
    b = a.model_copy(deep=True)
    b.criteria[0].description = "New wording."
    b.criteria[0].weight = 2.0
    b.criteria[0].levels[0] = Level(value=1, description="Quotes the playbook.")
    removed = b.criteria.pop(1)
    b.criteria.append(Criterion(key="Tone", name="Professional tone"))
    result = diff_definitions(a, b)
    assert [c.key for c in result.criteria_removed] == [removed.key]
    assert [c.key for c in result.criteria_added] == ["Tone"]
    [change] = result.criteria_changed
    assert change.key == "TargetDocument_Grounding"
    fields = {c.field: c for c in change.changes}
    assert set(fields) == {"description", "weight", "levels.1"}
    assert fields["weight"] == FieldChange("weight", 1.0, 2.0)
    assert fields["levels.1"].after == "Quotes the playbook."
    assert not result.order_changed
    assert not result.is_empty


def test_level_added_and_type_change() -> None:
    a = get_builtin("legal_contract_review")
    b = a.model_copy(deep=True)
    b.criteria[2].levels.append(Level(value=6, description="Beyond perfect."))
    [change] = diff_definitions(a, b).criteria_changed
    assert change.changes == [FieldChange("levels.6", None, "Beyond perfect.")]
    assert change.changes[0].before_text == ""


def test_order_change_is_detected() -> None:
    a = get_builtin("legal_contract_review")
    b = a.model_copy(deep=True)
    b.criteria.reverse()
    result = diff_definitions(a, b)
    assert result.order_changed
    assert result.criteria_changed == []


def test_settings_changes() -> None:
    a = get_builtin("generic_pass_fail")
    b = a.model_copy(deep=True)
    b.edge_case_rules.append("A new rule.")
    b.aggregation = "all_must_pass"
    changed = {c.field: c for c in diff_definitions(a, b).settings_changed}
    assert set(changed) == {"edge_case_rules", "aggregation"}
    assert changed["aggregation"].before == "weighted_mean"
    assert "A new rule." in changed["edge_case_rules"].after_text


def test_template_rows_side_by_side() -> None:
    rows = side_by_side("a\nb\nc\nd", "a\nB\nc\nd\ne")
    assert rows == [
        DiffRow(1, "a", 1, "a", "equal"),
        DiffRow(2, "b", 2, "B", "changed"),
        DiffRow(3, "c", 3, "c", "equal"),
        DiffRow(4, "d", 4, "d", "equal"),
        DiffRow(None, "", 5, "e", "added"),
    ]
    assert side_by_side("x\ny\nz", "x\nz") == [
        DiffRow(1, "x", 1, "x", "equal"),
        DiffRow(2, "y", None, "", "removed"),
        DiffRow(3, "z", 2, "z", "equal"),
    ]
    uneven = side_by_side("k\n1\n2\nk", "k\nA\nk")
    assert [row.kind for row in uneven] == ["equal", "changed", "removed", "equal"]


def test_template_diff_in_definitions() -> None:
    a = get_builtin("generic_pass_fail")
    b = a.model_copy(update={"user_template": a.user_template + "Extra line\n"})
    result = diff_definitions(a, b)
    assert result.templates_changed
    assert all(row.kind == "equal" for row in result.system_rows)
    assert result.user_rows[-1] == DiffRow(
        None, "", result.user_rows[-1].right_no, "Extra line", "added"
    )


def test_empty_template_compares_as_its_default() -> None:
    a = get_builtin("generic_pass_fail").model_copy(
        update={"system_template": "", "user_template": ""}
    )
    assert not diff_definitions(a, materialize_templates(a)).templates_changed
