"""Stratified audits: drawn in SQL by step bucket x reward quantile (and optionally length or a
criterion's verdict), seeded and reproducible, recorded with their design, labelled blind in an
audit queue by reviewers; and judge-human agreement over steps from those labels."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import Session, select

from app.core.errors import InvalidInput, PermissionDenied
from app.drift import audit_service
from app.drift.audit_models import DriftAuditSample
from app.drift.audit_service import AuditDesign
from app.drift.models import DriftSample
from app.drift.stratify import ExtraStratum
from app.labels import annotation as label_annotation
from app.labels import queues
from app.labels.models import AnnotationQueue, QueueItem
from app.labels.service import LabelInput
from tests.integration.drift.audit_world import CRITERIA, make_world


def _design(w, **kw) -> AuditDesign:
    base = {
        "size": 40,
        "rubric_version_id": w.version.id,
        "assignee_ids": (w.reviewer.id, w.reviewer2.id),
        "seed": 7,
    }
    return AuditDesign(**(base | kw))


def _drawn(session: Session, audit_id: int) -> list[tuple[int, str]]:
    rows = session.exec(select(DriftAuditSample).where(DriftAuditSample.audit_id == audit_id)).all()
    return sorted((r.drift_sample_id, r.stratum) for r in rows)


def test_audit_is_stratified_seeded_and_recorded_with_its_design(session: Session) -> None:
    w = make_world(session)
    audit = audit_service.create_audit(
        session, w.project, w.run, actor=w.reviewer, design=_design(w)
    )
    drawn = _drawn(session, audit.id)
    assert len(drawn) == 40
    # 5 step buckets x 4 reward quartiles, equal allocation: 2 from each of the 20 strata.
    strata = Counter(stratum for _, stratum in drawn)
    assert len(strata) == 20 and set(strata.values()) == {2}
    design = audit.design
    assert design["seed"] == 7 and design["reward_quantiles"] == 4 and design["sampled"] == 40
    assert sum(s["drawn"] for s in design["strata"]) == 40
    assert sum(s["available"] for s in design["strata"]) == 600
    # Reward quartiles within a bucket: every q1 sample's reward is below every q4 sample's.
    rewards = {
        s.id: (s.step, s.reward)
        for s in session.exec(select(DriftSample).where(DriftSample.training_run_id == w.run.id))
    }
    for bucket in range(5):
        low = [rewards[i][1] for i, name in drawn if name == f"b{bucket}-q1"]
        high = [rewards[i][1] for i, name in drawn if name == f"b{bucket}-q4"]
        assert max(low) < min(high)
    queue = session.get(AnnotationQueue, audit.queue_id)
    assert queue.kind == "audit" and queue.selection["source"] == "drift_audit"
    items = session.exec(select(QueueItem).where(QueueItem.queue_id == queue.id)).all()
    assert len(items) == 40
    # The same run, design and seed draw the same samples.
    again = audit_service.create_audit(
        session, w.project, w.run, actor=w.engineer, design=_design(w)
    )
    assert _drawn(session, again.id) == drawn
    other = audit_service.create_audit(
        session, w.project, w.run, actor=w.reviewer, design=_design(w, seed=8)
    )
    assert _drawn(session, other.id) != drawn


@pytest.mark.parametrize("extra", [ExtraStratum.length, ExtraStratum.criterion])
def test_a_third_stratifier(session: Session, extra: ExtraStratum) -> None:
    w = make_world(session, samples=400)
    design = _design(
        w,
        size=80,
        step_buckets=2,
        reward_quantiles=2,
        extra=extra,
        criterion=CRITERIA[0] if extra == ExtraStratum.criterion else None,
    )
    audit = audit_service.create_audit(session, w.project, w.run, actor=w.reviewer, design=design)
    strata = Counter(stratum for _, stratum in _drawn(session, audit.id))
    suffixes = {"-short", "-long"} if extra == ExtraStratum.length else {"-pass", "-fail"}
    assert {name[name.rindex("-") :] for name in strata} == suffixes
    assert len(strata) == 8 and set(strata.values()) == {10}
    if extra == ExtraStratum.criterion:
        judged = {
            s.id: s.judge_criteria[CRITERIA[0]]
            for s in session.exec(
                select(DriftSample).where(DriftSample.training_run_id == w.run.id)
            )
        }
        for sample_id, name in _drawn(session, audit.id):
            assert (judged[sample_id] == 1) == name.endswith("-pass")


def test_bad_designs_and_roles_are_refused_in_plain_words(session: Session) -> None:
    w = make_world(session, samples=40)
    with pytest.raises(InvalidInput, match="size"):
        audit_service.create_audit(
            session, w.project, w.run, actor=w.reviewer, design=_design(w, size=0)
        )
    with pytest.raises(InvalidInput, match="criterion"):
        audit_service.create_audit(
            session,
            w.project,
            w.run,
            actor=w.reviewer,
            design=_design(w, extra=ExtraStratum.criterion, criterion="nope"),
        )
    session.rollback()
    # Experts label calibration queues; audit queues are for roles with drift.audit.
    with pytest.raises(InvalidInput, match="cannot audit"):
        audit_service.create_audit(
            session,
            w.project,
            w.run,
            actor=w.reviewer,
            design=_design(w, assignee_ids=(w.expert.id,)),
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="rubric version"):
        audit_service.create_audit(
            session, w.project, w.run, actor=w.reviewer, design=_design(w, rubric_version_id=None)
        )


def _label_all(session, w, audit, user, *, human_pass, deserved="yes"):
    queue = session.get(AnnotationQueue, audit.queue_id)
    items = session.exec(
        select(QueueItem).where(QueueItem.queue_id == queue.id).order_by(QueueItem.position)
    ).all()
    for item in items:
        sample = session.exec(
            select(DriftSample).where(DriftSample.rollout_id == item.rollout_id)
        ).one()
        values = {k: ("pass" if human_pass(sample, k) else "fail") for k in CRITERIA}
        label_annotation.submit_label(
            session, queue, item, user, LabelInput(values=values, deserved=deserved)
        )


def test_audit_labels_need_the_deserved_answer_and_a_reviewer(session: Session) -> None:
    w = make_world(session, samples=40)
    audit = audit_service.create_audit(
        session, w.project, w.run, actor=w.reviewer, design=_design(w, size=4)
    )
    queue = session.get(AnnotationQueue, audit.queue_id)
    item = session.exec(select(QueueItem).where(QueueItem.queue_id == queue.id)).first()
    values = dict.fromkeys(CRITERIA, "pass")
    with pytest.raises(InvalidInput) as refused:
        label_annotation.submit_label(session, queue, item, w.reviewer, LabelInput(values=values))
    assert any("deserved its reward" in p["message"] for p in refused.value.details)
    with pytest.raises(InvalidInput) as refused:
        label_annotation.submit_label(
            session, queue, item, w.reviewer, LabelInput(values=values, deserved="maybe")
        )
    assert any("yes, no or unsure" in p["message"] for p in refused.value.details)
    result = label_annotation.submit_label(
        session, queue, item, w.reviewer, LabelInput(values=values, deserved="no")
    )
    assert result.label.deserved == "no"
    # Someone assigned who lost the right to audit (now an expert) cannot label there.
    from app.projects import service as project_service

    membership = project_service.get_membership(session, w.project.id, w.reviewer2.id)
    project_service.set_member_role(
        session, w.project, membership_id=membership.id, role="expert", actor=w.owner
    )
    with pytest.raises(PermissionDenied, match="Audit queues"):
        label_annotation.submit_label(
            session, queue, item, w.reviewer2, LabelInput(values=values, deserved="yes")
        )
    assert queues.queue_counts(session, queue) == (4, 1)


def test_agreement_over_steps_drops_when_late_labels_disagree(session: Session) -> None:
    w = make_world(session, samples=600)
    audit = audit_service.create_audit(
        session, w.project, w.run, actor=w.reviewer, design=_design(w, size=60)
    )

    # Early the reviewer agrees with the judge on every criterion; after step 360 never.
    def human(sample, key):
        judged = sample.judge_criteria[key] == 1
        return judged if sample.step < 360 else not judged

    from app.drift import service as drift_service
    from app.drift.signal_types import SignalKind

    # Signals are kept per data version: asked again, the same figures; labels give new ones.
    unlabelled = drift_service.signals(session, w.project, w.run)
    assert drift_service.signals(session, w.project, w.run) is unlabelled
    assert SignalKind.agreement_drop not in {s.kind for s in unlabelled if s.fired}
    _label_all(session, w, audit, w.reviewer, human_pass=human)
    result = audit_service.step_agreement(session, w.run)
    assert result is not None and result.samples == 60
    assert result.pairs == 60 * len(CRITERIA)
    early = [b for b in result.buckets if b.step_end < 360]
    late = [b for b in result.buckets if b.step_start >= 360]
    assert early and late
    assert all(b.agreement == 1.0 for b in early) and all(b.agreement == 0.0 for b in late)
    assert all(b.deserved.value == 1.0 for b in result.buckets)
    el = result.early_late
    assert el.early.value == 1.0 and el.late.value == 0.0 and el.difference == -1.0
    assert el.p_value.value is not None and el.p_value.value < 1e-6
    # What the drift signals read: sample counts per bucket, and agreement_drop fires.
    signal_rows = audit_service.agreement_buckets(session, w.run)
    assert sum(b.n for b in signal_rows) == 60
    assert all(b.agreements == b.n for b in signal_rows if b.step_end < 360)
    assert all(b.agreements == 0 for b in signal_rows if b.step_start >= 360)
    fired = {s.kind for s in drift_service.signals(session, w.project, w.run) if s.fired}
    assert SignalKind.agreement_drop in fired
    for bucket in result.buckets:
        figures = bucket.figures
        assert figures.agreement.ci_low <= figures.agreement.value <= figures.agreement.ci_high
