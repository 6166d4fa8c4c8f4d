"""The pages that answer "can I trust this judge?" issue a bounded number of SQL statements
whatever the size of the run: agreement (with the corrected estimates), the disagreement list,
the disagreement detail page, the reward preview, slices and the leaderboard (whole run and gold
test split) are counted (SQLAlchemy's
``before_cursor_execute``) on a run of 10 verdicts and on one of 10,000, with the same 10
labelled items, and the counts are equal. The figures are checked against an independent
computation on the small world, and the large world's statements never read a verdict's raw
text nor every verdict of the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session

from app.agreement import leaderboard, slices
from app.agreement import service as agreement_service
from app.core.errors import InvalidInput
from app.labels import review
from app.labels.values import criterion_disagrees
from app.rewards import outcomes as reward_outcomes
from app.rewards import service as reward_service
from app.rubrics.builtin import BUILTIN_TEMPLATES
from app.rubrics.definition import RubricDefinition
from tests.support.factories import (
    add_label,
    bulk_rollouts,
    bulk_run,
    make_project,
    make_user,
    make_version,
)
from tests.support.figures import cold_start

DEFINITION: RubricDefinition = BUILTIN_TEMPLATES["generic_pass_fail"]
KEYS = [c.key for c in DEFINITION.criteria]
LABELLED = 10


@contextmanager
def counted(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = session.get_bind()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _world(session: Session, size: int, tag: str) -> dict[str, Any]:
    rng = random.Random(size)
    owner = make_user(session, f"owner-{tag}@example.com")
    expert = make_user(session, f"expert-{tag}@example.com")
    project = make_project(session, owner, f"Bounds {tag}", members=[(expert, "expert")])
    version = make_version(session, project)
    rollouts = bulk_rollouts(session, project, size, tag)
    judged = {r.id or 0: {k: rng.random() < 0.6 for k in KEYS} for r in rollouts}
    run = bulk_run(session, project, version, judged)
    labels: dict[int, dict[str, bool]] = {}
    for rollout in rollouts[:LABELLED]:
        labels[rollout.id or 0] = {k: rng.random() < 0.6 for k in KEYS}
        add_label(session, project, version, rollout, expert, labels[rollout.id or 0])
    return {
        "project": project,
        "expert": expert,
        "run": run,
        "rollouts": rollouts,
        "judged": judged,
        "labels": labels,
    }


def _paths(session: Session, world: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    run, expert, project = world["run"], world["expert"], world["project"]
    first = world["rollouts"][0].id

    def agreement() -> Any:
        result = agreement_service.run_agreement(session, run)
        return result, agreement_service.corrected_estimates(session, run, result)

    return {
        "agreement": agreement,
        "disagreement list": lambda: review.disagreements(session, run, viewer=expert),
        "disagreement detail": lambda: review.disagreements(
            session, run, viewer=expert, rollout_id=first
        ),
        "reward preview": lambda: reward_service.preview(
            session, project, reward_service.PreviewSelection(run_id=run.id or 0, sample=5)
        ),
        **{
            f"slices by {name}": (
                lambda name=name: slices.run_slices(session, run, slices.parse_slice(name))
            )
            for name in ("model", "step", "gold_split", "annotator")
        },
        "leaderboard": lambda: [
            leaderboard.leaderboard(session, project.id or 0, scope) for scope in leaderboard.Scope
        ],
    }


def _store_statement(statement: str) -> bool:
    """Keeping a computed figure in the database (app.core.stored), on a connection of its own."""
    return "stored_figure" in statement or statement.startswith("PRAGMA busy_timeout")


def _counts(session: Session, world: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Per path: statements that read on a cold start (no figure in memory or in the database),
    statements on a warm one, and the statements that stored the cold start's figures."""
    found: dict[str, tuple[int, int, int]] = {}
    for name, call in _paths(session, world).items():
        cold_start(session)
        with counted(session) as cold:
            call()
        with counted(session) as warm:
            call()
        storing = [s for s in cold if _store_statement(s)]
        found[name] = (len(cold) - len(storing), len(warm), len(storing))
    return found


def test_statement_counts_do_not_grow_with_the_run(session: Session) -> None:
    small, large = _world(session, 10, "small"), _world(session, 10_000, "large")
    small_counts = _counts(session, small)
    with counted(session) as large_statements:
        large_counts = _counts(session, large)
    assert small_counts == large_counts, (small_counts, large_counts)
    for name, (cold, warm, storing) in small_counts.items():
        assert cold <= (24 if name == "leaderboard" else 16), (name, cold)  # two scopes
        assert warm <= cold, (name, warm, cold)
        assert storing <= 4 * 8, (name, storing)  # at most 4 statements per stored figure
    assert small_counts["disagreement detail"][0] <= 10
    # The preview: the run, its latest verdict and the configuration (the cache key), then the
    # sample's ids, verdicts and rollouts; a repeated preview only reads the key.
    assert small_counts["reward preview"][0] <= 6
    assert small_counts["reward preview"][1] <= 3
    # A warm agreement page only checks the data version (no figure is recomputed).
    assert small_counts["agreement"][1] <= 6
    # No statement reads a verdict's raw text or a whole rollout row.
    text = "\n".join(large_statements)
    assert "raw_text" not in text
    assert "reference_documents" not in text

    # The reward preview refuses a selection past its limit before loading it.
    everything = reward_service.PreviewSelection(run_id=large["run"].id)
    with counted(session) as statements, pytest.raises(InvalidInput, match="more than 5,000"):
        reward_service.preview(session, large["project"], everything)
    # The ids are read with a limit one past the cap; no rollout's text is read.
    assert any("LIMIT" in s.upper() for s in statements)
    assert not any("response" in s and "FROM rollout" in s for s in statements)
    too_big = reward_service.PreviewSelection(run_id=large["run"].id, sample=5_001)
    with counted(session) as refused, pytest.raises(InvalidInput, match="at most 5,000"):
        reward_service.preview(session, large["project"], too_big)
    assert len(refused) <= 2  # the run's lookup and the configuration; nothing of the selection


def test_figures_pages_and_samples_equal_an_independent_computation(session: Session) -> None:
    small, large = _world(session, 10, "small"), _world(session, 600, "medium")
    for world in (small, large):
        cold_start(session)
        result = agreement_service.run_agreement(session, world["run"])
        assert result.summary.items_judged == len(world["rollouts"])
        assert result.summary.judge_errors == 0
        assert result.items_labelled == LABELLED and result.n_labels == LABELLED
        for criterion in result.criteria:
            pairs = [
                (world["judged"][rid][criterion.key], human[criterion.key])
                for rid, human in world["labels"].items()
            ]
            n = len(pairs)
            observed = sum(j == h for j, h in pairs) / n
            judge_pass = sum(j for j, _ in pairs) / n
            human_pass = sum(h for _, h in pairs) / n
            expected = judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)
            binary = criterion.binary
            assert binary is not None and criterion.n == n
            assert binary.agreement.value == pytest.approx(observed, abs=1e-12)
            if expected < 1:
                kappa = (observed - expected) / (1 - expected)
                assert binary.kappa.value == pytest.approx(kappa, abs=1e-12)
        corrected = agreement_service.corrected_estimates(session, world["run"], result)
        assert corrected is not None
        assert corrected.n_unlabelled == len(world["rollouts"]) - LABELLED
        for row in corrected.criteria if corrected.n_unlabelled else []:
            passes = sum(world["judged"][r.id][row.key] for r in world["rollouts"][LABELLED:])
            assert row.rate.judge_rate == pytest.approx(passes / corrected.n_unlabelled)
        # The disagreement list: every (rollout, criterion) where judge and label differ.
        report = review.disagreements(session, world["run"], viewer=world["expert"])
        criteria = {c.key: c for c in DEFINITION.criteria}
        expected_rows = {
            (rid, key)
            for rid, human in world["labels"].items()
            for key in KEYS
            if criterion_disagrees(criteria[key], human[key], world["judged"][rid][key], 0.5)
        }
        assert {(r.subject.rollout_id, r.criterion_key) for r in report.rows} == expected_rows
        assert report.counts["total"] == len(expected_rows)
        assert report.summary.items_judged == len(world["rollouts"])
        assert report.compared_labels == LABELLED

    _keyset_pages(session, large)
    _reward_sample(session, large)


def _keyset_pages(session: Session, large: dict[str, Any]) -> None:
    full = review.disagreements(session, large["run"], viewer=large["expert"], page_size=200)
    seen: list[tuple[int, str]] = []
    cursor = None
    pages = 0
    while True:
        page = review.disagreements(
            session, large["run"], viewer=large["expert"], cursor=cursor, page_size=2
        )
        assert len({r.subject.rollout_id for r in page.rows}) <= 2
        assert page.counts == full.counts  # counts are over the whole run on every page
        seen += [(r.subject.rollout_id, r.row_id) for r in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [(r.subject.rollout_id, r.row_id) for r in full.rows]
    assert pages == max(1, -(-len({r.subject.rollout_id for r in full.rows}) // 2))
    with pytest.raises(InvalidInput, match="cursor"):
        review.disagreements(session, large["run"], viewer=large["expert"], cursor="x1")


def _reward_sample(session: Session, large: dict[str, Any]) -> None:
    """The preview's sample is seeded, spread over the run, and its rewards equal the ones the
    full ORM rows and verdicts give."""
    project, run = large["project"], large["run"]

    def ids(seed: int, sample: int = 50) -> list[int]:
        selection = reward_service.PreviewSelection(run_id=run.id, sample=sample, seed=seed)
        return reward_service.select_rollout_ids(session, project.id, selection)

    first = ids(7)
    assert first == ids(7) and len(first) == 50 == len(set(first))
    assert first != ids(8)
    assert set(first) <= {r.id for r in large["rollouts"]}
    # Spread over the run, not the first ids: the sample's median is near the middle.
    ordered = sorted(r.id for r in large["rollouts"])
    middle = ordered[len(ordered) // 2]
    assert abs(sorted(first)[25] - middle) < len(ordered) // 4
    preview = reward_service.preview(
        session, project, reward_service.PreviewSelection(run_id=run.id, sample=50, seed=7)
    )
    assert [row.rollout_id for row in preview.rows] == first
    # The same rewards as the full ORM rows and verdicts give (the reference path).
    config = reward_service.current_config(session, project.id).model.as_dict()
    by_id = {r.id: r for r in large["rollouts"]}
    reference = reward_service.first_verdicts(session, run.id, first)
    for row in preview.rows:
        outcome = reward_outcomes.outcome_for(
            config, by_id[row.rollout_id], reference.get(row.rollout_id), project.output_schema
        )
        assert outcome is not None and row.reward == pytest.approx(outcome["reward"])
