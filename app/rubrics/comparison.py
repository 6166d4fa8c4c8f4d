"""Two rubric definitions side by side: structured changes, template source and the rendered
prompt on the built-in sample rollout. Pure (no database, no web)."""

from __future__ import annotations

from dataclasses import dataclass

from app.rubrics.definition import (
    RubricDefinition,
)
from app.rubrics.diff import DiffRow, RubricDiff, diff_definitions, side_by_side
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import (
    SAMPLE_CONTEXT,
    TemplateError,
    render_prompt,
)


@dataclass
class Comparison:
    """Two definitions side by side: structured changes, template source and rendered prompt."""

    diff: RubricDiff
    rendered_system_rows: list[DiffRow]
    rendered_user_rows: list[DiffRow]
    render_error: str | None = None
    schema_changed: bool = False

    @property
    def rendered_changed(self) -> bool:
        return any(r.kind != "equal" for r in self.rendered_system_rows + self.rendered_user_rows)


@dataclass(frozen=True)
class Gap:
    """A run of unchanged lines left out of a side-by-side view."""

    count: int
    kind: str = "gap"


def with_context(rows: list[DiffRow], context: int = 3) -> list[DiffRow | Gap]:
    """Changed rows with `context` unchanged rows around them; longer unchanged runs become
    a Gap, so a change in a long prompt is visible without scrolling."""
    keep = [False] * len(rows)
    for index, row in enumerate(rows):
        if row.kind != "equal":
            for near in range(max(0, index - context), min(len(rows), index + context + 1)):
                keep[near] = True
    result: list[DiffRow | Gap] = []
    skipped = 0
    for row, kept in zip(rows, keep, strict=True):
        if kept:
            if skipped:
                result.append(Gap(skipped))
                skipped = 0
            result.append(row)
        else:
            skipped += 1
    if skipped:
        result.append(Gap(skipped))
    return result


def compare_definitions(before: RubricDefinition, after: RubricDefinition) -> Comparison:
    diff = diff_definitions(before, after)
    # Criteria are rendered by loops, so a criterion edit shows as a changed prompt line only
    # in the rendered text: compare that too, on the built-in sample rollout.
    try:
        a, b = render_prompt(before, SAMPLE_CONTEXT), render_prompt(after, SAMPLE_CONTEXT)
    except TemplateError as exc:
        return Comparison(diff, [], [], render_error=str(exc))
    return Comparison(
        diff,
        side_by_side(a.system, b.system),
        side_by_side(a.user, b.user),
        schema_changed=build_output_schema(before) != build_output_schema(after),
    )
