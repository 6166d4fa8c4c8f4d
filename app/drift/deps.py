"""Load-or-404 dependencies for drift: training runs, audits and judge drift checks.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.drift import audit_service, check_service
from app.drift import service as drift_service
from app.drift.audit_models import DriftAudit, JudgeDriftCheck
from app.drift.models import TrainingRun


def project_training_run(run_id: Id, session: SessionDep, ctx: ProjectReader) -> TrainingRun:
    return drift_service.get_training_run(session, ctx.project_id, run_id)


def project_audit(audit_id: Id, session: SessionDep, ctx: ProjectReader) -> DriftAudit:
    return audit_service.get_audit(session, ctx.project_id, audit_id)


def project_drift_check(check_id: Id, session: SessionDep, ctx: ProjectReader) -> JudgeDriftCheck:
    return check_service.get_check(session, ctx.project_id, check_id)


ProjectTrainingRun = Annotated[TrainingRun, Depends(project_training_run)]
ProjectAudit = Annotated[DriftAudit, Depends(project_audit)]
ProjectDriftCheck = Annotated[JudgeDriftCheck, Depends(project_drift_check)]
