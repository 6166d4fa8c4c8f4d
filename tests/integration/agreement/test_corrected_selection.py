"""Corrected estimates for a selection the user picks (a checkpoint, another run of the same judge,
a training run's samples): the SQL counts equal a count in Python, Rogan–Gladen and PPI++ equal
an independent computation on the labelled items, a judge with no information is refused with
its reason, and the page, its htmx fragment and the API show the same figures and the errors."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.stats import norm
from sqlmodel import Session, select

from app.agreement import selection
from app.agreement.corrected import NO_INFORMATION, rogan_gladen
from app.drift.models import DriftSample, TrainingRun
from app.judging.models import Verdict
from app.labels import values as label_values
from app.rubrics.builtin import BUILTIN_TEMPLATES
from app.rubrics.definition import RubricDefinition
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
HTMX = {"HX-Request": "true"}


def _ppi(y: list[float], f: list[float], f_mean: float, f_var: float, n_big: int) -> float:
    """PPI++ mean written out independently (Angelopoulos et al. 2023, eq. for the mean)."""
    ya, fa = np.array(y), np.array(f)
    n = len(ya)
    lam = np.cov(ya, fa, ddof=1)[0, 1] / ((1 + n / n_big) * np.var(fa, ddof=1))
    lam = min(1.0, max(0.0, float(lam)))
    return float(lam * f_mean + np.mean(ya - lam * fa))


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Selections", members=[(expert, "expert")])
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 120)
    rng = random.Random(21)
    for index, rollout in enumerate(rollouts):
        rollout.checkpoint = "ckpt-1" if index % 2 else "ckpt-2"
        session.add(rollout)
    session.commit()
    rate = {"ckpt-1": 0.4, "ckpt-2": 0.8}
    truth = {r.id: {k: rng.random() < rate[r.checkpoint or ""] for k in KEYS} for r in rollouts}
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
    labelled = rollouts[:50]
    for rollout in labelled:
        add_label(session, project, version, rollout, expert, truth[rollout.id])
    return {
        "owner": owner,
        "project": project,
        "version": version,
        "rollouts": rollouts,
        "truth": truth,
        "judged": judged,
        "run": run,
        "labelled": labelled,
    }


def test_a_checkpoint_is_counted_in_sql_and_corrected(
    session: Session, world: dict[str, Any]
) -> None:
    project, run, judged, truth = world["project"], world["run"], world["judged"], world["truth"]
    chosen = selection.Selection(rollouts=selection.RolloutFilter(checkpoint="ckpt-2"))
    found = selection.selection_estimates(session, project.id, run.id, chosen)
    selected = [r for r in world["rollouts"][50:] if r.checkpoint == "ckpt-2"]
    assert found.n_selected == len(selected) == 35
    assert found.n_labelled_items == 50
    assert "checkpoint ckpt-2" in found.described
    for criterion in found.criteria:
        key = criterion.key
        passes = sum(judged[r.id][key] for r in selected)
        pairs = [(judged[r.id][key], truth[r.id][key]) for r in world["labelled"]]
        tpr = sum(j for j, t in pairs if t) / sum(t for _, t in pairs)
        tnr = sum(not j for j, t in pairs if not t) / sum(not t for _, t in pairs)
        rate = criterion.rate
        assert rate.judge_rate == pytest.approx(passes / len(selected))
        assert rate.sensitivity == pytest.approx(tpr)
        assert rate.specificity == pytest.approx(tnr)
        assert rate.corrected == pytest.approx(rogan_gladen(passes / len(selected), tpr, tnr))
        assert rate.ci_low is not None and rate.ci_high is not None
        assert rate.ci_low <= rate.corrected <= rate.ci_high
        assert "would pass" in criterion.meaning
    # PPI++ on the stored normalised scores and the experts' overall by the rubric's own rule.
    scores = {
        v.rollout_id: v.normalized
        for v in session.exec(select(Verdict).where(Verdict.run_id == run.id)).all()
    }
    definition = RubricDefinition.model_validate(world["version"].definition)

    def expert(rollout_id: int) -> float:
        found = label_values.label_aggregate(definition, truth[rollout_id])
        assert found is not None
        return found.normalized

    f_sel = [scores[r.id] for r in selected]
    f_lab = [scores[r.id] for r in world["labelled"]]
    y_lab = [expert(r.id) for r in world["labelled"]]
    mean = found.mean_reward
    assert mean is not None and mean.n_unlabelled == len(selected)
    assert mean.judge_mean == pytest.approx(float(np.mean(f_sel)))
    expected = _ppi(y_lab, f_lab, float(np.mean(f_sel)), float(np.var(f_sel, ddof=1)), 35)
    assert mean.estimate == pytest.approx(expected)
    # the interval is the normal one on the PPI++ variance
    half = (mean.ci_high - mean.ci_low) / 2
    lam = mean.lam
    var = lam**2 * np.var(f_sel, ddof=1) / 35 + np.var(
        np.array(y_lab) - lam * np.array(f_lab), ddof=1
    ) / len(y_lab)
    assert half == pytest.approx(float(norm.ppf(0.975)) * math.sqrt(var))


def test_another_run_of_the_same_judge_and_a_different_judge(
    session: Session, world: dict[str, Any]
) -> None:
    project, run, version = world["project"], world["run"], world["version"]
    fresh = make_rollouts(session, project, 30, prefix="new")
    answers = {r.id: boolean_answer(version.definition, dict.fromkeys(KEYS, True)) for r in fresh}
    same = make_run(session, project, version, answers)
    found = selection.selection_estimates(
        session, project.id, run.id, selection.Selection(run_id=same.id)
    )
    assert found.n_selected == 30
    assert all(c.rate.judge_rate == 1.0 for c in found.criteria)
    other = make_run(session, project, version, answers, judge="another-judge")
    with pytest.raises(selection.InvalidInput, match="another judge"):
        selection.selection_estimates(
            session, project.id, run.id, selection.Selection(run_id=other.id)
        )


def test_a_judge_without_information_is_refused_with_its_reason(session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    project = make_project(session, owner, "Coin")
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 40)
    # The judge passes exactly what the experts fail: TPR + TNR = 0.
    truth = {r.id: {k: i % 2 == 0 for k in KEYS} for i, r in enumerate(rollouts)}
    run = make_run(
        session,
        project,
        version,
        {
            rid: boolean_answer(version.definition, {k: not v for k, v in t.items()})
            for rid, t in truth.items()
        },
    )
    for rollout in rollouts[:20]:
        add_label(session, project, version, rollout, owner, truth[rollout.id])
    found = selection.selection_estimates(session, project.id, run.id, selection.Selection())
    assert found.n_selected == 20
    for criterion in found.criteria:
        assert criterion.rate.corrected is None
        assert criterion.rate.reason == NO_INFORMATION
        assert "no better than chance" in criterion.meaning


def test_a_training_runs_samples(session: Session, world: dict[str, Any]) -> None:
    project, run = world["project"], world["run"]
    training = TrainingRun(project_id=project.id, name="grpo-7")
    session.add(training)
    session.commit()
    rng = random.Random(5)
    scored = []
    for index in range(60):
        criteria = {k: int(rng.random() < 0.6) for k in KEYS}
        status = "ok" if index % 10 else "error"
        session.add(
            DriftSample(
                project_id=project.id,
                training_run_id=training.id,
                record_id=f"rec-{index}",
                content_hash=f"{index:064d}",
                step=index,
                recorded_at=datetime(2026, 12, 1, tzinfo=UTC),
                reward=0.5,
                judge_status=status,
                judge_criteria=criteria if status == "ok" else {},
                judge_aggregate=sum(criteria.values()) / len(KEYS) if status == "ok" else None,
            )
        )
        if status == "ok":
            scored.append(criteria)
    session.commit()
    found = selection.selection_estimates(
        session,
        project.id,
        run.id,
        selection.Selection(selection.SelectionSource.TRAINING_RUN, training_run_id=training.id),
    )
    assert found.n_selected == len(scored) == 54
    for criterion in found.criteria:
        assert criterion.rate.judge_rate == pytest.approx(
            sum(s[criterion.key] for s in scored) / 54
        )
    assert found.mean_reward is not None
    assert found.mean_reward.judge_mean == pytest.approx(
        float(np.mean([sum(s.values()) / len(KEYS) for s in scored]))
    )
    assert found.caveat and "no export bundle" in found.caveat


def test_page_fragment_and_api(client: TestClient, world: dict[str, Any]) -> None:
    project, run = world["project"], world["run"]
    login(client, world["owner"].email)
    base = f"/projects/{project.id}/agreement/corrected"
    empty = client.get(base)
    assert empty.status_code == 200
    assert 'data-testid="corrected-form"' in empty.text
    assert 'data-testid="corrected-selection"' not in empty.text

    page = client.get(base, params={"run": run.id, "checkpoint": "ckpt-2"})
    assert page.status_code == 200
    assert 'data-n-selected="35"' in page.text
    assert "corrected for its error rate" in page.text
    assert 'value="ckpt-2"' in page.text  # the form keeps what was typed

    fragment = client.get(base, params={"run": run.id, "checkpoint": "ckpt-2"}, headers=HTMX)
    assert fragment.status_code == 200
    assert 'data-testid="corrected-selection"' in fragment.text
    assert "<html" not in fragment.text

    bad = client.get(base, params={"run": run.id, "step_min": "50", "step_max": "10"}, headers=HTMX)
    assert bad.status_code == 422
    assert 'data-testid="corrected-error"' in bad.text
    assert "first step must not come after the last step" in bad.text
    typed = client.get(base, params={"run": run.id, "step_min": "ten"})
    assert typed.status_code == 422
    assert 'value="ten"' in typed.text and "whole number" in typed.text

    api = f"/api/v1/projects/{project.id}/agreement/corrected"
    answer = client.get(api, params={"run": run.id, "checkpoint": "ckpt-2"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["n_selected"] == 35
    assert body["rubric_version_id"] == world["version"].id
    first = body["criteria"][0]
    assert first["headline"].startswith("the judge says ")
    assert "corrected for its error rate" in first["headline"]
    assert body["mean_reward"]["ci_low"] < body["mean_reward"]["estimate"]
    refused = client.get(api, params={"run": run.id, "step_min": 9, "step_max": 1})
    assert refused.status_code == 422
    assert "first step" in refused.json()["detail"]
    missing = client.get(api, params={"run": 2_000_000})
    assert missing.status_code == 404
