"""The rubric definition: the judge design stored (as JSON) in every rubric draft and version.

Pure pydantic models with validators whose messages name the offending field, plus a stable
content hash used to identify versions and frozen exports.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

KEY_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"

CriterionType = Literal["boolean", "scale"]
Mode = Literal["rubric", "preference"]


class RubricMode(StrEnum):
    """rubric: criteria scored for one response; preference: which of two responses is better."""

    rubric = "rubric"
    preference = "preference"


Aggregation = Literal["weighted_mean", "all_must_pass", "minimum", "per_item_mean"]
Identifier = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
PREFERENCE_CHOICES = ("A", "B", "tie")

# Keys the judge answer itself uses at top level; an item list may not shadow them.
RESERVED_ITEM_FIELDS = frozenset({"criteria", "aggregate_score", "winner", "justification"})


class _Model(BaseModel):
    # Unknown keys are almost always typos in hand-edited rubric files: reject them loudly.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Level(_Model):
    """One point of an ordinal scale and what a response at that point looks like."""

    value: int
    description: str


class Criterion(_Model):
    """One observable thing the judge checks, scored pass/fail or on an ordinal scale."""

    key: Identifier
    name: str
    description: str = ""
    type: CriterionType = "boolean"
    levels: list[Level] = Field(default_factory=list)
    weight: float = Field(default=1.0, gt=0)
    # Failing a hard-fail criterion caps the whole score at the bottom of the scale.
    hard_fail: bool = False

    @model_validator(mode="after")
    def _check_levels(self) -> Criterion:
        if not self.name.strip():
            raise ValueError(f"criterion '{self.key}': name must not be empty")
        if self.type == "boolean":
            if self.levels:
                raise ValueError(
                    f"criterion '{self.key}': a boolean criterion has no levels "
                    "(remove them or make it a scale)"
                )
            return self
        if len(self.levels) < 2:
            raise ValueError(
                f"criterion '{self.key}': a scale criterion needs at least 2 levels, "
                f"got {len(self.levels)}"
            )
        values = [level.value for level in self.levels]
        expected = list(range(values[0], values[0] + len(values)))
        if values != expected:
            raise ValueError(
                f"criterion '{self.key}': scale levels must be contiguous ascending integers "
                f"(e.g. {expected}), got {values}"
            )
        for level in self.levels:
            if not level.description.strip():
                raise ValueError(f"criterion '{self.key}': level {level.value} needs a description")
        return self

    @property
    def min_value(self) -> int:
        """Lowest score: 0 (fail) for a boolean criterion, the first level for a scale."""
        return self.levels[0].value if self.type == "scale" else 0

    @property
    def max_value(self) -> int:
        """Highest score: 1 (pass) for a boolean criterion, the last level for a scale."""
        return self.levels[-1].value if self.type == "scale" else 1


LabelValue = bool | int | float | str


class FewShotExample(_Model):
    """A worked example shown to the judge: a response, its expected label and a critique.

    In preference mode `response` is response A and `response_b` is response B, and the label
    holds "winner" (and optionally a per-criterion winner) as "A", "B" or "tie".
    """

    rollout_id: int | None = None
    input_excerpt: str = ""
    response: str
    response_b: str = ""
    label: dict[str, LabelValue] = Field(default_factory=dict)
    critique: str = ""


class RubricDefinition(_Model):
    """A complete judge design. Empty templates mean "generate from the structure"
    (see `app.rubrics.prompt_defaults.default_templates`)."""

    mode: Mode = "rubric"
    title: str
    task_description: str = ""
    # Evaluation order is list order: the judge is told to score them in this sequence.
    criteria: list[Criterion] = Field(default_factory=list)
    edge_case_rules: list[str] = Field(default_factory=list)
    desired_behaviours: list[str] = Field(default_factory=list)
    discouraged_behaviours: list[str] = Field(default_factory=list)
    aggregation: Aggregation = "weighted_mean"
    item_field: Identifier | None = None
    preference_instruction: str = ""
    system_template: str = ""
    user_template: str = ""
    examples: list[FewShotExample] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_consistency(self) -> RubricDefinition:
        if not self.title.strip():
            raise ValueError("title: must not be empty")
        seen: dict[str, int] = {}
        for index, criterion in enumerate(self.criteria):
            if criterion.key in seen:
                raise ValueError(
                    f"criteria[{index}].key: duplicate criterion key '{criterion.key}' "
                    f"(already used by criteria[{seen[criterion.key]}])"
                )
            seen[criterion.key] = index
        if self.mode == RubricMode.rubric:
            self._check_rubric_mode()
        else:
            self._check_preference_mode()
        for index, example in enumerate(self.examples):
            self._check_example(index, example)
        return self

    def _check_rubric_mode(self) -> None:
        if not self.criteria:
            raise ValueError("criteria: a rubric needs at least one criterion")
        if self.aggregation == "per_item_mean":
            if not self.item_field:
                raise ValueError(
                    "item_field: per_item_mean aggregation needs the name of the list of "
                    "items in the judge's answer (e.g. 'comments')"
                )
            if self.item_field in RESERVED_ITEM_FIELDS:
                raise ValueError(
                    f"item_field: '{self.item_field}' is reserved in the judge's answer; "
                    "choose another name"
                )
        elif self.item_field is not None:
            raise ValueError(
                "item_field: only used with per_item_mean aggregation "
                f"(aggregation is {self.aggregation}); leave it empty"
            )

    def _check_preference_mode(self) -> None:
        if not self.preference_instruction.strip():
            raise ValueError(
                "preference_instruction: preference mode needs an instruction saying which "
                "response to favour"
            )
        if self.aggregation == "per_item_mean" or self.item_field is not None:
            raise ValueError(
                "aggregation: preference mode compares two whole responses; per_item_mean "
                "and item_field do not apply"
            )

    def _check_example(self, index: int, example: FewShotExample) -> None:
        where = f"examples[{index}].label"
        by_key = {criterion.key: criterion for criterion in self.criteria}
        for key, value in example.label.items():
            if self.mode == RubricMode.preference:
                if key != "winner" and key not in by_key:
                    raise ValueError(
                        f"{where}: unknown key '{key}' (use 'winner' or a criterion key)"
                    )
                if value not in PREFERENCE_CHOICES:
                    raise ValueError(f"{where}.{key}: must be 'A', 'B' or 'tie', got {value!r}")
                continue
            criterion = by_key.get(key)
            if criterion is None:
                raise ValueError(f"{where}: unknown criterion key '{key}'")
            if criterion.type == "boolean":
                if not isinstance(value, bool):
                    raise ValueError(f"{where}.{key}: must be true or false, got {value!r}")
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not criterion.min_value <= value <= criterion.max_value
            ):
                raise ValueError(
                    f"{where}.{key}: must be a number from {criterion.min_value} to "
                    f"{criterion.max_value}, got {value!r}"
                )

    def criterion(self, key: str) -> Criterion:
        """The criterion with this key (KeyError if absent)."""
        for criterion in self.criteria:
            if criterion.key == key:
                return criterion
        raise KeyError(key)


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(defn: RubricDefinition) -> str:
    """sha256 (hex) of the definition's canonical JSON: equal content, equal hash."""
    data = defn.model_dump(mode="json")
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
