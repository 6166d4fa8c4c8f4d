"""What crosses the API boundary for rollouts and their imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.rollouts.models import Rollout, RolloutImport, RolloutImportProblem


class ImportProblemPublic(BaseModel):
    line: int | None = Field(description="line (or CSV row) of the file; null for the whole file")
    field: str | None
    kind: str = Field(
        description="invalid (a bad line), conflict (id reused), duplicate (repeats a line) or file"
    )
    message: str

    @classmethod
    def of(cls, problem: RolloutImportProblem) -> ImportProblemPublic:
        return cls(
            line=problem.line, field=problem.field, kind=problem.kind, message=problem.message
        )


class ImportPublic(BaseModel):
    """An import job. Poll it until `finished` is true."""

    id: int
    project_id: int
    filename: str
    format: str
    status: str = Field(
        description="awaiting_mapping, queued, validating, importing, done, rejected, failed "
        "or cancelled"
    )
    finished: bool
    skip_invalid: bool
    size_bytes: int
    bytes_read: int
    lines_read: int
    progress: float = Field(description="0..1 over both phases (checking, then importing)")
    inserted: int
    duplicates: int = Field(description="already imported before, or repeating a line")
    repeats: int = Field(description="of the duplicates, lines repeating a line of this file")
    conflicts: int
    invalid: int = Field(description="lines with at least one problem")
    problem_count: int
    pairs: int
    message: str
    csv_header: list[str] | None = None
    csv_mapping: dict[str, str] | None = None
    problems: list[ImportProblemPublic] = Field(
        description="the first problems; the complete list is at problems_url"
    )
    problems_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rubric_version_id: int | None = Field(
        default=None, description="label and verdict imports: the rubric version they go under"
    )
    run_ids: list[int] | None = Field(
        default=None, description="verdict imports, once done: the external runs created"
    )

    @classmethod
    def of(
        cls, job: RolloutImport, problems: list[RolloutImportProblem], progress: float
    ) -> ImportPublic:
        return cls(
            id=job.id or 0,
            project_id=job.project_id,
            filename=job.filename,
            format=job.format,
            status=job.status,
            finished=job.finished_at is not None,
            skip_invalid=job.skip_invalid,
            size_bytes=job.size_bytes,
            bytes_read=job.bytes_read,
            lines_read=job.lines_read,
            progress=round(progress, 4),
            inserted=job.inserted,
            duplicates=job.duplicates,
            repeats=job.repeats,
            conflicts=job.conflicts,
            invalid=job.invalid,
            problem_count=job.problem_count,
            pairs=job.pairs,
            message=job.message,
            csv_header=job.options.get("csv_header"),
            csv_mapping=job.options.get("csv_mapping"),
            problems=[ImportProblemPublic.of(p) for p in problems],
            problems_url=f"/api/v1/projects/{job.project_id}/imports/{job.id}/problems",
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            rubric_version_id=job.options.get("rubric_version_id"),
            run_ids=job.options.get("run_ids"),
        )


class RolloutSummaryPublic(BaseModel):
    id: int
    external_id: str
    model: str | None
    checkpoint: str | None
    step: int | None
    group: str | None
    response_preview: str = Field(description="the first 280 characters of the response")
    response_chars: int
    created_at: datetime


class RolloutPagePublic(BaseModel):
    items: list[RolloutSummaryPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")
    total: int = Field(description="rollouts matching the filters, counted up to 10,000")
    total_capped: bool = Field(description="true when more than 10,000 match")
    total_estimate: int | None = Field(
        default=None,
        description="past 10,000: about how many match (the database's estimate, two "
        "significant figures; PostgreSQL only), else null",
    )
    ranked: bool = Field(default=False, description="true when the items are best match first")


class PairPartnerPublic(BaseModel):
    position: str = Field(description="the partner's side of the pair: A or B")
    rollout_id: int
    external_id: str


class RolloutPublic(BaseModel):
    """A whole rollout. Its text is untrusted model output: render it as text."""

    id: int
    project_id: int
    external_id: str
    content_hash: str
    input: list[dict[str, Any]]
    target_document: str | None
    references: list[dict[str, Any]]
    reference_answer: Any | None
    response: str
    model: str | None
    checkpoint: str | None
    step: int | None
    group: str | None
    metadata: dict[str, Any]
    source_file: str | None
    source_line: int | None
    import_id: int | None
    created_at: datetime
    pair_partners: list[PairPartnerPublic]

    @classmethod
    def of(cls, rollout: Rollout, partners: list[tuple[str, Rollout]]) -> RolloutPublic:
        return cls(
            id=rollout.id or 0,
            project_id=rollout.project_id,
            external_id=rollout.external_id,
            content_hash=rollout.content_hash,
            input=rollout.input_messages,
            target_document=rollout.target_document,
            references=rollout.reference_documents,
            reference_answer=rollout.reference_answer,
            response=rollout.response,
            model=rollout.model,
            checkpoint=rollout.checkpoint,
            step=rollout.step,
            group=rollout.group_key,
            metadata=rollout.metadata_,
            source_file=rollout.source_file,
            source_line=rollout.source_line,
            import_id=rollout.import_id,
            created_at=rollout.created_at,
            pair_partners=[
                PairPartnerPublic(
                    position=pos, rollout_id=other.id or 0, external_id=other.external_id
                )
                for pos, other in partners
            ],
        )


class GroupPublic(BaseModel):
    group: str
    rollouts: int
    step_min: int | None
    step_max: int | None
    checkpoints: int


class GroupPagePublic(BaseModel):
    items: list[GroupPublic]
    next_cursor: str | None
