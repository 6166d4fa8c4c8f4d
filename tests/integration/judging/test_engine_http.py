"""The judge executor against a real local HTTP judge server: success, every fault kind, the
repair of malformed JSON, the neutral fallback, pairwise orders, cancellation and leases."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app.judging import engine as judge_engine
from app.judging import progress as judge_progress
from app.judging import service as judge_service
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.llm.egress import EgressPolicy
from app.llm.openai_compat import clear_mode_cache
from app.projects.models import Project
from tests.support.db import backend
from tests.support.factories import (
    fast_options,
    insert_pairs,
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
    start_runs,
)
from tests.support.judge_server import FaultSequence, JudgeServer


@pytest.fixture(autouse=True)
def _fresh_mode_cache() -> Iterator[None]:
    # The provider remembers which structured-output mode worked per endpoint; tests start clean.
    clear_mode_cache()
    yield
    clear_mode_cache()


@pytest.fixture
def project(session: Session) -> Project:
    owner = make_user(session)
    return make_project(session, owner, "Judging")


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer(retry_after_s=0.05, hang_s=5.0, slow_chunk_delay_s=0.02) as srv:
        yield srv


def _verdicts(session: Session, run: JudgeRun) -> list[Verdict]:
    session.expire_all()
    return list(
        session.exec(select(Verdict).where(Verdict.run_id == run.id).order_by(col(Verdict.id)))
    )


def _queued_run(
    session: Session,
    project: Project,
    rollouts: int,
    *,
    run_options: dict[str, Any] | None = None,
    **judge: Any,
) -> JudgeRun:
    """A published rubric version, `rollouts` rollouts and one queued run of a judge configured
    with `judge` (make_judge_config's options)."""
    version = make_version(session, project)
    insert_rollouts(session, project, rollouts)
    config = make_judge_config(session, project, **judge)
    (run,) = start_runs(session, project, version, [config], **(run_options or {}))
    return run


def _judge(engine: Engine, run: JudgeRun, **options: Any) -> judge_engine.SessionStats:
    return judge_engine.work_on_run(engine, run.id or 0, fast_options(**options))


def test_a_run_is_judged_over_http_with_tokens_cost_and_consistent_counters(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 12)
    config = make_judge_config(session, project, base_url=server.base_url, concurrency=4)
    (run,) = start_runs(session, project, version, [config], repeats=2)
    assert run.items_total == 24

    stats = _judge(engine, run)

    assert stats.completed_run and stats.inserted == 24
    verdicts = _verdicts(session, run)
    assert len(verdicts) == 24
    assert {v.parse_status for v in verdicts} == {"ok"}
    assert all(v.normalized is not None and 0.0 <= v.normalized <= 1.0 for v in verdicts)
    assert all(v.input_tokens > 0 and v.output_tokens > 0 and v.attempts == 1 for v in verdicts)
    assert all(v.judge_name == "local test judge" for v in verdicts)
    assert {(v.rollout_id, v.repeat) for v in verdicts} == {
        (v.rollout_id, r) for v in verdicts for r in (0, 1)
    }
    session.refresh(run)
    assert run.status == "completed" and run.finished_at is not None
    assert run.items_done == 24 and run.items_error == 0
    assert run.input_tokens == sum(v.input_tokens for v in verdicts)
    assert run.output_tokens == sum(v.output_tokens for v in verdicts)
    expected_cost = run.input_tokens / 1000 * 0.001 + run.output_tokens / 1000 * 0.002
    assert run.cost == pytest.approx(expected_cost)
    # json_schema was asked for and honoured; calls never exceeded the configured concurrency.
    assert server.formats == {"json_schema": 24}
    assert server.max_in_flight <= 4
    # Scores are recomputed from the per-criterion answer, not taken from the judge.
    first = verdicts[0]
    assert set(first.scores["criteria"]) == {c["key"] for c in version.definition["criteria"]}


@pytest.mark.parametrize(
    "fault", ["rate_limit", "server_error", "unavailable", "timeout", "malformed_body"]
)
def test_each_transient_fault_is_retried_and_the_verdict_records_the_attempts(
    session: Session, engine: Engine, project: Project, server: JudgeServer, fault: str
) -> None:
    run = _queued_run(session, project, 1, base_url=server.base_url, timeout_s=0.5)
    server.set_faults(FaultSequence([fault]))

    _judge(engine, run)

    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "ok", verdict.error
    assert verdict.attempts == 2
    assert server.faults.get(fault) == 1 and server.requests == 2


def test_a_slow_body_is_read_in_full(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(session, project, 2, base_url=server.base_url)
    server.set_faults(FaultSequence(["slow_body", "slow_body"]))

    _judge(engine, run)

    verdicts = _verdicts(session, run)
    assert [v.parse_status for v in verdicts] == ["ok", "ok"]
    assert [v.attempts for v in verdicts] == [1, 1]
    assert server.faults == {"slow_body": 2}


def test_a_server_without_json_schema_falls_back_to_json_object(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 3)
    with JudgeServer(accepted_formats=("json_object", "text")) as server:
        config = make_judge_config(session, project, base_url=server.base_url, concurrency=1)
        (run,) = start_runs(session, project, version, [config])
        _judge(engine, run)
        formats = server.formats
    assert {v.parse_status for v in _verdicts(session, run)} == {"ok"}
    # Rejected once, then the mode that worked is remembered for the other calls.
    assert formats == {"json_schema": 1, "json_object": 3}


def test_a_non_retryable_error_stores_an_error_verdict_with_the_neutral_score(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(
        session, project, 1, base_url=server.base_url, run_options={"neutral_score": 0.25}
    )
    server.set_faults(FaultSequence(["bad_request"] * 3))

    _judge(engine, run)

    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "error"
    assert verdict.normalized == 0.25 and verdict.aggregate is None
    assert "bad_request" in (verdict.error or "")
    # bad_request is not retried; the provider tries json_schema, then json_object, then prompt
    # after a 400 — but the server's 400 is for any request, so all three fail once each.
    assert verdict.attempts == 1
    session.refresh(run)
    # Its only call failed: the run failed, and says why (not a green "completed").
    assert run.status == "failed" and run.items_error == 1 and run.items_done == 1
    assert run.message.startswith("Every judge call failed (1 of 1)")
    assert "The first error:" in run.message and "bad_request" in run.message


def test_malformed_json_gets_one_repair_request(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(session, project, 1, base_url=server.base_url)
    server.set_faults(FaultSequence(["invalid_json_content"]))

    _judge(engine, run)

    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "repaired"
    assert verdict.attempts == 2 and verdict.normalized is not None
    assert "first reply unusable" in (verdict.error or "")
    repair_request = server.records[1].body
    roles = [m["role"] for m in repair_request["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "could not be used" in repair_request["messages"][-1]["content"]
    assert repair_request["messages"][2]["content"].startswith("I would rate this")


def test_an_answer_that_breaks_the_schema_is_repaired_too(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    replies = iter([json.dumps({"criteria": {}, "aggregate_score": 9})])

    def responder(body: dict[str, Any]) -> str:
        try:
            return next(replies)
        except StopIteration:
            schema = body["response_format"]["json_schema"]["schema"]
            from app.llm.schema_instance import instance_for_schema

            return json.dumps(instance_for_schema(schema, 1))

    with JudgeServer(responder=responder) as server:
        config = make_judge_config(session, project, base_url=server.base_url)
        (run,) = start_runs(session, project, version, [config])
        _judge(engine, run)
    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "repaired"
    assert "does not match the answer schema" in (verdict.error or "")


def test_nul_characters_in_a_reply_are_replaced_so_the_verdict_is_stored(
    session: Session, engine: Engine, project: Project
) -> None:
    # PostgreSQL stores no NUL character (in text or in JSON): an untrusted reply holding one
    # must not make its batch of verdicts fail again and again.
    version = make_version(session, project)
    insert_rollouts(session, project, 3)

    def responder(body: dict[str, Any]) -> str:
        from app.llm.schema_instance import instance_for_schema

        answer = instance_for_schema(body["response_format"]["json_schema"]["schema"], 2)
        for entry in answer["criteria"].values():
            entry["justification"] = "bad\x00byte"
        return "\x00" + json.dumps(answer)  # one raw NUL, and escaped ones inside the JSON

    with JudgeServer(responder=responder) as server:
        config = make_judge_config(session, project, base_url=server.base_url)
        (run,) = start_runs(session, project, version, [config])
        stats = _judge(engine, run)

    assert stats.completed_run
    verdicts = _verdicts(session, run)
    assert [v.parse_status for v in verdicts] == ["ok"] * 3
    for verdict in verdicts:
        assert "\x00" not in verdict.raw_text and verdict.raw_text.startswith("\ufffd")
        assert verdict.answer is not None
        justifications = {e["justification"] for e in verdict.answer["criteria"].values()}
        assert justifications == {"bad\ufffdbyte"}


def test_counts_reported_by_the_judge_are_kept_within_the_columns_range(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(session, project, 1, base_url=server.base_url)
    plan = judge_engine.load_plan(engine, run.id or 0)
    assert plan is not None
    item = judge_engine.PreparedItem(1, 1, None, 0, "", call=None)
    row = judge_engine.verdict_row(
        plan, item, status="ok", input_tokens=10**12, output_tokens=-5, latency_ms=2**40
    )
    assert (row["input_tokens"], row["output_tokens"], row["latency_ms"]) == (
        2**31 - 1,
        0,
        2**31 - 1,
    )


@pytest.mark.skipif(backend() != "postgres", reason="SQLite stores any integer in any column")
def test_a_verdict_the_database_refuses_becomes_an_error_and_the_rest_of_its_batch_is_stored(
    session: Session,
    engine: Engine,
    project: Project,
    server: JudgeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = _queued_run(session, project, 6, base_url=server.base_url, concurrency=6)
    first_item = min(session.exec(select(JudgeWorkItem.id).where(JudgeWorkItem.run_id == run.id)))
    real_row = judge_engine.verdict_row

    def row_with_an_out_of_range_value(*args: Any, **kwargs: Any) -> dict[str, Any]:
        row = real_row(*args, **kwargs)
        if row["work_item_id"] == first_item and row["parse_status"] == "ok":
            row["latency_ms"] = 2**40  # past PostgreSQL's integer: the whole batch is refused
        return row

    monkeypatch.setattr(judge_engine, "verdict_row", row_with_an_out_of_range_value)
    stats = _judge(engine, run, flush_interval_s=5.0)  # one batch holds all six verdicts

    assert stats.completed_run and stats.inserted == 6
    verdicts = {v.work_item_id: v for v in _verdicts(session, run)}
    refused = verdicts.pop(first_item)
    assert refused.parse_status == "error" and refused.latency_ms == 0
    assert "the database refused this verdict" in (refused.error or "")
    assert refused.normalized == 0.5
    assert {v.parse_status for v in verdicts.values()} == {"ok"}
    session.refresh(run)
    assert (run.status, run.items_done, run.items_error) == ("with_errors", 6, 1)
    assert run.message.startswith("1 of 6 judge calls failed")
    assert "the database refused this verdict" in run.message


def test_a_reply_still_unusable_after_repair_falls_back_to_the_neutral_score(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(
        session, project, 1, base_url=server.base_url, run_options={"neutral_score": 0.3}
    )
    server.set_faults(FaultSequence(["invalid_json_content", "invalid_json_content"]))

    _judge(engine, run)

    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "invalid"
    assert verdict.normalized == 0.3 and verdict.answer is None
    assert "after one repair request" in (verdict.error or "")
    assert verdict.raw_text.startswith("I would rate this")
    assert server.requests == 2  # one call and exactly one repair
    session.refresh(run)
    assert run.status == "failed" and run.items_error == 1


def test_a_missing_api_key_variable_fails_without_calling(
    session: Session, engine: Engine, project: Project, server: JudgeServer, monkeypatch
) -> None:
    monkeypatch.delenv("RS_JUDGE_KEY_TEST", raising=False)
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    config = make_judge_config(
        session, project, base_url=server.base_url, api_key_env="RS_JUDGE_KEY_TEST"
    )
    (run,) = start_runs(session, project, version, [config])

    _judge(engine, run)

    verdicts = _verdicts(session, run)
    assert {v.parse_status for v in verdicts} == {"error"}
    assert all("RS_JUDGE_KEY_TEST" in (v.error or "") for v in verdicts)
    assert server.requests == 0
    session.refresh(run)
    assert run.status == "failed" and "RS_JUDGE_KEY_TEST" in run.message


def test_a_stored_configuration_the_policy_now_refuses_sends_nothing(
    session: Session, engine: Engine, project: Project, server: JudgeServer, monkeypatch
) -> None:
    # Saved before the allow-list existed (written straight to the table): the worker refuses it.
    monkeypatch.setenv("RS_SECRET_KEY", "the-app-secret")
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    config = make_judge_config(session, project, base_url=server.base_url)
    config.api_key_env = "RS_SECRET_KEY"
    session.add(config)
    session.commit()
    (run,) = start_runs(session, project, version, [config])

    _judge(engine, run)

    session.refresh(run)
    assert run.status == "failed" and "RS_SECRET_KEY" in run.message
    assert "RS_JUDGE_KEY_" in run.message and "the-app-secret" not in run.message
    assert server.requests == 0


def test_a_worker_whose_operator_refuses_loopback_never_calls_a_local_judge(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    (run,) = [_queued_run(session, project, 2, base_url=server.base_url)]
    _judge(engine, run, egress=EgressPolicy())
    session.refresh(run)
    assert run.status == "failed" and "loopback" in run.message
    assert server.requests == 0


def test_the_api_key_is_read_from_the_named_environment_variable(
    session: Session, engine: Engine, project: Project, monkeypatch
) -> None:
    monkeypatch.setenv("RS_JUDGE_KEY_TEST", "sk-test-123")
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    with JudgeServer(api_key="sk-test-123") as server:
        config = make_judge_config(
            session, project, base_url=server.base_url, api_key_env="RS_JUDGE_KEY_TEST"
        )
        (run,) = start_runs(session, project, version, [config])
        _judge(engine, run)
        assert server.records[0].authorization == "Bearer sk-test-123"
    assert _verdicts(session, run)[0].parse_status == "ok"


def test_pairwise_runs_judge_both_orders_and_record_the_winner_in_pair_terms(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project, "pairwise_preference")
    rollouts = insert_rollouts(session, project, 6, response="answer text {i}")
    pairs = insert_pairs(session, project, rollouts)

    def always_first(body: dict[str, Any]) -> str:
        # A maximally position-biased judge: it always prefers whatever it was shown first.
        schema = body["response_format"]["json_schema"]["schema"]
        keys = schema["properties"]["criteria"]["required"]
        criteria = {k: {"justification": "first", "winner": "A"} for k in keys}
        return json.dumps({"criteria": criteria, "justification": "first", "winner": "A"})

    with JudgeServer(responder=always_first) as server:
        config = make_judge_config(session, project, base_url=server.base_url)
        (run,) = start_runs(session, project, version, [config])
        assert run.kind == "pairwise" and run.items_total == 6
        _judge(engine, run)
        prompts = [r.body["messages"][-1]["content"] for r in server.records]

    verdicts = _verdicts(session, run)
    assert {(v.pair_id, v.order_shown) for v in verdicts} == {
        (p, o) for p in pairs for o in ("AB", "BA")
    }
    for verdict in verdicts:
        assert verdict.answer["winner"] == "A"  # what the judge said about the order it saw
        expected = "A" if verdict.order_shown == "AB" else "B"
        assert verdict.winner == expected
        assert verdict.normalized == (1.0 if expected == "A" else 0.0)
        assert set(verdict.scores["criteria"].values()) == {expected}
    # The BA prompt really shows response B first.
    first_pair = [p for p in prompts if "answer text 0" in p and "answer text 1" in p]
    assert len(first_pair) == 2
    assert {p.index("answer text 0") < p.index("answer text 1") for p in first_pair} == {
        True,
        False,
    }


def test_cancel_stops_new_calls_and_resume_finishes_the_run(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 80)
    with JudgeServer(latency_s=0.1) as server:
        config = make_judge_config(session, project, base_url=server.base_url, concurrency=2)
        (run,) = start_runs(session, project, version, [config])
        done = threading.Event()
        result: dict[str, Any] = {}

        def work() -> None:
            result["stats"] = _judge(engine, run)
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        while server.requests < 6:
            assert not done.wait(0.02), "the run finished before it could be cancelled"
        judge_service.cancel_run(session, project, run, actor=None)
        at_cancel = server.requests
        worker.join(timeout=30)
        assert not worker.is_alive()
        after_session = server.requests

        stats = result["stats"]
        assert stats.halted == "cancelled"
        # Calls started after the cancel: at most those begun before the executor's next status
        # check (every 0.05 s here), with two calls in flight at a time.
        assert after_session - at_cancel <= 4
        session.refresh(run)
        assert run.status == "cancelled"
        assert run.items_done < 80
        # Items the session held were handed back, not left leased.
        leased = session.exec(
            select(func.count())
            .select_from(JudgeWorkItem)
            .where(JudgeWorkItem.run_id == run.id, JudgeWorkItem.status == "leased")
        ).one()
        assert leased == 0
        # Nothing calls the judge for a cancelled run.
        again = _judge(engine, run)
        assert again.claimed == 0 and server.requests == after_session

        judge_service.resume_run(session, project, run, actor=None)
        _judge(engine, run)

    verdicts = _verdicts(session, run)
    assert len(verdicts) == 80
    assert len({v.work_item_id for v in verdicts}) == 80
    session.refresh(run)
    assert run.status == "completed" and run.items_done == 80


def test_a_verdict_cannot_be_stored_twice_and_counters_count_it_once(
    session: Session, engine: Engine, project: Project
) -> None:
    run = _queued_run(session, project, 2)
    plan = judge_engine.load_plan(engine, run.id or 0)
    assert plan is not None
    claimed = judge_engine.claim_items(engine, run.id or 0, "worker-a", 10, 30)
    items = judge_engine.prepare_items(engine, plan, claimed, judge_engine.PromptCache())
    rows = [
        judge_engine.verdict_row(plan, item, status="error", error="x", input_tokens=10)
        for item in items
    ]

    assert judge_engine.write_verdicts(engine, plan.snapshot, rows) == 2
    assert judge_engine.write_verdicts(engine, plan.snapshot, rows) == 0

    session.refresh(run)
    assert run.items_done == 2 and run.input_tokens == 20
    assert len(_verdicts(session, run)) == 2


def test_expired_leases_are_reclaimed_and_the_late_worker_cannot_duplicate(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(session, project, 5, base_url=server.base_url)
    plan = judge_engine.load_plan(engine, run.id or 0)
    assert plan is not None
    # A worker leases three items, then stalls past its (zero-second) lease.
    stalled = judge_engine.claim_items(engine, run.id or 0, "stalled", 3, 0)
    assert len(stalled) == 3
    # Another worker sees them as free again and finishes the whole run.
    stats = _judge(engine, run)
    assert stats.claimed == 5 and stats.completed_run
    # The stalled worker wakes up and writes its results: all skipped, counters unchanged.
    late = judge_engine.prepare_items(engine, plan, stalled, judge_engine.PromptCache())
    rows = [judge_engine.verdict_row(plan, item, status="error", error="late") for item in late]
    assert judge_engine.write_verdicts(engine, plan.snapshot, rows) == 0
    verdicts = _verdicts(session, run)
    assert len(verdicts) == 5 and {v.parse_status for v in verdicts} == {"ok"}
    session.refresh(run)
    assert run.items_done == 5 and run.items_error == 0
    attempts = session.exec(
        select(JudgeWorkItem.attempts).where(JudgeWorkItem.run_id == run.id)
    ).all()
    assert sorted(attempts) == [1, 1, 2, 2, 2]


def test_a_worker_handler_call_finishes_a_queued_run(
    session: Session, engine: Engine, project: Project, server: JudgeServer, settings
) -> None:
    from app.judging.jobs import run_judging_once
    from app.worker import WorkerContext

    run = _queued_run(session, project, 4, base_url=server.base_url)
    ctx = WorkerContext(
        engine=engine, settings=settings, worker_id="handler-test", stop=threading.Event()
    )

    assert run_judging_once(ctx) is True
    session.refresh(run)
    assert run.status == "completed" and run.items_done == 4
    assert run_judging_once(ctx) is False  # nothing left


def test_a_worker_shutdown_hands_its_items_back_without_cancelling_the_run(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 40)
    with JudgeServer(latency_s=0.1) as server:
        config = make_judge_config(session, project, base_url=server.base_url, concurrency=2)
        (run,) = start_runs(session, project, version, [config])
        stop = threading.Event()
        result: dict[str, Any] = {}

        def work() -> None:
            result["stats"] = judge_engine.work_on_run(
                engine, run.id or 0, fast_options(), stop=stop
            )

        worker = threading.Thread(target=work)
        worker.start()
        while server.requests < 4:
            threading.Event().wait(0.02)
        stop.set()
        worker.join(timeout=30)
        assert result["stats"].halted == "stopped" and result["stats"].released > 0
        session.refresh(run)
        assert run.status == "running"  # a shutdown is not a cancel
        leased = session.exec(
            select(func.count())
            .select_from(JudgeWorkItem)
            .where(JudgeWorkItem.run_id == run.id, JudgeWorkItem.status == "leased")
        ).one()
        assert leased == 0
        # Another worker picks the run up at once (no lease to wait for) and finishes it.
        _judge(engine, run)
    session.refresh(run)
    assert run.status == "completed" and len(_verdicts(session, run)) == 40


def test_an_item_that_keeps_killing_workers_is_given_up_with_the_neutral_score(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    run = _queued_run(
        session, project, 2, base_url=server.base_url, run_options={"neutral_score": 0.5}
    )
    poisoned = session.exec(
        select(JudgeWorkItem).where(JudgeWorkItem.run_id == run.id).order_by(JudgeWorkItem.id)
    ).first()
    assert poisoned is not None
    poisoned.attempts = 5  # claimed five times already, never finished
    session.add(poisoned)
    session.commit()

    _judge(engine, run)

    verdicts = {v.work_item_id: v for v in _verdicts(session, run)}
    assert verdicts[poisoned.id].parse_status == "error"
    assert "abandoned after 5 claims" in (verdicts[poisoned.id].error or "")
    assert verdicts[poisoned.id].normalized == 0.5
    assert server.requests == 1  # only the healthy item called the judge


def test_a_prompt_template_that_fails_for_a_rollout_stores_an_error_verdict(
    session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    from app.rubrics.builtin import get_builtin

    defn = get_builtin("generic_pass_fail")
    template = "Judge {{ metadata['topic'] }}: {{ response }}"
    defn = defn.model_copy(update={"user_template": template})
    version = make_version(session, project, definition=defn)
    insert_rollouts(session, project, 1)  # metadata has no "topic"
    config = make_judge_config(session, project, base_url=server.base_url)
    (run,) = start_runs(session, project, version, [config])

    _judge(engine, run)

    (verdict,) = _verdicts(session, run)
    assert verdict.parse_status == "error"
    assert "prompt template failed" in (verdict.error or "")
    assert server.requests == 0
    session.refresh(run)
    assert run.status == "failed" and "prompt template failed" in run.message


def test_progress_reports_rate_and_time_left(session: Session, project: Project) -> None:
    from datetime import timedelta

    from app.core.clock import utcnow

    run = _queued_run(session, project, 10)
    now = utcnow()
    run.status = "running"
    run.items_total, run.items_done, run.items_error = 100, 40, 3
    run.rate_base_at, run.rate_base_done = now - timedelta(seconds=10), 20
    progress = judge_progress.run_progress(run, now)
    assert progress.rate_per_s == pytest.approx(2.0)
    assert progress.eta_s == pytest.approx(30.0)
    assert (progress.done, progress.errors, progress.remaining, progress.percent) == (40, 3, 60, 40)
    assert not progress.finished
    run.status, run.started_at, run.finished_at = "completed", now - timedelta(seconds=50), now
    run.items_done = 100
    done = judge_progress.run_progress(run, now)
    assert done.finished and done.eta_s is None and done.rate_per_s == pytest.approx(2.0)
