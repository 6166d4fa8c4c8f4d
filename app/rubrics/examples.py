"""A rubric's few-shot examples: add a rollout from the project as an example, remove one.
Public functions commit once."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import InvalidInput, NotFound
from app.labels.models import GoldItem
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout
from app.rubrics import forms
from app.rubrics.definition import (
    RubricMode,
)
from app.rubrics.models import Rubric
from app.rubrics.previews import pair_partner, prompt_context
from app.rubrics.service import EXAMPLE_EXCERPT_CHARS, DraftSaved, current_draft, write_draft

# --------------------------------------------------------------------------- few-shot examples


def _check_candidate(session: Session, project_id: int, rollout_id: int) -> Rollout:
    rollout = rollout_service.get_rollout(session, project_id, rollout_id)
    test_item = session.exec(
        select(GoldItem.id).where(
            GoldItem.project_id == project_id,
            GoldItem.rollout_id == rollout_id,
            GoldItem.split == "test",
        )
    ).first()
    if test_item is not None:
        raise InvalidInput(
            f"Rollout {rollout_id} is in the gold test split: it cannot be a worked example, "
            "or the judge would be graded on answers it was shown."
        )
    return rollout


def _excerpt(rollout: Rollout) -> str:
    ctx = prompt_context(rollout)
    text = ctx.prompt
    return text if len(text) <= EXAMPLE_EXCERPT_CHARS else text[: EXAMPLE_EXCERPT_CHARS - 1] + "…"


def add_example(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    expected_revision: int,
    rollout_id: int,
    label: dict[str, Any],
    critique: str = "",
    rollout_b_id: int | None = None,
    input_excerpt: str = "",
) -> DraftSaved:
    """Attach a rollout (or a pair, in preference mode) to the draft as a worked example."""
    rollout = _check_candidate(session, rubric.project_id, rollout_id)
    example: dict[str, Any] = {
        "rollout_id": rollout.id,
        "input_excerpt": input_excerpt.strip() or _excerpt(rollout),
        "response": rollout.response,
        "response_b": "",
        "label": {k: v for k, v in label.items() if v is not None and v != ""},
        "critique": critique.strip(),
    }
    if rubric.mode == RubricMode.preference:
        partner = (
            _check_candidate(session, rubric.project_id, rollout_b_id)
            if rollout_b_id is not None
            else pair_partner(session, rollout)
        )
        if partner is None:
            raise InvalidInput(
                "A preference example needs two responses: give the id of response B "
                f"(rollout {rollout_id} is not part of a pair)."
            )
        example["response_b"] = partner.response
    draft = current_draft(session, rubric)
    draft["examples"] = [*draft.get("examples", []), example]
    write_draft(session, rubric, actor=actor, expected_revision=expected_revision, draft=draft)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.example_add",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"attached rollout {rollout_id} as a worked example to {rubric.name}",
        details={"rollout_id": rollout_id, "label": example["label"]},
    )
    session.commit()
    return DraftSaved(rubric.draft_revision, True, forms.check_draft(draft), utcnow())


def remove_example(
    session: Session, rubric: Rubric, *, actor: User, expected_revision: int, index: int
) -> DraftSaved:
    draft = current_draft(session, rubric)
    examples = list(draft.get("examples", []))
    if not 0 <= index < len(examples):
        raise NotFound(f"The draft has no example #{index + 1}.")
    removed = examples.pop(index)
    draft["examples"] = examples
    write_draft(session, rubric, actor=actor, expected_revision=expected_revision, draft=draft)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.example_remove",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"removed worked example #{index + 1} from {rubric.name}",
        details={"rollout_id": removed.get("rollout_id") if isinstance(removed, dict) else None},
    )
    session.commit()
    return DraftSaved(rubric.draft_revision, True, forms.check_draft(draft), utcnow())
