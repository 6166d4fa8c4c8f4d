"""The calibration demo project: real judge data, loaded through the studio's own imports.

LLMBar's processed MT-Bench set: 200 pairs with their texts and the experts' choice, and GPT-4's
recorded verdicts under two prompting strategies, in both orders, as two external judge runs.
Its figures match LLMBar's published statistics (see docs/calibration.md). Idempotent.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.auth.models import User
from app.core.config import Settings
from app.demo import calibration_data as data
from app.demo.rollouts import import_demo_rollouts
from app.judging import external
from app.judging.models import JudgeRun
from app.labels import exchange
from app.projects import service as project_service
from app.projects.models import Project
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.models import Rubric

DATA_FILE = Path(__file__).parent / "data" / "llmbar_mtbench_gpt4.json"
SLUG = "calibration-demo-mt-bench"
NAME = "Judge calibration on real data (MT-Bench, GPT-4)"
DESCRIPTION = (
    "Real judge data, not synthetic: 200 MT-Bench answer pairs with the experts' choice, and "
    "GPT-4's recorded verdicts under two prompting strategies, each asked in both orders. The "
    "figures reproduce LLMBar's published statistics. LLMBar's files do not record which model "
    "wrote each answer, so this project shows no Elo / Bradley–Terry ratings of models: the "
    "studio does not invent names."
)
RUBRIC_NAME = "Which answer is better (MT-Bench pairs)"


@cache
def load_bundle() -> dict[str, Any]:
    """{"items": [...], "verdicts": {strategy: [[swap False, swap True], ...]}, "statistics"}."""
    with DATA_FILE.open(encoding="utf-8") as handle:
        bundle: dict[str, Any] = json.load(handle)
    return bundle


def results(strategy: str) -> list[dict[str, Any]]:
    """The strategy's verdicts in LLMBar's result.json shape."""
    return [
        {"results": [{"swap = False": {"winner": ab}, "swap = True": {"winner": ba}}]}
        for ab, ba in load_bundle()["verdicts"][strategy]
    ]


def _rubric(session: Session, project: Project, admin: User) -> int:
    rubric = session.exec(
        select(Rubric).where(Rubric.project_id == project.id, Rubric.name == RUBRIC_NAME)
    ).first()
    if rubric is None:
        rubric = rubric_service.create_rubric(
            session,
            project,
            actor=admin,
            name=RUBRIC_NAME,
            description="Pairwise preference, as the MT-Bench experts judged the pairs.",
            template="pairwise_preference",
        )
    version = rubric_service.latest_version(session, rubric.id or 0)
    if version is None:
        version = rubric_publishing.publish_version(
            session, rubric, actor=admin, change_note="Built-in pairwise template."
        )
    return version.id or 0


def load_calibration_demo(session: Session, settings: Settings, admin: User) -> str:
    """Create the project, import pairs, expert labels and the two GPT-4 runs where missing."""
    bundle = load_bundle()
    project = session.exec(select(Project).where(Project.slug == SLUG)).first()
    created = project is None
    if project is None:
        project = project_service.create_project(
            session,
            owner=admin,
            name=NAME,
            description=DESCRIPTION,
            attribution=data.ATTRIBUTION,
        )
        project.slug = SLUG
        session.add(project)
        session.commit()
    version_id = _rubric(session, project, admin)
    items = bundle["items"]
    added = import_demo_rollouts(
        session, settings, project, admin, data.rollout_records(items), "llmbar-mt-bench.jsonl"
    )
    if added:
        text = "".join(json.dumps(line) + "\n" for line in data.label_lines(items))
        exchange.import_labels(
            session, project, actor=admin, rubric_version_id=version_id, text=text, fmt="jsonl"
        )
    have = set(
        session.exec(
            select(JudgeRun.external_judge_name).where(
                JudgeRun.project_id == project.id, col(JudgeRun.kind) == "external"
            )
        ).all()
    )
    for strategy in data.STRATEGIES:
        if data.judge_name(strategy) in have:
            continue
        external.import_verdicts(
            session,
            project,
            actor=admin,
            rubric_version_id=version_id,
            stream=[json.dumps(v) for v in data.verdict_lines(results(strategy), strategy)],
            filename=f"gpt-4-{strategy}.jsonl",
        )
    state = "Loaded demo project" if created or added else "Demo project already loaded"
    return (
        f"  {state}: {project.name} (id {project.id}) — {len(items)} pairs with expert labels, "
        f"{len(data.STRATEGIES)} GPT-4 runs."
    )
