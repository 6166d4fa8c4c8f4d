"""Load-or-404 dependencies for rubrics: a route names the rubric it works on; its owner loads it.

Each loader checks membership through `ProjectReader` (so it never runs for a stranger); the
route's own permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric, RubricVersion


def project_rubric(rubric_id: Id, session: SessionDep, ctx: ProjectReader) -> Rubric:
    return rubric_service.get_rubric(session, ctx.project_id, rubric_id)


def project_rubric_version(
    version_id: Id, session: SessionDep, ctx: ProjectReader
) -> RubricVersion:
    return rubric_service.get_project_version(session, ctx.project_id, version_id)


ProjectRubric = Annotated[Rubric, Depends(project_rubric)]
ProjectRubricVersion = Annotated[RubricVersion, Depends(project_rubric_version)]
