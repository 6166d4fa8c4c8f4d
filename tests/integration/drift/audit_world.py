"""A training run with drift samples stored through the real import code, for audit tests."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.auth.models import User
from app.drift.bulk import DriftTarget, store_batch
from app.drift.models import TrainingRun
from app.drift.records import DriftLine, DriftOptions, iter_records
from app.projects.models import Project
from app.rubrics.builtin import BUILTIN_TEMPLATES
from app.rubrics.models import RubricVersion
from tests.support.factories import make_project, make_user, make_version

CRITERIA = [c.key for c in BUILTIN_TEMPLATES["generic_pass_fail"].criteria]


def record(i: int, step: int, reward: float, passes: dict[str, bool], **extra: Any) -> dict:
    return {
        "id": f"rec-{i}",
        "training_run": "run-a",
        "step": step,
        "recorded_at": "2026-12-01T10:00:00Z",
        "source": "trl",
        "group_id": f"g-{i // 4}",
        "rollout": {
            "messages": [{"role": "user", "content": f"Question {i // 4}"}],
            "response": "An answer. " * (1 + i % 7),
        },
        "reward": reward,
        "judge": {"status": "ok", "criteria": {k: int(v) for k, v in passes.items()}},
    } | extra


def import_records(session: Session, project: Project, run: TrainingRun, records: list) -> int:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    lines = [
        item
        for item in iter_records(io.BytesIO(body), DriftOptions(training_run=run.name))
        if isinstance(item, DriftLine)
    ]
    assert len(lines) == len(records)
    target = DriftTarget(project.id or 0, run.id or 0, None, "test.jsonl")
    outcome = store_batch(session, target, lines)
    session.commit()
    session.refresh(run)
    return outcome.inserted


@dataclass
class AuditWorld:
    owner: User
    reviewer: User
    reviewer2: User
    engineer: User
    expert: User
    project: Project
    version: RubricVersion
    run: TrainingRun


def make_world(session: Session, samples: int = 600, seed: int = 1) -> AuditWorld:
    owner = make_user(session)
    reviewer, reviewer2, engineer, expert = (make_user(session) for _ in range(4))
    project = make_project(
        session,
        owner,
        members=[
            (reviewer, "reviewer"),
            (reviewer2, "reviewer"),
            (engineer, "engineer"),
            (expert, "expert"),
        ],
    )
    version = make_version(session, project, "generic_pass_fail")
    run = TrainingRun(project_id=project.id or 0, name="run-a")
    session.add(run)
    session.commit()
    rng = random.Random(seed)
    records = [
        record(
            i,
            step=i * 600 // samples,
            reward=round(rng.random(), 4),
            passes={k: rng.random() < 0.7 for k in CRITERIA},
        )
        for i in range(samples)
    ]
    import_records(session, project, run, records)
    return AuditWorld(owner, reviewer, reviewer2, engineer, expert, project, version, run)
