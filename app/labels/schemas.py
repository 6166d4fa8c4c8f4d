"""What crosses the API boundary for labeling: queues, items to label, labels, imports, gold items,
disagreements and their resolutions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.ids import BigId, Id, Int32

LabelValue = bool | int | str


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueCreate(_Input):
    """A queue of rollouts (or pairs, for a preference rubric) for some experts."""

    name: str = Field(min_length=1, max_length=200)
    rubric_version_id: Id
    assignee_ids: list[Id] = Field(min_length=1, max_length=500)
    overlap: int = Field(default=1, ge=1, le=500, description="experts per item")
    source: Literal["filter", "run", "gold"] = "filter"
    run_id: Id | None = Field(default=None, description="with source=run")
    gold_split: Literal["development", "test"] | None = Field(
        default=None, description="with source=gold; both splits when empty"
    )
    model: str | None = Field(default=None, max_length=200)
    group: str | None = Field(default=None, max_length=200)
    search: str | None = Field(default=None, max_length=200, description="external id contains")
    step_min: Int32 | None = None
    step_max: Int32 | None = None
    sample_size: int | None = Field(default=None, ge=1, le=50_000)
    seed: int | None = Field(default=None, description="recorded; random when empty")


class QueueClose(_Input):
    closed: bool = Field(default=True, description="false: reopen the queue")


class QueuePublic(BaseModel):
    id: int
    name: str
    kind: str
    rubric_version_id: int
    overlap: int
    selection: dict[str, Any]
    closed: bool
    created_at: datetime
    items: int
    complete: int = Field(description="items with `overlap` submitted labels")
    mine_submitted: int
    mine_open: int = Field(description="items still offered to the caller")
    assignees: list[str]


class LabelBody(_Input):
    """An expert's answer. Scale values are levels, pass/fail values true/false (or the words
    pass/fail). A draft may be partial; a submission needs every criterion."""

    values: dict[str, LabelValue] = Field(default_factory=dict)
    critiques: dict[str, str] = Field(default_factory=dict)
    overall_critique: str = Field(default="", max_length=20_000)
    preference: Literal["A", "B", "tie"] | None = Field(
        default=None, description="preference rubrics: A = rollout, B = rollout_b"
    )
    revision: Int32 | None = Field(
        default=None,
        description="the label revision this answer is based on; a label changed since then "
        "is not overwritten (409)",
    )
    reason: str = Field(default="", max_length=2000, description="why a submitted label changes")
    deserved: Literal["yes", "no", "unsure"] | None = Field(
        default=None, description="audit queues: did the sample deserve its training reward?"
    )


class LabelPublic(BaseModel):
    id: int
    subject_key: str
    rollout_id: int
    pair_id: int | None
    rubric_version_id: int
    queue_id: int | None
    annotator: str
    values: dict[str, Any]
    critiques: dict[str, str]
    overall_critique: str
    preference: str | None
    deserved: str | None = None
    shown_order: str
    status: Literal["draft", "submitted"] | str
    source: str
    revision: int
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None


class RolloutForLabeling(BaseModel):
    id: int
    external_id: str
    input_messages: list[dict[str, Any]]
    target_document: str | None
    reference_documents: list[dict[str, Any]]
    response: str


class CriterionVerdictPublic(BaseModel):
    value: bool | float | None
    justification: list[str]
    evidence: list[str]


class VerdictPublic(BaseModel):
    run_id: int
    judge: str
    ok: bool
    criteria: dict[str, CriterionVerdictPublic]
    aggregate: float | None
    winner: str | None
    justification: str


class RevealPublic(BaseModel):
    verdicts: list[VerdictPublic]
    labels: list[LabelPublic]


class ItemPublic(BaseModel):
    """One item to label. `revealed` stays empty until the caller has submitted (blind)."""

    id: int
    queue_id: int
    position: int
    subject_key: str
    rollout: RolloutForLabeling
    rollout_b: RolloutForLabeling | None
    label: LabelPublic | None
    can_label: bool
    revealed: RevealPublic | None


class SubmitPublic(BaseModel):
    label: LabelPublic
    outcome: Literal["created", "submitted", "updated", "unchanged"]
    next_item_id: int | None


class ImportBody(_Input):
    rubric_version_id: Id
    format: Literal["jsonl", "csv"]
    content: str = Field(max_length=20 * 1024 * 1024)
    skip_invalid: bool = Field(
        default=False, description="store the valid lines; by default one problem stores nothing"
    )


class ImportProblem(BaseModel):
    line: int
    field: str
    message: str


class ImportResultPublic(BaseModel):
    created: int
    updated: int
    unchanged: int
    skipped: int
    problems: list[ImportProblem]


class GoldCreate(_Input):
    rollout_ids: list[BigId] = Field(min_length=1, max_length=10_000)
    split: Literal["development", "test"]
    expectation: Literal["", "good", "bad"] = ""
    note: str = Field(default="", max_length=2000)


class GoldUpdate(_Input):
    split: Literal["development", "test"]


class GoldPublic(BaseModel):
    id: int
    rollout_id: int
    external_id: str
    split: str
    locked: bool = Field(description="test items are locked: never examples, never moved back")
    expectation: str
    note: str
    labels: int
    added_at: datetime


class DisagreementPublic(BaseModel):
    rollout_id: int
    external_id: str
    label_id: int
    label_revision: int
    annotator: str
    criterion: str
    human: Any
    judge: Any
    critique: str
    justification: list[str]
    evidence: list[str]
    resolution: str | None
    note: str
    disagrees_now: bool


class DisagreementReportPublic(BaseModel):
    run_id: int
    counts: dict[str, int]
    hidden: int = Field(description="items left out until the caller has labelled them")
    tolerance: float
    aggregate_tolerance: float
    items: list[DisagreementPublic] = Field(description="this page's disagreements")
    next_cursor: str | None = Field(
        default=None,
        description="pass as `cursor` for the next page (rollouts after this one); null at the end",
    )


class ResolveBody(_Input):
    label_id: BigId
    criterion: str = Field(max_length=80, description="criterion key, _aggregate or _winner")
    resolution: Literal["judge_wrong", "label_wrong", "ambiguous"]
    note: str = Field(default="", max_length=5000)
    corrected_value: LabelValue | None = Field(
        default=None, description="with label_wrong: the label's new value (history kept)"
    )
    revision: Int32 | None = Field(default=None, description="the label revision you saw")


class ResolutionPublic(BaseModel):
    id: int
    run_id: int
    label_id: int
    rollout_id: int
    criterion: str
    resolution: str
    note: str
    resolved_at: datetime
