"""Rows the labeling and agreement tests need, inserted directly: rubric versions from the
built-in templates, rollouts (the legal demo's or made up), judge runs whose verdicts are
scored by the judge engine's own code (so they have exactly the shape it stores), and labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from app.auth.models import User
from app.core.clock import utcnow
from app.judging.engine import PreparedItem, load_plan, score_parsed, verdict_row
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import Label
from app.projects.models import Project
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.builtin import BUILTIN_TEMPLATES
from app.rubrics.definition import RubricDefinition, content_hash
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.output_schema import build_output_schema

_seq = itertools.count(1)


def make_version(
    session: Session,
    project: Project,
    template: str = "generic_pass_fail",
    *,
    rubric: Rubric | None = None,
    definition: RubricDefinition | None = None,
) -> RubricVersion:
    """A published version of a new rubric (or the next version of ``rubric``)."""
    definition = definition or BUILTIN_TEMPLATES[template]
    if rubric is None:
        rubric = Rubric(
            project_id=project.id or 0,
            name=f"{definition.title} #{next(_seq)}",
            mode=definition.mode,
        )
        session.add(rubric)
        session.flush()
    number = 1 + sum(1 for v in session.exec(_versions_of(rubric.id or 0)).all())
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=project.id or 0,
        number=number,
        definition=definition.model_dump(mode="json"),
        output_schema=build_output_schema(definition),
        content_hash=content_hash(definition),
        change_note="test version",
    )
    session.add(version)
    session.commit()
    return version


def _versions_of(rubric_id: int) -> Any:
    from sqlmodel import select

    return select(RubricVersion.id).where(RubricVersion.rubric_id == rubric_id)


def make_rollouts(
    session: Session,
    project: Project,
    count: int,
    *,
    document: str | None = None,
    response: str = "An answer.",
    prefix: str = "r",
) -> list[Rollout]:
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
    pairs = [
        RolloutPair(project_id=project.id or 0, rollout_a_id=a.id or 0, rollout_b_id=b.id or 0)
        for a, b in zip(rollouts[::2], rollouts[1::2], strict=True)
    ]
    session.add_all(pairs)
    session.commit()
    return pairs


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
    from app.core.clock import utcnow

    label.submitted_at = utcnow()
    session.add(label)
    session.commit()
    return label


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
