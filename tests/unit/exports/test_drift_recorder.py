"""Drift samples out of training: which samples the exported reward records, the records' shape
(INTERFACES.md §8), the TRL step, and that recording never fails or blocks a reward call."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from app.exports.package_runtime import drift_recorder
from app.exports.package_runtime.drift_recorder import DriftRecorder, settings_from
from app.exports.package_runtime.engine import RewardEngine
from app.exports.targets.common import runtime_bundle
from app.exports.targets.trl_verl import build_module
from app.llm.schema_instance import prompt_item_count
from app.rewards.config import RewardConfigModel
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content
from tests.unit.exports.nova_models import converse_response, items_in, legal_answer, nova_sample

KEYS = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]
REQUIRED = {"id", "training_run", "recorded_at", "reward"}


LEGAL_SCHEMA = legal_content()["spec"]["prompt"]["output_schema"]


def good_reply(user: str) -> str:
    """4 of 5 on every criterion for every comment of the judged response (each scored once)."""
    return json.dumps(legal_answer(KEYS, score=4, items=prompt_item_count(LEGAL_SCHEMA, user) or 0))


class GoodBedrock:
    def converse(self, **kwargs: Any) -> dict[str, Any]:
        return converse_response(good_reply(kwargs["messages"][0]["content"][0]["text"]))


class FailingBedrock:
    def converse(self, **kwargs: Any) -> dict[str, Any]:
        error = {"Error": {"Code": "ValidationException", "Message": "judge down"}}
        raise ClientError(error, "Converse")


def _bundle(**drift: Any) -> dict[str, Any]:
    config = RewardConfigModel.model_validate({"drift": {"enabled": True} | drift}).as_dict()
    return runtime_bundle(legal_content(judge=BEDROCK_JUDGE | {"max_attempts": 1}, reward=config))


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _outcome(prompt: str, *, status: str = "ok", gated: str | None = None) -> dict[str, Any]:
    sample = {"input_messages": [{"role": "user", "content": prompt}], "response": "r"}
    return {"sample": sample, "reward": 0.5, "judge_status": status, "gated_by": gated}


class ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)


def _recorder(sink: Any, **settings: Any) -> DriftRecorder:
    merged = settings_from({"enabled": True} | settings, environ={})
    return DriftRecorder(merged, bundle_hash="ab" * 32, sink_factory=lambda source: sink)


def test_sampling_takes_whole_prompts_at_about_the_rate_and_is_reproducible() -> None:
    sink = ListSink()
    recorder = _recorder(sink, sample_rate=0.1, training_run="run-a")
    prompts = [f"prompt {i}" for i in range(2000)]
    for prompt in prompts:  # four generations of each prompt
        recorder.record([_outcome(prompt) for _ in range(4)], source="trl", step=3)
    assert recorder.flush(5.0)
    groups: dict[str, int] = {}
    for record in sink.records:
        groups[record["group_id"]] = groups.get(record["group_id"], 0) + 1
    assert set(groups.values()) == {4}  # GRPO groups stay whole
    assert 150 <= len(groups) <= 250  # 10% of 2,000 prompts, binomial spread
    again = ListSink()
    other = _recorder(again, sample_rate=0.1, training_run="run-a")
    for prompt in prompts:
        other.record([_outcome(prompt) for _ in range(4)], source="trl", step=3)
    assert other.flush(5.0)
    assert [r["group_id"] for r in again.records] == [r["group_id"] for r in sink.records]


def test_judge_errors_and_gated_samples_are_always_recorded_up_to_the_cap() -> None:
    sink = ListSink()
    recorder = _recorder(sink, sample_rate=0.0, always_record_per_1000=10)
    for i in range(5000):
        recorder.record([_outcome(f"p{i}", status="error")], source="trl", step=i)
    recorder.record([_outcome("gated", gated="format")], source="trl", step=1)
    assert recorder.flush(5.0)
    # 20 at first, then 10 per 1,000 scored: 20 + 50 for 5,000.
    assert len(sink.records) == drift_recorder.ALWAYS_BURST + 50
    assert recorder.stats["scored"] == 5001
    off = ListSink()
    quiet = _recorder(off, sample_rate=0.0, always_record_errors=False)
    quiet.record([_outcome("p", status="error")], source="trl")
    quiet.flush(5.0)
    assert off.records == []


def test_records_from_the_engine_have_the_documented_shape(tmp_path: Path, demo_rollouts) -> None:
    path = tmp_path / "samples.jsonl"
    bundle = _bundle(sample_rate=1.0, training_run="legal-1", file_path=str(path))
    engine = RewardEngine(bundle, client_factory=GoodBedrock)
    rows = [nova_sample(r) for r in demo_rollouts[:6]]
    prompts = [row["messages"][:-1] for row in rows]
    completions = [[row["messages"][-1]] for row in rows]
    rewards = engine.trl_rewards(
        prompts,
        completions,
        target_document=[row["target_document"] for row in rows],
        trainer_state=SimpleNamespace(global_step=42),
    )
    assert engine.drift.flush(5.0)
    records = _read(path)
    assert len(records) == 6
    for record, reward, row in zip(records, rewards, rows, strict=True):
        assert set(record) >= REQUIRED and record["rollout"]["response"]
        assert record["training_run"] == "legal-1" and record["source"] == "trl"
        assert record["step"] == 42 and record["reward"] == reward
        assert record["bundle_hash"] == f"sha256:{bundle['content_hash']}"
        assert record["rollout"]["response"] == row["messages"][-1]["content"]
        assert record["rollout"]["target_document"] == row["target_document"]
        assert record["recorded_at"].endswith("Z")
        if record["judge"]["status"] == "ok":
            # A response with no comments has nothing to score per criterion.
            commented = items_in({"response": row["messages"][-1]["content"]})
            assert set(record["judge"]["criteria"]) == (set(KEYS) if commented else set())
            assert record["judge"]["latency_ms"] >= 0 and record["judge"]["attempts"] == 1
            assert json.loads(record["judge"]["raw"])["aggregate_score"] == 4
        else:
            assert record["gated_by"] is not None
    assert len({r["id"] for r in records}) == 6


def test_exported_trl_function_records_the_trainers_step(tmp_path: Path, demo_rollouts) -> None:
    path = tmp_path / "drift.jsonl"
    config = RewardConfigModel.model_validate(
        {"drift": {"enabled": True, "sample_rate": 1.0, "file_path": str(path)}}
    ).as_dict()
    module_path = tmp_path / "reward_drift.py"
    module_path.write_text(build_module(legal_content(reward=config)))
    spec = importlib.util.spec_from_file_location("reward_drift_under_test", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Prose responses fail the format gate: no judge is needed.
    for step in (0, 5, 10):
        state = SimpleNamespace(global_step=step)
        module.reward_func_sync(
            prompts=["Review it", "Review it"],
            completions=["Looks fine.", "All good."],
            trainer_state=state,
            log_metric=lambda *a: None,
        )
    assert module.get_engine().drift.flush(5.0)
    records = _read(path)
    assert [r["step"] for r in records] == [0, 0, 5, 5, 10, 10]
    assert {r["source"] for r in records} == {"trl"} and {r["reward"] for r in records} == {0.0}
    assert len({r["group_id"] for r in records}) == 3  # same prompt, three steps


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_api_down_and_a_broken_sink_never_raise_into_the_caller(monkeypatch, demo_rollouts) -> None:
    monkeypatch.setenv("RUBRIC_STUDIO_TOKEN", "t0k")
    bundle = _bundle(
        sample_rate=1.0,
        trainer_destination="api",
        api_url=f"http://127.0.0.1:{_closed_port()}",
        api_project="1",
    )
    engine = RewardEngine(bundle, client_factory=GoodBedrock)
    rewards = engine.trl_rewards(["Review it"], ["Looks fine."], trainer_state=None)
    assert rewards == [0.0]
    assert engine.drift.flush(15.0)
    assert engine.drift.stats["failed"] == 1 and engine.drift.stats["written"] == 0

    class Exploding:
        def write(self, records: list[dict[str, Any]]) -> None:
            raise OSError("disk full")

    recorder = _recorder(Exploding(), sample_rate=1.0)
    recorder.record([_outcome("p")], source="trl", step=1)
    assert recorder.flush(5.0) and recorder.stats["failed"] == 1
    recorder.record([{"not": "an outcome"}, None], source="trl")  # type: ignore[list-item]
    assert recorder.stats["failed"] == 3  # the unreadable call is counted, not raised


def test_a_slow_destination_neither_blocks_the_step_nor_grows_memory() -> None:
    release = threading.Event()

    class Stuck:
        def write(self, records: list[dict[str, Any]]) -> None:
            release.wait(10)

    recorder = _recorder(Stuck(), sample_rate=1.0, max_queue=100)
    started = time.perf_counter()
    for i in range(50):
        recorder.record([_outcome(f"p{i}") for _ in range(8)], source="trl", step=i)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed  # 400 samples offered while the writer is stuck
    assert recorder.stats["recorded"] <= 100 + 8
    assert recorder.stats["dropped"] == 400 - recorder.stats["recorded"]
    release.set()
    assert recorder.flush(5.0)


def test_nova_lambda_without_a_bucket_counts_the_failure_and_scores_normally(
    demo_rollouts,
) -> None:
    bundle = _bundle(sample_rate=1.0, flush_wait_s=2.0)
    engine = RewardEngine(bundle, client_factory=FailingBedrock)
    output = engine.nova_batch([nova_sample(r) for r in demo_rollouts[:3]])
    assert len(output) == 3
    assert engine.drift.stats["failed"] == 3


def test_environment_overrides_and_defaults() -> None:
    settings = settings_from(
        {"enabled": False, "sample_rate": 0.03},
        environ={
            "RUBRIC_DRIFT_ENABLED": "1",
            "RUBRIC_DRIFT_SAMPLE_RATE": "0.5",
            "RUBRIC_DRIFT_S3_BUCKET": "my-bucket",
            "RUBRIC_DRIFT_TRAINING_RUN": "nova-7",
        },
    )
    assert settings["enabled"] is True and settings["sample_rate"] == 0.5
    assert settings["s3_bucket"] == "my-bucket" and settings["training_run"] == "nova-7"
    defaults = RewardConfigModel().drift.model_dump()
    assert {k: drift_recorder.DEFAULTS[k] for k in defaults} == defaults
    off = drift_recorder.from_bundle({"spec": {"reward": {}}}, environ={})
    assert off.enabled is False
    off.record([_outcome("p")], source="trl")


@pytest.mark.parametrize("bucket", ["UPPER", "a", "has space"])
def test_config_refuses_a_bad_bucket_name(bucket: str) -> None:
    with pytest.raises(ValueError):
        RewardConfigModel.model_validate({"drift": {"s3_bucket": bucket}})


def test_s3_down_never_fails_the_lambda_batch(demo_rollouts) -> None:
    import boto3
    from botocore.stub import Stubber

    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stub = Stubber(s3)
    stub.add_client_error("put_object", "NoSuchBucket", "gone", 404)
    stub.activate()
    bundle = _bundle(sample_rate=1.0, s3_bucket="drift-bucket", flush_wait_s=5.0)
    engine = RewardEngine(bundle, client_factory=FailingBedrock)
    settings = settings_from(bundle["spec"]["reward"]["drift"], environ={})
    engine.drift = DriftRecorder(
        settings,
        bundle_hash=bundle["content_hash"],
        sink_factory=lambda source: drift_recorder.S3Sink("drift-bucket", "p/", "run", client=s3),
    )
    output = engine.nova_batch([nova_sample(r) for r in demo_rollouts[:3]])
    assert [row["id"] for row in output] == [r["id"] for r in demo_rollouts[:3]]
    assert engine.drift.stats["failed"] == 3 and engine.drift.stats["written"] == 0
