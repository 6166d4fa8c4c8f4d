"""Whole-run figures kept in the database (app.core.stored): a restart reads them instead of
computing them again; a new label or verdict gives new ones; rows nobody signed are never
unpickled; the worker computes a finished run's figures when a label changes or a run finishes.
"""

from __future__ import annotations

import pickle
import random
import threading
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.agreement import jobs as figure_jobs
from app.agreement import service as agreement_service
from app.core import stored
from app.core.config import Settings
from app.core.jobs import WorkerContext
from app.core.stored import FigureKind, FigureRefresh, StoredFigure
from app.judging import storage
from app.judging.models import JudgeRun
from app.labels import annotation
from app.labels.queues import QueueSelection
from app.labels.service import LabelInput
from app.rubrics.builtin import BUILTIN_TEMPLATES
from tests.support.factories import (
    add_label,
    bulk_rollouts,
    bulk_run,
    make_project,
    make_queue,
    make_user,
    make_version,
)
from tests.support.figures import restart

KEYS = [c.key for c in BUILTIN_TEMPLATES["generic_pass_fail"].criteria]


def _world(session: Session, labelled: int = 6) -> dict[str, Any]:
    rng = random.Random(5)
    owner = make_user(session, "owner@example.com")
    expert = make_user(session, "expert@example.com")
    project = make_project(session, owner, "Stored", members=[(expert, "expert")])
    version = make_version(session, project)
    rollouts = bulk_rollouts(session, project, 40, "stored")
    judged = {r.id or 0: {k: rng.random() < 0.6 for k in KEYS} for r in rollouts}
    run = bulk_run(session, project, version, judged)
    for rollout in rollouts[:labelled]:
        add_label(session, project, version, rollout, expert, {k: rng.random() < 0.6 for k in KEYS})
    return {
        "owner": owner,
        "expert": expert,
        "project": project,
        "version": version,
        "run": run,
        "rollouts": rollouts,
    }


def _figures(result: agreement_service.RunAgreement) -> list[Any]:
    return [
        (c.key, c.n, c.binary.agreement.value if c.binary else None, c.binary.kappa.value)
        for c in result.criteria
        if c.binary
    ]


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("computed again instead of read from the database")


def test_a_restart_reads_the_figures_from_the_database(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(session)
    run = world["run"]
    first = agreement_service.run_agreement(session, run)
    corrected = agreement_service.corrected_estimates(session, run, first)
    kinds = set(
        session.execute(
            select(StoredFigure.kind).where(StoredFigure.judge_run_id == run.id)
        ).scalars()
    )
    assert {FigureKind.RUN_AGREEMENT, FigureKind.CORRECTED, FigureKind.RUN_SUMS} <= kinds

    restart()
    monkeypatch.setattr(agreement_service, "_run_agreement", _refuse)
    monkeypatch.setattr(agreement_service, "_corrected", _refuse)
    again = agreement_service.run_agreement(session, run)
    assert again is not first and _figures(again) == _figures(first)
    assert again.items_labelled == first.items_labelled == 6
    again_corrected = agreement_service.corrected_estimates(session, run, again)
    assert again_corrected is not None and corrected is not None
    assert again_corrected.n_unlabelled == corrected.n_unlabelled == 34
    assert [c.rate.corrected for c in again_corrected.criteria] == [
        c.rate.corrected for c in corrected.criteria
    ]


def test_a_new_label_gives_new_figures_and_asks_the_worker(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(session)
    run, expert = world["run"], world["expert"]
    before = agreement_service.run_agreement(session, run)
    queue = make_queue(
        session,
        world["project"],
        world["version"],
        world["owner"],
        assignees=[expert],
        selection=QueueSelection(),
    )
    item = annotation.next_item(session, queue, expert)
    assert item is not None
    result = annotation.submit_label(
        session, queue, item, expert, LabelInput(values={k: True for k in KEYS})
    )
    assert result.outcome in ("created", "submitted")
    # The submission asked the worker to compute the run's figures again, in its transaction.
    assert session.get(FigureRefresh, run.id) is not None

    restart()
    after = agreement_service.run_agreement(session, run)
    assert after.items_labelled == before.items_labelled + 1

    # The worker computes them; the next visit (another process) reads them.
    worker = WorkerContext(session.get_bind(), Settings(), "test-worker", threading.Event())
    assert figure_jobs.run_figure_refresh_once(worker) is True
    assert session.get(FigureRefresh, run.id) is None
    assert figure_jobs.run_figure_refresh_once(worker) is False
    restart()
    monkeypatch.setattr(agreement_service, "_run_agreement", _refuse)
    assert agreement_service.run_agreement(session, run).items_labelled == after.items_labelled


def test_a_request_made_while_the_worker_computes_is_kept(session: Session) -> None:
    world = _world(session)
    run = world["run"]
    stored.request_refresh(session, [run.id, run.id])
    stored.request_refresh(session, [run.id])  # requests for one run coalesce
    session.commit()
    assert session.execute(select(func.count()).select_from(FigureRefresh)).scalar() == 1
    claimed = stored.claim_refresh(session, "w1", 60)
    assert claimed is not None and claimed[0] == run.id
    assert stored.claim_refresh(session, "w2", 60) is None  # leased
    stored.request_refresh(session, [run.id])  # a label arrives meanwhile
    session.commit()
    stored.finish_refresh(session, *claimed)
    left = session.get(FigureRefresh, run.id)
    assert left is not None and left.lease_owner is None  # computed again on the next pass
    again = stored.claim_refresh(session, "w2", 60)
    assert again is not None
    stored.finish_refresh(session, *again)
    assert session.get(FigureRefresh, run.id) is None


def test_a_finished_run_asks_for_its_figures(session: Session) -> None:
    world = _world(session)
    run = world["run"]
    session.execute(update(JudgeRun).where(JudgeRun.id == run.id).values(status="running"))
    session.commit()
    assert storage.finalize_run(session.get_bind(), run.id) is True  # type: ignore[arg-type]
    assert session.get(FigureRefresh, run.id) is not None


def test_the_worker_skips_a_run_still_being_judged(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(session)
    run = world["run"]
    session.execute(update(JudgeRun).where(JudgeRun.id == run.id).values(status="running"))
    stored.request_refresh(session, [run.id])
    session.commit()
    monkeypatch.setattr(figure_jobs, "refresh_run", _refuse)
    worker = WorkerContext(session.get_bind(), Settings(), "test-worker", threading.Event())
    assert figure_jobs.run_figure_refresh_once(worker) is True
    assert session.get(FigureRefresh, run.id) is None


def test_an_entry_nobody_signed_is_never_unpickled(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(session)
    run = world["run"]
    key = ("example", run.id)
    assert stored.save(session, FigureKind.RUN_SUMS, key, (1.0, 2.0), judge_run_id=run.id)
    assert stored.load(session, FigureKind.RUN_SUMS, key) == (1.0, 2.0)
    # Someone with write access to the database (but not the secret key) swaps the value.
    forged = b"\0" * 32 + pickle.dumps(("forged",))
    session.execute(
        update(StoredFigure)
        .where(StoredFigure.digest == stored.entry_digest(FigureKind.RUN_SUMS, key))
        .values(payload=forged)
    )
    session.commit()
    monkeypatch.setattr(pickle, "loads", _refuse)
    assert stored.load(session, FigureKind.RUN_SUMS, key) is stored.MISSING


def test_each_run_keeps_its_newest_entries_of_a_kind(session: Session) -> None:
    world = _world(session)
    run = world["run"]
    for number in range(stored.KEEP_PER_OWNER + 3):
        stored.save(session, FigureKind.SLICES, ("v", number), number, judge_run_id=run.id)
    stored.save(session, FigureKind.RUN_SUMS, ("v", 0), 0, judge_run_id=run.id)
    kept = session.execute(
        select(StoredFigure.kind, func.count())
        .where(StoredFigure.judge_run_id == run.id)
        .group_by(StoredFigure.kind)
    ).all()
    assert dict(kept) == {FigureKind.SLICES: stored.KEEP_PER_OWNER, FigureKind.RUN_SUMS: 1}
    oldest = stored.load(session, FigureKind.SLICES, ("v", 0))
    newest = stored.load(session, FigureKind.SLICES, ("v", stored.KEEP_PER_OWNER + 2))
    assert oldest is stored.MISSING and newest == stored.KEEP_PER_OWNER + 2
    # An entry goes with its run.
    session.delete(session.get(JudgeRun, run.id))
    session.commit()
    assert session.execute(select(func.count()).select_from(StoredFigure)).scalar() == 0


def test_the_digest_leaves_the_database_address_out_and_names_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    web, worker = "postgresql://web@db/x", "postgresql://worker@10.0.0.5/x"
    a = stored.entry_digest(FigureKind.RUN_SUMS, (web, 1, 2), web)
    assert a == stored.entry_digest(FigureKind.RUN_SUMS, (worker, 1, 2), worker)
    assert a == stored.entry_digest(FigureKind.RUN_SUMS, (1, 2))
    assert a != stored.entry_digest(FigureKind.CORRECTED, (1, 2))
    # Other code (another release) never reads what this code pickled.
    monkeypatch.setattr(stored, "code_fingerprint", lambda: "another release")
    assert stored.entry_digest(FigureKind.RUN_SUMS, (1, 2)) != a


def test_a_label_import_asks_for_the_figures_once(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from app.labels import exchange

    world = _world(session)
    run, version = world["run"], world["version"]
    lines = "".join(
        json.dumps(
            {"rollout_id": r.id, "annotator": f"imported {n}", "values": dict.fromkeys(KEYS, True)}
        )
        + "\n"
        for n, r in enumerate(world["rollouts"][10:14])
    )
    calls: list[int] = []
    original = stored.request_refresh

    def counted(executor: Any, run_ids: Any) -> None:
        calls.append(1)
        original(executor, run_ids)

    monkeypatch.setattr(stored, "request_refresh", counted)
    result = exchange.import_labels(
        session,
        world["project"],
        actor=None,
        rubric_version_id=version.id or 0,
        text=lines,
        fmt="jsonl",
    )
    session.commit()
    assert result.created == 4
    assert calls == [1]  # one request for the import, not one per label
    assert session.get(FigureRefresh, run.id) is not None
