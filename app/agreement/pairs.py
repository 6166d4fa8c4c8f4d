"""Pairwise figures of a preference run from the database: SQL over the labelled pairs only.

The judge's verdicts in each order and the experts' preference labels meet on the work item's
subject key ("p:<pair id>"); only pairs with at least one submitted preference label are read,
never the whole run. The figures themselves are in the pure module `pairwise`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.agreement.pairwise import Outcome, PairItem, PairwiseFigures, pairwise_figures
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels import service as label_service
from app.labels.models import Label
from app.labels.values import OK_PARSE_STATUSES
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics.models import RubricVersion

_CHUNK = 500
_OUTCOMES = {o.value: o for o in Outcome}


@dataclass(frozen=True)
class PairLabel:
    subject_key: str
    annotator_key: str
    annotator_name: str
    preference: str


def labelled_subjects(run: JudgeRun, version_ids: list[int]) -> Any:
    """SQL: subject keys of the run's pairs that carry a submitted preference label."""
    return (
        select(JudgeWorkItem.subject_key)
        .where(JudgeWorkItem.run_id == run.id, col(JudgeWorkItem.pair_id).is_not(None))
        .where(
            col(JudgeWorkItem.subject_key).in_(
                select(Label.subject_key).where(
                    col(Label.rubric_version_id).in_(version_ids),
                    Label.status == "submitted",
                    col(Label.preference).is_not(None),
                )
            )
        )
        .distinct()
    )


def pair_labels(
    session: Session,
    run: JudgeRun,
    version: RubricVersion,
    annotators: Collection[str] | None = None,
) -> dict[str, list[PairLabel]]:
    """One label per (pair, annotator) — the one on the run's version, else the newest — for
    the run's labelled pairs, optionally only those of the given annotator keys."""
    siblings = label_service.sibling_version_ids(session, version)
    query = sa_select(
        col(Label.subject_key),
        col(Label.annotator_key),
        col(Label.annotator_name),
        col(Label.preference),
        col(Label.rubric_version_id),
        col(Label.updated_at),
    ).where(
        col(Label.rubric_version_id).in_(siblings),
        col(Label.status) == "submitted",
        col(Label.preference).is_not(None),
        col(Label.subject_key).in_(labelled_subjects(run, siblings)),
    )
    if annotators is not None:
        query = query.where(col(Label.annotator_key).in_(list(annotators) or [""]))
    best: dict[tuple[str, str], tuple[tuple[bool, Any], PairLabel]] = {}
    for subject, annotator, name, preference, version_id, updated in session.execute(query):
        rank = (version_id == version.id, updated)
        key = (subject, annotator)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, PairLabel(subject, annotator, name or annotator, preference))
    grouped: dict[str, list[PairLabel]] = defaultdict(list)
    for _, label in sorted(best.values(), key=lambda e: (e[1].subject_key, e[1].annotator_key)):
        grouped[label.subject_key].append(label)
    return grouped


def _verdicts(
    session: Session, run: JudgeRun, subject_keys: list[str]
) -> dict[str, dict[str, Outcome]]:
    """Per labelled pair: its usable verdict per order ("AB", "BA", "" = combined), first repeat."""
    found: dict[str, dict[str, tuple[int, Outcome]]] = defaultdict(dict)
    for start in range(0, len(subject_keys), _CHUNK):
        chunk = subject_keys[start : start + _CHUNK]
        query = (
            select(
                JudgeWorkItem.subject_key,
                Verdict.order_shown,
                Verdict.repeat,
                Verdict.winner,
            )
            .join(Verdict, col(Verdict.work_item_id) == col(JudgeWorkItem.id))
            .where(
                JudgeWorkItem.run_id == run.id,
                col(JudgeWorkItem.subject_key).in_(chunk),
                col(Verdict.parse_status).in_(OK_PARSE_STATUSES),
                col(Verdict.winner).is_not(None),
            )
        )
        for subject, order, repeat, winner in session.exec(query):
            outcome = _OUTCOMES.get(winner or "")
            if outcome is None:
                continue
            current = found[subject].get(order)
            if current is None or repeat < current[0]:
                found[subject][order] = (repeat, outcome)
    return {s: {o: v for o, (_, v) in orders.items()} for s, orders in found.items()}


def _lengths(session: Session, pair_ids: list[int]) -> dict[int, tuple[int, int]]:
    first, second = aliased(Rollout), aliased(Rollout)
    lengths: dict[int, tuple[int, int]] = {}
    for start in range(0, len(pair_ids), _CHUNK):
        query = (
            select(
                RolloutPair.id,
                func.length(first.response),
                func.length(second.response),
            )
            .join(first, col(first.id) == col(RolloutPair.rollout_a_id))
            .join(second, col(second.id) == col(RolloutPair.rollout_b_id))
            .where(col(RolloutPair.id).in_(pair_ids[start : start + _CHUNK]))
        )
        for pair_id, len_a, len_b in session.exec(query):
            lengths[int(pair_id or 0)] = (int(len_a or 0), int(len_b or 0))
    return lengths


def pair_rollouts(session: Session, subject_keys: list[str]) -> dict[str, int]:
    """{"p:<pair id>": the pair's rollout A} (its metadata and provenance speak for the pair)."""
    ids = [int(key.removeprefix("p:")) for key in subject_keys]
    found: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(RolloutPair.id, RolloutPair.rollout_a_id).where(
            col(RolloutPair.id).in_(ids[start : start + _CHUNK])
        )
        for pair_id, rollout_a in session.exec(query):
            found[f"p:{pair_id}"] = int(rollout_a)
    return found


def pair_players(session: Session, subject_keys: list[str]) -> dict[str, tuple[str, str]]:
    """{"p:<pair id>": (A's checkpoint or model, B's)} for pairs whose both rollouts name one."""
    first, second = aliased(Rollout), aliased(Rollout)
    ids = [int(key.removeprefix("p:")) for key in subject_keys]
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = (
            sa_select(
                col(RolloutPair.id),
                func.coalesce(first.checkpoint, first.model),
                func.coalesce(second.checkpoint, second.model),
            )
            .join(first, col(first.id) == col(RolloutPair.rollout_a_id))
            .join(second, col(second.id) == col(RolloutPair.rollout_b_id))
            .where(col(RolloutPair.id).in_(ids[start : start + _CHUNK]))
        )
        for pair_id, player_a, player_b in session.execute(query):
            if player_a and player_b and player_a != player_b:
                found[f"p:{pair_id}"] = (str(player_a), str(player_b))
    return found


def pair_items(
    session: Session,
    run: JudgeRun,
    version: RubricVersion,
    annotators: Collection[str] | None = None,
) -> list[PairItem]:
    """The run's labelled pairs as inputs of the pairwise figures."""
    labels = pair_labels(session, run, version, annotators)
    keys = sorted(labels)
    verdicts = _verdicts(session, run, keys)
    lengths = _lengths(session, [int(k.removeprefix("p:")) for k in keys])
    items: list[PairItem] = []
    for key in keys:
        orders = verdicts.get(key, {})
        len_a, len_b = lengths.get(int(key.removeprefix("p:")), (0, 0))
        items.append(
            PairItem(
                key=key,
                ab=orders.get("AB"),
                ba=orders.get("BA"),
                combined=orders.get(""),
                experts=tuple(_OUTCOMES[label.preference] for label in labels[key]),
                len_a=len_a,
                len_b=len_b,
            )
        )
    return items


def run_pairwise(
    session: Session,
    run: JudgeRun,
    annotators: Collection[str] | None = None,
    *,
    resamples: int = 1000,
) -> PairwiseFigures:
    version = session.get(RubricVersion, run.rubric_version_id)
    if version is None:  # pragma: no cover - foreign keys keep it
        raise LookupError("the run's rubric version no longer exists")
    return pairwise_figures(pair_items(session, run, version, annotators), resamples=resamples)
