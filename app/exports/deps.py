"""Load-or-404 dependencies for exports: frozen bundles, loaded by their owner.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.exports import service as export_service
from app.exports.models import ExportBundle


def project_bundle(bundle_id: Id, session: SessionDep, ctx: ProjectReader) -> ExportBundle:
    return export_service.get_bundle(session, ctx.project_id, bundle_id)


ProjectBundle = Annotated[ExportBundle, Depends(project_bundle)]
