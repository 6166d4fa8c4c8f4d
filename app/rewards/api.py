"""JSON routes for the reward configuration and its preview (/api/v1)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.auth.dependencies import ProjectReader, RewardEditor, SessionDep
from app.core.ids import Id, NonNegInt32
from app.core.memo import VersionedCache
from app.rewards import outcomes as reward_outcomes
from app.rewards import preview_jobs
from app.rewards import service as reward_service
from app.rewards.models import RewardConfig, RewardPreviewJob
from app.rewards.schemas import (
    ComponentSummaryPublic,
    HistogramBinPublic,
    RewardConfigPublic,
    RewardConfigUpdate,
    RewardPreviewJobBody,
    RewardPreviewJobPublic,
    RewardPreviewPublic,
    RolloutRewardPublic,
)

router = APIRouter(prefix="/api/v1", tags=["rewards"])


def _public(project_id: Id, state: reward_service.ConfigState) -> RewardConfigPublic:
    row: RewardConfig | None = state.row
    return RewardConfigPublic(
        project_id=project_id,
        revision=state.revision,
        config=state.model.as_dict(),
        updated_at=row.updated_at if row else None,
        updated_by_id=row.updated_by_id if row else None,
    )


@router.get("/projects/{project_id}/reward-config", response_model=RewardConfigPublic)
def get_reward_config(session: SessionDep, ctx: ProjectReader) -> RewardConfigPublic:
    """The reward configuration in force (the defaults, revision 0, until one is saved)."""
    project_id = ctx.project_id
    return _public(project_id, reward_service.current_config(session, project_id))


@router.put("/projects/{project_id}/reward-config", response_model=RewardConfigPublic)
def put_reward_config(
    body: RewardConfigUpdate, session: SessionDep, ctx: RewardEditor
) -> RewardConfigPublic:
    """Replace the configuration; `revision` must be the one you read (409 otherwise)."""
    config = reward_service.parse_config(body.config)
    reward_service.save_config(
        session, ctx.project, actor=ctx.user, config=config, expected_revision=body.revision
    )
    project_id = ctx.project_id
    return _public(project_id, reward_service.current_config(session, project_id))


@router.get("/projects/{project_id}/reward-preview", response_model=RewardPreviewPublic)
def get_reward_preview(
    session: SessionDep,
    ctx: ProjectReader,
    run_id: Annotated[Id, Query(ge=1, description="judge run whose stored verdicts to use")],
    gold_split: Annotated[Literal["development", "test"] | None, Query()] = None,
    step: Annotated[NonNegInt32 | None, Query()] = None,
    sample: Annotated[int | None, Query(ge=1, le=5000)] = None,
    seed: Annotated[NonNegInt32, Query()] = 0,
) -> RewardPreviewPublic | Response:
    """Rewards of the run's rollouts from stored verdicts (no judge calls)."""
    selection = reward_service.PreviewSelection(
        run_id=run_id, gold_split=gold_split, step=step, sample=sample, seed=seed
    )
    result = reward_service.preview(session, ctx.project, selection)
    if not result.version_key:
        return _preview_public(run_id, result)
    # Up to 5,000 rows: the JSON is built once per data version and sent as it is.
    body = _BODIES.get_or_compute(
        result.version_key, lambda: _preview_public(run_id, result).model_dump_json().encode()
    )
    return Response(body, media_type="application/json")


_BODIES: VersionedCache[bytes] = VersionedCache(4)


def _preview_public(run_id: int, result: reward_outcomes.RewardPreview) -> RewardPreviewPublic:
    return RewardPreviewPublic(
        run_id=run_id,
        rollouts=len(result.rows),
        missing_verdicts=result.missing_verdicts,
        mean=result.mean,
        minimum=result.minimum,
        maximum=result.maximum,
        judge_ok=result.judge_ok,
        judge_errors=result.judge_errors,
        gated=result.gated,
        groups=result.groups,
        zero_spread_groups=result.zero_spread_groups,
        warnings=result.warnings,
        histogram=[
            HistogramBinPublic(low=b.low, high=b.high, count=b.count) for b in result.histogram
        ],
        components=[ComponentSummaryPublic(**vars(c)) for c in result.components],
        rows=[
            RolloutRewardPublic(
                rollout_id=row.rollout_id,
                external_id=row.external_id,
                group_key=row.group_key,
                step=row.step,
                reward=row.reward,
                gated_by=row.outcome["gated_by"],
                judge_status=row.outcome["judge_status"],
                contributions=row.outcome["contributions"],
            )
            for row in result.rows
        ],
    )


@router.post(
    "/projects/{project_id}/reward-preview/jobs",
    response_model=RewardPreviewJobPublic,
    status_code=202,
)
def start_reward_preview_job(
    session: SessionDep, ctx: ProjectReader, body: RewardPreviewJobBody
) -> RewardPreviewJobPublic:
    """Preview a large selection (up to 5,000 rollouts) in the background: the worker scores it
    a batch at a time; poll the job for its progress and result."""
    selection = reward_service.PreviewSelection(
        run_id=body.run_id,
        gold_split=body.gold_split,
        step=body.step,
        sample=body.sample,
        seed=body.seed,
    )
    job = preview_jobs.start_job(session, ctx.project, selection, ctx.user)
    return _job_public(session, job)


@router.get(
    "/projects/{project_id}/reward-preview/jobs/{job_id}", response_model=RewardPreviewJobPublic
)
def get_reward_preview_job(
    job_id: Id, session: SessionDep, ctx: ProjectReader
) -> RewardPreviewJobPublic:
    """A background preview's status, progress and (once done) result."""
    return _job_public(session, preview_jobs.get_job(session, ctx.project_id, job_id))


def _job_public(session: SessionDep, job: RewardPreviewJob) -> RewardPreviewJobPublic:
    result = preview_jobs.job_preview(session, job)
    return RewardPreviewJobPublic(
        id=job.id or 0,
        run_id=job.run_id,
        status=job.status,
        done=job.done,
        total=job.total,
        error=job.error,
        result=_preview_public(job.run_id, result) if result is not None else None,
    )
