"""Agreement by slice: per-slice figures equal the figures computed on that slice alone, the
slice mean is the unweighted mean, the pooled row equals the run's figures; labeller filters;
the API and the page; the calibration demo's runs."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.agreement import service as agreement_service
from app.agreement import slices
from app.auth.models import User
from app.core.config import Settings
from app.core.errors import InvalidInput
from app.demo.calibration import SLUG, load_calibration_demo
from app.judging.models import JudgeRun
from app.labels import run_subjects
from app.projects.models import Project
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


@pytest.fixture
def demo(session: Session, settings: Settings) -> tuple[User, Project, list[JudgeRun]]:
    admin = make_user(session, "admin@example.com", is_admin=True)
    load_calibration_demo(session, settings, admin)
    project = session.exec(select(Project).where(Project.slug == SLUG)).one()
    runs = list(
        session.exec(
            select(JudgeRun).where(JudgeRun.project_id == project.id).order_by(col(JudgeRun.id))
        )
    )
    return admin, project, runs


def test_pairwise_slices_by_metadata(demo, session: Session, client: TestClient) -> None:
    admin, project, runs = demo
    assert len(runs) == 2
    login(client, admin.email)
    response = client.get(
        f"/api/v1/projects/{project.id}/runs/{runs[0].id}/agreement/slices",
        params={"slice": "metadata.longer_response"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rubric_version_id"] == runs[0].rubric_version_id
    assert [s["value"] for s in body["slices"]] == ["A", "B"]
    assert sum(s["n"] for s in body["slices"]) == body["pooled"]["n"] == 200
    for name, mean in body["slice_mean"].items():
        values = [s["figures"][name] for s in body["slices"] if s["figures"][name] is not None]
        assert mean == pytest.approx(sum(values) / len(values))
    whole = agreement_service.run_agreement(session, runs[0]).pairwise
    assert whole is not None
    for name, estimate in whole.figures.items():
        assert body["pooled"]["figures"][name] == pytest.approx(estimate.value)
    assert body["pooled"]["figures"]["accuracy_ab"] == pytest.approx(159 / 200)
    assert "accuracy_ab" in body["definitions"]

    page = client.get(
        f"/projects/{project.id}/agreement/runs/{runs[0].id}/slices",
        params={"slice": "metadata.longer_response"},
    )
    assert page.status_code == 200
    assert page.text.count('data-testid="slice-row"') == 2
    assert 'data-testid="chart-slices"' in page.text

    refused = client.get(
        f"/api/v1/projects/{project.id}/runs/{runs[0].id}/agreement/slices",
        params={"slice": "colour"},
    )
    assert refused.status_code in (400, 422)
    assert "metadata.<key>" in refused.text


def test_rubric_slices_by_group_and_labeller(session: Session) -> None:
    owner = make_user(session, "owner@example.com")
    experts = [make_user(session, f"e{i}@example.com") for i in range(2)]
    reviewer = make_user(session, "r@example.com")
    project = make_project(
        session,
        owner,
        "Slices",
        members=[(experts[0], "expert"), (experts[1], "expert"), (reviewer, "reviewer")],
    )
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 40)
    rng = random.Random(5)
    for index, rollout in enumerate(rollouts):
        rollout.group_key = f"g{index % 3}"
        session.add(rollout)
    session.commit()
    answers = {}
    for rollout in rollouts:
        answers[rollout.id or 0] = boolean_answer(
            version.definition, {k: rng.random() < 0.7 for k in KEYS}
        )
    run = make_run(session, project, version, answers)
    for rollout in rollouts:
        for person in (*experts, reviewer):
            if rng.random() < 0.8:
                add_label(
                    session,
                    project,
                    version,
                    rollout,
                    person,
                    {k: rng.random() < 0.7 for k in KEYS},
                )
    spec = slices.parse_slice("group")
    breakdown = slices.run_slices(session, run, spec)
    assert [row.value for row in breakdown.rows] == ["g0", "g1", "g2"]
    # Each slice equals the figures computed on its subjects alone, by the existing service.
    result = agreement_service.run_agreement(session, run)
    subjects = run_subjects.subjects(session, run_subjects.run_context(session, run))
    key = KEYS[0]
    for row in breakdown.rows:
        members = [s for s in subjects if f"g{(s.rollout_id - rollouts[0].id) % 3}" == row.value]
        expected = agreement_service.criterion_agreement(
            members, result.definition.criteria[0], resamples=0
        ).binary
        assert expected is not None
        assert row.figures[f"{key}.agreement"] == pytest.approx(expected.agreement.value)
        assert row.figures[f"{key}.kappa"] == pytest.approx(expected.kappa.value)
    assert breakdown.pooled.figures[f"{key}.agreement"] == pytest.approx(
        result.criteria[0].figures.agreement.value
    )
    assert breakdown.pooled.n == result.n_labels

    experts_only = slices.run_slices(
        session, run, spec, annotators=slices.annotator_keys(session, project.id or 0, "expert")
    )
    assert experts_only.pooled.n == sum(
        1 for s in subjects for label in s.labels if label.annotator_key != f"user:{reviewer.id}"
    )
    by_labeller = slices.run_slices(session, run, slices.parse_slice("annotator"))
    assert len(by_labeller.rows) == 3
    assert sum(row.n for row in by_labeller.rows) == result.n_labels

    with pytest.raises(InvalidInput):
        slices.parse_slice("metadata.bad key")
    assert slices.parse_slice("step:50").bucket == 50
