"""ProviderConfig validation and factory; the fake provider; JudgeCall.repair."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from app.llm import JudgeProvider, ProviderConfig, ProviderError, make_provider
from app.llm.base import JudgeCall, parse_retry_after, schema_name
from app.llm.bedrock import BedrockProvider
from app.llm.fake import FakeProvider
from app.llm.openai_compat import OpenAICompatProvider


def openai_cfg(**overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "provider": "openai_compat",
        "model_id": "qwen",
        "base_url": "http://127.0.0.1:9/v1/",
    }
    values.update(overrides)
    return ProviderConfig(**values)


def test_api_key_env_must_be_a_variable_name_not_a_key() -> None:
    assert openai_cfg(api_key_env="OPENAI_API_KEY").api_key_env == "OPENAI_API_KEY"
    assert openai_cfg(api_key_env="").api_key_env is None
    with pytest.raises(ValidationError, match="NAME of an environment variable"):
        openai_cfg(api_key_env="sk-proj-abc123def456")


def test_openai_compat_needs_an_http_base_url() -> None:
    assert openai_cfg().base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ValidationError, match="base_url is required"):
        ProviderConfig(provider="openai_compat", model_id="m")
    with pytest.raises(ValidationError, match="http"):
        openai_cfg(base_url="127.0.0.1:8000/v1")


def test_bedrock_temperature_range_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="between 0 and 1"):
        ProviderConfig(provider="bedrock", model_id="m", temperature=1.5)
    assert openai_cfg(temperature=1.5).temperature == 1.5
    with pytest.raises(ValidationError, match="api_key"):
        openai_cfg(api_key="sk-secret")  # secrets have no field to land in
    with pytest.raises(ValidationError, match="max_delay_s"):
        openai_cfg(base_delay_s=10, max_delay_s=1)


def test_new_call_and_retry_policy_carry_the_settings() -> None:
    cfg = openai_cfg(temperature=0.2, top_p=0.9, max_tokens=321, timeout_s=12, max_attempts=7)
    call = cfg.new_call("sys", "user", {"type": "object"}, {"rollout_id": "r1"})
    assert (call.temperature, call.top_p, call.max_tokens, call.timeout_s) == (0.2, 0.9, 321, 12)
    assert call.metadata == {"rollout_id": "r1"}

    async def nap(_seconds: float) -> None:
        return None

    policy = cfg.retry_policy(sleep=nap)
    assert (policy.max_attempts, policy.base_delay_s, policy.max_delay_s) == (7, 1.0, 30.0)
    assert policy.sleep is nap


def test_make_provider_builds_each_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    built = [
        make_provider(openai_cfg()),
        make_provider(ProviderConfig(provider="bedrock", model_id="m", region="us-east-1")),
        make_provider(ProviderConfig(provider="fake", model_id="double", concurrency=2)),
    ]
    assert [type(p) for p in built] == [OpenAICompatProvider, BedrockProvider, FakeProvider]
    assert all(isinstance(p, JudgeProvider) for p in built)
    for provider in built:
        asyncio.run(provider.aclose())


def test_fake_answers_are_schema_valid_and_deterministic(grade_schema: dict[str, Any]) -> None:
    fake = FakeProvider(model_id="double")
    call = JudgeCall(system="s", user="rollout 1", output_schema=grade_schema)
    first = asyncio.run(fake.complete(call))
    again = asyncio.run(fake.complete(call))
    other = asyncio.run(fake.complete(JudgeCall(system="s", user="rollout 2")))
    jsonschema.validate(json.loads(first.text), grade_schema)
    assert first.text == again.text
    assert {"score", "justification"} <= json.loads(other.text).keys()
    assert (first.model, first.structured_mode, first.attempts) == ("double", "fake", 1)
    assert first.input_tokens > 0 and first.output_tokens > 0
    assert len(fake.calls) == 3


def test_fake_script_then_responder() -> None:
    error = ProviderError("throttled", retryable=True, code="rate_limited")
    fake = FakeProvider(script=["first"], responder=lambda call: call.user.upper())
    fake.queue(error)
    call = JudgeCall(system="s", user="hello")
    assert asyncio.run(fake.complete(call)).text == "first"
    with pytest.raises(ProviderError):
        asyncio.run(fake.complete(call))
    assert asyncio.run(fake.complete(call)).text == "HELLO"
    asyncio.run(fake.aclose())
    assert fake.closed


def test_repair_call_keeps_the_conversation() -> None:
    schema = {"type": "object", "required": ["score"]}
    call = JudgeCall(system="Grade.", user="Response X", output_schema=schema, max_tokens=99)
    repair = call.repair("score: four", "no JSON object or array found")
    assert repair.prior_turns == (("Response X", "score: four"),)
    assert "no JSON object or array found" in repair.user
    assert '"required":["score"]' in repair.user
    assert (repair.system, repair.max_tokens, repair.output_schema) == ("Grade.", 99, schema)


def test_schema_name_is_safe_for_apis() -> None:
    assert schema_name(JudgeCall("s", "u", {"title": "Legal grade v2!"})) == "Legal_grade_v2_"
    named = JudgeCall("s", "u", {"title": "x"}, metadata={"schema_name": "rubric_7"})
    assert schema_name(named) == "rubric_7"
    assert schema_name(JudgeCall("s", "u", {"type": "object"})) == "judge_answer"


def test_parse_retry_after_seconds_and_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None
