"""Drift import (idempotent, bad lines by line and field, gzip, step/time mapping) and the
dashboard series against an independent computation over the same file (numpy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from sqlmodel import Session, func, select

from app.drift import service as drift_service
from app.drift.buckets import plan_buckets
from app.drift.models import DriftSample
from app.drift.synthetic import records, step_log
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout
from tests.integration.drift.conftest import DriftWorld, ImportDrift, jsonl


def _count(session: Session, model: Any, **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return int(session.exec(query).one())


def test_import_is_idempotent_and_makes_each_sample_a_rollout(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(120, run="run-1", steps=29))
    job = import_drift(jsonl(rows))
    assert job.status == rollout_service.DONE, job.message
    assert job.inserted == 120
    again = import_drift(jsonl(rows, gz=True), filename="samples.jsonl.gz")
    assert again.status == rollout_service.DONE, again.message
    assert again.inserted == 0 and again.duplicates == 120
    assert _count(session, DriftSample, training_run_id=drift_world.run.id) == 120
    sample = session.exec(select(DriftSample).where(DriftSample.record_id == "run-1-5")).one()
    rollout = session.get(Rollout, sample.rollout_id)
    assert rollout is not None and rollout.project_id == drift_world.project.id
    assert rollout.metadata_["source"] == "drift:run-1" and rollout.step == sample.step
    assert rollout.group_key == sample.group_id
    assert sample.response_chars == len(rows[5]["rollout"]["response"])
    session.refresh(drift_world.run)
    assert drift_world.run.sample_count == 120 and drift_world.run.step_max == 29


def test_bad_lines_are_reported_by_line_and_field_and_nothing_is_stored(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(5, run="run-1", steps=4))
    rows[1]["reward"] = "high"
    del rows[2]["recorded_at"]
    rows[3]["training_run"] = "other-run"
    rows[4]["judge"]["status"] = "weird"
    job = import_drift(jsonl(rows))
    assert job.status == rollout_service.REJECTED
    problems = {(p.line, p.field) for p in rollout_service.list_problems(session, job.id or 0)}
    assert {(2, "reward"), (3, "recorded_at"), (4, "training_run"), (5, "judge.status")} <= problems
    assert _count(session, DriftSample, training_run_id=drift_world.run.id) == 0
    skipped = import_drift(jsonl(rows), skip_invalid=True)
    assert skipped.status == rollout_service.DONE and skipped.inserted == 1


def test_conflicting_record_is_reported_not_overwritten(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(3, run="run-1", steps=2))
    import_drift(jsonl(rows))
    rows[0]["reward"] = 0.01
    job = import_drift(jsonl(rows))
    assert job.conflicts == 1 and job.duplicates == 2
    stored = session.exec(select(DriftSample).where(DriftSample.record_id == "run-1-0")).one()
    assert stored.reward != 0.01


def test_nova_records_get_steps_from_the_step_time_log(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(60, run="run-1", steps=29, with_step=False))
    job = import_drift(jsonl(rows))
    assert job.status == rollout_service.DONE
    assert drift_service.unstepped_count(session, drift_world.run) == 60
    _, placed = drift_service.set_step_map(
        session, drift_world.run, drift_world.engineer, step_log(29)
    )
    assert placed == 60
    expected = {r["id"]: i // 2 for i, r in enumerate(rows)}
    for sample in session.exec(select(DriftSample)):
        assert sample.step == expected[sample.record_id] and sample.step_mapped
        rollout = session.get(Rollout, sample.rollout_id)
        assert rollout is not None and rollout.step == sample.step


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q * 100, method="linear"))


def test_series_equal_an_independent_computation(
    session: Session, drift_world: DriftWorld, import_drift: ImportDrift
) -> None:
    rows = list(records(1500, run="run-1", steps=300, gaming_from=180, seed=3))
    assert import_drift(jsonl(rows)).status == rollout_service.DONE
    data = drift_service.series(session, drift_world.run)
    plan = plan_buckets(0, 300)
    assert plan is not None and data.plan == plan
    by_bucket: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_bucket.setdefault(plan.index_of(row["step"]), []).append(row)
    assert [b["bucket"] for b in data.buckets] == sorted(by_bucket)
    for bucket in data.buckets:
        group = by_bucket[bucket["bucket"]]
        reward = np.array([r["reward"] for r in group])
        length = np.array([len(r["rollout"]["response"]) for r in group])
        assert bucket["n"] == len(group)
        assert (bucket["step_start"], bucket["step_end"]) == plan.bounds(bucket["bucket"])
        assert math.isclose(bucket["reward_mean"], reward.mean(), rel_tol=1e-9)
        for q, key in ((0.1, "reward_p10"), (0.5, "reward_p50"), (0.9, "reward_p90")):
            assert math.isclose(bucket[key], _percentile(reward, q), rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(bucket["length_mean"], length.mean(), rel_tol=1e-9)
        assert math.isclose(bucket["length_p90"], _percentile(length, 0.9), rel_tol=1e-9)
        rho = stats.spearmanr(reward, length).statistic
        assert math.isclose(bucket["reward_length_spearman"], rho, rel_tol=1e-6, abs_tol=1e-9)
        errors = np.mean([r["judge"]["status"] == "error" for r in group])
        assert math.isclose(bucket["judge_error_rate"], errors, abs_tol=1e-12)
        for name in ("grounding", "actionability"):
            values = [
                float(r["judge"]["criteria"][name]) for r in group if name in r["judge"]["criteria"]
            ]
            assert math.isclose(bucket["criteria"][name]["mean"], np.mean(values), rel_tol=1e-9)
        grounding_pass = np.mean([r["components"]["grounding"] >= 0.5 for r in group])
        assert math.isclose(bucket["components"]["grounding"]["pass_rate"], grounding_pass)
        groups: dict[str, list[float]] = {}
        for r in group:
            groups.setdefault(r["group_id"], []).append(r["reward"])
        multi = [g for g in groups.values() if len(g) >= 2]
        zero = sum(1 for g in multi if max(g) - min(g) < 1e-9)
        assert bucket["groups"] == len(multi)
        if multi:
            assert math.isclose(bucket["zero_spread_share"], zero / len(multi))
        addressed = sum("Note to the evaluator" in r["rollout"]["response"] for r in group)
        assert bucket["judge_addressed"] == addressed
    again = drift_service.series(session, drift_world.run)
    assert again.cached and again.buckets == data.buckets
