"""The Bedrock Converse provider against botocore's Stubber (moto does not implement Converse)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from app.llm import ProviderConfig, ProviderError, call_with_retries, make_provider
from app.llm.base import JudgeCall, JudgeReply, schema_instruction
from app.llm.bedrock import BedrockProvider, map_client_error, supports_output_config

MODEL = "us.amazon.nova-2-lite-v1:0"


def converse_response(*blocks: dict[str, Any], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(blocks)}},
        "stopReason": stop,
        "usage": {"inputTokens": 120, "outputTokens": 9, "totalTokens": 129},
        "metrics": {"latencyMs": 412},
    }


@pytest.fixture
def client() -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def config(**overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "provider": "bedrock",
        "model_id": MODEL,
        "region": "us-east-1",
        "temperature": 0.0,
        "top_p": 0.9,
        "max_tokens": 512,
        "max_attempts": 3,
        "base_delay_s": 0.5,
        "max_delay_s": 2.0,
    }
    values.update(overrides)
    return ProviderConfig(**values)


def judge(cfg: ProviderConfig, client: Any, sleeper: Any, *calls: JudgeCall) -> list[JudgeReply]:
    async def run() -> list[JudgeReply]:
        provider = make_provider(cfg, bedrock_client=client)
        try:
            policy = cfg.retry_policy(sleep=sleeper)
            return [await call_with_retries(provider, call, policy) for call in calls]
        finally:
            await provider.aclose()

    return asyncio.run(run())


def test_installed_botocore_has_native_json_output(client: Any) -> None:
    # INTERFACES.md §2: outputConfig exists in botocore >= 1.43; the provider checks, not assumes.
    assert supports_output_config(client)
    assert not supports_output_config(object())


def test_success_sends_converse_shape_with_native_json(
    client: Any, stub: Stubber, sleeper: Any, grade_schema: dict[str, Any]
) -> None:
    cfg = config()
    call = cfg.new_call("You are a strict grader.", "Rollout 1", grade_schema)
    stub.add_response(
        "converse",
        converse_response({"text": '{"verdict": "A"}'}),
        {
            "modelId": MODEL,
            "system": [{"text": "You are a strict grader."}],
            "messages": [{"role": "user", "content": [{"text": "Rollout 1"}]}],
            "inferenceConfig": {"maxTokens": 512, "temperature": 0.0, "topP": 0.9},
            "outputConfig": {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {"schema": json.dumps(grade_schema), "name": "grade"}
                    },
                }
            },
        },
    )
    (reply,) = judge(cfg, client, sleeper, call)
    assert reply.text == '{"verdict": "A"}'
    assert (reply.input_tokens, reply.output_tokens) == (120, 9)
    assert (reply.structured_mode, reply.stop_reason, reply.model) == (
        "native_json",
        "end_turn",
        MODEL,
    )
    assert reply.attempts == 1
    assert sleeper.delays == []


def test_without_schema_no_output_config_and_optional_params_left_out(
    client: Any, stub: Stubber, sleeper: Any
) -> None:
    cfg = config(temperature=None, top_p=None)
    stub.add_response(
        "converse",
        converse_response({"text": "{}"}, stop="max_tokens"),
        {
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "u"}]}],
            "inferenceConfig": {"maxTokens": 512},
        },
    )
    (reply,) = judge(cfg, client, sleeper, cfg.new_call("", "u"))
    assert (reply.structured_mode, reply.stop_reason) == ("none", "max_tokens")


def test_reasoning_block_is_skipped(client: Any, stub: Stubber, sleeper: Any) -> None:
    stub.add_response(
        "converse",
        converse_response(
            {"reasoningContent": {"reasoningText": {"text": "Let me think", "signature": "sig"}}},
            {"text": '{"score": 4}'},
            {"text": "trailing block"},
        ),
    )
    (reply,) = judge(config(), client, sleeper, JudgeCall(system="s", user="u"))
    assert reply.text == '{"score": 4}'


def test_throttling_then_success(client: Any, stub: Stubber, sleeper: Any) -> None:
    stub.add_client_error(
        "converse",
        service_error_code="ThrottlingException",
        service_message="Too many requests",
        http_status_code=429,
    )
    stub.add_response("converse", converse_response({"text": '{"score": 5}'}))
    (reply,) = judge(config(), client, sleeper, JudgeCall(system="s", user="u"))
    assert (reply.text, reply.attempts) == ('{"score": 5}', 2)
    (delay,) = sleeper.delays
    assert 0.0 <= delay <= 0.5


def test_validation_error_is_not_retried(client: Any, stub: Stubber, sleeper: Any) -> None:
    stub.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="maxTokens exceeds the model limit",
        http_status_code=400,
    )
    with pytest.raises(ProviderError) as caught:
        judge(config(), client, sleeper, JudgeCall(system="s", user="u"))
    error = caught.value
    assert (error.code, error.status, error.retryable, error.attempts) == (
        "ValidationException",
        400,
        False,
        1,
    )
    assert "maxTokens exceeds" in error.message
    assert sleeper.delays == []


def test_native_json_rejected_falls_back_to_prompt_and_is_remembered(
    client: Any, stub: Stubber, sleeper: Any, grade_schema: dict[str, Any]
) -> None:
    cfg = config()
    stub.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="This model doesn't support outputConfig",
        http_status_code=400,
    )
    prompt_params = {
        "modelId": MODEL,
        "system": [{"text": f"Grade.\n\n{schema_instruction(grade_schema)}"}],
        "messages": [{"role": "user", "content": [{"text": "one"}]}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.0, "topP": 0.9},
    }
    stub.add_response("converse", converse_response({"text": "{}"}), prompt_params)
    second_params = {
        **prompt_params,
        "messages": [{"role": "user", "content": [{"text": "two"}]}],
    }
    stub.add_response("converse", converse_response({"text": "{}"}), second_params)

    first, second = judge(
        cfg,
        client,
        sleeper,
        cfg.new_call("Grade.", "one", grade_schema),
        cfg.new_call("Grade.", "two", grade_schema),
    )
    assert (first.structured_mode, second.structured_mode) == ("prompt", "prompt")
    assert (first.attempts, second.attempts) == (1, 1)  # fallback is not a retry


def test_repair_turns_become_alternating_messages(client: Any, stub: Stubber, sleeper: Any) -> None:
    call = JudgeCall(system="s", user="Rollout").repair("not json", "no JSON object found")
    stub.add_response(
        "converse",
        converse_response({"text": "{}"}),
        {
            "modelId": MODEL,
            "system": [{"text": "s"}],
            "messages": [
                {"role": "user", "content": [{"text": "Rollout"}]},
                {"role": "assistant", "content": [{"text": "not json"}]},
                {"role": "user", "content": [{"text": call.user}]},
            ],
            "inferenceConfig": {"maxTokens": 1024},
        },
    )
    judge(config(), client, sleeper, call)


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("ThrottlingException", 429, True),
        ("ServiceUnavailableException", 503, True),
        ("InternalServerException", 500, True),
        ("ModelNotReadyException", 429, True),
        ("ModelTimeoutException", 408, True),
        ("ValidationException", 400, False),
        ("AccessDeniedException", 403, False),
        ("ResourceNotFoundException", 404, False),
        ("ModelErrorException", 424, False),
        ("SomethingNewException", 502, True),
        ("SomethingElseException", 409, False),
    ],
)
def test_error_mapping(code: str, status: int, retryable: bool) -> None:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error = map_client_error(ClientError(response, "Converse"))
    assert (error.code, error.status, error.retryable) == (code, status, retryable)


def test_real_client_has_botocore_retries_off_and_pool_sized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    provider = make_provider(config(concurrency=48, timeout_s=90))
    assert isinstance(provider, BedrockProvider)
    settings = provider.client.meta.config
    assert settings.retries["total_max_attempts"] == 1
    assert (settings.read_timeout, settings.max_pool_connections) == (90, 48)
    assert provider.client.meta.region_name == "us-east-1"
    asyncio.run(provider.aclose())
