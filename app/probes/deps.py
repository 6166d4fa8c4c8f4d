"""Load-or-404 dependencies for probes: probe runs, loaded by their owner.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.probes import service as probe_service
from app.probes.models import ProbeRun


def project_probe_run(run_id: Id, session: SessionDep, ctx: ProjectReader) -> ProbeRun:
    return probe_service.get_run(session, ctx.project_id, run_id)


ProjectProbeRun = Annotated[ProbeRun, Depends(project_probe_run)]
