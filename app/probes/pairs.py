"""The report of a preference rubric's probe run: position (each pair judged in both orders)
and self-consistency (judged again), counted in SQL over the run's pairwise verdicts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.judging.models import Verdict
from app.probes import report as probe_report
from app.probes.models import ProbeRun
from app.probes.rewrites import PAIR_PROBES
from app.rollouts.models import Rollout, RolloutPair

USABLE_VERDICTS = ("ok", "repaired")
PAIR_ONLY = (
    "a preference rubric compares two responses; rewrites of one response are measured on "
    "single-answer rubrics"
)


def _pair_counts(session: Session, judge_run_id: int) -> tuple[int, int, int]:
    """(pairs with a usable verdict in both orders, of those whose winner changed, of those
    where the response shown first won both times), counted in SQL over the first judging."""
    ab, ba = aliased(Verdict), aliased(Verdict)
    changed = col(ab.winner) != col(ba.winner)
    first = and_(col(ab.winner) == "A", col(ba.winner) == "B")
    row = session.exec(
        select(
            func.count(),
            func.coalesce(func.sum(case((changed, 1), else_=0)), 0),
            func.coalesce(func.sum(case((first, 1), else_=0)), 0),
        )
        .select_from(ab)
        .join(
            ba,
            and_(
                col(ba.run_id) == col(ab.run_id),
                col(ba.pair_id) == col(ab.pair_id),
                col(ba.repeat) == 0,
                col(ba.order_shown) == "BA",
            ),
        )
        .where(
            col(ab.run_id) == judge_run_id,
            col(ab.repeat) == 0,
            col(ab.order_shown) == "AB",
            col(ab.parse_status).in_(USABLE_VERDICTS),
            col(ba.parse_status).in_(USABLE_VERDICTS),
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _pair_examples(session: Session, judge_run_id: int) -> list[dict[str, Any]]:
    """A few pairs whose winner changed with the order, with both responses and verdicts."""
    ab, ba = aliased(Verdict), aliased(Verdict)
    found = session.exec(
        select(ab.pair_id, ab.winner, ba.winner)
        .join(
            ba,
            and_(
                col(ba.run_id) == col(ab.run_id),
                col(ba.pair_id) == col(ab.pair_id),
                col(ba.repeat) == 0,
                col(ba.order_shown) == "BA",
            ),
        )
        .where(
            col(ab.run_id) == judge_run_id,
            col(ab.repeat) == 0,
            col(ab.order_shown) == "AB",
            col(ab.parse_status).in_(USABLE_VERDICTS),
            col(ba.parse_status).in_(USABLE_VERDICTS),
            col(ab.winner) != col(ba.winner),
        )
        .order_by(col(ab.pair_id))
        .limit(probe_report.EXAMPLES_PER_PROBE)
    ).all()
    examples = []
    for pair_id, winner_ab, winner_ba in found:
        pair = session.get(RolloutPair, pair_id)
        if pair is None:
            continue
        a, b = session.get(Rollout, pair.rollout_a_id), session.get(Rollout, pair.rollout_b_id)
        examples.append(
            {
                "pair_id": pair_id,
                "winner_ab": winner_ab,
                "winner_ba": winner_ba,
                "response_a": ((a.response if a else "") or "")[: probe_report.EXAMPLE_CHARS],
                "response_b": ((b.response if b else "") or "")[: probe_report.EXAMPLE_CHARS],
                "rollout_a_id": pair.rollout_a_id,
                "rollout_b_id": pair.rollout_b_id,
            }
        )
    return examples


def _pair_consistency(session: Session, judge_run_id: int) -> list[tuple[bool, float]]:
    """Per pair judged more than once in one order: (did its winner change between judgings of
    the same order, the largest spread of its score), aggregated in SQL per pair and order."""
    groups = session.exec(
        select(
            Verdict.pair_id,
            func.count(func.distinct(Verdict.winner)),
            func.max(Verdict.normalized) - func.min(Verdict.normalized),
        )
        .where(
            Verdict.run_id == judge_run_id,
            col(Verdict.parse_status).in_(USABLE_VERDICTS),
        )
        .group_by(col(Verdict.pair_id), col(Verdict.order_shown))
        .having(func.count() > 1)
    ).all()
    per_pair: dict[int, tuple[bool, float]] = {}
    for pair_id, winners, spread in groups:
        changed, widest = per_pair.get(int(pair_id or 0), (False, 0.0))
        per_pair[int(pair_id or 0)] = (changed or winners > 1, max(widest, float(spread or 0)))
    return [per_pair[key] for key in sorted(per_pair)]


def build_pair_report(session: Session, run: ProbeRun) -> dict[str, Any]:
    """The report of a preference rubric's probes: position (the pair swapped) and
    self-consistency (the pair judged again), from the run's verdicts."""
    judge_run_id = run.judge_run_id or 0
    total = len(run.selection.get("pair_ids") or [])
    made: dict[str, dict[str, Any]] = {}
    if probe_report.POSITION in run.probes:
        pairs, flipped, first = _pair_counts(session, judge_run_id)
        made[probe_report.POSITION] = probe_report.position_summary(
            pairs=pairs,
            flipped=flipped,
            first_shown=first,
            errors=total - pairs,
            thresholds=run.thresholds,
        )
        made[probe_report.POSITION]["pair_examples"] = _pair_examples(session, judge_run_id)
    if probe_report.SELF_CONSISTENCY in run.probes:
        made[probe_report.SELF_CONSISTENCY] = probe_report.pair_consistency_summary(
            _pair_consistency(session, judge_run_id), run.thresholds, run.seed
        )
    not_applicable = {name: PAIR_ONLY for name in run.probes if name not in PAIR_PROBES}
    report = probe_report.build_report(
        [], run.thresholds, run.seed, list(run.probes), {}, not_applicable, made
    )
    report["originals"] = total
    report["pairwise"] = True
    report["judge_errors"] = int(
        session.exec(
            select(func.count()).where(
                Verdict.run_id == judge_run_id, col(Verdict.parse_status).not_in(USABLE_VERDICTS)
            )
        ).one()
    )
    return report
