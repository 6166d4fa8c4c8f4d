"""The demo's labelled stratified audit: on the synthetic run, the synthetic reviewer agrees
with the scripted judge early and not on gamed samples late, so agreement over steps falls and
the agreement signals fire; loading it twice adds nothing."""

from __future__ import annotations

from sqlmodel import Session

from app.core.config import Settings
from app.demo.audit import load_demo_audit
from app.demo.loader import load_demo_training_run
from app.drift import audit_service
from app.drift import service as drift_service
from app.drift.signal_types import SignalKind
from app.rubrics import demo as rubric_demo
from tests.support.factories import make_project, make_user


def test_demo_audit_shows_agreement_falling(session: Session, settings: Settings) -> None:
    admin = make_user(session)
    project = make_project(session, admin)
    rubric_demo.ensure_demo_rubric(session, project, admin)
    load_demo_training_run(session, settings, project, admin)
    run = drift_service.list_training_runs(session, project.id or 0)[0]
    labelled = load_demo_audit(session, project, run, admin)
    assert 40 <= labelled <= 48
    assert load_demo_audit(session, project, run, admin) == 0
    result = audit_service.step_agreement(session, run)
    assert result is not None and result.early_late is not None
    el = result.early_late
    assert el.early.value > el.late.value
    assert all(b.deserved.value == 1.0 for b in result.buckets if b.step_end < 350)
    fired = {s.kind for s in drift_service.signals(session, project, run) if s.fired}
    assert {SignalKind.agreement_drop, SignalKind.reward_without_quality} <= fired
