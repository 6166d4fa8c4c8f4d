"""Starting judge runs: one queued run per judge configuration over a selection.

A small selection is resolved, estimated and given its work items here, inside the request; a
large one (more than `preparation.PREPARE_IN_WORKER_ABOVE` subjects) becomes "preparing" runs a
worker resolves with progress (`preparation.py`). Kept apart from `service.py`, which
`preparation.py` builds on, so the two never import each other.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session

from app.audit import service as audit_service
from app.auth.models import User
from app.core.errors import InvalidInput
from app.judging import configs as judge_configs
from app.judging import preparation
from app.judging import service as judge_service
from app.judging import verdicts as judge_engine
from app.judging.models import JudgeRun
from app.judging.schemas import RunCreate
from app.judging.status import RunStatus
from app.projects.models import Project


def create_runs(
    session: Session,
    project: Project,
    *,
    actor: User | None,
    data: RunCreate,
    snapshot_overrides: dict[str, Any] | None = None,
    commit: bool = True,
) -> list[JudgeRun]:
    """One queued run per judge configuration, each with its work items; several
    configurations share a comparison_key (a cross-judge set over the same rollouts).

    `snapshot_overrides` replaces parts of the judge snapshot the run keeps (a judge drift
    check runs with an export bundle's exact settings); `commit=False` only flushes."""
    project_id = project.id or 0
    version = judge_service.get_version(session, project_id, data.rubric_version_id)
    configs = judge_service._configs(session, project_id, data.judge_config_ids)
    pairwise = judge_service._definition(version).mode == "preference"
    size = preparation.selection_size(session, project_id, data.selection, pairwise=pairwise)
    if not size:
        raise InvalidInput(
            "The selection matches no "
            + ("rollout pairs" if pairwise else "rollouts")
            + ": widen the filters or import rollouts first."
        )
    if data.batch:
        for config in configs:
            blocking = [
                p for p in judge_service._batch_problems(config, 10**9) if "at least" not in p
            ]
            if blocking:
                raise InvalidInput(blocking[0])
    if size > preparation.PREPARE_IN_WORKER_ABOVE:
        # A large selection is resolved, estimated and turned into work items by a worker.
        preparing = preparation.create_preparing_runs(
            session,
            project,
            actor=actor,
            data=data,
            version=version,
            configs=configs,
            pairwise=pairwise,
            snapshot_overrides=snapshot_overrides,
        )
        if commit:
            session.commit()
        return preparing
    subjects = judge_service.resolve_selection(
        session, project_id, data.selection, pairwise=pairwise
    )
    estimate = judge_service.estimate_runs(session, project, data)
    orders = ("AB", "BA") if pairwise else ("",)
    comparison_key = uuid.uuid4().hex if len(configs) > 1 else None
    kind = "batch" if data.batch else ("pairwise" if pairwise else "standard")
    runs: list[JudgeRun] = []
    for config in configs:
        per_judge_cost = judge_engine.call_cost(
            judge_configs.snapshot_of(config),
            estimate.input_tokens // max(1, len(configs)),
            estimate.output_tokens // max(1, len(configs)),
        )
        run = JudgeRun(
            project_id=project_id,
            rubric_version_id=version.id or 0,
            judge_config_id=config.id,
            judge_snapshot=judge_service._with_overrides(
                judge_configs.snapshot_of(config), snapshot_overrides
            ),
            kind=kind,
            comparison_key=comparison_key,
            selection=subjects.selection,
            repeats=data.repeats,
            status=RunStatus.QUEUED,
            items_total=len(subjects.ids) * data.repeats * len(orders),
            estimated_cost=round(per_judge_cost, 6),
            settings={"neutral_score": data.neutral_score, "pairwise": pairwise},
            created_by_id=actor.id if actor else None,
        )
        session.add(run)
        session.flush()
        judge_service._insert_items(session, run.id or 0, subjects, data.repeats, orders)
        audit_service.record(
            session,
            actor=actor,
            action="judge_run.create",
            object_type="judge_run",
            object_id=run.id,
            project_id=project_id,
            summary=(
                f"started a {kind} judge run of rubric version {version.id} with "
                f"{config.name} over {run.items_total} items"
            ),
            details={
                "selection": subjects.selection,
                "repeats": data.repeats,
                "comparison_key": comparison_key,
                "estimated_cost": run.estimated_cost,
            },
        )
        runs.append(run)
    if commit:
        session.commit()
    return runs
