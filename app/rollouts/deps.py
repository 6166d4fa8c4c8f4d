"""Load-or-404 dependencies for rollouts and their imports, loaded by their owner.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import BigId, Id
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout, RolloutImport


def project_rollout(rollout_id: BigId, session: SessionDep, ctx: ProjectReader) -> Rollout:
    return rollout_service.get_rollout(session, ctx.project_id, rollout_id)


def project_import(import_id: Id, session: SessionDep, ctx: ProjectReader) -> RolloutImport:
    return rollout_service.get_import(session, ctx.project_id, import_id)


ProjectRollout = Annotated[Rollout, Depends(project_rollout)]
ProjectImport = Annotated[RolloutImport, Depends(project_import)]
