"""JSON routes for labeling (/api/v1/projects/{project_id}/...): queues, drafts and submissions,
label import/export, gold items, and disagreement review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from sqlmodel import Session
from starlette.responses import Response

from app.auth.dependencies import (
    DisagreementResolver,
    GoldManager,
    LabelImporter,
    LabelWriter,
    ProjectReader,
    QueueManager,
    SessionDep,
)
from app.auth.models import User
from app.auth.policies import Permission
from app.core.ids import BigId, Id
from app.judging.deps import ProjectRun
from app.labels import annotation as label_annotation
from app.labels import exchange, gold, item_view, queues, resolutions, review
from app.labels.deps import ProjectQueue
from app.labels.models import AnnotationQueue, DisagreementResolution, GoldItem, Label
from app.labels.queues import QueueSelection
from app.labels.schemas import (
    CriterionVerdictPublic,
    DisagreementPublic,
    DisagreementReportPublic,
    GoldCreate,
    GoldPublic,
    GoldUpdate,
    ImportBody,
    ImportProblem,
    ImportResultPublic,
    ItemPublic,
    LabelBody,
    LabelPublic,
    QueueClose,
    QueueCreate,
    QueuePublic,
    ResolutionPublic,
    ResolveBody,
    RevealPublic,
    RolloutForLabeling,
    SubmitPublic,
    VerdictPublic,
)
from app.labels.service import LabelInput
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout
from app.rollouts.schemas import ImportPublic

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["labels"])


def _label(label: Label) -> LabelPublic:
    return LabelPublic(
        id=label.id or 0,
        subject_key=label.subject_key,
        rollout_id=label.rollout_id,
        pair_id=label.pair_id,
        rubric_version_id=label.rubric_version_id,
        queue_id=label.queue_id,
        annotator=label.annotator_name or label.annotator_key,
        values=dict(label.values or {}),
        critiques=dict(label.critiques or {}),
        overall_critique=label.overall_critique,
        preference=label.preference,
        deserved=label.deserved,
        shown_order=label.shown_order,
        status=label.status,
        source=label.source,
        revision=label.revision,
        created_at=label.created_at,
        updated_at=label.updated_at,
        submitted_at=label.submitted_at,
    )


def _queue(session: Session, queue: AnnotationQueue, user: User) -> QueuePublic:
    progress = queues.queue_progress(session, queue, user)
    return QueuePublic(
        id=queue.id or 0,
        name=queue.name,
        kind=queue.kind,
        rubric_version_id=queue.rubric_version_id,
        overlap=queue.overlap,
        selection=dict(queue.selection or {}),
        closed=queue.closed,
        created_at=queue.created_at,
        items=progress.items,
        complete=progress.complete,
        mine_submitted=progress.mine_submitted,
        mine_open=progress.mine_open,
        assignees=[u.email for u in queues.queue_assignees(session, queue)],
    )


def _rollout(rollout: Rollout) -> RolloutForLabeling:
    return RolloutForLabeling(
        id=rollout.id or 0,
        external_id=rollout.external_id,
        input_messages=list(rollout.input_messages or []),
        target_document=rollout.target_document,
        reference_documents=[r for r in rollout.reference_documents or [] if isinstance(r, dict)],
        response=rollout.response,
    )


def _item(view: item_view.ItemView) -> ItemPublic:
    # The API names the pair's own sides: rollout = A, rollout_b = B.
    first, second = view.left.rollout, view.right.rollout if view.right else None
    if view.right is not None and view.shown_order == "BA":
        first, second = view.right.rollout, view.left.rollout
    revealed = None
    if view.reveal is not None:
        revealed = RevealPublic(
            verdicts=[
                VerdictPublic(
                    run_id=v.run_id,
                    judge=v.judge_name,
                    ok=v.reading.ok,
                    criteria={
                        key: CriterionVerdictPublic(
                            value=c.value, justification=c.justification, evidence=c.evidence
                        )
                        for key, c in v.reading.criteria.items()
                    },
                    aggregate=v.reading.aggregate,
                    winner=v.reading.winner,
                    justification=v.reading.justification,
                )
                for v in view.reveal.verdicts
            ],
            labels=[_label(label) for label in view.reveal.other_labels],
        )
    return ItemPublic(
        id=view.item.id or 0,
        queue_id=view.queue.id or 0,
        position=view.item.position,
        subject_key=view.item.subject_key,
        rollout=_rollout(first),
        rollout_b=_rollout(second) if second is not None else None,
        label=_label(view.label) if view.label else None,
        can_label=view.can_label,
        revealed=revealed,
    )


def _input(body: LabelBody) -> LabelInput:
    return LabelInput(
        values=dict(body.values),
        critiques=dict(body.critiques),
        overall_critique=body.overall_critique,
        preference=body.preference,
        expected_revision=body.revision,
        reason=body.reason,
        deserved=body.deserved,
    )


# ---- queues -----------------------------------------------------------------------------------


@router.get("/queues", response_model=list[QueuePublic])
def list_queues(session: SessionDep, ctx: ProjectReader) -> list[QueuePublic]:
    """The project's annotation queues with the caller's progress."""
    rows = queues.list_queues(session, ctx.project_id, ctx.user)
    return [_queue(session, row.queue, ctx.user) for row in rows]


@router.post("/queues", response_model=QueuePublic, status_code=status.HTTP_201_CREATED)
def create_queue(body: QueueCreate, session: SessionDep, ctx: QueueManager) -> QueuePublic:
    """Create a queue from a filter, a random sample, a judge run's items or gold items."""
    queue = queues.create_queue(
        session,
        ctx.project,
        actor=ctx.user,
        name=body.name,
        rubric_version_id=body.rubric_version_id,
        assignee_ids=body.assignee_ids,
        overlap=body.overlap,
        selection=QueueSelection(
            source=body.source,
            run_id=body.run_id,
            gold_split=body.gold_split,
            model=body.model,
            group=body.group,
            search=body.search,
            step_min=body.step_min,
            step_max=body.step_max,
            sample_size=body.sample_size,
            seed=body.seed,
        ),
    )
    return _queue(session, queue, ctx.user)


@router.post("/queues/{queue_id}/close", response_model=QueuePublic)
def close_queue(
    queue_id: Id, body: QueueClose, session: SessionDep, ctx: QueueManager
) -> QueuePublic:
    """Close a queue (nothing more is offered) or, with `closed: false`, reopen it."""
    queue = queues.get_queue(session, ctx.project_id, queue_id)
    queues.set_queue_closed(session, queue, actor=ctx.user, closed=body.closed)
    return _queue(session, queue, ctx.user)


@router.get("/queues/{queue_id}", response_model=QueuePublic)
def get_queue(session: SessionDep, ctx: ProjectReader, queue: ProjectQueue) -> QueuePublic:
    return _queue(session, queue, ctx.user)


@router.get(
    "/queues/{queue_id}/next",
    response_model=ItemPublic,
    responses={204: {"description": "Nothing left for the caller in this queue."}},
)
def next_item(
    session: SessionDep, ctx: ProjectReader, queue: ProjectQueue
) -> ItemPublic | Response:
    """The next item offered to the caller (blind: no verdicts or other labels)."""
    item = label_annotation.next_item(session, queue, ctx.user)
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return _item(item_view.item_view(session, queue, item, ctx.user))


@router.get("/queues/{queue_id}/items/{item_id}", response_model=ItemPublic)
def get_item(
    item_id: BigId, session: SessionDep, ctx: ProjectReader, queue: ProjectQueue
) -> ItemPublic:
    """One item; the judge's verdicts and colleagues' labels only once the caller submitted."""
    item = queues.get_item(session, queue, item_id)
    return _item(item_view.item_view(session, queue, item, ctx.user))


@router.put("/queues/{queue_id}/items/{item_id}/draft", response_model=LabelPublic)
def save_draft(
    item_id: BigId, body: LabelBody, session: SessionDep, ctx: LabelWriter, queue: ProjectQueue
) -> LabelPublic:
    """Keep a partial answer. 409 when the label changed since `revision` or was submitted."""
    item = queues.get_item(session, queue, item_id)
    return _label(label_annotation.save_draft(session, queue, item, ctx.user, _input(body)))


@router.post("/queues/{queue_id}/items/{item_id}/submit", response_model=SubmitPublic)
def submit_label(
    item_id: BigId, body: LabelBody, session: SessionDep, ctx: LabelWriter, queue: ProjectQueue
) -> SubmitPublic:
    """Submit the caller's label. Sending the same label again stores nothing new
    (`outcome` = unchanged); a label changed since `revision` is refused with 409."""
    item = queues.get_item(session, queue, item_id)
    result = label_annotation.submit_label(session, queue, item, ctx.user, _input(body))
    return SubmitPublic(
        label=_label(result.label),
        outcome=result.outcome,
        next_item_id=result.next_item.id if result.next_item else None,
    )


# ---- labels: import and export ----------------------------------------------------------------


@router.post("/labels/import", response_model=ImportResultPublic)
def import_labels(body: ImportBody, session: SessionDep, ctx: LabelImporter) -> ImportResultPublic:
    """Import labels (JSONL or CSV text) under a rubric version, keeping annotator names.
    Problems come back with their line and field (422); with `skip_invalid` the valid lines
    are stored and the rest reported."""
    result = exchange.import_labels(
        session,
        ctx.project,
        actor=ctx.user,
        rubric_version_id=body.rubric_version_id,
        text=body.content,
        fmt=body.format,
        skip_invalid=body.skip_invalid,
    )
    return ImportResultPublic(
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        skipped=result.skipped,
        problems=[ImportProblem(**p) for p in result.problems],
    )


@router.get(
    "/labels/export",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
def export_labels(
    session: SessionDep,
    ctx: ProjectReader,
    format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl",
    rubric_version_id: Id | None = None,
) -> Response:
    """Every submitted label (of one rubric version, if given) as JSONL or CSV."""
    text = exchange.export_labels(
        session,
        ctx.project_id,
        fmt=format,  # type: ignore[arg-type]
        rubric_version_id=rubric_version_id,
        viewer=ctx.user,
    )
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return Response(text, media_type=f"{media}; charset=utf-8")


# ---- gold -------------------------------------------------------------------------------------


def _gold(session: Session, item: GoldItem) -> GoldPublic:
    rollout = session.get(Rollout, item.rollout_id)
    counts = gold.submitted_label_counts(session, item.project_id, [item.rollout_id])
    return GoldPublic(
        id=item.id or 0,
        rollout_id=item.rollout_id,
        external_id=rollout.external_id if rollout else "",
        split=item.split,
        locked=item.split == "test",
        expectation=item.expectation,
        note=item.note,
        labels=counts[item.rollout_id],
        added_at=item.added_at,
    )


@router.get("/gold", response_model=list[GoldPublic])
def list_gold(
    session: SessionDep,
    ctx: ProjectReader,
    split: Annotated[str | None, Query(pattern="^(development|test)$")] = None,
) -> list[GoldPublic]:
    rows = gold.list_gold(session, ctx.project_id, split)
    return [_gold(session, row.gold) for row in rows]


@router.post("/gold", response_model=list[GoldPublic], status_code=status.HTTP_201_CREATED)
def add_gold(body: GoldCreate, session: SessionDep, ctx: GoldManager) -> list[GoldPublic]:
    """Mark labeled rollouts as gold. Rollouts already gold are left unchanged."""
    added = gold.add_gold(
        session,
        ctx.project,
        actor=ctx.user,
        rollout_ids=body.rollout_ids,
        split=body.split,
        expectation=body.expectation,
        note=body.note,
    )
    return [_gold(session, item) for item in added]


@router.patch("/gold/{gold_id}", response_model=GoldPublic)
def update_gold(gold_id: Id, body: GoldUpdate, session: SessionDep, ctx: GoldManager) -> GoldPublic:
    """Move a development item to the test split (409 for a test item: it is locked)."""
    item = gold.set_gold_split(session, ctx.project, gold_id, actor=ctx.user, split=body.split)
    return _gold(session, item)


@router.delete("/gold/{gold_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_gold(gold_id: Id, session: SessionDep, ctx: GoldManager) -> Response:
    """Remove a development item (409 for a test item: it is locked)."""
    gold.remove_gold(session, ctx.project, gold_id, actor=ctx.user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- disagreements ----------------------------------------------------------------------------


@router.get("/runs/{run_id}/disagreements", response_model=DisagreementReportPublic)
def list_disagreements(
    run_id: Id,
    session: SessionDep,
    ctx: ProjectReader,
    tolerance: Annotated[float, Query(ge=0, le=100)] = review.DEFAULT_TOLERANCE,
    aggregate_tolerance: Annotated[float, Query(ge=0, le=1)] = review.DEFAULT_AGGREGATE_TOLERANCE,
    cursor: Annotated[
        str | None, Query(max_length=20, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=review.MAX_PAGE_SIZE, description="rollouts per page")
    ] = review.PAGE_SIZE,
) -> DisagreementReportPublic:
    """The (label, criterion) pairs where the run's judge and an expert disagree, a page of
    rollouts at a time (keyset: follow `next_cursor`), with counts over the whole run."""
    run = review.get_run(session, ctx.project_id, run_id)
    report = review.disagreements(
        session,
        run,
        viewer=ctx.user,
        tolerance=tolerance,
        aggregate_tolerance=aggregate_tolerance,
        cursor=cursor,
        page_size=limit,
    )
    return DisagreementReportPublic(
        run_id=run.id or 0,
        counts=report.counts,
        hidden=report.hidden,
        tolerance=report.tolerance,
        aggregate_tolerance=report.aggregate_tolerance,
        items=[
            DisagreementPublic(
                rollout_id=row.subject.rollout_id,
                external_id=row.external_id,
                label_id=row.label.id or 0,
                label_revision=row.label.revision,
                annotator=row.label.annotator_name or row.label.annotator_key,
                criterion=row.criterion_key,
                human=row.human,
                judge=row.judge,
                critique=row.critique,
                justification=row.justification,
                evidence=row.evidence,
                resolution=row.resolution.resolution if row.resolution else None,
                note=row.resolution.note if row.resolution else "",
                disagrees_now=row.disagrees_now,
            )
            for row in report.rows
        ],
        next_cursor=report.next_cursor,
    )


def _resolution(record: DisagreementResolution) -> ResolutionPublic:
    return ResolutionPublic(
        id=record.id or 0,
        run_id=record.run_id,
        label_id=record.label_id,
        rollout_id=record.rollout_id,
        criterion=record.criterion,
        resolution=record.resolution,
        note=record.note,
        resolved_at=record.resolved_at,
    )


@router.post("/runs/{run_id}/disagreements/resolve", response_model=ResolutionPublic)
def resolve_disagreement(
    body: ResolveBody, session: SessionDep, ctx: DisagreementResolver, run: ProjectRun
) -> ResolutionPublic:
    """Resolve as judge_wrong, label_wrong (with `corrected_value`: the label is edited, its
    history kept) or ambiguous. Resolving again replaces the earlier resolution."""
    record = resolutions.resolve(
        session,
        run,
        actor=ctx.user,
        may_edit_others=ctx.can(Permission.project_manage),
        label_id=body.label_id,
        criterion=body.criterion,
        resolution=body.resolution,
        note=body.note,
        corrected_value=body.corrected_value if body.resolution == "label_wrong" else None,
        expected_revision=body.revision,
    )
    return _resolution(record)


@router.post(
    "/labels/import-jobs",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a label file to import as a job with progress",
)
def create_label_import_job(
    request: Request,
    session: SessionDep,
    ctx: LabelImporter,
    file: Annotated[UploadFile, File(description="JSONL or CSV labels")],
    rubric_version_id: Annotated[Id, Form()],
    format: Annotated[str, Form(pattern="^(auto|jsonl|csv)$")] = "auto",
    skip_invalid: Annotated[
        bool, Form(description="store the valid lines of a file with bad lines (recorded)")
    ] = False,
) -> ImportPublic:
    """Queue a (large) label file: the worker checks every line, then writes the labels in
    batches. Poll `GET /api/v1/projects/{project_id}/imports/{id}` for `progress` (0..1) and
    `finished`; problems are at `problems_url`."""
    job = exchange.queue_label_import(
        session,
        request.app.state.settings,
        ctx.project,
        actor=ctx.user,
        rubric_version_id=rubric_version_id,
        filename=file.filename or "labels",
        source=file.file,
        fmt=format,
        skip_invalid=skip_invalid,
    )
    return rollout_service.import_public(session, job)
