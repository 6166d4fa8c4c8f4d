"""The OpenAI-compatible provider over real HTTP against the local JudgeServer."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from app.llm import ProviderConfig, ProviderError, call_with_retries
from app.llm.base import JudgeCall, JudgeReply
from app.llm.json_extract import extract_json
from app.llm.openai_compat import OpenAICompatProvider, cached_mode, env_proxy
from tests.support.judge_server import FaultSequence, JudgeServer


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer(hang_s=30.0) as running:
        yield running


def config(base_url: str, **overrides: Any) -> ProviderConfig:
    values: dict[str, Any] = {
        "provider": "openai_compat",
        "model_id": "judge-test",
        "base_url": base_url,
        "max_attempts": 3,
        "base_delay_s": 0.01,
        "max_delay_s": 0.02,
        "timeout_s": 5.0,
        "temperature": 0.0,
        "max_tokens": 256,
    }
    values.update(overrides)
    return ProviderConfig(**values)


def judge(
    cfg: ProviderConfig, sleeper: Any, *calls: JudgeCall, retries: bool = True
) -> list[JudgeReply]:
    """Run calls through a fresh provider in a fresh event loop."""

    async def run() -> list[JudgeReply]:
        provider = OpenAICompatProvider(cfg)
        try:
            replies = []
            for call in calls:
                if retries:
                    replies.append(
                        await call_with_retries(provider, call, cfg.retry_policy(sleep=sleeper))
                    )
                else:
                    replies.append(await provider.complete(call))
            return replies
        finally:
            await provider.aclose()

    return asyncio.run(run())


def judge_error(cfg: ProviderConfig, sleeper: Any, call: JudgeCall) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        judge(cfg, sleeper, call)
    return caught.value


def test_success_with_json_schema(server: JudgeServer, sleeper: Any, grade_schema: dict) -> None:
    cfg = config(server.base_url)
    call = cfg.new_call("You are a strict grader.", "Rollout 17 text", grade_schema)
    (reply,) = judge(cfg, sleeper, call)

    jsonschema.validate(extract_json(reply.text), grade_schema)
    assert reply.structured_mode == "json_schema"
    assert (reply.attempts, reply.model, reply.stop_reason) == (1, "judge-test", "stop")
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    assert reply.latency_ms >= 0
    (record,) = server.records
    assert record.response_format == "json_schema"
    assert record.body["response_format"]["json_schema"] == {
        "name": "grade",
        "schema": grade_schema,
    }
    assert record.body["messages"] == [
        {"role": "system", "content": "You are a strict grader."},
        {"role": "user", "content": "Rollout 17 text"},
    ]
    assert (record.body["temperature"], record.body["max_tokens"]) == (0.0, 256)
    assert "top_p" not in record.body
    assert record.authorization is None
    assert cached_mode(server.base_url, "judge-test") == "json_schema"


def test_answers_are_deterministic_per_user_message(server: JudgeServer, sleeper: Any) -> None:
    cfg = config(server.base_url)
    a1, a2, b = judge(
        cfg, sleeper, cfg.new_call("s", "same"), cfg.new_call("s", "same"), cfg.new_call("s", "b")
    )
    assert a1.text == a2.text
    assert {"score", "justification"} <= json.loads(b.text).keys()
    assert server.formats == {"none": 3}  # no schema, no response_format


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("rate_limit", "rate_limited", 429),
        ("server_error", "server_error", 500),
        ("unavailable", "server_error", 503),
        ("malformed_body", "malformed_response", 200),
        ("timeout", "timeout", None),
    ],
)
def test_transient_faults_are_retried(
    server: JudgeServer, sleeper: Any, fault: str, code: str, status: int | None
) -> None:
    # Only the hang needs a short timeout; the others keep a generous one on a busy machine.
    cfg = config(server.base_url, timeout_s=0.5 if fault == "timeout" else 5.0)
    server.set_faults(FaultSequence([fault, None]))
    (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u"))
    assert reply.attempts == 2
    assert server.faults == {fault: 1}
    assert server.requests == 2
    assert len(sleeper.delays) == 1

    # The same fault on every attempt: the last error comes back, marked retryable.
    server.set_faults(FaultSequence([fault], cycle=True))
    server.reset_counters()
    error = judge_error(cfg, sleeper, cfg.new_call("s", "u"))
    assert (error.code, error.status, error.retryable, error.attempts) == (code, status, True, 3)
    assert server.faults == {fault: 3}


def test_retry_after_seconds_is_honoured(sleeper: Any) -> None:
    with JudgeServer(retry_after_s=7) as server:
        server.set_faults(FaultSequence(["rate_limit", "rate_limit"]))
        cfg = config(server.base_url)
        (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u"))
    assert reply.attempts == 3
    assert sleeper.delays == [7.0, 7.0]  # far above the 0.02 s backoff cap


def test_retry_after_http_date_is_honoured(sleeper: Any) -> None:
    with JudgeServer(retry_after_s=120, retry_after_format="http-date") as server:
        server.set_faults(FaultSequence(["rate_limit"]))
        cfg = config(server.base_url)
        judge(cfg, sleeper, cfg.new_call("s", "u"))
    (delay,) = sleeper.delays
    assert 117.0 <= delay <= 121.0  # an HTTP-date has one-second resolution


def test_client_errors_are_not_retried(server: JudgeServer, sleeper: Any) -> None:
    server.set_faults(FaultSequence(["bad_request", None]))
    cfg = config(server.base_url)
    error = judge_error(cfg, sleeper, cfg.new_call("s", "no schema, so no fallback either"))
    assert (error.code, error.status, error.retryable, error.attempts) == (
        "bad_request",
        400,
        False,
        1,
    )
    # Members see a status line and a short error code, never the endpoint's own text.
    assert error.message.startswith("HTTP 400 Bad Request from ")
    assert "injected fault" not in error.message
    assert server.requests == 1


def test_slow_body_within_the_timeout_arrives_whole(sleeper: Any, grade_schema: dict) -> None:
    with JudgeServer(slow_chunks=5, slow_chunk_delay_s=0.05) as server:
        server.set_faults(FaultSequence(["slow_body"]))
        cfg = config(server.base_url)
        (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u", grade_schema))
        assert server.faults == {"slow_body": 1}
    assert reply.attempts == 1
    jsonschema.validate(extract_json(reply.text), grade_schema)


def test_slow_body_past_the_timeout_is_a_retryable_timeout(sleeper: Any) -> None:
    with JudgeServer(slow_chunks=20, slow_chunk_delay_s=0.2) as server:
        server.set_faults(FaultSequence(["slow_body"], cycle=True))
        cfg = config(server.base_url, timeout_s=0.5, max_attempts=2)
        error = judge_error(cfg, sleeper, cfg.new_call("s", "u"))
        assert server.faults == {"slow_body": 2}
    assert (error.code, error.retryable, error.attempts) == ("timeout", True, 2)


def test_invalid_json_answer_then_one_repair(server: JudgeServer, sleeper: Any) -> None:
    server.set_faults(FaultSequence(["invalid_json_content"]))
    cfg = config(server.base_url, structured_output="prompt")
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    call = cfg.new_call("Grade.", "Rollout 3", schema)
    (bad,) = judge(cfg, sleeper, call)
    with pytest.raises(ValueError) as caught:
        extract_json(bad.text)

    (fixed,) = judge(cfg, sleeper, call.repair(bad.text, str(caught.value)))
    assert isinstance(extract_json(fixed.text), dict)
    messages = server.records[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == bad.text
    assert str(caught.value) in messages[3]["content"]


def test_fallback_json_schema_to_json_object_is_cached(sleeper: Any, grade_schema: dict) -> None:
    with JudgeServer(accepted_formats={"json_object", "text"}) as server:
        cfg = config(server.base_url)
        first, second = judge(
            cfg,
            sleeper,
            cfg.new_call("Grade.", "one", grade_schema),
            cfg.new_call("G", "two", grade_schema),
        )
        assert server.formats == {"json_schema": 1, "json_object": 2}
        assert server.faults == {"rejected_format": 1}
        json_object_body = server.records[1].body
    assert (first.structured_mode, second.structured_mode) == ("json_object", "json_object")
    assert (first.attempts, second.attempts) == (1, 1)
    assert cached_mode(server.base_url, "judge-test") == "json_object"
    assert json_object_body["response_format"] == {"type": "json_object", "schema": grade_schema}
    assert "JSON Schema" in json_object_body["messages"][0]["content"]
    jsonschema.validate(extract_json(first.text), grade_schema)


def test_fallback_all_the_way_to_prompt_only(sleeper: Any, grade_schema: dict) -> None:
    with JudgeServer(accepted_formats={"text"}) as server:
        cfg = config(server.base_url)
        first, second = judge(
            cfg,
            sleeper,
            cfg.new_call("Grade.", "one", grade_schema),
            cfg.new_call("G", "two", grade_schema),
        )
        assert server.formats == {"json_schema": 1, "json_object": 1, "none": 2}
        prompt_body = server.records[2].body
    assert (first.structured_mode, second.structured_mode) == ("prompt", "prompt")
    assert cached_mode(server.base_url, "judge-test") == "prompt"
    assert "response_format" not in prompt_body
    system = prompt_body["messages"][0]["content"]
    assert (
        system.startswith("Grade.")
        and json.dumps(grade_schema, sort_keys=True, separators=(",", ":")) in system
    )


def test_one_off_rejection_falls_back_within_the_same_attempt(
    server: JudgeServer, sleeper: Any, grade_schema: dict
) -> None:
    server.set_faults(FaultSequence(["reject_json_schema"]))
    cfg = config(server.base_url)
    (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u", grade_schema))
    assert (reply.structured_mode, reply.attempts) == ("json_object", 1)
    assert server.faults == {"reject_json_schema": 1}
    assert sleeper.delays == []


def test_explicit_mode_does_not_fall_back(sleeper: Any, grade_schema: dict) -> None:
    with JudgeServer(accepted_formats={"text"}) as server:
        cfg = config(server.base_url, structured_output="json_schema")
        error = judge_error(cfg, sleeper, cfg.new_call("s", "u", grade_schema))
        assert server.requests == 1
    assert (error.code, error.status, error.retryable) == ("bad_request", 400, False)
    assert error.message.startswith("HTTP 400 Bad Request")
    assert cached_mode(server.base_url, "judge-test") is None


def test_missing_api_key_variable_is_named(
    server: JudgeServer, sleeper: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RS_JUDGE_KEY_TEST", raising=False)
    cfg = config(server.base_url, api_key_env="RS_JUDGE_KEY_TEST")
    error = judge_error(cfg, sleeper, cfg.new_call("s", "u"))
    assert "RS_JUDGE_KEY_TEST" in str(error)
    assert (error.code, error.retryable, error.attempts) == ("missing_api_key", False, 1)
    assert server.requests == 0


def test_api_key_is_sent_as_bearer_token(sleeper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with JudgeServer(api_key="s3cret") as server:
        cfg = config(server.base_url, api_key_env="RS_JUDGE_KEY_TEST")
        monkeypatch.setenv("RS_JUDGE_KEY_TEST", "s3cret")
        (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u"))
        assert reply.attempts == 1
        assert server.records[0].authorization == "Bearer s3cret"

        monkeypatch.setenv("RS_JUDGE_KEY_TEST", "wrong")
        error = judge_error(cfg, sleeper, cfg.new_call("s", "u"))
        assert server.faults == {"unauthorized": 1}
    assert (error.code, error.status, error.retryable, error.attempts) == ("auth", 401, False, 1)
    assert "wrong" not in str(error)


def test_connection_refused_is_retryable(sleeper: Any) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = config(f"http://127.0.0.1:{port}/v1", max_attempts=2)
    error = judge_error(cfg, sleeper, cfg.new_call("s", "u"))
    assert (error.code, error.retryable, error.attempts) == ("connection", True, 2)


def test_concurrency_limit_is_respected(sleeper: Any) -> None:
    with JudgeServer(latency_s=0.3) as server:
        cfg = config(server.base_url, concurrency=4)

        async def run() -> list[JudgeReply]:
            provider = OpenAICompatProvider(cfg)
            try:
                calls = [cfg.new_call("s", f"u{i}") for i in range(8)]
                policy = cfg.retry_policy(sleep=sleeper)
                return await asyncio.gather(
                    *(call_with_retries(provider, c, policy) for c in calls)
                )
            finally:
                await provider.aclose()

        replies = asyncio.run(run())
        assert server.max_in_flight == 4
    assert len(replies) == 8


def test_128_concurrent_calls_run_at_once(sleeper: Any) -> None:
    # Each request sleeps 1 s on the server, so all 128 overlap even on a busy machine.
    with JudgeServer(latency_s=1.0) as server:
        cfg = config(server.base_url, concurrency=128, timeout_s=30)

        async def run() -> list[JudgeReply]:
            provider = OpenAICompatProvider(cfg)
            try:
                calls = [cfg.new_call("s", f"u{i}") for i in range(128)]
                policy = cfg.retry_policy(sleep=sleeper)
                return await asyncio.gather(
                    *(call_with_retries(provider, c, policy) for c in calls)
                )
            finally:
                await provider.aclose()

        replies = asyncio.run(run())
        assert server.max_in_flight == 128
        assert server.requests == 128
    assert {r.attempts for r in replies} == {1}


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        ({}, "https://api.example.com/v1", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://api.example.com/v1", "http://proxy:3128"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://judge.local/v1", None),
        ({"HTTP_PROXY": "http://proxy:3128"}, "http://judge.local/v1", "http://proxy:3128"),
        (
            {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "judge.local,localhost"},
            "http://judge.local/v1",
            None,
        ),
    ],
)
def test_the_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert env_proxy(url) == expected


def test_calls_go_through_the_proxy_named_in_the_environment(
    server: JudgeServer, sleeper: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The judge server answers absolute-form requests too, so it can stand in for the proxy:
    # the host in the judge's URL does not exist, so only a proxied call can succeed.
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    cfg = config("http://judge.invalid/v1")
    (reply,) = judge(cfg, sleeper, cfg.new_call("s", "u"))
    assert reply.attempts == 1 and server.requests == 1
