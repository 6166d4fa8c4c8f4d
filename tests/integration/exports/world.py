"""A demo-like project for export tests: the contract-review rubric (v1, signed off), demo
rollouts as the locked gold test split, an OpenAI-compatible judge and a real judge run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.auth.models import User
from app.core.config import Settings
from app.demo.legal import OUTPUT_SCHEMA, POLICY_SYSTEM_PROMPT, build_legal_demo
from app.judging import engine as judge_engine
from app.judging import launch as judging_launch
from app.judging.models import JudgeConfig, JudgeRun, Verdict
from app.judging.schemas import RunCreate, SelectionInput
from app.labels.models import GoldItem, Label
from app.projects.models import Project
from app.rollouts.models import Rollout
from app.rubrics import demo as rubric_demo
from app.rubrics import service as rubric_service
from app.rubrics.models import RubricVersion
from app.worker import run_worker
from tests.support.factories import make_judge_config, make_project, make_user


@dataclass
class World:
    project: Project
    admin: User
    engineer: User
    expert: User
    reviewer: User
    version: RubricVersion
    judge: JudgeConfig
    rollouts: list[Rollout]


def demo_records(contracts: int = 3) -> list[dict]:
    """Whole groups (4 generations of a contract): those holding a malformed, a prose and an
    empty response first, so gates and judged samples both occur, then others up to `contracts`."""
    records = build_legal_demo().rollouts
    groups: list[str] = []
    for defect in ("malformed_json", "prose", "empty_list"):
        group = next(r["group"] for r in records if r["metadata"]["response_defect"] == defect)
        if group not in groups:
            groups.append(group)
    for record in records:
        if len(groups) >= contracts:
            break
        if record["group"] not in groups:
            groups.append(record["group"])
    return [r for r in records if r["group"] in groups[:contracts]]


# A reference answer given to every other rollout (parity with string and object references).
REFERENCE_ANSWER = {"comments": [{"rule": "R1", "action": "Escalate to legal"}], "note": "café"}


def build_world(
    session: Session, base_url: str, *, contracts: int = 3, reference_answers: bool = False
) -> World:
    admin = make_user(session, "admin@example.com")
    engineer = make_user(session, "engineer@example.com")
    expert = make_user(session, "expert@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(
        session,
        admin,
        "Contract review",
        members=[(engineer, "engineer"), (expert, "expert"), (reviewer, "reviewer")],
    )
    project.output_schema = OUTPUT_SCHEMA
    project.policy_system_prompt = POLICY_SYSTEM_PROMPT
    session.add(project)
    session.commit()
    rubric = rubric_demo.ensure_demo_rubric(session, project, expert)
    version = rubric_service.latest_version(session, rubric.id or 0)
    assert version is not None
    records = demo_records(contracts)
    rollouts = []
    for index, record in enumerate(records):
        rollout = Rollout(
            project_id=project.id or 0,
            external_id=record["id"],
            content_hash=hashlib.sha256(json.dumps(record).encode()).hexdigest(),
            input_messages=record["input"],
            target_document=record["target_document"],
            reference_documents=record["references"],
            response=record["response"],
            model=record["model"],
            checkpoint=record["checkpoint"],
            step=record["step"],
            group_key=record["group"],
            metadata_=record["metadata"],
            reference_answer=REFERENCE_ANSWER if reference_answers and index % 2 == 0 else None,
        )
        session.add(rollout)
        rollouts.append(rollout)
    session.flush()
    for rollout in rollouts:
        session.add(GoldItem(project_id=project.id or 0, rollout_id=rollout.id or 0, split="test"))
    session.commit()
    judge = make_judge_config(
        session,
        project,
        base_url=base_url,
        actor=admin,
        name="local judge",
        concurrency=4,
        max_attempts=2,
        base_delay_s=0.0,
        max_delay_s=0.0,
        timeout_s=30.0,
        price_input_per_1k=0.0,
        price_output_per_1k=0.0,
    )
    return World(project, admin, engineer, expert, reviewer, version, judge, rollouts)


def run_judge(session: Session, engine: Engine, world: World) -> JudgeRun:
    """A real judge run of the gold test split through the studio's engine."""
    [run] = judging_launch.create_runs(
        session,
        world.project,
        actor=world.engineer,
        data=RunCreate(
            rubric_version_id=world.version.id or 0,
            judge_config_ids=[world.judge.id or 0],
            selection=SelectionInput(source="gold", gold_split="test"),
        ),
    )
    judge_engine.work_on_run(engine, run.id or 0, judge_engine.EngineOptions(worker_id="test"))
    session.expire_all()
    return session.get(JudgeRun, run.id)  # type: ignore[return-value]


def verdicts_by_rollout(session: Session, run_id: int) -> dict[int, Verdict]:
    query = select(Verdict).where(Verdict.run_id == run_id).order_by(col(Verdict.id))
    return {v.rollout_id: v for v in session.exec(query)}


def label_gold(session: Session, world: World, run_id: int, *, agree: bool) -> int:
    """One expert label per gold item: all 5s when the judge passed it and all 1s when it failed
    (agree=True), or the opposite. Returns how many rollouts the judge passed."""
    keys = [c["key"] for c in world.version.definition["criteria"]]
    passed = 0
    for rollout_id, verdict in verdicts_by_rollout(session, run_id).items():
        judge_pass = (verdict.normalized or 0.0) >= 0.5
        passed += judge_pass
        level = 5 if judge_pass == agree else 1
        session.add(
            Label(
                project_id=world.project.id or 0,
                rollout_id=rollout_id,
                subject_key=f"r:{rollout_id}",
                rubric_version_id=world.version.id or 0,
                annotator_id=world.expert.id,
                annotator_key=f"user:{world.expert.id}",
                annotator_name=world.expert.email,
                values=dict.fromkeys(keys, level),
                status="submitted",
            )
        )
    session.commit()
    return passed


# Probes that export tests run so the gate has results for exactly what they export; the
# test judge answers by the prompt's hash, so with this seed no probe earns a reliable gain.
GATE_PROBES = ("verbosity", "self_consistency")


def probe_world(
    client: TestClient, session: Session, engine: Engine, settings: Settings, world: World
) -> dict:
    """A real probe run of the world's rubric version, judge and reward configuration, through
    the API and the worker, as an engineer would before exporting. Returns the run as JSON."""
    token = auth_service.create_api_token(session, world.engineer, name="probes").token
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/projects/{world.project.id}/probe-runs"
    body = {
        "rubric_version_id": world.version.id,
        "judge_config_id": world.judge.id,
        "probes": list(GATE_PROBES),
        "gold_split": "test",
        "seed": 5,
    }
    created = client.post(base, json=body, headers=headers)
    assert created.status_code == 201, created.text
    run_worker(engine, settings, once=True)
    done = client.get(f"{base}/{created.json()['id']}", headers=headers).json()
    assert done["status"] == "completed" and done["passed"] is True, done
    return done
