"""Builders for judging tests: rubric versions, rollouts, pairs, judge configurations and runs."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from app.auth.models import User
from app.judging import service as judge_service
from app.judging.engine import EngineOptions
from app.judging.models import JudgeConfig, JudgeRun
from app.judging.schemas import JudgeConfigInput, RunCreate, SelectionInput
from app.llm.egress import EgressPolicy
from app.projects.models import Project
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition, content_hash
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.output_schema import build_output_schema

# The tests' judges run on this machine (tests/support/judge_server.py on 127.0.0.1).
LOCAL_JUDGES = EgressPolicy(allow_loopback=True)


def make_version(
    session: Session,
    project: Project,
    template: str = "generic_pass_fail",
    *,
    definition: RubricDefinition | None = None,
    name: str | None = None,
) -> RubricVersion:
    """A published rubric version (inserted directly: the rubric editor is built elsewhere)."""
    defn = definition or get_builtin(template)
    rubric = Rubric(
        project_id=project.id or 0,
        name=name or f"{defn.title} #{hashlib.sha1(str(id(defn)).encode()).hexdigest()[:6]}",
        mode=defn.mode,
    )
    session.add(rubric)
    session.flush()
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=project.id or 0,
        number=1,
        definition=defn.model_dump(mode="json"),
        output_schema=build_output_schema(defn),
        content_hash=content_hash(defn),
    )
    session.add(version)
    session.commit()
    return version


def make_rollouts(
    session: Session,
    project: Project,
    count: int,
    *,
    prefix: str = "r",
    step: int | None = None,
    model: str | None = None,
    group: str | None = None,
    response: str = "The answer under evaluation, number {i}.",
) -> list[int]:
    """Insert `count` rollouts in bulk; returns their ids in order."""
    rows: list[dict[str, Any]] = []
    for i in range(count):
        text = response.format(i=i)
        rows.append(
            {
                "project_id": project.id,
                "external_id": f"{prefix}-{i}",
                "content_hash": hashlib.sha256(f"{prefix}{i}{text}".encode()).hexdigest(),
                "input_messages": [{"role": "user", "content": f"Question {prefix} {i}?"}],
                "target_document": None,
                "reference_documents": [],
                "reference_answer": None,
                "response": text,
                "model": model,
                "checkpoint": None,
                "step": step,
                "group_key": group,
                "metadata": {"i": i},
            }
        )
    for start in range(0, len(rows), 1000):
        session.execute(insert(Rollout.__table__), rows[start : start + 1000])  # type: ignore[attr-defined]
    session.commit()
    query = (
        select(Rollout.id)
        .where(Rollout.project_id == project.id, col(Rollout.external_id).startswith(f"{prefix}-"))
        .order_by(col(Rollout.id))
    )
    return [int(rid or 0) for rid in session.exec(query)]


def make_pairs(session: Session, project: Project, rollout_ids: list[int]) -> list[int]:
    """Pairs (0,1), (2,3), ... of the given rollouts."""
    ids = []
    for a, b in zip(rollout_ids[0::2], rollout_ids[1::2], strict=False):
        pair = RolloutPair(project_id=project.id or 0, rollout_a_id=a, rollout_b_id=b)
        session.add(pair)
        session.flush()
        ids.append(pair.id or 0)
    session.commit()
    return ids


def make_judge_config(
    session: Session,
    project: Project,
    *,
    base_url: str = "http://127.0.0.1:9/v1",
    actor: User | None = None,
    **overrides: Any,
) -> JudgeConfig:
    values: dict[str, Any] = {
        "name": "local test judge",
        "provider": "openai_compat",
        "model_id": "judge-test",
        "base_url": base_url,
        "concurrency": 8,
        "timeout_s": 5.0,
        "max_attempts": 4,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "price_input_per_1k": 0.001,
        "price_output_per_1k": 0.002,
    }
    values.update(overrides)
    return judge_service.create_config(
        session, project, actor=actor, data=JudgeConfigInput(**values), egress=LOCAL_JUDGES
    )


def start_runs(
    session: Session,
    project: Project,
    version: RubricVersion,
    configs: list[JudgeConfig],
    *,
    repeats: int = 1,
    neutral_score: float = 0.5,
    actor: User | None = None,
    batch: bool = False,
    **selection: Any,
) -> list[JudgeRun]:
    data = RunCreate(
        rubric_version_id=version.id or 0,
        judge_config_ids=[c.id or 0 for c in configs],
        selection=SelectionInput(**selection),
        repeats=repeats,
        neutral_score=neutral_score,
        batch=batch,
    )
    return judge_service.create_runs(session, project, actor=actor, data=data)


def fast_options(**overrides: Any) -> EngineOptions:
    """Engine options for tests: status checked and verdicts flushed often."""
    values: dict[str, Any] = {
        "worker_id": "test-worker",
        "lease_seconds": 30.0,
        "status_check_s": 0.05,
        "flush_interval_s": 0.02,
    }
    values.update(overrides)
    return EngineOptions(**values)
