"""The exported reward engine in process: batching, concurrency, retries, repair, neutral values,
and every training stack's entry point. Bedrock is a botocore Stubber or a counting double."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from app.exports.package_runtime.engine import BundleError, RewardEngine
from app.exports.targets.common import runtime_bundle
from app.llm.schema_instance import prompt_item_count
from app.rewards import components, composite
from app.rewards.config import RewardConfigModel
from tests.unit.exports.builders import BEDROCK_JUDGE, legal_content
from tests.unit.exports.nova_models import (
    NOVA_OUTPUT,
    converse_response,
    good_answer,
    legal_answer,
    nova_sample,
)

KEYS = ["TargetDocument_Grounding", "Reference_Consistency", "Actionability"]
# Every criterion 4 of 1..5 (normalised 0.75) for each comment of the record's response.
LEGAL_SCHEMA = legal_content()["spec"]["prompt"]["output_schema"]


def _bundle(judge: dict[str, Any] | None = None, **reward: Any) -> dict[str, Any]:
    config = RewardConfigModel.model_validate(reward).as_dict()
    return runtime_bundle(legal_content(judge=judge or BEDROCK_JUDGE, reward=config))


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    return client, Stubber(client)


class CountingBedrock:
    """A thread-safe Converse double that answers 4 of 5 for every comment; records overlap.

    The first `expect` calls wait for each other (or 5 s) so overlap is observable without
    timing assertions."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[dict[str, Any]] = []
        self.all_in = threading.Event()

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append(kwargs)
            if self.in_flight >= self.expect:
                self.all_in.set()
        self.all_in.wait(5)
        with self.lock:
            self.in_flight -= 1
        # Score every comment of the judged response once, as the coverage check requires.
        user = kwargs["messages"][0]["content"][0]["text"]
        items = prompt_item_count(LEGAL_SCHEMA, user) or 0
        return converse_response(json.dumps(legal_answer(KEYS, score=4, items=items)))


def _judged(demo_rollouts: list[dict[str, Any]], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Demo rollouts that pass every gate (so the judge is called for them)."""
    keep = []
    for record in demo_rollouts:
        results = components.evaluate_components(
            config,
            record["response"],
            input_messages=record["input"],
            target_document=record["target_document"],
            output_schema=legal_content()["spec"]["project"]["output_schema"],
        )
        if composite.judge_needed(config, results):
            keep.append(record)
    return keep


def test_judge_calls_run_in_parallel_up_to_the_concurrency(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 3})
    judged = _judged(demo_rollouts, bundle["spec"]["reward"])
    assert len(judged) >= 6
    fake = CountingBedrock(expect=3)
    engine = RewardEngine(bundle, client_factory=lambda: fake)
    results = engine.nova_batch([nova_sample(r) for r in judged])
    assert fake.max_in_flight == 3  # parallel, and never more than the concurrency
    assert len(fake.calls) == len(judged)
    assert [r["id"] for r in results] == [r["id"] for r in judged]
    NOVA_OUTPUT.validate_python(results)
    # Without outputConfig support (this double has no service model) the schema is in the prompt.
    assert "JSON Schema" in fake.calls[0]["system"][0]["text"]
    assert fake.calls[0]["inferenceConfig"] == {"maxTokens": 2048, "temperature": 0.0}


def test_throttling_is_retried_with_backoff_then_succeeds(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 1, "max_attempts": 3})
    record = _judged(demo_rollouts, bundle["spec"]["reward"])[0]
    client, stub = _stubbed()
    for _ in range(2):
        stub.add_client_error("converse", "ThrottlingException", "slow down", 429)
    stub.add_response("converse", converse_response(good_answer(KEYS, record)))
    sleeps: list[float] = []
    engine = RewardEngine(bundle, client_factory=lambda: client, sleep=sleeps.append)
    with stub:
        [result] = engine.nova_batch([nova_sample(record)])
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0  # full jitter under the growing cap
    judge = {m["name"]: m["value"] for m in result["metrics_list"]}
    assert judge["judge"] == pytest.approx(0.75) and judge["judge_error"] == 0.0


@pytest.mark.parametrize(
    ("errors", "calls"),
    [
        (["ThrottlingException"] * 3, 3),
        (["ModelErrorException"], 1),
        (["AccessDeniedException"], 1),
    ],
)
def test_a_judge_that_keeps_failing_gives_the_neutral_reward(demo_rollouts, errors, calls) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 1, "max_attempts": 3})
    record = _judged(demo_rollouts, bundle["spec"]["reward"])[0]
    client, stub = _stubbed()
    for code in errors:
        stub.add_client_error("converse", code, "no", 429 if code.startswith("Thr") else 400)
    stub.add_response("converse", converse_response(good_answer(KEYS, record)))  # never reached
    made: list[str] = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda **_: made.append("x")
    )
    engine = RewardEngine(bundle, client_factory=lambda: client, sleep=lambda _s: None)
    with stub:
        [result] = engine.nova_batch([nova_sample(record)])
    assert len(made) == calls
    assert result["aggregate_reward_score"] == 0.5
    flags = {m["name"]: m["value"] for m in result["metrics_list"]}
    assert flags["judge_error"] == 1.0 and "judge" not in flags


def test_native_json_is_tried_first_and_dropped_when_the_model_refuses_it(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 1})
    records = _judged(demo_rollouts, bundle["spec"]["reward"])[:2]
    client, stub = _stubbed()
    with_output_config = {
        "modelId": ANY,
        "messages": ANY,
        "inferenceConfig": ANY,
        "system": ANY,
        "outputConfig": ANY,
    }
    prompt_only = {k: ANY for k in ("modelId", "messages", "inferenceConfig", "system")}
    stub.add_client_error(
        "converse",
        "ValidationException",
        "outputConfig unsupported",
        400,
        expected_params=with_output_config,
    )
    stub.add_response("converse", converse_response(good_answer(KEYS, records[0])), prompt_only)
    # Remembered: no second try with outputConfig.
    stub.add_response("converse", converse_response(good_answer(KEYS, records[1])), prompt_only)
    engine = RewardEngine(bundle, client_factory=lambda: client)
    with stub:
        results = engine.nova_batch([nova_sample(r) for r in records])
        stub.assert_no_pending_responses()
    assert all(r["aggregate_reward_score"] != 0.5 for r in results)


def test_an_unusable_answer_gets_one_repair_request(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 1, "structured_output": "prompt"})
    record = _judged(demo_rollouts, bundle["spec"]["reward"])[0]
    client, stub = _stubbed()
    stub.add_response("converse", converse_response("I'd give it a 4."))
    stub.add_response("converse", converse_response(good_answer(KEYS, record)))
    stub.add_response("converse", converse_response('{"comments": "nope"}'))
    stub.add_response("converse", converse_response("still not json"))
    engine = RewardEngine(bundle, client_factory=lambda: client)
    with stub:
        [repaired] = engine.nova_batch([nova_sample(record)])
        [failed] = engine.nova_batch([nova_sample(record)])
        stub.assert_no_pending_responses()
    assert {m["name"]: m["value"] for m in repaired["metrics_list"]}["judge"] == 0.75
    assert failed["aggregate_reward_score"] == 0.5


def test_a_batch_with_bad_samples_still_answers_every_sample(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 1})
    judged = _judged(demo_rollouts, bundle["spec"]["reward"])
    client, stub = _stubbed()
    stub.add_response("converse", converse_response(good_answer(KEYS, judged[0])))
    stub.add_client_error("converse", "ModelErrorException", "the model failed", 424)
    empty = nova_sample(judged[1]) | {"id": "empty"}
    empty["messages"] = [*empty["messages"][:-1], {"role": "assistant", "content": ""}]
    event = [
        nova_sample(judged[0]),
        {"id": "broken", "messages": "not a list"},
        "not even an object",
        empty,
        nova_sample(judged[2]) | {"id": "judge-error"},
        {"id": 42, "messages": [{"role": "user", "content": "no answer at all"}]},
    ]
    engine = RewardEngine(bundle, client_factory=lambda: client)
    with stub:
        results = engine.nova_batch(event)
        stub.assert_no_pending_responses()
    NOVA_OUTPUT.validate_python(results)
    assert [r["id"] for r in results] == [
        judged[0]["id"],
        "broken",
        "2",
        "empty",
        "judge-error",
        42,
    ]
    scores = {r["id"]: r["aggregate_reward_score"] for r in results}
    assert scores["broken"] == scores["2"] == scores["judge-error"] == 0.5
    assert scores["empty"] == 0.0 and scores[42] == 0.0  # the format gate: no JSON at all
    assert scores[judged[0]["id"]] not in (0.0, 0.5)


@pytest.mark.parametrize(
    "event", [json.dumps([]), {"body": "[]"}, {"samples": []}, None, 7, {"messages": []}]
)
def test_odd_events_never_raise(event) -> None:
    engine = RewardEngine(_bundle(), client_factory=lambda: CountingBedrock(1))
    results = engine.nova_batch(event)
    NOVA_OUTPUT.validate_python(results)


def test_a_bundle_changed_after_export_is_refused() -> None:
    bundle = copy.deepcopy(_bundle())
    bundle["spec"]["reward"]["judge"]["weight"] = 9.0
    with pytest.raises(BundleError, match="hash mismatch"):
        RewardEngine(bundle)


def test_trl_and_verl_entry_points(demo_rollouts) -> None:
    bundle = _bundle(judge=BEDROCK_JUDGE | {"concurrency": 2})
    engine = RewardEngine(bundle, client_factory=lambda: CountingBedrock(1))
    records = demo_rollouts[:4]
    rewards = engine.trl_rewards(
        prompts=[r["input"] for r in records],
        completions=[[{"role": "assistant", "content": r["response"]}] for r in records],
        target_document=[r["target_document"] for r in records],
        references=[r["references"] for r in records],
        trainer_state=object(),
        completion_ids=[[1, 2]] * 4,
    )
    nova = engine.nova_batch([nova_sample(r) for r in records])
    assert rewards == [r["aggregate_reward_score"] for r in nova]
    plain = engine.trl_rewards(prompts=["Q"], completions=["not json"])
    assert plain == [0.0]
    score = engine.verl_score(
        "contracts",
        records[0]["response"],
        None,
        {
            "prompt": records[0]["input"],
            "target_document": records[0]["target_document"],
            "references": records[0]["references"],
        },
    )
    criteria = [f"criterion.{c['key']}" for c in bundle["spec"]["rubric"]["definition"]["criteria"]]
    assert score["score"] == rewards[0]
    assert list(score) == ["score", *engine.detail_keys()]
    assert set(criteria) <= set(score) and {"format", "judge", "judged", "gated"} <= set(score)
    # The prompt as a keyword (a custom reward manager) or in extra_info gives the same reward.
    keyword = engine.verl_score(
        "contracts",
        records[0]["response"],
        None,
        {"target_document": records[0]["target_document"], "references": records[0]["references"]},
        prompt=records[0]["input"],
    )
    assert keyword == score
    # The async variants give the same values.
    import asyncio

    assert (
        asyncio.run(
            engine.verl_score_async(
                "contracts", records[0]["response"], None, {"prompt": records[0]["input"]}
            )
        )["score"]
        == engine.verl_score(
            "contracts", records[0]["response"], None, {"prompt": records[0]["input"]}
        )["score"]
    )
    metrics: dict[str, float] = {}
    extra: dict[str, list] = {}
    async_rewards = asyncio.run(
        engine.trl_rewards_async(
            prompts=[r["input"] for r in records],
            completions=[[{"role": "assistant", "content": r["response"]}] for r in records],
            target_document=[r["target_document"] for r in records],
            references=[r["references"] for r in records],
            log_metric=metrics.__setitem__,
            log_extra=extra.__setitem__,
        )
    )
    assert async_rewards == rewards
    assert {"rubric/format", "rubric/judged_rate", "rubric/gated_rate"} <= set(metrics)
    judged = [o for o in nova if any(m["name"] == "judge" for m in o["metrics_list"])]
    if judged:
        assert {f"rubric/{c}" for c in criteria} <= set(metrics)
        assert any(text for text in extra["rubric_justification"])
    assert len(extra["rubric_justification"]) == len(records)
