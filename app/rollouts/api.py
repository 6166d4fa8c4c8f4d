"""JSON routes for rollouts and rollout imports (/api/v1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from sqlmodel import Session
from starlette.responses import StreamingResponse

from app.auth.dependencies import ProjectReader, RolloutImporter, SessionDep
from app.core.ids import Id, NonNegInt32
from app.rollouts import browse as rollout_browse
from app.rollouts import service as rollout_service
from app.rollouts.deps import ProjectImport, ProjectRollout
from app.rollouts.models import RolloutImport
from app.rollouts.parsing import FORMATS
from app.rollouts.schemas import (
    GroupPagePublic,
    GroupPublic,
    ImportPublic,
    RolloutPagePublic,
    RolloutPublic,
    RolloutSummaryPublic,
)
from app.rollouts.search import RolloutFilter, RolloutSort
from app.web.errors import ErrorBody

router = APIRouter(prefix="/api/v1", tags=["rollouts"])


@router.post(
    "/projects/{project_id}/imports",
    response_model=ImportPublic,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload a rollout file to import",
    responses={
        422: {
            "model": ErrorBody,
            "description": "the file cannot be imported; `problems` says why",
        }
    },
)
def create_import(
    request: Request,
    session: SessionDep,
    ctx: RolloutImporter,
    file: Annotated[UploadFile, File(description="JSONL (Studio, Nova, OpenAI chat) or CSV")],
    format: Annotated[str, Form(description=f"one of {', '.join(FORMATS)}")] = "auto",
    skip_invalid: Annotated[
        bool, Form(description="import the valid lines of a file with bad lines (recorded)")
    ] = False,
    csv_mapping: Annotated[
        str, Form(description='JSON object, field -> CSV column: {"input": "Question"}')
    ] = "",
) -> ImportPublic:
    """Store the file and queue its import; a worker checks every line, then imports. By default
    a file with any bad line is refused whole, with the complete list of problems; with
    `skip_invalid` only its valid lines are imported. Poll the returned job."""
    choices = rollout_service.ImportChoices(
        format=format,
        skip_invalid=skip_invalid,
        csv_mapping=rollout_service.parse_csv_mapping(csv_mapping),
    )
    job = rollout_service.create_import(
        session,
        request.app.state.settings,
        ctx.project,
        ctx.user,
        filename=file.filename or "upload",
        source=file.file,
        choices=choices,
    )
    return rollout_service.import_public(session, job)


@router.get("/projects/{project_id}/imports", response_model=list[ImportPublic])
def list_imports(session: SessionDep, ctx: ProjectReader) -> list[ImportPublic]:
    """The project's most recent imports, newest first."""
    jobs = rollout_service.list_imports(session, ctx.project_id, limit=50)
    return [rollout_service.import_public(session, job) for job in jobs]


@router.get("/projects/{project_id}/imports/{import_id}", response_model=ImportPublic)
def get_import(session: SessionDep, ctx: ProjectReader, job: ProjectImport) -> ImportPublic:
    return rollout_service.import_public(session, job)


@router.post("/projects/{project_id}/imports/{import_id}/cancel", response_model=ImportPublic)
def cancel_import(session: SessionDep, ctx: RolloutImporter, import_id: Id) -> ImportPublic:
    """Cancel an import that has not finished; nothing of it is kept (409 once it finished)."""
    job = rollout_service.get_import(session, ctx.project_id, import_id)
    return rollout_service.import_public(
        session, rollout_service.cancel_import(session, job, ctx.user)
    )


@router.get(
    "/projects/{project_id}/imports/{import_id}/problems",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
def download_problems(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    job: ProjectImport,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    """Every problem of the import (line, field, kind, message), as JSONL or CSV."""
    return problems_download(request, job, format)


def problems_download(request: Request, job: RolloutImport, format: str) -> StreamingResponse:
    """Stream the problem list from its own session (the request's closes before the body)."""
    engine = request.app.state.engine
    import_id = job.id or 0

    def body() -> Iterator[str]:
        with Session(engine) as session:
            if format == "csv":
                yield from rollout_service.problems_as_csv(session, import_id)
            else:
                yield from rollout_service.problems_as_jsonl(session, import_id)

    stem = f"import-{import_id}-problems"
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{stem}.{format}"'},
    )


@router.get("/projects/{project_id}/rollouts", response_model=RolloutPagePublic)
def list_rollouts(
    session: SessionDep,
    ctx: ProjectReader,
    model: str | None = None,
    checkpoint: str | None = None,
    step_min: Annotated[NonNegInt32 | None, Query()] = None,
    step_max: Annotated[NonNegInt32 | None, Query()] = None,
    group: str | None = None,
    labeled: bool | None = None,
    gold: bool | None = None,
    disagreement: bool | None = None,
    q: Annotated[str | None, Query(max_length=500, description="full-text search")] = None,
    import_id: Id | None = None,
    sort: Annotated[
        RolloutSort,
        Query(description="id: import order; rank: best match first (with q, PostgreSQL)"),
    ] = RolloutSort.ID,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=rollout_browse.MAX_PAGE_SIZE)] = 50,
) -> RolloutPagePublic:
    """Rollouts in import order (or best match first), filtered; follow `next_cursor` for the
    next page. `total` is exact up to 10,000; past it `total_estimate` is an estimate."""
    flt = RolloutFilter(
        model=model,
        checkpoint=checkpoint,
        step_min=step_min,
        step_max=step_max,
        group=group,
        labeled=labeled,
        gold=gold,
        disagreement=disagreement,
        q=q,
        import_id=import_id,
        sort=sort,
    )
    page = rollout_browse.list_rollouts(session, ctx.project_id, flt, cursor=cursor, limit=limit)
    return RolloutPagePublic(
        items=[
            RolloutSummaryPublic(
                id=row.id,
                external_id=row.external_id,
                model=row.model,
                checkpoint=row.checkpoint,
                step=row.step,
                group=row.group_key,
                response_preview=row.response_preview or "",
                response_chars=row.response_chars or 0,
                created_at=row.created_at,
            )
            for row in page.items
        ],
        next_cursor=page.next_cursor,
        total=page.total,
        total_capped=page.total_capped,
        total_estimate=page.total_estimate,
        ranked=page.ranked,
    )


@router.get("/projects/{project_id}/rollout-groups", response_model=GroupPagePublic)
def list_groups(
    session: SessionDep,
    ctx: ProjectReader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=rollout_browse.MAX_PAGE_SIZE)] = 50,
) -> GroupPagePublic:
    """Groups of generations for the same prompt, with their sizes."""
    page = rollout_browse.list_groups(
        session, ctx.project_id, RolloutFilter(), cursor=cursor, limit=limit
    )
    return GroupPagePublic(
        items=[
            GroupPublic(
                group=row.group_key,
                rollouts=row.rollouts,
                step_min=row.step_min,
                step_max=row.step_max,
                checkpoints=row.checkpoints,
            )
            for row in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/projects/{project_id}/rollouts/{rollout_id}", response_model=RolloutPublic)
def get_rollout(session: SessionDep, ctx: ProjectReader, rollout: ProjectRollout) -> RolloutPublic:
    """One whole rollout. Its text is untrusted model output: display it as text."""
    return RolloutPublic.of(rollout, rollout_service.pair_partners(session, rollout))
