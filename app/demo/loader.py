"""Load the demo projects into a database, once: `rubric-studio demo` calls this.

Two projects: the legal contract review reference case (CUAD contracts, grouped generations) and
a preference-pair project (LLMBar). Their rollouts go through the real import path, so running
the demo again adds nothing.
"""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.auth.models import User
from app.core.config import Settings
from app.core.jobs import new_worker_id
from app.demo.calibration import load_calibration_demo
from app.demo.rollouts import import_demo_rollouts
from app.projects import service as project_service
from app.projects.models import Project
from app.rollouts import jobs as rollout_jobs
from app.rollouts import service as rollout_service
from app.rubrics import demo as rubric_demo

LEGAL_SLUG = "legal-contract-review-demo"
PREFERENCE_SLUG = "preference-pairs-demo"
PREFERENCE_NAME = "Instruction following pairs (LLMBar demo)"
PREFERENCE_DESCRIPTION = (
    "Preference judging: two answers to the same instruction, one of them better. Each pair "
    "keeps the LLMBar experts' gold choice in its metadata (gold_label A or B)."
)


def load_demo(session: Session, settings: Settings, admin: User) -> str:
    """Create the demo projects and import their rollouts where missing. Returns a summary."""
    return "\n".join(
        [
            _load_legal(session, settings, admin),
            _load_preference(session, settings, admin),
            load_calibration_demo(session, settings, admin),
        ]
    )


def _project(session: Session, slug: str) -> Project | None:
    return session.exec(select(Project).where(Project.slug == slug)).first()


def _create(session: Session, slug: str, admin: User, **fields: Any) -> Project:
    project = project_service.create_project(session, owner=admin, **fields)
    project.slug = slug
    session.add(project)
    session.commit()
    return project


def _load_legal(session: Session, settings: Settings, admin: User) -> str:
    from app.demo.legal import build_legal_demo

    dataset = build_legal_demo()
    project = _project(session, LEGAL_SLUG)
    created = project is None
    if project is None:
        project = _create(
            session,
            LEGAL_SLUG,
            admin,
            name=dataset.project_name,
            description=dataset.project_description,
            policy_system_prompt=dataset.policy_system_prompt,
            output_schema=dataset.output_schema,
            attribution=dataset.attribution,
        )
    rubric_demo.ensure_demo_rubric(session, project, admin)
    added = import_demo_rollouts(
        session, settings, project, admin, dataset.rollouts, "cuad-contract-review-demo.jsonl"
    )
    groups = len({record["group"] for record in dataset.rollouts})
    samples = load_demo_training_run(session, settings, project, admin)
    _load_demo_audit(session, project, admin)
    return _summary(
        project,
        created,
        added + samples,
        f"{len(dataset.rollouts)} rollouts in {groups} groups, a synthetic training run",
    )


def _load_demo_audit(session: Session, project: Project, admin: User) -> None:
    """The small stratified audit of the demo run, already labelled (app/demo/audit.py)."""
    from app.demo.audit import load_demo_audit
    from app.demo.drift import RUN_NAME
    from app.drift import service as drift_service

    run = drift_service.find_training_run(session, project.id or 0, RUN_NAME)
    if run is not None:
        load_demo_audit(session, project, run, admin)


def load_demo_training_run(
    session: Session, settings: Settings, project: Project, admin: User
) -> int:
    """The synthetic training run (app/demo/drift.py), imported once; returns samples added."""
    from app.demo.drift import RUN_NAME, RUN_NOTES, build_drift_records
    from app.demo.legal import MODEL_NAME
    from app.drift import service as drift_service
    from app.drift.jobs import DriftImportRunner

    run = drift_service.find_training_run(session, project.id or 0, RUN_NAME)
    if run is None:
        run = drift_service.create_training_run(
            session,
            project,
            admin,
            name=RUN_NAME,
            base_model=f"{MODEL_NAME} (synthetic)",
            notes=RUN_NOTES,
            synthetic=True,
        )
    records = build_drift_records()
    if run.sample_count >= len(records):
        return 0
    data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    worker_id = f"demo:{new_worker_id()}"
    job = drift_service.create_drift_import(
        session,
        settings,
        project,
        run,
        admin,
        filename="legal-drift-demo.jsonl",
        source=io.BytesIO(data.encode("utf-8")),
        claim_by=worker_id,
    )
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    finished = rollout_jobs.process_import(
        engine, settings, job.id or 0, worker_id, runner_class=DriftImportRunner
    )
    if finished is None or finished.status != rollout_service.DONE:
        message = finished.message if finished else "the import disappeared"
        raise RuntimeError(f"the demo training run could not be imported: {message}")
    return finished.inserted


def _load_preference(session: Session, settings: Settings, admin: User) -> str:
    from app.demo.preference import PREFERENCE_ATTRIBUTION, build_preference_demo

    records = build_preference_demo()
    project = _project(session, PREFERENCE_SLUG)
    created = project is None
    if project is None:
        project = _create(
            session,
            PREFERENCE_SLUG,
            admin,
            name=PREFERENCE_NAME,
            description=PREFERENCE_DESCRIPTION,
            attribution=PREFERENCE_ATTRIBUTION,
        )
    added = import_demo_rollouts(
        session, settings, project, admin, records, "llmbar-natural-pairs-demo.jsonl"
    )
    return _summary(project, created, added, f"{len(records)} preference pairs")


def _summary(project: Project, created: bool, added: int, contents: str) -> str:
    state = "Loaded demo project" if created or added else "Demo project already loaded"
    return f"  {state}: {project.name} (id {project.id}) — {contents}."
