"""Demo rollouts go through the real import path, inline: shared by every demo project."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.auth.models import User
from app.core.config import Settings
from app.core.jobs import new_worker_id
from app.projects.models import Project
from app.rollouts import jobs as rollout_jobs
from app.rollouts import service as rollout_service


def import_demo_rollouts(
    session: Session,
    settings: Settings,
    project: Project,
    admin: User,
    records: Sequence[dict[str, Any]],
    filename: str,
) -> int:
    """Import studio-format records through the import service, inline; returns how many
    rollouts were added (0 when the project already has them)."""
    wanted = sum(2 if "responses" in record else 1 for record in records)
    if rollout_service.count_rollouts(session, project.id or 0) >= wanted:
        return 0
    data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    worker_id = f"demo:{new_worker_id()}"
    job = rollout_service.create_import(
        session,
        settings,
        project,
        admin,
        filename=filename,
        source=io.BytesIO(data.encode("utf-8")),
        claim_by=worker_id,
    )
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    finished = rollout_jobs.run_inline(engine, settings, job.id or 0, worker_id)
    if finished is None or finished.status != rollout_service.DONE:
        message = finished.message if finished else "the import disappeared"
        raise RuntimeError(f"the demo rollouts could not be imported: {message}")
    return finished.inserted
