"""Reviewers' audits of a training run: stratified samples drawn in SQL that become audit queues
of the labels domain, and the judge-human agreement over steps their labels give.

Sampling never loads samples: the database assigns each sample its stratum (window functions,
portable between PostgreSQL and SQLite), counts the strata, and returns only the ids of the
drawn rows, ordered within each stratum by a seeded integer hash of the id (reproducible: the
same run, design and seed draw the same samples on either database).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.auth.policies import Permission, role_allows
from app.core.errors import InvalidInput, NotFound, PermissionDenied
from app.drift.audit_models import DriftAudit, DriftAuditSample
from app.drift.buckets import DEFAULT_TARGET, BucketPlan, plan_buckets
from app.drift.models import DriftSample, TrainingRun
from app.drift.signal_types import AgreementBucket as SignalAgreement
from app.drift.step_agreement import (
    AuditPair,
    DeservedAnswer,
    StepAgreement,
    agreement_over_steps,
    signal_buckets,
)
from app.drift.stratify import (
    DEFAULT_REWARD_QUANTILES,
    DEFAULT_STEP_BUCKETS,
    MAX_AUDIT_SIZE,
    ExtraStratum,
    Stratum,
    allocate,
    design_record,
    new_seed,
)
from app.exports.models import ExportBundle
from app.labels import queues
from app.labels import service as label_service
from app.labels.models import AnnotationQueue, Label, LabelTally
from app.labels.values import QueueKind
from app.projects import service as project_service
from app.projects.models import Membership, Project
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.models import RubricVersion
from app.rubrics.scoring import criterion_passes

# The seeded draw order: id x m mod p with p = 2^31 - 1 and a multiplier m drawn from the seed
# (a different permutation of the ids for each seed). Products stay below 2^63 for ids below
# 2^32, so PostgreSQL's bigint and SQLite's integers give exactly the same order.
_PRIME = 2_147_483_647
_HASH = "((s.id * :mult) % 2147483647)"


def seed_multiplier(seed: int) -> int:
    return pow(16807, seed + 1, _PRIME)  # 16807 is a primitive root modulo 2^31 - 1


@dataclass(frozen=True)
class AuditDesign:
    """What the person creating an audit chooses."""

    size: int
    rubric_version_id: int | None = None
    assignee_ids: tuple[int, ...] = ()
    overlap: int = 1
    seed: int | None = None
    step_buckets: int = DEFAULT_STEP_BUCKETS
    reward_quantiles: int = DEFAULT_REWARD_QUANTILES
    extra: ExtraStratum = ExtraStratum.none
    criterion: str | None = None
    name: str = ""


def _version_for(
    session: Session, run: TrainingRun, version_id: int | None
) -> tuple[RubricVersion, RubricDefinition]:
    if version_id is None and run.export_bundle_id is not None:
        bundle = session.get(ExportBundle, run.export_bundle_id)
        version_id = bundle.rubric_version_id if bundle is not None else None
    if version_id is None:
        raise InvalidInput(
            "Choose the rubric version reviewers label with (the training run names no export "
            "bundle to take it from)."
        )
    version = rubric_service.get_project_version(session, run.project_id, version_id)
    definition = label_service.definition_of(version)
    if definition.mode != RubricMode.rubric:
        raise InvalidInput("Audits label single responses: choose a rubric-mode version.")
    return version, definition


def _check_design(design: AuditDesign, definition: RubricDefinition) -> None:
    problems = []
    if not 1 <= design.size <= MAX_AUDIT_SIZE:
        problems.append({"field": "size", "message": f"between 1 and {MAX_AUDIT_SIZE}"})
    if not 1 <= design.step_buckets <= 50:
        problems.append({"field": "step_buckets", "message": "between 1 and 50"})
    if not 1 <= design.reward_quantiles <= 10:
        problems.append({"field": "reward_quantiles", "message": "between 1 and 10"})
    if design.seed is not None and not 0 <= design.seed < 2**31:
        problems.append({"field": "seed", "message": "a whole number from 0 to 2147483647"})
    keys = {c.key for c in definition.criteria}
    if design.extra == ExtraStratum.criterion and design.criterion not in keys:
        problems.append(
            {"field": "criterion", "message": f"one of the rubric's criteria: {sorted(keys)}"}
        )
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(f"The audit design is not valid: {summary}.", details=problems)


def _extra_sql(session: Session, design: AuditDesign, definition: RubricDefinition) -> str:
    """SQL for the third stratifier's value of a row of `s` (-1 when there is none)."""
    if design.extra == ExtraStratum.length:
        return "NTILE(2) OVER (PARTITION BY s.b ORDER BY s.response_chars, s.id)"
    if design.extra == ExtraStratum.criterion:
        criterion = next(c for c in definition.criteria if c.key == design.criterion)
        if criterion.type == "boolean":
            threshold = 0.5
        else:
            values = [level.value for level in criterion.levels]
            threshold = (min(values) + max(values)) / 2
        if session.get_bind().dialect.name == "postgresql":
            value = "CAST(s.judge_criteria ->> :criterion AS DOUBLE PRECISION)"
        else:
            value = "CAST(json_extract(s.judge_criteria, '$.\"' || :criterion || '\"') AS REAL)"
        return f"CASE WHEN {value} IS NULL THEN -1 WHEN {value} >= {threshold} THEN 1 ELSE 0 END"
    return "-1"


_STRATA = """
WITH s AS (
    SELECT id, rollout_id, reward, response_chars, judge_criteria,
           (step - :start) / :width AS b
    FROM drift_sample
    WHERE training_run_id = :run AND step IS NOT NULL AND step >= :start
      AND rollout_id IS NOT NULL
), t AS (
    SELECT s.id, s.rollout_id, s.b,
           NTILE(:quantiles) OVER (PARTITION BY s.b ORDER BY s.reward, s.id) AS q,
           {extra} AS x,
           {hash} AS h
    FROM s
)
"""


def _strata_counts(session: Session, sql: str, params: dict[str, Any]) -> dict[Stratum, int]:
    rows = session.execute(
        text(sql + "SELECT b, q, x, COUNT(*) AS n FROM t GROUP BY b, q, x"), params
    ).all()
    return {Stratum(int(b), int(q), int(x)): int(n) for b, q, x, n in rows}


def _draw(
    session: Session, sql: str, params: dict[str, Any], quota: dict[Stratum, int]
) -> list[tuple[int, int, Stratum]]:
    """(drift sample id, rollout id, stratum) of the drawn rows: the first `quota` of each
    stratum in seeded hash order."""
    if not quota:
        return []
    query = (
        sql + ", r AS (SELECT t.*, ROW_NUMBER() OVER (PARTITION BY b, q, x ORDER BY h, id) AS rn "
        "FROM t) SELECT id, rollout_id, b, q, x, rn FROM r WHERE rn <= :most ORDER BY b, q, x, rn"
    )
    rows = session.execute(text(query), params | {"most": max(quota.values())}).all()
    drawn = []
    for sample_id, rollout_id, b, q, x, rn in rows:
        stratum = Stratum(int(b), int(q), int(x))
        if int(rn) <= quota.get(stratum, 0):
            drawn.append((int(sample_id), int(rollout_id), stratum))
    return drawn


def audit_plan(run: TrainingRun, step_buckets: int) -> BucketPlan:
    """`step_buckets` equal spans of the run's steps (the audit's own, exact count)."""
    if run.step_min is None or run.step_max is None:
        raise InvalidInput(
            "This training run has no samples with a step yet: import samples (or a step/time "
            "log for Nova samples) before auditing it."
        )
    span = run.step_max - run.step_min + 1
    width = max(1, math.ceil(span / step_buckets))
    return BucketPlan(run.step_min, width, math.ceil(span / width))


def create_audit(
    session: Session, project: Project, run: TrainingRun, *, actor: User, design: AuditDesign
) -> DriftAudit:
    """A stratified, seeded sample of the run's drift samples as an audit queue for reviewers.

    The actor needs `drift.audit_create` (reviewers, engineers, admins); the assignees need
    `drift.audit` (they label). Without assignees: the actor if they may label in audit queues,
    else every member who may.
    """
    membership = project_service.get_membership(session, project.id or 0, actor.id or 0)
    if membership is None or not role_allows(membership.role, Permission.drift_audit_create):
        raise PermissionDenied(
            "Your role in this project cannot create audits (reviewers, engineers and admins can)."
        )
    version, definition = _version_for(session, run, design.rubric_version_id)
    _check_design(design, definition)
    plan = audit_plan(run, design.step_buckets)
    seed = design.seed if design.seed is not None else new_seed()
    sql = _STRATA.format(extra=_extra_sql(session, design, definition), hash=_HASH)
    params: dict[str, Any] = {
        "run": run.id,
        "start": plan.start,
        "width": plan.width,
        "quantiles": design.reward_quantiles,
        "mult": seed_multiplier(seed),
        "criterion": design.criterion or "",
    }
    counts = _strata_counts(session, sql, params)
    if not counts:
        raise InvalidInput("This training run has no samples to audit yet.")
    quota = allocate(counts, design.size)
    drawn = _draw(session, sql, params, quota)
    record = design_record(
        size=design.size,
        seed=seed,
        plan={"start": plan.start, "width": plan.width, "count": plan.count},
        quantiles=design.reward_quantiles,
        extra=design.extra,
        criterion=design.criterion,
        counts=counts,
        quota=quota,
    )
    name = design.name.strip() or f"Audit of {run.name}: {len(drawn)} samples (seed {seed})"
    audit = DriftAudit(
        project_id=project.id or 0,
        training_run_id=run.id or 0,
        queue_id=0,
        size=design.size,
        seed=seed,
        design=record,
        created_by_id=actor.id,
    )
    queue = queues.build_queue(
        session,
        project,
        actor=actor,
        name=name[:200],
        rubric_version_id=version.id or 0,
        assignee_ids=design.assignee_ids
        or tuple(u.id or 0 for u in default_assignees(session, project, actor)),
        overlap=design.overlap,
        selection=queues.QueueSelection(
            source="drift_audit", training_run_id=run.id, sample_size=design.size, seed=seed
        ),
        kind=QueueKind.audit.value,
        subjects=[(rollout_id, None) for _sid, rollout_id, _s in drawn],
    )
    audit.queue_id = queue.id or 0
    session.add(audit)
    session.flush()
    for sample_id, rollout_id, stratum in drawn:
        session.add(
            DriftAuditSample(
                audit_id=audit.id or 0,
                drift_sample_id=sample_id,
                rollout_id=rollout_id,
                stratum=stratum.name(design.extra),
            )
        )
    audit_service.record(
        session,
        actor=actor,
        action="drift_audit.create",
        object_type="drift_audit",
        object_id=audit.id,
        project_id=project.id,
        summary=f"created a stratified audit of training run “{run.name}” with "
        f"{len(drawn)} samples (seed {seed})",
        details={
            "queue_id": queue.id,
            "design": {k: v for k, v in record.items() if k != "strata"},
        },
    )
    session.commit()
    return audit


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "strata"}


@dataclass(frozen=True)
class AuditRow:
    audit: DriftAudit
    queue: AnnotationQueue
    samples: int
    labelled: int


def list_audits(session: Session, run: TrainingRun) -> list[AuditRow]:
    rows = session.exec(
        select(DriftAudit, AnnotationQueue)
        .join(AnnotationQueue, col(AnnotationQueue.id) == col(DriftAudit.queue_id))
        .where(DriftAudit.training_run_id == run.id)
        .order_by(col(DriftAudit.id).desc())
    ).all()
    result = []
    for audit, queue in rows:
        samples, labelled = queues.queue_counts(session, queue)
        result.append(AuditRow(audit, queue, samples, labelled))
    return result


def get_audit(session: Session, project_id: int, audit_id: int) -> DriftAudit:
    audit = session.get(DriftAudit, audit_id)
    if audit is None or audit.project_id != project_id:
        raise NotFound(f"No audit with id {audit_id} in this project.")
    return audit


def audit_row(session: Session, audit: DriftAudit) -> AuditRow:
    queue = session.get(AnnotationQueue, audit.queue_id)
    if queue is None:  # pragma: no cover - the queue cascades to the audit
        raise NotFound("The audit's queue no longer exists.")
    samples, labelled = queues.queue_counts(session, queue)
    return AuditRow(audit, queue, samples, labelled)


# ---- judge-human agreement over steps -----------------------------------------------------


def _definitions(session: Session, version_ids: Sequence[int]) -> dict[int, RubricDefinition]:
    versions = session.exec(select(RubricVersion).where(col(RubricVersion.id).in_(version_ids)))
    return {v.id or 0: label_service.definition_of(v) for v in versions}


def _passes(criterion: Any, value: Any) -> bool | None:
    if value is None or isinstance(value, str):
        return None
    try:
        return criterion_passes(criterion.model_dump(mode="json"), value)
    except (TypeError, ValueError):
        return None


def audit_pairs(session: Session, run: TrainingRun) -> tuple[list[AuditPair], list[DeservedAnswer]]:
    """Every submitted label on the run's samples (audits are small: a few hundred labels),
    paired with the training-time judge's recorded verdict criterion by criterion."""
    rows = session.execute(
        sa_select(
            col(DriftSample.id),
            col(DriftSample.step),
            col(DriftSample.judge_status),
            col(DriftSample.judge_criteria),
            col(Label.rubric_version_id),
            col(Label.values),
            col(Label.deserved),
        )
        .join(Label, col(Label.rollout_id) == col(DriftSample.rollout_id))
        .where(
            col(DriftSample.training_run_id) == run.id,
            col(DriftSample.step).is_not(None),
            col(Label.status) == "submitted",
            col(Label.pair_id).is_(None),
        )
    ).all()
    definitions = _definitions(session, sorted({int(r[4]) for r in rows}))
    pairs: list[AuditPair] = []
    answers: list[DeservedAnswer] = []
    for sample_id, step, status, judged, version_id, values, deserved in rows:
        if deserved:
            answers.append(DeservedAnswer(int(sample_id), int(step), str(deserved)))
        if status != "ok":
            continue
        definition = definitions.get(int(version_id))
        for criterion in definition.criteria if definition else []:
            judge = _passes(criterion, (judged or {}).get(criterion.key))
            human = _passes(criterion, (values or {}).get(criterion.key))
            if judge is not None and human is not None:
                pairs.append(AuditPair(int(sample_id), int(step), criterion.key, judge, human))
    return pairs, answers


def dashboard_plan(run: TrainingRun) -> BucketPlan | None:
    """The run's dashboard buckets, so agreement lines up with the other series."""
    return plan_buckets(run.step_min, run.step_max, target=DEFAULT_TARGET)


def step_agreement(
    session: Session, run: TrainingRun, plan: BucketPlan | None = None
) -> StepAgreement | None:
    """Judge-human agreement per step bucket and early versus late (None: no steps yet)."""
    plan = plan or dashboard_plan(run)
    if plan is None:
        return None
    pairs, answers = audit_pairs(session, run)
    return agreement_over_steps(plan, pairs, answers)


def labels_marker(session: Session, project_id: int) -> tuple[int, int]:
    """How many times the project's labels were written (`LabelTally`, kept by triggers), and
    under how many rubrics: part of the key of anything cached from audit labels (a new, changed
    or deleted label gives a new key). A few rows by index, whatever the number of labels."""
    written, rubrics = session.execute(
        sa_select(func.sum(col(LabelTally.changes)), func.count()).where(
            col(LabelTally.project_id) == project_id
        )
    ).one()
    return int(written or 0), int(rubrics or 0)


def agreement_buckets(session: Session, run: TrainingRun) -> list[SignalAgreement]:
    """What `agreement_drop` and `reward_without_quality` read: per dashboard bucket, audited
    samples, those where the training-time judge agreed with reviewers, those people passed."""
    result = step_agreement(session, run)
    return signal_buckets(result) if result is not None else []


def auditors(session: Session, project_id: int) -> list[User]:
    """Project members whose role may audit (the assignee picker of a new audit)."""
    rows = session.exec(
        select(User, Membership)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.project_id == project_id)
        .order_by(col(User.email))
    ).all()
    return [user for user, m in rows if role_allows(m.role, Permission.drift_audit)]


def default_assignees(session: Session, project: Project, actor: User) -> list[User]:
    """Who labels an audit when nobody is chosen: its creator if they may label in audit
    queues (a reviewer), else every member who may (an engineer creates it for the reviewers)."""
    everyone = auditors(session, project.id or 0)
    mine = [user for user in everyone if user.id == actor.id]
    return mine or everyone


def version_choices(session: Session, project_id: int) -> list[Any]:
    """Rubric-mode versions reviewers may label with."""
    return rubric_service.version_choices(session, project_id, mode="rubric")


def run_bundle(session: Session, run: TrainingRun) -> ExportBundle | None:
    if run.export_bundle_id is None:
        return None
    return session.get(ExportBundle, run.export_bundle_id)
