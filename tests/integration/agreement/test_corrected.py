"""Corrected estimates on a run's unlabelled items: the SQL counts equal a count in Python, the
Rogan–Gladen figure equals the formula on the labelled items' error rates, and the page says
"the judge says ...; corrected for its error rate ..."."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.agreement import service as agreement_service
from app.agreement.corrected import rogan_gladen
from app.rubrics.builtin import BUILTIN_TEMPLATES
from tests.support.factories import (
    add_label,
    boolean_answer,
    make_project,
    make_rollouts,
    make_run,
    make_user,
    make_version,
)
from tests.support.web import login

KEYS = [c.key for c in BUILTIN_TEMPLATES["generic_pass_fail"].criteria]


def test_corrected_pass_rate_and_ppi_mean(session: Session, client: TestClient) -> None:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Corrected", members=[(expert, "expert")])
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 90)
    rng = random.Random(9)
    truth = {r.id: {k: rng.random() < 0.7 for k in KEYS} for r in rollouts}
    judged = {
        rid: {k: (v if rng.random() < 0.85 else not v) for k, v in t.items()}
        for rid, t in truth.items()
    }
    run = make_run(
        session,
        project,
        version,
        {rid: boolean_answer(version.definition, j) for rid, j in judged.items()},
    )
    labelled = rollouts[:40]
    for rollout in labelled:
        add_label(session, project, version, rollout, expert, truth[rollout.id])
    result = agreement_service.run_agreement(session, run)
    corrected = agreement_service.corrected_estimates(session, run, result)
    assert corrected is not None and corrected.n_unlabelled == 50
    key = KEYS[0]
    unlabelled_passes = sum(judged[r.id][key] for r in rollouts[40:])
    pairs = [(judged[r.id][key], truth[r.id][key]) for r in labelled]
    sensitivity = sum(j for j, t in pairs if t) / sum(t for _, t in pairs)
    specificity = sum(not j for j, t in pairs if not t) / sum(not t for _, t in pairs)
    rate = corrected.criteria[0].rate
    assert rate.judge_rate == pytest.approx(unlabelled_passes / 50)
    assert rate.sensitivity == pytest.approx(sensitivity)
    expected = rogan_gladen(unlabelled_passes / 50, sensitivity, specificity)
    assert rate.corrected == pytest.approx(expected) if expected is not None else True
    assert corrected.mean_reward is not None
    assert (
        corrected.mean_reward.ci_low
        < corrected.mean_reward.estimate
        < corrected.mean_reward.ci_high
    )

    login(client, owner.email)
    page = client.get(f"/projects/{project.id}/agreement/runs/{run.id}")
    assert page.status_code == 200
    assert 'data-testid="corrected"' in page.text
    assert "corrected for its error rate" in page.text or "refused" in page.text


def test_checkpoint_ratings_judge_beside_experts(session: Session, client: TestClient) -> None:
    from tests.support.factories import make_pair_run, make_pairs

    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Ratings")
    version = make_version(session, project, "pairwise_preference")
    rollouts = make_rollouts(session, project, 120)
    skill = {"ckpt-1": 0, "ckpt-2": 1, "ckpt-3": 2}
    rng = random.Random(4)
    names = list(skill)
    for rollout in rollouts:
        rollout.checkpoint = rng.choice(names)
        session.add(rollout)
    session.commit()
    made = make_pairs(session, project, rollouts)
    pairs = {p.id: p for p in made}
    by_id = {r.id: r for r in rollouts}
    shown = {}
    for pair in made:
        a, b = by_id[pair.rollout_a_id], by_id[pair.rollout_b_id]
        better = "A" if skill[a.checkpoint] >= skill[b.checkpoint] else "B"
        expert = better if rng.random() < 0.85 else ("B" if better == "A" else "A")
        add_label(session, project, version, a, owner, preference=expert, pair=pair)
        positional_ba = "B" if better == "A" else "A"
        shown[pair.id] = (better, positional_ba)
    run = make_pair_run(session, project, version, shown, pairs)
    comparison = agreement_service.checkpoint_ratings(session, run)
    assert comparison is not None and comparison.reason is None
    assert [r.player for r in comparison.judge][0] == "ckpt-3"
    assert comparison.kendall_tau is not None and comparison.kendall_tau > 0
    login(client, owner.email)
    page = client.get(f"/projects/{project.id}/agreement/runs/{run.id}")
    assert page.status_code == 200
    assert 'data-testid="ratings-judge"' in page.text and 'data-testid="chart-ratings"' in page.text
