"""The labelled subjects of a judge run as the figures read them: one judged rollout (or pair),
the run's reading of its verdict, and the experts' labels on it.

Pure: the database loader (`app.labels.run_subjects`) fills these from narrow SQL rows; the
choice of one verdict per subject (first usable repeat; both orders of a pair combined) and of
one label per (subject, annotator) is made here, so every figure reads a run the same way.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from app.agreement.pairwise import Outcome
from app.labels import values as label_values
from app.labels.values import JudgeReading
from app.rubrics.definition import RubricDefinition


@dataclass(slots=True)
class SubjectLabel:
    """The columns of a submitted label that the figures and the review read."""

    id: int
    rollout_id: int
    subject_key: str
    rubric_version_id: int
    annotator_key: str
    annotator_name: str
    annotator_id: int | None
    values: dict[str, Any]
    critiques: dict[str, str]
    overall_critique: str
    preference: str | None
    revision: int
    updated_at: datetime | None
    # What the figures derive from the values, computed once per label (the expert's
    # aggregate by the rubric's scoring rules is the costly part).
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class RunSubject:
    """One judged rollout (or pair) of a run with the experts' labels on it."""

    subject_key: str
    rollout_id: int
    pair_id: int | None
    rollout_b_id: int | None
    reading: JudgeReading
    labels: list[Any] = field(default_factory=list)  # SubjectLabel (or anything shaped so)


class VerdictLike(Protocol):
    """The columns of a verdict the readings use (an ORM Verdict or a narrow SQL row)."""

    @property
    def rollout_id(self) -> int: ...
    @property
    def pair_id(self) -> int | None: ...
    @property
    def repeat(self) -> int: ...
    @property
    def order_shown(self) -> str: ...
    @property
    def scores(self) -> Any: ...
    @property
    def answer(self) -> Any: ...
    @property
    def aggregate(self) -> float | None: ...
    @property
    def normalized(self) -> float | None: ...
    @property
    def winner(self) -> str | None: ...
    @property
    def parse_status(self) -> str: ...
    @property
    def error(self) -> str | None: ...


def reading(
    definition: RubricDefinition, verdict: VerdictLike, *, texts: bool = True
) -> JudgeReading:
    """The verdict's reading; without ``texts`` the justification and evidence are left out
    (the figures need only the values), unless the values themselves are in the answer."""
    scores = verdict.scores or {}
    answer = verdict.answer if texts or not isinstance(scores.get("raw"), dict) else None
    return label_values.read_verdict(
        definition,
        scores=verdict.scores,
        answer=answer,
        aggregate=verdict.aggregate,
        normalized=verdict.normalized,
        winner=verdict.winner,
        parse_status=verdict.parse_status,
        error=verdict.error,
    )


def usable(verdict: VerdictLike) -> bool:
    return verdict.parse_status in label_values.OK_PARSE_STATUSES


def rubric_readings(
    definition: RubricDefinition, verdicts: Iterable[VerdictLike], *, texts: bool = True
) -> dict[str, tuple[int, None, JudgeReading]]:
    """{"r:<rollout id>": (rollout id, None, reading)}: the first usable repeat speaks for the
    run (repeats are for self-consistency), else the first repeat."""
    by_rollout: dict[int, list[VerdictLike]] = defaultdict(list)
    for verdict in verdicts:
        if verdict.pair_id is None:
            by_rollout[verdict.rollout_id].append(verdict)
    readings: dict[str, tuple[int, None, JudgeReading]] = {}
    # Without texts a reading depends only on the verdict's scores and scalar columns; verdicts
    # whose scores are one shared object (decoded once per distinct text) share one reading.
    same: dict[tuple[Any, ...], JudgeReading] = {}
    for rollout_id, group in by_rollout.items():
        group.sort(key=lambda v: (not usable(v), v.repeat))
        first = group[0]
        if texts or first.answer is not None:
            found = reading(definition, first, texts=texts)
        else:
            key = (
                id(first.scores),
                first.aggregate,
                first.normalized,
                first.winner,
                first.parse_status,
                first.error,
            )
            found = same.get(key) or same.setdefault(key, reading(definition, first, texts=False))
        readings[f"r:{rollout_id}"] = (rollout_id, None, found)
    return readings


def pair_readings(
    definition: RubricDefinition, verdicts: Iterable[VerdictLike], *, texts: bool = True
) -> dict[str, tuple[int, int, JudgeReading]]:
    """{"p:<pair id>": (rollout A, pair id, reading)}; the winner combines both orders of the
    first usable repeat (an order-dependent verdict is a tie)."""
    by_pair: dict[int, dict[int, dict[str, VerdictLike]]] = defaultdict(lambda: defaultdict(dict))
    rollout_a: dict[int, int] = {}
    for verdict in verdicts:
        if verdict.pair_id is None:
            continue
        rollout_a[verdict.pair_id] = verdict.rollout_id
        if usable(verdict):
            by_pair[verdict.pair_id][verdict.repeat][verdict.order_shown] = verdict
    readings: dict[str, tuple[int, int, JudgeReading]] = {}
    for pair_id in rollout_a:
        repeats = by_pair.get(pair_id)
        if not repeats:
            found = JudgeReading(False, {}, None, None, error="the judge gave no usable verdict")
        else:
            orders = {
                order: reading(definition, verdict, texts=texts)
                for order, verdict in repeats[min(repeats)].items()
            }
            if "AB" in orders or "BA" in orders:
                first = orders.get("AB") or orders["BA"]
                winner = label_values.combined_winner(orders.get("AB"), orders.get("BA"))
            else:
                # A verdict imported already combined over both orders; reviews and the
                # MT-Bench figures count an inconsistent one as a tie (the pairwise figures
                # read it from the verdict as it is stored).
                first = orders[""]
                winner = "tie" if first.winner == Outcome.INCONSISTENT else first.winner
            found = dataclasses.replace(first, winner=winner)
        readings[f"p:{pair_id}"] = (rollout_a[pair_id], pair_id, found)
    return readings


def chosen_labels(labels: Iterable[Any], preferred_version: int) -> dict[str, list[Any]]:
    """One label per (subject, annotator): the one on the run's version, else the newest."""
    best: dict[tuple[str, str], Any] = {}
    for label in labels:
        key = (label.subject_key, label.annotator_key)
        current = best.get(key)
        rank = (label.rubric_version_id == preferred_version, label.updated_at)
        if current is None or rank > (
            current.rubric_version_id == preferred_version,
            current.updated_at,
        ):
            best[key] = label
    grouped: dict[str, list[Any]] = defaultdict(list)
    for label in sorted(best.values(), key=lambda item: (item.annotator_name, item.id or 0)):
        grouped[label.subject_key].append(label)
    return grouped


def label_aggregate(definition: RubricDefinition, label: Any) -> Any:
    """``label_values.label_aggregate`` of a label's values, remembered on the label."""
    memo = getattr(label, "memo", None)
    if not isinstance(memo, dict):
        return label_values.label_aggregate(definition, label.values or {})
    key = ("aggregate", id(definition))
    if key not in memo:
        memo[key] = label_values.label_aggregate(definition, label.values or {})
    return memo[key]
