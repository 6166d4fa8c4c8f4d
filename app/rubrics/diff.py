"""Compare two rubric definitions: settings, criteria and the judge prompt templates.

Template diffs come as side-by-side rows ready for a two-column view.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from app.rubrics.definition import Criterion, RubricDefinition
from app.rubrics.prompting import effective_templates

RowKind = Literal["equal", "changed", "added", "removed"]

# Top-level settings compared one by one; criteria and templates have their own sections.
_SETTINGS = (
    "mode",
    "title",
    "task_description",
    "aggregation",
    "item_field",
    "preference_instruction",
    "edge_case_rules",
    "desired_behaviours",
    "discouraged_behaviours",
    "examples",
)
_CRITERION_FIELDS = ("name", "description", "type", "weight", "hard_fail")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class FieldChange:
    """One field whose value differs; `field` may be nested, e.g. 'levels.3'."""

    field: str
    before: Any
    after: Any

    @property
    def before_text(self) -> str:
        return _as_text(self.before)

    @property
    def after_text(self) -> str:
        return _as_text(self.after)


@dataclass(frozen=True)
class CriterionChange:
    key: str
    changes: list[FieldChange]


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff; line numbers start at 1, None on the empty side."""

    left_no: int | None
    left_text: str
    right_no: int | None
    right_text: str
    kind: RowKind


@dataclass
class RubricDiff:
    settings_changed: list[FieldChange] = field(default_factory=list)
    criteria_added: list[Criterion] = field(default_factory=list)
    criteria_removed: list[Criterion] = field(default_factory=list)
    criteria_changed: list[CriterionChange] = field(default_factory=list)
    # True when criteria present in both come in a different evaluation order.
    order_changed: bool = False
    system_rows: list[DiffRow] = field(default_factory=list)
    user_rows: list[DiffRow] = field(default_factory=list)

    @property
    def templates_changed(self) -> bool:
        return any(row.kind != "equal" for row in self.system_rows + self.user_rows)

    @property
    def is_empty(self) -> bool:
        return not (
            self.settings_changed
            or self.criteria_added
            or self.criteria_removed
            or self.criteria_changed
            or self.order_changed
            or self.templates_changed
        )


def _criterion_changes(before: Criterion, after: Criterion) -> list[FieldChange]:
    changes = [
        FieldChange(name, getattr(before, name), getattr(after, name))
        for name in _CRITERION_FIELDS
        if getattr(before, name) != getattr(after, name)
    ]
    old_levels = {level.value: level.description for level in before.levels}
    new_levels = {level.value: level.description for level in after.levels}
    for value in sorted(old_levels.keys() | new_levels.keys()):
        if old_levels.get(value) != new_levels.get(value):
            changes.append(
                FieldChange(f"levels.{value}", old_levels.get(value), new_levels.get(value))
            )
    return changes


def side_by_side(left: str, right: str) -> list[DiffRow]:
    """Line-by-line side-by-side diff of two texts (difflib opcodes, replace = changed)."""
    left_lines = left.splitlines()
    right_lines = right.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=left_lines, b=right_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                DiffRow(i + 1, left_lines[i], j + 1, right_lines[j], "equal")
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        # A replaced block pairs its lines; the longer side's extra lines are added/removed.
        span = max(i2 - i1, j2 - j1)
        for offset in range(span):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            if has_left and has_right:
                rows.append(DiffRow(i + 1, left_lines[i], j + 1, right_lines[j], "changed"))
            elif has_left:
                rows.append(DiffRow(i + 1, left_lines[i], None, "", "removed"))
            else:
                rows.append(DiffRow(None, "", j + 1, right_lines[j], "added"))
    return rows


def diff_definitions(a: RubricDefinition, b: RubricDefinition) -> RubricDiff:
    """What changed from `a` (before) to `b` (after). Templates are compared as they render,
    i.e. an empty template counts as the default it stands for."""
    result = RubricDiff()
    a_data = a.model_dump(mode="json")
    b_data = b.model_dump(mode="json")
    result.settings_changed = [
        FieldChange(name, a_data[name], b_data[name])
        for name in _SETTINGS
        if a_data[name] != b_data[name]
    ]
    a_criteria = {c.key: c for c in a.criteria}
    b_criteria = {c.key: c for c in b.criteria}
    result.criteria_removed = [c for c in a.criteria if c.key not in b_criteria]
    result.criteria_added = [c for c in b.criteria if c.key not in a_criteria]
    for criterion in b.criteria:
        old = a_criteria.get(criterion.key)
        if old is not None:
            changes = _criterion_changes(old, criterion)
            if changes:
                result.criteria_changed.append(CriterionChange(criterion.key, changes))
    common_a = [c.key for c in a.criteria if c.key in b_criteria]
    common_b = [c.key for c in b.criteria if c.key in a_criteria]
    result.order_changed = common_a != common_b
    a_system, a_user = effective_templates(a)
    b_system, b_user = effective_templates(b)
    result.system_rows = side_by_side(a_system, b_system)
    result.user_rows = side_by_side(a_user, b_user)
    return result
