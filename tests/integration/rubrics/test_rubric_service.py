"""Rubric service on a real database: drafts with an optimistic lock (also under true
concurrency), publishing frozen versions, sign-off, few-shot candidates, audit and the demo."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.core.errors import Conflict, InvalidInput, PermissionDenied
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.rubrics import comparison as rubric_comparison
from app.rubrics import demo as rubric_demo
from app.rubrics import examples as rubric_examples
from app.rubrics import previews as rubric_previews
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition, content_hash
from app.rubrics.models import FrozenVersionError, Rubric, RubricApproval, RubricVersion
from app.rubrics.output_schema import build_output_schema
from tests.integration.rubrics.conftest import World
from tests.support.factories import make_rollout


def _legal(session: Session, world: World, name: str = "Legal") -> Rubric:
    return rubric_service.create_rubric(
        session, world.project, actor=world.expert, name=name, template="legal_contract_review"
    )


def _edited(draft: dict[str, Any], description: str) -> dict[str, Any]:
    changed = dict(draft)
    changed["criteria"] = [dict(c) for c in draft["criteria"]]
    changed["criteria"][0]["description"] = description
    return changed


def _actions(session: Session, action: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_create_from_builtin_template_gives_a_publishable_draft(
    session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    assert rubric.mode == "rubric" and rubric.draft_revision == 1
    draft = rubric_service.current_draft(session, rubric)
    assert draft == get_builtin("legal_contract_review").model_dump(mode="json")
    saved = rubric_service.save_draft(
        session, rubric, actor=world.expert, expected_revision=1, draft=draft
    )
    assert saved.check.ok and not saved.changed and saved.revision == 1
    assert len(_actions(session, "rubric.create")) == 1


def test_blank_preference_rubric_needs_an_instruction(session: Session, world: World) -> None:
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Pairs", template="blank_preference"
    )
    from app.rubrics import forms

    check = forms.check_draft(rubric_service.current_draft(session, rubric))
    assert rubric.mode == "preference"
    assert any("preference_instruction" in p for p in check.problems)


def test_duplicate_name_and_unknown_template_are_refused(session: Session, world: World) -> None:
    _legal(session, world)
    with pytest.raises(Conflict, match="already has a rubric named"):
        _legal(session, world)
    with pytest.raises(InvalidInput, match="Unknown template"):
        rubric_service.create_rubric(
            session, world.project, actor=world.expert, name="X", template="nope"
        )


def test_an_invalid_draft_is_saved_with_its_problems(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = rubric_service.current_draft(session, rubric)
    draft["criteria"][1]["weight"] = "heavy"
    saved = rubric_service.save_draft(
        session, rubric, actor=world.expert, expected_revision=1, draft=draft
    )
    assert saved.changed and saved.revision == 2
    assert not saved.check.ok
    assert any("Justified by the reference" in p and "weight" in p for p in saved.check.problems)
    session.expire_all()
    stored = session.get(Rubric, rubric.id)
    assert stored is not None and stored.draft is not None
    assert stored.draft["criteria"][1]["weight"] == "heavy"  # nothing typed is lost


def test_mode_cannot_change_through_a_draft(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = rubric_service.current_draft(session, rubric) | {"mode": "preference"}
    with pytest.raises(InvalidInput, match="cannot change"):
        rubric_service.save_draft(
            session, rubric, actor=world.expert, expected_revision=1, draft=draft
        )


def test_second_save_of_the_same_revision_conflicts_and_first_text_survives(
    engine: Engine, session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    base = rubric_service.current_draft(session, rubric)
    with Session(engine) as first, Session(engine) as second:
        mine = first.get(Rubric, rubric.id)
        theirs = second.get(Rubric, rubric.id)
        assert mine is not None and theirs is not None
        rubric_service.save_draft(
            first, mine, actor=world.expert, expected_revision=1, draft=_edited(base, "FIRST")
        )
        with pytest.raises(rubric_service.DraftConflict) as caught:
            rubric_service.save_draft(
                second,
                theirs,
                actor=world.engineer,
                expected_revision=1,
                draft=_edited(base, "SECOND"),
            )
    assert caught.value.status_code == 409
    assert caught.value.current_revision == 2
    assert caught.value.current_draft["criteria"][0]["description"] == "FIRST"
    assert caught.value.updated_by == world.expert.label
    session.expire_all()
    stored = session.get(Rubric, rubric.id)
    assert stored is not None and stored.draft is not None
    assert stored.draft["criteria"][0]["description"] == "FIRST"
    assert stored.draft_revision == 2


def test_truly_concurrent_saves_let_exactly_one_win(
    engine: Engine, session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    base = rubric_service.current_draft(session, rubric)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def save(text: str) -> None:
        with Session(engine) as own:
            row = own.get(Rubric, rubric.id)
            assert row is not None
            barrier.wait()
            try:
                rubric_service.save_draft(
                    own, row, actor=world.expert, expected_revision=1, draft=_edited(base, text)
                )
                outcomes[text] = "saved"
            except rubric_service.DraftConflict:
                outcomes[text] = "conflict"

    threads = [threading.Thread(target=save, args=(text,)) for text in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["conflict", "saved"]
    winner = next(text for text, outcome in outcomes.items() if outcome == "saved")
    session.expire_all()
    stored = session.get(Rubric, rubric.id)
    assert stored is not None and stored.draft is not None
    assert stored.draft["criteria"][0]["description"] == winner
    assert stored.draft_revision == 2


def test_a_late_identical_save_is_not_a_conflict(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = _edited(rubric_service.current_draft(session, rubric), "same text")
    first = rubric_service.save_draft(
        session, rubric, actor=world.expert, expected_revision=1, draft=draft
    )
    again = rubric_service.save_draft(
        session, rubric, actor=world.expert, expected_revision=1, draft=draft
    )
    assert first.revision == again.revision == 2
    assert not again.changed


def test_draft_saves_are_audited_at_most_once_per_window(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = rubric_service.current_draft(session, rubric)
    for revision, text in enumerate(("one", "two", "three"), start=1):
        rubric_service.save_draft(
            session,
            rubric,
            actor=world.expert,
            expected_revision=revision,
            draft=_edited(draft, text),
        )
    events = _actions(session, "rubric.draft_save")
    assert len(events) == 1
    assert events[0].actor_id == world.expert.id and events[0].details["revision"] == 2
    # Another person's saves are logged separately.
    rubric_service.save_draft(
        session, rubric, actor=world.engineer, expected_revision=4, draft=_edited(draft, "four")
    )
    assert len(_actions(session, "rubric.draft_save")) == 2
    # Once the window has passed, the next save is logged again.
    events[0].created_at = (
        events[0].created_at - rubric_service.DRAFT_AUDIT_WINDOW - timedelta(seconds=5)
    )
    session.add(events[0])
    session.commit()
    rubric_service.save_draft(
        session, rubric, actor=world.expert, expected_revision=5, draft=_edited(draft, "five")
    )
    assert len(_actions(session, "rubric.draft_save")) == 3


def test_publish_freezes_the_draft_with_schema_and_hash(session: Session, world: World) -> None:
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Blank", template="blank_rubric"
    )
    draft = rubric_service.current_draft(session, rubric)
    draft["system_template"] = ""  # empty = the generated template; a version stores its text
    rubric_service.save_draft(session, rubric, actor=world.expert, expected_revision=1, draft=draft)
    with pytest.raises(InvalidInput, match="change note is required"):
        rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="  ")
    version = rubric_publishing.publish_version(
        session, rubric, actor=world.expert, change_note="First cut"
    )
    definition = RubricDefinition.model_validate(version.definition)
    assert version.number == 1 and version.change_note == "First cut"
    assert definition.system_template.startswith("You are an impartial expert judge")
    assert version.content_hash == content_hash(definition)
    assert version.output_schema == build_output_schema(definition)
    assert version.created_by_label == world.expert.email
    assert rubric.draft_based_on_version == 1
    with pytest.raises(InvalidInput, match="Nothing changed since version 1"):
        rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="again")
    assert len(_actions(session, "rubric.publish")) == 1


def test_an_invalid_draft_cannot_be_published(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = rubric_service.current_draft(session, rubric)
    draft["user_template"] = "{{ response }}\n{% for x in %}"
    rubric_service.save_draft(session, rubric, actor=world.expert, expected_revision=1, draft=draft)
    with pytest.raises(InvalidInput) as caught:
        rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="try")
    problems = caught.value.details
    assert isinstance(problems, list)
    assert problems[0]["field"] == "user_template line 2"
    assert session.exec(select(RubricVersion)).first() is None


def test_publishing_with_a_stale_revision_conflicts(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    draft = _edited(rubric_service.current_draft(session, rubric), "newer")
    rubric_service.save_draft(
        session, rubric, actor=world.engineer, expected_revision=1, draft=draft
    )
    with pytest.raises(rubric_service.DraftConflict):
        rubric_publishing.publish_version(
            session, rubric, actor=world.expert, change_note="mine", expected_revision=1
        )


def test_versions_cannot_be_changed_or_deleted_through_the_orm(
    session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    version = rubric_publishing.publish_version(
        session, rubric, actor=world.expert, change_note="v1"
    )
    version.change_note = "rewritten history"
    session.add(version)
    with pytest.raises(FrozenVersionError):
        session.commit()
    session.rollback()
    session.delete(version)
    with pytest.raises(FrozenVersionError):
        session.commit()
    session.rollback()
    session.expire_all()
    stored = session.get(RubricVersion, version.id)
    assert stored is not None and stored.change_note == "v1"


def test_approval_is_recorded_once_per_person(session: Session, world: World) -> None:
    rubric = _legal(session, world)
    version = rubric_publishing.publish_version(
        session, rubric, actor=world.engineer, change_note="v1"
    )
    approval = rubric_publishing.approve_version(
        session, version, actor=world.expert, comment="Matches the playbook"
    )
    assert approval.user_label == world.expert.email and approval.comment == "Matches the playbook"
    with pytest.raises(Conflict, match="already signed off"):
        rubric_publishing.approve_version(session, version, actor=world.expert)
    rubric_publishing.approve_version(session, version, actor=world.admin)
    approvals = rubric_service.approvals_for(session, [version.id or 0])[version.id or 0]
    assert [a.user_label for a in approvals] == [world.expert.email, world.admin.email]
    assert len(_actions(session, "rubric.approve")) == 2


def test_a_publisher_cannot_sign_off_their_own_version_unless_the_project_allows_it(
    session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    version = rubric_publishing.publish_version(
        session, rubric, actor=world.expert, change_note="v1"
    )
    with pytest.raises(PermissionDenied, match="another expert must sign it off"):
        rubric_publishing.approve_version(session, version, actor=world.expert)
    assert rubric_service.approvals_for(session, [version.id or 0])[version.id or 0] == []
    project_service.set_single_approver(session, world.project, actor=world.admin, allowed=True)
    rubric_publishing.approve_version(session, version, actor=world.expert)
    assert _actions(session, "project.approval_policy")


def test_example_candidates_never_offer_gold_test_items(session: Session, world: World) -> None:
    free = make_rollout(session, world.project)
    development = make_rollout(session, world.project)
    test_item = make_rollout(session, world.project)
    session.add(GoldItem(project_id=world.pid, rollout_id=development.id or 0, split="development"))
    session.add(GoldItem(project_id=world.pid, rollout_id=test_item.id or 0, split="test"))
    session.commit()
    ids = [r.id for r in rubric_previews.example_candidates(session, world.pid)]
    assert ids == [free.id, development.id]
    # Searching does not bring them back either.
    assert rubric_previews.example_candidates(session, world.pid, test_item.external_id) == []
    assert [r.id for r in rubric_previews.find_rollouts(session, world.pid)] == [
        free.id,
        development.id,
        test_item.id,
    ]
    rubric = _legal(session, world)
    with pytest.raises(InvalidInput, match="gold test split"):
        rubric_examples.add_example(
            session,
            rubric,
            actor=world.expert,
            expected_revision=1,
            rollout_id=test_item.id or 0,
            label={},
        )


def test_examples_are_attached_to_the_draft_and_reach_the_prompt(
    session: Session, world: World
) -> None:
    rollout = make_rollout(session, world.project, response="THE EXAMPLE RESPONSE")
    rubric = _legal(session, world)
    saved = rubric_examples.add_example(
        session,
        rubric,
        actor=world.expert,
        expected_revision=1,
        rollout_id=rollout.id or 0,
        label={"TargetDocument_Grounding": 5, "Actionability": ""},
        critique="Quotes the contract exactly.",
    )
    assert saved.revision == 2 and saved.check.ok
    draft = rubric_service.current_draft(session, rubric)
    (example,) = draft["examples"]
    assert example["label"] == {"TargetDocument_Grounding": 5}
    assert example["input_excerpt"] == "Review this contract against the playbook."
    preview = rubric_previews.render_preview(draft, rubric_previews.prompt_context(rollout))
    assert "Quotes the contract exactly." in preview.messages[0]["content"]
    # An autosave from the editor form (which does not carry examples) keeps them.
    form_draft = {k: v for k, v in draft.items() if k != "examples"}
    rubric_service.save_draft(
        session,
        rubric,
        actor=world.expert,
        expected_revision=2,
        draft=_edited(form_draft, "edited"),
        keep_examples=True,
    )
    assert len(rubric_service.current_draft(session, rubric)["examples"]) == 1
    rubric_examples.remove_example(
        session, rubric, actor=world.expert, expected_revision=3, index=0
    )
    assert rubric_service.current_draft(session, rubric)["examples"] == []
    actions = {e.action for e in session.exec(select(AuditEvent))}
    assert {"rubric.example_add", "rubric.example_remove"} <= actions


def test_preference_examples_use_the_pair_partner(session: Session, world: World) -> None:
    from app.rollouts.models import RolloutPair

    a = make_rollout(session, world.project, response="Answer A")
    b = make_rollout(session, world.project, response="Answer B")
    lonely = make_rollout(session, world.project, response="No pair")
    session.add(RolloutPair(project_id=world.pid, rollout_a_id=a.id or 0, rollout_b_id=b.id or 0))
    session.commit()
    rubric = rubric_service.create_rubric(
        session, world.project, actor=world.expert, name="Pairs", template="pairwise_preference"
    )
    rubric_examples.add_example(
        session,
        rubric,
        actor=world.expert,
        expected_revision=1,
        rollout_id=a.id or 0,
        label={"winner": "B"},
    )
    (example,) = rubric_service.current_draft(session, rubric)["examples"]
    assert (example["response"], example["response_b"]) == ("Answer A", "Answer B")
    with pytest.raises(InvalidInput, match="needs two responses"):
        rubric_examples.add_example(
            session,
            rubric,
            actor=world.expert,
            expected_revision=2,
            rollout_id=lonely.id or 0,
            label={"winner": "A"},
        )


def test_compare_shows_criterion_edits_in_the_rendered_prompt() -> None:
    before = get_builtin("legal_contract_review")
    after = before.model_copy(deep=True)
    after.criteria[2].name = "Clear next step"
    comparison = rubric_comparison.compare_definitions(before, after)
    assert not comparison.diff.templates_changed  # the template loops over the criteria
    changed = [r for r in comparison.rendered_system_rows if r.kind == "changed"]
    # The criterion line, and its description in the answer's JSON Schema.
    assert len(changed) == 2 and changed[0].right_text.startswith("3. Clear next step (key")
    assert changed[0].left_text.startswith("3. Actionable recommendation (key")
    assert comparison.schema_changed
    assert comparison.diff.criteria_changed[0].key == "Actionability"


def test_demo_rubric_is_created_published_and_signed_off_once(
    session: Session, world: World
) -> None:
    first = rubric_demo.ensure_demo_rubric(session, world.project, world.admin)
    second = rubric_demo.ensure_demo_rubric(session, world.project, world.admin)
    assert first.id == second.id
    versions = list(session.exec(select(RubricVersion)))
    assert [v.number for v in versions] == [1]
    approvals = list(session.exec(select(RubricApproval)))
    assert len(approvals) == 1 and approvals[0].user_id == world.admin.id
    definition = RubricDefinition.model_validate(versions[0].definition)
    assert [c.key for c in definition.criteria] == [
        "TargetDocument_Grounding",
        "Reference_Consistency",
        "Actionability",
    ]


def test_archived_rubrics_leave_the_list_but_keep_their_versions(
    session: Session, world: World
) -> None:
    rubric = _legal(session, world)
    rubric_publishing.publish_version(session, rubric, actor=world.expert, change_note="v1")
    rubric_publishing.archive_rubric(session, rubric, actor=world.expert, archived=True)
    assert rubric_service.list_rubrics(session, world.pid) == []
    rows = rubric_service.list_rubrics(session, world.pid, include_archived=True)
    assert [(r.rubric.id, r.latest_version) for r in rows] == [(rubric.id, 1)]
    count = session.exec(select(col(RubricVersion.id))).all()
    assert len(count) == 1


def test_side_by_side_views_keep_changes_with_some_context() -> None:
    from app.rubrics.diff import side_by_side

    before = "\n".join(f"line {i}" for i in range(1, 21))
    after = before.replace("line 10", "line ten")
    rows = rubric_comparison.with_context(side_by_side(before, after), context=2)
    kinds = [r.kind for r in rows]
    assert kinds == ["gap", "equal", "equal", "changed", "equal", "equal", "gap"]
    assert [r.count for r in rows if isinstance(r, rubric_comparison.Gap)] == [7, 8]
    assert rubric_comparison.with_context(side_by_side(before, before)) == [
        rubric_comparison.Gap(20)
    ]
