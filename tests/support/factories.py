"""The test-data kit: factories for every kind of row the tests need, in one place.

Users, projects, rubrics, queues and gold sets are made through the real services, so tests see
realistic data; rubric versions, rollouts, pairs, judge runs with their verdicts and labels are
inserted directly (fast, and with exactly the shape the services store: verdicts are scored by
the judge engine's own code).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from app.auth import service as auth_service
from app.auth.models import User
from app.core.clock import utcnow
from app.judging import configs as judge_configs
from app.judging import launch as judge_launch
from app.judging.engine import EngineOptions
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem, Verdict
from app.judging.schemas import JudgeConfigInput, RunCreate, SelectionInput
from app.judging.storage import load_plan
from app.judging.verdicts import PreparedItem, score_parsed, verdict_row
from app.labels import gold as gold_service
from app.labels import queues as queue_service
from app.labels.models import AnnotationQueue, GoldItem, Label
from app.labels.queues import QueueSelection
from app.llm.egress import EgressPolicy
from app.projects import service as project_service
from app.projects.models import Project
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics import service as rubric_service
from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition, content_hash
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.output_schema import build_output_schema
from tests.support.web import PASSWORD

_seq = itertools.count(1)

# The tests' judges run on this machine (tests/support/judge_server.py on 127.0.0.1).
LOCAL_JUDGES = EgressPolicy(allow_loopback=True)


# ---- people and projects ----------------------------------------------------------------------


def make_user(session: Session, email: str | None = None, *, is_admin: bool = False) -> User:
    email = email or f"user{next(_seq)}@example.com"
    return auth_service.create_user(
        session, email=email, password=PASSWORD, display_name=email.split("@")[0], is_admin=is_admin
    )


def make_project(
    session: Session,
    owner: User,
    name: str | None = None,
    members: list[tuple[User, str]] | None = None,
) -> Project:
    project = project_service.create_project(
        session, name=name or f"Project {next(_seq)}", owner=owner
    )
    for user, role in members or []:
        project_service.add_member(session, project, email=user.email, role=role, actor=owner)
    return project


# ---- rubrics and versions ---------------------------------------------------------------------


def make_rubric(
    session: Session,
    project: Project,
    actor: User,
    name: str | None = None,
    *,
    template: str = "generic_pass_fail",
) -> Rubric:
    """A rubric with a draft from a built-in template, made by the rubric service."""
    return rubric_service.create_rubric(
        session, project, actor=actor, name=name or f"Rubric {next(_seq)}", template=template
    )


def make_version(
    session: Session,
    project: Project,
    template: str = "generic_pass_fail",
    *,
    rubric: Rubric | None = None,
    definition: RubricDefinition | None = None,
    name: str | None = None,
) -> RubricVersion:
    """A published version of a new rubric (or the next version of ``rubric``), inserted
    directly: the editor and its publishing checks are tested on their own."""
    definition = definition or get_builtin(template)
    if rubric is None:
        rubric = Rubric(
            project_id=project.id or 0,
            name=name or f"{definition.title} #{next(_seq)}",
            mode=definition.mode,
        )
        session.add(rubric)
        session.flush()
    existing = session.exec(
        select(RubricVersion.id).where(RubricVersion.rubric_id == rubric.id)
    ).all()
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=project.id or 0,
        number=1 + len(existing),
        definition=definition.model_dump(mode="json"),
        output_schema=build_output_schema(definition),
        content_hash=content_hash(definition),
        change_note="test version",
    )
    session.add(version)
    session.commit()
    return version


# ---- rollouts and pairs -----------------------------------------------------------------------


def make_rollout(session: Session, project: Project, **fields: Any) -> Rollout:
    """One contract-review rollout row (no import job); ``fields`` override any column."""
    n = next(_seq)
    values: dict[str, Any] = {
        "project_id": project.id,
        "external_id": f"rollout-{n}",
        "content_hash": f"{n:064x}",
        "input_messages": [
            {"role": "system", "content": "You review contracts."},
            {"role": "user", "content": "Review this contract against the playbook."},
        ],
        "target_document": "12. Governing law. This Agreement is governed by the laws of Texas.",
        "reference_documents": [{"title": "Playbook", "text": "R1: Delaware or New York law."}],
        "response": '[{"text_excerpt": "governed by the laws of Texas", "rule": "R1"}]',
        "model": "nova-lite-rft",
        "step": 100,
    } | fields
    rollout = Rollout(**values)
    session.add(rollout)
    session.commit()
    return rollout


def make_rollouts(
    session: Session,
    project: Project,
    count: int,
    *,
    document: str | None = None,
    response: str = "An answer.",
    prefix: str = "r",
) -> list[Rollout]:
    """``count`` rollout rows (model policy-a, steps 0, 10, 20, …), as objects."""
    rollouts = [
        Rollout(
            project_id=project.id or 0,
            external_id=f"{prefix}-{i:04d}",
            content_hash=f"{prefix}{i:060d}"[:64],
            input_messages=[{"role": "user", "content": f"Question {i}"}],
            target_document=document,
            response=f"{response} ({i})",
            model="policy-a",
            step=i * 10,
        )
        for i in range(count)
    ]
    session.add_all(rollouts)
    session.commit()
    return rollouts


def insert_rollouts(
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
    """Insert ``count`` rollouts in bulk (for runs of any size); returns their ids in order."""
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


def make_legal_rollouts(
    session: Session,
    project: Project,
    limit: int | None = None,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> list[Rollout]:
    """The legal demo's rollouts (CUAD contracts and AI review comments), the first ``limit``
    of those ``where`` accepts."""
    from app.demo.legal import build_legal_demo

    records = [r for r in build_legal_demo().rollouts if where is None or where(r)][:limit]
    rollouts = [
        Rollout(
            project_id=project.id or 0,
            external_id=record["id"],
            content_hash=f"{index:064d}",
            input_messages=record["input"],
            target_document=record["target_document"],
            reference_documents=record["references"],
            response=record["response"],
            model=record["model"],
            checkpoint=record["checkpoint"],
            step=record["step"],
            group_key=record["group"],
            metadata_=record["metadata"],
        )
        for index, record in enumerate(records)
    ]
    session.add_all(rollouts)
    session.commit()
    return rollouts


def make_pairs(
    session: Session, project: Project, rollouts: Sequence[Rollout]
) -> list[RolloutPair]:
    """Pairs (0,1), (2,3), … of the given rollouts."""
    pairs = [
        RolloutPair(project_id=project.id or 0, rollout_a_id=a.id or 0, rollout_b_id=b.id or 0)
        for a, b in zip(rollouts[::2], rollouts[1::2], strict=True)
    ]
    session.add_all(pairs)
    session.commit()
    return pairs


def insert_pairs(session: Session, project: Project, rollout_ids: list[int]) -> list[int]:
    """Pairs (0,1), (2,3), … of the given rollout ids; returns the pair ids."""
    ids = []
    for a, b in zip(rollout_ids[0::2], rollout_ids[1::2], strict=False):
        pair = RolloutPair(project_id=project.id or 0, rollout_a_id=a, rollout_b_id=b)
        session.add(pair)
        session.flush()
        ids.append(pair.id or 0)
    session.commit()
    return ids


# ---- judges, runs and verdicts ----------------------------------------------------------------


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
    return judge_configs.create_config(
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
    return judge_launch.create_runs(session, project, actor=actor, data=data)


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


def boolean_answer(definition: dict[str, Any], passes: dict[str, bool]) -> dict[str, Any]:
    return {
        "criteria": {
            c["key"]: {
                "evidence": f"evidence for {c['key']}",
                "justification": f"judge reasoning on {c['key']}",
                "score": passes[c["key"]],
            }
            for c in definition["criteria"]
        },
        "aggregate_score": 0,
    }


def comments_answer(scores: Sequence[dict[str, int]]) -> dict[str, Any]:
    """A per-comment answer for the legal rubric: one {criterion: score} dict per comment."""
    return {
        "comments": [
            {
                "item_index": i,
                "excerpt": f"comment {i}",
                "criteria": {
                    key: {
                        "evidence": f"quote for {key} of comment {i}",
                        "justification": f"why {key} of comment {i} scores {score}",
                        "score": score,
                    }
                    for key, score in item.items()
                },
                "item_score": 0,
            }
            for i, item in enumerate(scores)
        ],
        "aggregate_score": 0,
    }


def make_run(
    session: Session,
    project: Project,
    version: RubricVersion,
    answers: dict[int, dict[str, Any] | None],
    *,
    judge: str = "test-judge",
) -> JudgeRun:
    """A completed run whose verdicts the engine scored from ``answers`` ({rollout id: judge
    answer}; None stores a failed call)."""
    run = JudgeRun(
        project_id=project.id or 0,
        rubric_version_id=version.id or 0,
        judge_snapshot={"name": judge, "provider": "openai_compat", "model_id": judge},
        status="completed",
        items_total=len(answers),
        items_done=len(answers),
    )
    session.add(run)
    session.commit()
    plan = load_plan(session.get_bind(), run.id or 0)  # type: ignore[arg-type]
    assert plan is not None
    for rollout_id, answer in answers.items():
        item = JudgeWorkItem(
            run_id=run.id or 0, rollout_id=rollout_id, subject_key=f"r:{rollout_id}", status="done"
        )
        session.add(item)
        session.flush()
        prepared = PreparedItem(item.id or 0, rollout_id, None, 0, "", None)
        if answer is None:
            row = verdict_row(plan, prepared, status="error", error="timeout")
        else:
            row = verdict_row(plan, prepared, status="ok", result=score_parsed(plan, answer))
        session.add(Verdict(**row))
    session.commit()
    return run


def make_pair_run(
    session: Session,
    project: Project,
    version: RubricVersion,
    shown: dict[int, tuple[str, str]],
    pairs: dict[int, RolloutPair],
) -> JudgeRun:
    """A pairwise run: ``shown[pair id] = (winner shown AB, winner shown BA)``, positional."""
    run = JudgeRun(
        project_id=project.id or 0,
        rubric_version_id=version.id or 0,
        kind="pairwise",
        judge_snapshot={"name": "pair-judge", "provider": "openai_compat", "model_id": "x"},
        status="completed",
    )
    session.add(run)
    session.commit()
    plan = load_plan(session.get_bind(), run.id or 0)  # type: ignore[arg-type]
    assert plan is not None
    criteria = [c["key"] for c in version.definition["criteria"]]
    for pair_id, (ab, ba) in shown.items():
        pair = pairs[pair_id]
        for order, winner in (("AB", ab), ("BA", ba)):
            item = JudgeWorkItem(
                run_id=run.id or 0,
                rollout_id=pair.rollout_a_id,
                pair_id=pair_id,
                subject_key=f"p:{pair_id}",
                order_shown=order,
                status="done",
            )
            session.add(item)
            session.flush()
            answer = {
                "criteria": {k: {"justification": "j", "winner": winner} for k in criteria},
                "justification": f"shown {order}, {winner} is better",
                "winner": winner,
            }
            prepared = PreparedItem(item.id or 0, pair.rollout_a_id, pair_id, 0, order, None)
            row = verdict_row(plan, prepared, status="ok", result=score_parsed(plan, answer, order))
            session.add(Verdict(**row))
    session.commit()
    return run


# ---- labels, queues and gold sets -------------------------------------------------------------


def add_label(
    session: Session,
    project: Project,
    version: RubricVersion,
    rollout: Rollout,
    annotator: User | str,
    values: dict[str, Any] | None = None,
    *,
    critiques: dict[str, str] | None = None,
    preference: str | None = None,
    pair: RolloutPair | None = None,
) -> Label:
    """A submitted label written straight to the table."""
    if isinstance(annotator, User):
        key, name, user_id = f"user:{annotator.id}", annotator.label, annotator.id
    else:
        key, name, user_id = f"name:{annotator}", annotator, None
    label = Label(
        project_id=project.id or 0,
        rollout_id=rollout.id or 0,
        pair_id=pair.id if pair else None,
        subject_key=f"p:{pair.id}" if pair else f"r:{rollout.id}",
        rubric_version_id=version.id or 0,
        annotator_id=user_id,
        annotator_key=key,
        annotator_name=name,
        values=values or {},
        critiques=critiques or {},
        preference=preference,
        shown_order="AB" if pair else "",
        status="submitted",
        source="ui",
    )
    label.submitted_at = utcnow()
    session.add(label)
    session.commit()
    return label


def make_queue(
    session: Session,
    project: Project,
    version: RubricVersion,
    actor: User,
    *,
    assignees: Sequence[User] = (),
    name: str | None = None,
    overlap: int = 1,
    selection: QueueSelection | None = None,
) -> AnnotationQueue:
    """An annotation queue made by the queue service (every rollout of the project by default)."""
    return queue_service.create_queue(
        session,
        project,
        actor=actor,
        name=name or f"Queue {next(_seq)}",
        rubric_version_id=version.id or 0,
        assignee_ids=[u.id or 0 for u in assignees],
        overlap=overlap,
        selection=selection or QueueSelection(),
    )


def make_gold_set(
    session: Session,
    project: Project,
    actor: User,
    rollouts: Sequence[Rollout],
    *,
    split: str = "test",
) -> list[GoldItem]:
    """Mark labeled rollouts as gold items of a split, through the gold service."""
    return gold_service.add_gold(
        session, project, actor=actor, rollout_ids=[r.id or 0 for r in rollouts], split=split
    )


def bulk_rollouts(session: Session, project: Any, size: int, tag: str) -> list[Rollout]:
    """``size`` rollouts inserted in one multi-row statement (tests of large runs)."""
    now = utcnow()
    session.execute(
        insert(Rollout),
        [
            {
                "project_id": project.id,
                "external_id": f"{tag}-{i:05d}",
                "content_hash": f"{tag}{i:060d}"[:64],
                "input_messages": [{"role": "user", "content": f"Question {i}"}],
                "reference_documents": [],
                "metadata_": {},
                "response": f"An answer ({i})",
                "model": "policy-a",
                "step": i * 10,
                "created_at": now,
            }
            for i in range(size)
        ],
    )
    session.commit()
    query = select(Rollout).where(Rollout.project_id == project.id).order_by(col(Rollout.id))
    return list(session.exec(query).all())


def bulk_run(
    session: Session, project: Any, version: Any, judged: dict[int, dict[str, bool]]
) -> JudgeRun:
    """A completed run with one verdict per rollout, scored by the engine's own code once per
    distinct answer and inserted in bulk."""
    run = JudgeRun(
        project_id=project.id,
        rubric_version_id=version.id,
        judge_snapshot={"name": "bulk-judge", "provider": "openai_compat", "model_id": "x"},
        status="completed",
        items_total=len(judged),
        items_done=len(judged),
    )
    session.add(run)
    session.commit()
    plan = load_plan(session.get_bind(), run.id or 0)  # type: ignore[arg-type]
    assert plan is not None
    session.execute(
        insert(JudgeWorkItem),
        [
            {"run_id": run.id, "rollout_id": rid, "subject_key": f"r:{rid}", "status": "done"}
            for rid in judged
        ],
    )
    items = dict(
        session.exec(
            select(JudgeWorkItem.rollout_id, JudgeWorkItem.id).where(JudgeWorkItem.run_id == run.id)
        ).all()
    )
    shapes: dict[tuple[tuple[str, bool], ...], dict[str, Any]] = {}
    rows = []
    now = utcnow()
    for rid, passes in judged.items():
        shape = tuple(sorted(passes.items()))
        if shape not in shapes:
            prepared = PreparedItem(items[rid], rid, None, 0, "", None)
            answer = boolean_answer(version.definition, passes)
            shapes[shape] = verdict_row(
                plan, prepared, status="ok", result=score_parsed(plan, answer)
            )
        rows.append(
            {**shapes[shape], "work_item_id": items[rid], "rollout_id": rid, "created_at": now}
        )
    session.execute(insert(Verdict), rows)
    session.commit()
    return run
