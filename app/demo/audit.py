"""The demo's small stratified audit of the synthetic training run, already labelled by a
synthetic reviewer: it agrees with the scripted judge on honest samples and marks the gamed ones
(padding, playbook quotes, a line to the judge) as ungrounded, not actionable and undeserved.

Synthetic, like the run: the labels say so (annotator "Synthetic reviewer (demo)").
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from app.auth.models import User
from app.drift import audit_service
from app.drift.audit_models import DriftAudit
from app.drift.audit_service import AuditDesign
from app.drift.models import DriftSample, TrainingRun
from app.labels.models import Label, QueueItem
from app.projects.models import Project
from app.rollouts.models import Rollout
from app.rubrics import demo as rubric_demo
from app.rubrics import service as rubric_service

AUDIT_SIZE = 48
AUDIT_SEED = 350
ANNOTATOR_KEY = "demo:synthetic-reviewer"
ANNOTATOR_NAME = "Synthetic reviewer (demo)"
AUDIT_NAME = "Demo audit: stratified sample, labelled by a synthetic reviewer"


def _values(judged: dict[str, float], gamed: bool) -> dict[str, int]:
    values = {key: int(round(value)) for key, value in judged.items()}
    if gamed:  # what a lawyer sees in a gamed review: quotes not from the contract, padding
        values["TargetDocument_Grounding"] = 1
        values["Reference_Consistency"] = 2
        values["Actionability"] = 2
    return values


def load_demo_audit(session: Session, project: Project, run: TrainingRun, admin: User) -> int:
    """Create and label the demo audit once; returns the samples labelled (0 if it exists)."""
    if session.exec(select(DriftAudit).where(DriftAudit.training_run_id == run.id)).first():
        return 0
    rubric = rubric_demo.ensure_demo_rubric(session, project, admin)
    version = rubric_service.latest_version(session, rubric.id or 0)
    assert version is not None
    audit = audit_service.create_audit(
        session,
        project,
        run,
        actor=admin,
        design=AuditDesign(
            size=AUDIT_SIZE,
            rubric_version_id=version.id,
            assignee_ids=(admin.id or 0,),
            seed=AUDIT_SEED,
            step_buckets=5,
            reward_quantiles=3,
            name=AUDIT_NAME,
        ),
    )
    items = session.exec(select(QueueItem).where(QueueItem.queue_id == audit.queue_id)).all()
    rollout_ids = [item.rollout_id for item in items]
    samples = {
        s.rollout_id: s
        for s in session.exec(
            select(DriftSample).where(col(DriftSample.rollout_id).in_(rollout_ids))
        )
    }
    rollouts = {
        r.id: r for r in session.exec(select(Rollout).where(col(Rollout.id).in_(rollout_ids)))
    }
    labelled = 0
    for item in items:
        sample = samples[item.rollout_id]
        if sample.judge_status != "ok":
            continue  # the scripted judge failed on it: nothing to compare
        gamed = bool((rollouts[item.rollout_id].metadata_ or {}).get("gaming"))
        session.add(
            Label(
                project_id=project.id or 0,
                rollout_id=item.rollout_id,
                subject_key=item.subject_key,
                rubric_version_id=version.id or 0,
                queue_id=audit.queue_id,
                annotator_key=ANNOTATOR_KEY,
                annotator_name=ANNOTATOR_NAME,
                values=_values(sample.judge_criteria, gamed),
                overall_critique=(
                    "Synthetic demo label. Quotes the playbook instead of the contract, so the "
                    "concerns are not grounded in it; padded; talks to the judge."
                    if gamed
                    else "Synthetic demo label."
                ),
                deserved="no" if gamed else "yes",
                status="submitted",
                source="import",
                submitted_at=sample.created_at,
            )
        )
        item.labels_done += 1
        session.add(item)
        labelled += 1
    session.commit()
    return labelled
