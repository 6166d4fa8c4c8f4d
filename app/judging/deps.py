"""Load-or-404 dependencies for judging: judge configurations and judge runs, loaded by their owner.

See `docs/architecture.md` (Loading what a route names): a loader checks membership only;
the route's permission alias, declared before it, decides what the caller may do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import ProjectReader, SessionDep
from app.core.ids import Id
from app.judging import configs as judge_configs
from app.judging import service as judge_service
from app.judging.models import JudgeConfig, JudgeRun


def project_judge_config(config_id: Id, session: SessionDep, ctx: ProjectReader) -> JudgeConfig:
    return judge_configs.get_config(session, ctx.project_id, config_id)


def project_run(run_id: Id, session: SessionDep, ctx: ProjectReader) -> JudgeRun:
    return judge_service.get_run(session, ctx.project_id, run_id)


ProjectJudgeConfig = Annotated[JudgeConfig, Depends(project_judge_config)]
ProjectRun = Annotated[JudgeRun, Depends(project_run)]
