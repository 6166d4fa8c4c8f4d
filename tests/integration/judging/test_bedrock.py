"""Bedrock judges: the Converse provider through the executor (botocore Stubber), and batch
inference end to end — JSONL requests in S3 (moto), the invocation job (Stubber), output read by
listing the prefix and joined on recordId into verdicts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.judging import batch as judge_batch
from app.judging import engine as judge_engine
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.llm.bedrock import BedrockProvider, clear_mode_cache
from app.llm.schema_instance import instance_for_schema
from app.projects.models import Project
from app.worker import WorkerContext
from tests.support.factories import (
    fast_options,
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
    start_runs,
)

BUCKET = "rs-judge-batch"
ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"
MODEL = "us.amazon.nova-2-lite-v1:0"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clear_mode_cache()
    yield
    clear_mode_cache()


@pytest.fixture
def project(session: Session) -> Project:
    return make_project(session, make_user(session), "Bedrock judging")


def _converse_reply(text: str, tokens_in: int = 120, tokens_out: int = 40) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": 160},
        "metrics": {"latencyMs": 25},
    }


def _bedrock_config(session: Session, project: Project, **overrides: Any):
    values: dict[str, Any] = {
        "name": "nova judge",
        "provider": "bedrock",
        "model_id": MODEL,
        "base_url": None,
        "region": "us-east-1",
        "concurrency": 1,
        "structured_output": "prompt",
    }
    values.update(overrides)
    return make_judge_config(session, project, **values)


def test_a_bedrock_converse_judge_run_with_throttling_and_a_repair(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    config = _bedrock_config(session, project, price_input_per_1k=0.06, price_output_per_1k=0.24)
    (run,) = start_runs(session, project, version, [config])
    good = json.dumps(instance_for_schema(version.output_schema, 3))
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    expected = {"modelId": MODEL, "messages": ANY, "inferenceConfig": ANY, "system": ANY}
    with Stubber(client) as stub:
        # Throttled once, then prose instead of JSON, then the corrected JSON after the repair.
        stub.add_client_error(
            "converse",
            service_error_code="ThrottlingException",
            service_message="Too many requests",
            http_status_code=429,
        )
        stub.add_response("converse", _converse_reply("I think it is fine overall."), expected)
        stub.add_response("converse", _converse_reply(good, 200, 50), expected)

        stats = judge_engine.work_on_run(
            engine,
            run.id or 0,
            fast_options(),
            provider_factory=lambda cfg: BedrockProvider(cfg, client=client),
        )
        stub.assert_no_pending_responses()

    assert stats.completed_run
    (verdict,) = session.exec(select(Verdict).where(Verdict.run_id == run.id)).all()
    assert verdict.parse_status == "repaired"
    assert verdict.attempts == 3  # throttled + prose + the repair request
    assert verdict.input_tokens == 320 and verdict.output_tokens == 90
    assert verdict.normalized is not None and verdict.answer is not None
    session.refresh(run)
    assert run.status == "completed"
    assert run.input_tokens == 320 and run.output_tokens == 90
    assert run.cost == pytest.approx(320 / 1000 * 0.06 + 90 / 1000 * 0.24)


def test_bedrock_access_denied_is_an_error_verdict_with_the_neutral_score(
    session: Session, engine: Engine, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 1)
    config = _bedrock_config(session, project)
    (run,) = start_runs(session, project, version, [config], neutral_score=0.5)
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "converse",
            service_error_code="AccessDeniedException",
            service_message="not allowed",
            http_status_code=403,
        )
        judge_engine.work_on_run(
            engine,
            run.id or 0,
            fast_options(),
            provider_factory=lambda cfg: BedrockProvider(cfg, client=client),
        )
    (verdict,) = session.exec(select(Verdict).where(Verdict.run_id == run.id)).all()
    assert verdict.parse_status == "error" and verdict.normalized == 0.5
    assert "AccessDeniedException" in (verdict.error or "")


# ---- batch inference --------------------------------------------------------------------------


def _batch_world(session: Session, project: Project, count: int) -> tuple[JudgeRun, Any]:
    version = make_version(session, project)
    insert_rollouts(session, project, count)
    config = _bedrock_config(
        session,
        project,
        batch_s3_uri=f"s3://{BUCKET}/judging/",
        batch_role_arn=ROLE,
        price_input_per_1k=0.03,
        price_output_per_1k=0.12,
    )
    (run,) = start_runs(session, project, version, [config], batch=True, neutral_score=0.5)
    return run, version


def _job(status: str, arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobArn": arn,
        "modelId": MODEL,
        "roleArn": ROLE,
        "status": status,
        "submitTime": "2026-01-01T00:00:00Z",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/in/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        **extra,
    }


def _read_input(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="judging/")
    keys = [o["Key"] for o in listed.get("Contents", []) if "/input/" in o["Key"]]
    assert keys and all(k.endswith(".jsonl") for k in keys)
    lines = []
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        lines += [json.loads(line) for line in body.splitlines() if line]
    return lines


@mock_aws
def test_a_batch_run_goes_through_s3_and_an_invocation_job_into_verdicts(
    session: Session, engine: Engine, project: Project
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    clients = judge_batch.BatchClients(bedrock=bedrock, s3=s3)
    run, version = _batch_world(session, project, 4)
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123"

    with Stubber(bedrock) as stub:
        stub.add_response(
            "create_model_invocation_job",
            {"jobArn": arn},
            {
                "jobName": ANY,
                "roleArn": ROLE,
                "modelId": MODEL,
                "inputDataConfig": ANY,
                "outputDataConfig": ANY,
                "modelInvocationType": "Converse",
                "timeoutDurationInHours": 24,
                "clientRequestToken": ANY,
            },
        )
        assert judge_batch.advance_batch_run(engine, run.id or 0, clients) == "submitted"
        stub.assert_no_pending_responses()

    session.refresh(run)
    assert run.status == "running" and run.batch_job_arn == arn
    assert run.settings["batch_state"] == "submitted"
    records = _read_input(s3)
    assert len(records) == 4
    item_ids = {judge_batch.parse_record_id(r["recordId"]) for r in records}
    work_items = session.exec(select(JudgeWorkItem.id).where(JudgeWorkItem.run_id == run.id))
    assert item_ids == set(work_items.all())
    first = records[0]["modelInput"]
    assert first["messages"][0]["role"] == "user" and "JSON Schema" in first["system"][0]["text"]
    assert first["inferenceConfig"]["maxTokens"] == 1024

    with Stubber(bedrock) as stub:
        stub.add_response(
            "get_model_invocation_job",
            _job("InProgress", arn, processedRecordCount=1, totalRecordCount=4),
            {"jobIdentifier": arn},
        )
        assert judge_batch.advance_batch_run(engine, run.id or 0, clients) == "polled: InProgress"
    session.refresh(run)
    assert "1/4 records" in run.message and run.status == "running"

    # Bedrock writes its output (out of order, with one failed record and one unusable reply)
    # under <output prefix>/<job id>/, plus a manifest that must be ignored.
    out_bucket, out_prefix = judge_batch.split_s3_uri(run.settings["batch_output_uri"])
    good = json.dumps(instance_for_schema(version.output_schema, 5))
    lines = [
        {
            "recordId": records[2]["recordId"],
            "modelInput": records[2]["modelInput"],
            "modelOutput": _converse_reply(good, 300, 60),
        },
        {
            "recordId": records[0]["recordId"],
            "modelInput": records[0]["modelInput"],
            "modelOutput": _converse_reply(f"Here you go:\n```json\n{good}\n```", 310, 70),
        },
        {
            "recordId": records[1]["recordId"],
            "modelInput": records[1]["modelInput"],
            "error": {"errorCode": 400, "errorMessage": "Malformed input request"},
        },
        {
            "recordId": records[3]["recordId"],
            "modelInput": records[3]["modelInput"],
            "modelOutput": _converse_reply("no JSON here at all", 290, 10),
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    s3.put_object(Bucket=out_bucket, Key=f"{out_prefix}abc123/part-00001.jsonl.out", Body=body)
    s3.put_object(
        Bucket=out_bucket,
        Key=f"{out_prefix}abc123/manifest.json.out",
        Body=json.dumps({"totalRecordCount": 4, "errorRecordCount": 1}),
    )

    with Stubber(bedrock) as stub:
        stub.add_response(
            "get_model_invocation_job",
            _job("PartiallyCompleted", arn, processedRecordCount=4, totalRecordCount=4),
            {"jobIdentifier": arn},
        )
        judge_batch.advance_batch_run(engine, run.id or 0, clients)

    session.expire_all()
    verdicts = {
        v.work_item_id: v for v in session.exec(select(Verdict).where(Verdict.run_id == run.id))
    }
    ids = [judge_batch.parse_record_id(r["recordId"]) for r in records]
    assert verdicts[ids[0]].parse_status == "ok"  # JSON inside a fenced block is still read
    assert verdicts[ids[2]].parse_status == "ok"
    assert verdicts[ids[1]].parse_status == "error" and "Malformed" in (
        verdicts[ids[1]].error or ""
    )
    assert verdicts[ids[3]].parse_status == "invalid" and verdicts[ids[3]].normalized == 0.5
    session.refresh(run)
    assert run.status == "with_errors" and run.message.startswith("2 of 4 judge calls failed")
    assert run.items_done == 4 and run.items_error == 2
    assert run.input_tokens == 900 and run.output_tokens == 140
    assert run.cost == pytest.approx(900 / 1000 * 0.03 + 140 / 1000 * 0.12)


@mock_aws
def test_a_cancelled_batch_run_stops_its_job_and_the_worker_drives_batches(
    session: Session, engine: Engine, project: Project, settings, monkeypatch
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    clients = judge_batch.BatchClients(bedrock=bedrock, s3=s3)
    monkeypatch.setattr(judge_batch, "CLIENT_FACTORY", lambda region: clients)
    run, _ = _batch_world(session, project, 3)
    ctx = WorkerContext(engine=engine, settings=settings, worker_id="w", stop=threading.Event())
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/cancel1"

    with Stubber(bedrock) as stub:
        stub.add_response("create_model_invocation_job", {"jobArn": arn})
        from app.judging.jobs import run_judging_once

        assert run_judging_once(ctx) is True  # the worker submits the batch run
        stub.assert_no_pending_responses()
        # The next poll is not due yet: the worker leaves the job alone.
        assert judge_batch.due_batch_runs(engine) == []

    from app.judging import service as judge_service

    judge_service.cancel_run(session, project, run, actor=None)
    with Stubber(bedrock) as stub:
        stub.add_response("stop_model_invocation_job", {}, {"jobIdentifier": arn})
        assert run_judging_once(ctx) is True
        stub.assert_no_pending_responses()
    session.refresh(run)
    assert run.status == "cancelled" and run.settings["batch_state"] == "stopped"
    assert judge_batch.due_batch_runs(engine) == []


def test_a_batch_run_needs_a_bedrock_judge_with_an_s3_location(
    session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    config = _bedrock_config(session, project)
    from app.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="S3 location"):
        start_runs(session, project, version, [config], batch=True)


def test_record_ids_round_trip() -> None:
    assert judge_batch.record_id(42) == "R0000000042"
    assert judge_batch.parse_record_id("R0000000042") == 42
    assert judge_batch.parse_record_id("REC0000001") is None
    assert judge_batch.split_s3_uri("s3://bucket/a/b") == ("bucket", "a/b/")
    assert judge_batch.split_s3_uri("s3://bucket") == ("bucket", "")
