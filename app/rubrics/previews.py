"""Rollouts for the rubric editor: finding them, few-shot candidates (never a test gold item),
pair partners, and the exact judge messages a draft produces for one of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from app.labels.models import GoldItem
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics import forms
from app.rubrics.prompting import (
    PromptContext,
    TemplateError,
    estimate_tokens,
    render_prompt,
)


def _search(query: Any, q: str | None) -> Any:
    q = (q or "").strip()
    if not q:
        return query
    conditions = [col(Rollout.external_id).contains(q), col(Rollout.model).contains(q)]
    if q.isdigit():
        conditions.append(col(Rollout.id) == int(q))
    return query.where(or_(*conditions))


def find_rollouts(
    session: Session, project_id: int, q: str | None = None, *, limit: int = 50
) -> list[Rollout]:
    """Any rollout of the project (for the preview), by id, external id or model."""
    query = _search(select(Rollout).where(Rollout.project_id == project_id), q)
    return list(session.exec(query.order_by(col(Rollout.id)).limit(limit)))


def example_candidates(
    session: Session, project_id: int, q: str | None = None, *, limit: int = 50
) -> list[Rollout]:
    """Rollouts that may become few-shot examples: never a gold item of the test split, so a
    judge is not shown the answers it will be graded on."""
    test_split = select(GoldItem.rollout_id).where(
        GoldItem.project_id == project_id, GoldItem.split == "test"
    )
    query = select(Rollout).where(
        Rollout.project_id == project_id, col(Rollout.id).not_in(test_split)
    )
    return list(session.exec(_search(query, q).order_by(col(Rollout.id)).limit(limit)))


def pair_partner(session: Session, rollout: Rollout) -> Rollout | None:
    """The other response of a preference pair the rollout belongs to, if any."""
    pair = session.exec(
        select(RolloutPair).where(
            or_(
                col(RolloutPair.rollout_a_id) == rollout.id,
                col(RolloutPair.rollout_b_id) == rollout.id,
            )
        )
    ).first()
    if pair is None:
        return None
    other = pair.rollout_b_id if pair.rollout_a_id == rollout.id else pair.rollout_a_id
    return session.get(Rollout, other)


def prompt_context(rollout: Rollout, rollout_b: Rollout | None = None) -> PromptContext:
    """What a judge prompt can show about a rollout (and its pair partner in preference mode)."""
    return PromptContext(
        input_messages=list(rollout.input_messages or []),
        target_document=rollout.target_document,
        references=[r for r in rollout.reference_documents or [] if isinstance(r, dict)],
        response=rollout.response,
        response_a=rollout.response,
        response_b=rollout_b.response if rollout_b is not None else None,
        reference_answer=rollout.reference_answer,
        metadata=dict(rollout.metadata_ or {}),
    )


@dataclass
class Preview:
    """The exact judge messages for one rollout, or why they cannot be shown."""

    messages: list[dict[str, str]] = field(default_factory=list)
    system_tokens: int = 0
    user_tokens: int = 0
    problems: list[str] = field(default_factory=list)
    template_errors: list[TemplateError] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.system_tokens + self.user_tokens


def render_preview(draft: dict[str, Any], ctx: PromptContext) -> Preview:
    definition, problems = forms.parse_definition(draft)
    if definition is None:
        return Preview(problems=problems)
    try:
        rendered = render_prompt(definition, ctx)
    except TemplateError as exc:
        return Preview(template_errors=[exc])
    return Preview(
        messages=rendered.messages(),
        system_tokens=estimate_tokens(rendered.system),
        user_tokens=estimate_tokens(rendered.user),
    )
