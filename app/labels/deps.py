"""Load-or-404 dependencies for labels: annotation queues, loaded by their owner.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.labels import queues
from app.labels.models import AnnotationQueue


def project_queue(queue_id: Id, session: SessionDep, ctx: ProjectReader) -> AnnotationQueue:
    return queues.get_queue(session, ctx.project_id, queue_id)


ProjectQueue = Annotated[AnnotationQueue, Depends(project_queue)]
