"""`label_tally` counts every write of a rubric's submitted labels, whoever makes it (database
triggers, migration 0021; drafts do not count): the key of the figures computed from labels is
one row read by key."""

from __future__ import annotations

from sqlalchemy import delete, insert, update
from sqlmodel import Session, select

from app.drift import audit_service
from app.labels import run_subjects
from app.labels.models import Label, LabelTally
from app.projects.models import Project
from app.rubrics.builtin import get_builtin
from tests.support.factories import (
    add_label,
    bulk_rollouts,
    bulk_run,
    make_project,
    make_user,
    make_version,
)


def _written(session: Session, rubric_id: int) -> int:
    session.expire_all()
    tally = session.get(LabelTally, rubric_id)
    return tally.changes if tally else 0


def test_every_write_of_a_rubrics_labels_is_counted(session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Tally")
    version = make_version(session, project)
    other = make_version(session, project)
    rollouts = bulk_rollouts(session, project, 6, "tally")
    keys_of = [c.key for c in get_builtin("generic_pass_fail").criteria]
    run = bulk_run(
        session, project, version, {r.id or 0: dict.fromkeys(keys_of, True) for r in rollouts}
    )
    context = run_subjects.run_context(session, run)
    keys = [run_subjects.data_version(session, context)]
    markers = [audit_service.labels_marker(session, project.id or 0)]

    def changed() -> None:
        session.commit()
        keys.append(run_subjects.data_version(session, context))
        markers.append(audit_service.labels_marker(session, project.id or 0))
        assert keys[-1] != keys[-2] and markers[-1] != markers[-2]

    first = add_label(session, project, version, rollouts[0], owner, {"x": True})  # ORM insert
    assert _written(session, version.rubric_id) == 1
    changed()
    # One statement of three rows (as a bulk import writes): three writes.
    session.execute(
        insert(Label),
        [
            {
                "project_id": project.id,
                "rollout_id": r.id,
                "subject_key": f"r:{r.id}",
                "rubric_version_id": version.id,
                "annotator_key": "name:bulk",
                "annotator_name": "bulk",
                "values": {},
                "critiques": {},
                "shown_order": "",
                "status": "submitted",
                "source": "import",
                "revision": 1,
                "created_at": first.created_at,
                "updated_at": first.updated_at,
            }
            for r in rollouts[1:4]
        ],
    )
    assert _written(session, version.rubric_id) == 4
    changed()
    session.execute(update(Label).where(Label.id == first.id).values(revision=2))
    assert _written(session, version.rubric_id) == 5
    changed()
    # A draft is read by no figure: saving one changes no key.
    draft = add_label(session, project, version, rollouts[5], owner, {"x": True})
    assert _written(session, version.rubric_id) == 6
    changed()
    session.execute(update(Label).where(Label.id == draft.id).values(status="draft"))
    session.commit()  # submitted → draft: counted (the old row was submitted)
    assert _written(session, version.rubric_id) == 7
    keys.append(run_subjects.data_version(session, context))
    session.execute(update(Label).where(Label.id == draft.id).values(revision=5))
    session.execute(delete(Label).where(Label.id == draft.id))
    session.commit()
    assert _written(session, version.rubric_id) == 7
    assert run_subjects.data_version(session, context) == keys[-1]
    markers.append(audit_service.labels_marker(session, project.id or 0))
    session.execute(delete(Label).where(Label.id == first.id))
    assert _written(session, version.rubric_id) == 8
    changed()
    # Another rubric's labels leave this rubric's runs alone (the project's marker moves).
    add_label(session, project, other, rollouts[0], owner, {"x": True})
    assert _written(session, version.rubric_id) == 8 and _written(session, other.rubric_id) == 1
    assert run_subjects.data_version(session, context) == keys[-1]
    assert audit_service.labels_marker(session, project.id or 0) != markers[-1]


def test_deleting_a_project_with_labels_takes_its_tally(session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Gone")
    version = make_version(session, project)
    rollouts = bulk_rollouts(session, project, 2, "gone")
    add_label(session, project, version, rollouts[0], owner, {"x": True})
    assert session.exec(select(LabelTally)).all()
    session.execute(delete(Project).where(Project.id == project.id))
    session.commit()
    assert session.exec(select(LabelTally)).all() == []
