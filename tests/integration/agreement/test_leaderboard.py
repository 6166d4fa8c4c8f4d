"""The runs leaderboard on the calibration demo: headline figures with intervals, sorting,
filtering, CSV download with formula cells neutralised, and the API."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.agreement.leaderboard import LeaderboardRow, csv_safe, to_csv
from app.core.config import Settings
from app.demo.calibration import SLUG, load_calibration_demo
from app.judging.models import JudgeRun
from app.projects.models import Project
from tests.support.factories import make_user
from tests.support.web import login


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("GPT-4", "GPT-4"),
        (-0.5, -0.5),
    ],
)
def test_csv_cells_cannot_run_as_formulas(cell, safe) -> None:
    assert csv_safe(cell) == safe


def test_leaderboard_of_the_calibration_demo(
    session: Session, settings: Settings, client: TestClient
) -> None:
    admin = make_user(session, "admin@example.com", is_admin=True)
    load_calibration_demo(session, settings, admin)
    project = session.exec(select(Project).where(Project.slug == SLUG)).one()
    runs = list(
        session.exec(
            select(JudgeRun).where(JudgeRun.project_id == project.id).order_by(col(JudgeRun.id))
        )
    )
    login(client, admin.email)
    api = f"/api/v1/projects/{project.id}/agreement/leaderboard"
    body = client.get(api, params={"sort": "positional_agreement", "dir": "desc"}).json()
    assert [row["run_id"] for row in body] == [runs[0].id, runs[1].id]  # 0.87 then 0.84
    first = body[0]
    assert first["headline"] == "accuracy" and first["value"] == pytest.approx(0.81)
    assert first["ci_low"] < 0.81 < first["ci_high"]
    assert first["kappa_ci_low"] < first["kappa"] < first["kappa_ci_high"]
    assert (
        first["base_rate"] is not None and first["rubric_version_id"] == runs[0].rubric_version_id
    )
    assert first["positional_agreement"] == pytest.approx(0.87)
    ascending = client.get(api, params={"sort": "positional_agreement", "dir": "asc"}).json()
    assert [row["run_id"] for row in ascending] == [runs[1].id, runs[0].id]
    only = client.get(api, params={"q": "metrics_reference"}).json()
    assert [row["judge"] for row in only] == ["GPT-4 · Metrics_Reference"]

    page = client.get(f"/projects/{project.id}/agreement/leaderboard")
    assert page.status_code == 200
    assert page.text.count('data-testid="leaderboard-row"') == 2
    assert 'data-testid="chart-leaderboard"' in page.text
    download = client.get(f"/projects/{project.id}/agreement/leaderboard.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {row["judge"] for row in rows} == {
        "GPT-4 · Vanilla_NoRules",
        "GPT-4 · Metrics_Reference",
    }


def test_csv_neutralises_a_hostile_judge_name() -> None:
    row = LeaderboardRow(1, "=cmd|' /C calc'!A0", "r", 1, 1, "rubric", "external", "completed")
    text = to_csv([row])
    assert "'=cmd" in text


def test_self_consistency_counted_in_sql_equals_the_pure_function(session: Session) -> None:
    """The leaderboard's self-consistency (SQL per rollout) equals `self_consistency` over every
    verdict of the run read into Python, with missing scores and single repeats."""
    import random

    from app.agreement.leaderboard import repeat_agreement
    from app.agreement.reliability import self_consistency
    from app.judging.models import JudgeWorkItem, Verdict
    from tests.support.factories import make_project, make_rollouts, make_version

    owner = make_user(session, "sc@example.com")
    project = make_project(session, owner, "Self-consistency")
    version = make_version(session, project)
    rollouts = make_rollouts(session, project, 30)
    run = JudgeRun(
        project_id=project.id or 0,
        rubric_version_id=version.id or 0,
        judge_snapshot={"name": "j"},
        status="completed",
        repeats=3,
    )
    session.add(run)
    session.commit()
    rng = random.Random(4)
    expected: dict[int, list[bool | None]] = {}
    for rollout in rollouts:
        for repeat in range(rng.choice([1, 2, 3])):
            normalized = None if rng.random() < 0.15 else rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])
            item = JudgeWorkItem(
                run_id=run.id or 0,
                rollout_id=rollout.id or 0,
                subject_key=f"r:{rollout.id}",
                repeat=repeat,
                status="done",
            )
            session.add(item)
            session.flush()
            session.add(
                Verdict(
                    run_id=run.id or 0,
                    work_item_id=item.id,
                    rollout_id=rollout.id or 0,
                    repeat=repeat,
                    normalized=normalized,
                    parse_status="ok" if normalized is not None else "error",
                )
            )
            expected.setdefault(rollout.id or 0, []).append(
                None if normalized is None else normalized >= 0.5
            )
    session.commit()
    reference = self_consistency(expected).all_agree.value
    assert reference is not None
    assert repeat_agreement(session, run) == pytest.approx(reference, abs=1e-15)


def test_a_cached_leaderboard_follows_new_labels_and_the_gold_test_split(
    session: Session,
) -> None:
    """Leaderboards are kept per data version: a new label, a new verdict or a change of the
    gold test split gives a new one, and callers get copies they may change."""
    from app.agreement import leaderboard as board
    from app.rubrics.builtin import get_builtin
    from tests.support.factories import (
        add_label,
        bulk_rollouts,
        bulk_run,
        make_gold_set,
        make_project,
        make_version,
    )

    owner = make_user(session, "board@example.com")
    project = make_project(session, owner, "Board")
    version = make_version(session, project)
    rollouts = bulk_rollouts(session, project, 8, "board")
    keys = [c.key for c in get_builtin("generic_pass_fail").criteria]
    bulk_run(session, project, version, {r.id or 0: dict.fromkeys(keys, True) for r in rollouts})
    add_label(session, project, version, rollouts[0], owner, dict.fromkeys(keys, True))
    first = board.leaderboard(session, project.id or 0)
    assert [r.n_labels for r in first] == [1]
    first[0].n_labels = 99  # a caller's copy
    assert board.leaderboard(session, project.id or 0)[0].n_labels == 1
    add_label(session, project, version, rollouts[1], owner, dict.fromkeys(keys, False))
    assert board.leaderboard(session, project.id or 0)[0].n_labels == 2
    assert board.leaderboard(session, project.id or 0, board.Scope.GOLD_TEST)[0].n_labels == 0
    make_gold_set(session, project, owner, rollouts[:1], split="test")
    assert board.leaderboard(session, project.id or 0, board.Scope.GOLD_TEST)[0].n_labels == 1
