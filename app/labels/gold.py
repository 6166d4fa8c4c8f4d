"""Gold sets: labeled rollouts kept as the judge's regression suite, split into development
(may be shown as examples) and test (locked: never shown to a rubric author, never moved out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.errors import Conflict, InvalidInput, NotFound
from app.labels.models import GoldItem, Label
from app.labels.values import LabelStatus
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout

GOLD_SPLITS = ("development", "test")
GOLD_EXPECTATIONS = ("", "good", "bad")


@dataclass
class GoldRow:
    gold: GoldItem
    rollout: Rollout
    labels: int


def submitted_label_counts(
    session: Session, project_id: int, rollout_ids: Sequence[int]
) -> Counter[int]:
    counts: Counter[int] = Counter()
    if not rollout_ids:
        return counts
    rows = session.exec(
        select(Label.rollout_id, func.count())
        .where(
            Label.project_id == project_id,
            Label.status == LabelStatus.submitted,
            col(Label.rollout_id).in_(list(rollout_ids)),
        )
        .group_by(col(Label.rollout_id))
    ).all()
    counts.update({int(r): int(n) for r, n in rows})
    return counts


def list_gold(session: Session, project_id: int, split: str | None = None) -> list[GoldRow]:
    query = (
        select(GoldItem, Rollout)
        .join(Rollout, col(Rollout.id) == col(GoldItem.rollout_id))
        .where(GoldItem.project_id == project_id)
        .order_by(col(GoldItem.split), col(GoldItem.rollout_id))
    )
    if split:
        query = query.where(GoldItem.split == split)
    rows = session.exec(query).all()
    counts = submitted_label_counts(session, project_id, [r.id or 0 for _, r in rows])
    return [GoldRow(g, r, counts[r.id or 0]) for g, r in rows]


@dataclass
class GoldCandidate:
    rollout: Rollout
    labels: int


def gold_candidates(session: Session, project_id: int, *, limit: int = 500) -> list[GoldCandidate]:
    """Labeled rollouts that are not gold yet."""
    gold = select(GoldItem.rollout_id).where(GoldItem.project_id == project_id)
    labeled = (
        select(Label.rollout_id)
        .where(Label.project_id == project_id, Label.status == LabelStatus.submitted)
        .distinct()
    )
    rollouts = session.exec(
        select(Rollout)
        .where(
            Rollout.project_id == project_id,
            col(Rollout.id).in_(labeled),
            col(Rollout.id).not_in(gold),
        )
        .order_by(col(Rollout.id))
        .limit(limit)
    ).all()
    counts = submitted_label_counts(session, project_id, [r.id or 0 for r in rollouts])
    return [GoldCandidate(r, counts[r.id or 0]) for r in rollouts]


def _check_split(split: str) -> str:
    if split not in GOLD_SPLITS:
        raise InvalidInput(f"The split must be development or test, got {split!r}.")
    return split


def add_gold(
    session: Session,
    project: Project,
    *,
    actor: User,
    rollout_ids: Sequence[int],
    split: str,
    expectation: str = "",
    note: str = "",
) -> list[GoldItem]:
    """Mark labeled rollouts as gold items of a split. Rollouts already gold are left as they
    are (a test item stays locked)."""
    _check_split(split)
    if expectation not in GOLD_EXPECTATIONS:
        raise InvalidInput("The expectation must be good, bad or empty.")
    wanted = sorted(set(rollout_ids))
    if not wanted:
        raise InvalidInput("Choose at least one labeled rollout.")
    for rollout_id in wanted:
        rollout_service.get_rollout(session, project.id or 0, rollout_id)
    counts = submitted_label_counts(session, project.id or 0, wanted)
    unlabeled = [r for r in wanted if counts[r] == 0]
    if unlabeled:
        raise InvalidInput(
            f"Rollouts {unlabeled} have no submitted label: only labeled rollouts can be gold."
        )
    existing = set(
        session.exec(
            select(GoldItem.rollout_id).where(
                GoldItem.project_id == project.id, col(GoldItem.rollout_id).in_(wanted)
            )
        ).all()
    )
    added = [
        GoldItem(
            project_id=project.id or 0,
            rollout_id=rollout_id,
            split=split,
            expectation=expectation,
            note=note.strip()[:2000],
            added_by_id=actor.id,
        )
        for rollout_id in wanted
        if rollout_id not in existing
    ]
    session.add_all(added)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "Some of these rollouts were made gold meanwhile; reload and try again."
        ) from None
    audit_service.record(
        session,
        actor=actor,
        action="gold.add",
        object_type="gold_item",
        object_id=[g.id for g in added],
        project_id=project.id,
        summary=f"added {len(added)} gold items to the {split} split",
        details={"rollout_ids": [g.rollout_id for g in added], "split": split},
    )
    session.commit()
    return added


def get_gold(session: Session, project_id: int, gold_id: int) -> GoldItem:
    gold = session.get(GoldItem, gold_id)
    if gold is None or gold.project_id != project_id:
        raise NotFound(f"No gold item with id {gold_id} in this project.")
    return gold


_LOCKED = (
    "Rollout {rollout} is in the locked test split: it stays there, so no rubric author ever "
    "sees it as an example and test figures stay fair."
)


def set_gold_split(
    session: Session, project: Project, gold_id: int, *, actor: User, split: str
) -> GoldItem:
    """Move a development item to the test split. The test split is locked: nothing leaves it."""
    _check_split(split)
    gold = get_gold(session, project.id or 0, gold_id)
    if gold.split == split:
        return gold
    if gold.split == "test":
        raise Conflict(_LOCKED.format(rollout=gold.rollout_id))
    gold.split = split
    session.add(gold)
    audit_service.record(
        session,
        actor=actor,
        action="gold.split",
        object_type="gold_item",
        object_id=gold.id,
        project_id=project.id,
        summary=f"moved gold rollout {gold.rollout_id} to the {split} split",
    )
    session.commit()
    return gold


def remove_gold(session: Session, project: Project, gold_id: int, *, actor: User) -> None:
    gold = get_gold(session, project.id or 0, gold_id)
    if gold.split == "test":
        raise Conflict(_LOCKED.format(rollout=gold.rollout_id))
    audit_service.record(
        session,
        actor=actor,
        action="gold.remove",
        object_type="gold_item",
        object_id=gold.id,
        project_id=project.id,
        summary=f"removed rollout {gold.rollout_id} from the gold set",
    )
    session.delete(gold)
    session.commit()
