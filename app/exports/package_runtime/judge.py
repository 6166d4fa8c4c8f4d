"""Call the judge model from an exported reward function: Amazon Bedrock Converse (boto3) or an
OpenAI-compatible /chat/completions endpoint (httpx), with timeouts, retries and backoff.

Synchronous and thread-safe, so a thread pool can run many calls at once. Requests are built the
way the studio's providers build them (same messages, sampling settings and structured-output
fallbacks), so a judge answers the exported function as it answered the studio.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

BEDROCK_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerException",
        "InternalFailure",
        "ModelNotReadyException",
        "ModelTimeoutException",
    }
)
BEDROCK_NOT_RETRYABLE = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "ModelErrorException",
    }
)
MAX_RETRY_AFTER_S = 300.0
_FALLBACK_ORDER = ("json_schema", "json_object", "prompt")


class JudgeError(Exception):
    """A judge call that failed; `retryable` decides whether the retry loop tries again."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def schema_instruction(schema: dict[str, Any]) -> str:
    """The instruction added to the system prompt when the server cannot enforce the schema."""
    return (
        "Reply with only a single JSON object (no prose, no code fences) that matches this "
        "JSON Schema:\n" + json.dumps(schema, separators=(",", ":"), sort_keys=True)
    )


def schema_name(schema: dict[str, Any] | None) -> str:
    """A schema name acceptable to OpenAI and Bedrock: [A-Za-z0-9_-]{1,64}."""
    raw = str((schema or {}).get("title") or "")
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "_" for ch in raw)
    return cleaned[:64] or "judge_answer"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Bedrock:
    """One Converse call per attempt; botocore's own retries are off (the loop owns retrying)."""

    def __init__(self, settings: dict[str, Any], client: Any) -> None:
        self.settings = settings
        self.client = client
        self.native_json = _supports_output_config(client)
        self.mode_cache: str | None = None

    def modes(self, schema: dict[str, Any] | None) -> list[str]:
        if schema is None:
            return ["none"]
        wanted = self.settings.get("structured_output") or "auto"
        if wanted == "json_schema" and self.native_json:
            return ["native_json"]
        if wanted in ("json_object", "prompt", "json_schema") or not self.native_json:
            return ["prompt"]
        if self.mode_cache == "prompt":
            return ["prompt"]
        return ["native_json", "prompt"]

    def request(
        self, system: str, user: str, schema: dict[str, Any] | None, prior: tuple, mode: str
    ) -> dict[str, Any]:
        if schema is not None and mode == "prompt":
            system = f"{system}\n\n{schema_instruction(schema)}".strip()
        messages: list[dict[str, Any]] = []
        for user_text, assistant_text in prior:
            messages.append({"role": "user", "content": [{"text": user_text}]})
            messages.append({"role": "assistant", "content": [{"text": assistant_text}]})
        messages.append({"role": "user", "content": [{"text": user}]})
        inference: dict[str, Any] = {"maxTokens": int(self.settings.get("max_tokens") or 1024)}
        if self.settings.get("temperature") is not None:
            inference["temperature"] = self.settings["temperature"]
        if self.settings.get("top_p") is not None:
            inference["topP"] = self.settings["top_p"]
        kwargs: dict[str, Any] = {
            "modelId": self.settings["model_id"],
            "messages": messages,
            "inferenceConfig": inference,
        }
        if system:
            kwargs["system"] = [{"text": system}]
        if mode == "native_json" and schema is not None:
            kwargs["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {"schema": json.dumps(schema), "name": schema_name(schema)}
                    },
                }
            }
        return kwargs

    def complete(self, system: str, user: str, schema: dict[str, Any] | None, prior: tuple) -> str:
        modes = self.modes(schema)
        for index, mode in enumerate(modes):
            try:
                text = self._converse(self.request(system, user, schema, prior, mode))
            except JudgeError as exc:
                if (
                    mode == "native_json"
                    and exc.code == "ValidationException"
                    and index + 1 < len(modes)
                ):
                    self.mode_cache = "prompt"  # this model does not take outputConfig
                    continue
                raise
            return text
        raise JudgeError("no structured-output mode left to try")

    def _converse(self, kwargs: dict[str, Any]) -> str:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            response = self.client.converse(**kwargs)
        except ClientError as exc:
            details: dict[str, Any] = dict(exc.response)
            error: dict[str, Any] = details.get("Error") or {}
            meta: dict[str, Any] = details.get("ResponseMetadata") or {}
            code = str(error.get("Code") or "ClientError")
            status = meta.get("HTTPStatusCode")
            if code in BEDROCK_RETRYABLE:
                retryable = True
            elif code in BEDROCK_NOT_RETRYABLE:
                retryable = False
            else:
                retryable = isinstance(status, int) and (status == 429 or status >= 500)
            headers = meta.get("HTTPHeaders") or {}
            raise JudgeError(
                f"Bedrock {code}: {error.get('Message') or exc}",
                code=code,
                retryable=retryable,
                status=status if isinstance(status, int) else None,
                retry_after=parse_retry_after(headers.get("retry-after")),
            ) from exc
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as exc:
            raise JudgeError(f"Bedrock unreachable: {exc}", code="timeout", retryable=True) from exc
        except BotoCoreError as exc:
            raise JudgeError(f"Bedrock client error: {exc}", code=type(exc).__name__) from exc
        content = ((response.get("output") or {}).get("message") or {}).get("content") or []
        # Reasoning models put a reasoningContent block first: the answer is the first text.
        return next(
            (b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)),
            "",
        )


def _supports_output_config(client: Any) -> bool:
    try:
        shape = client.meta.service_model.operation_model("Converse").input_shape
    except Exception:  # a client double without a service model
        return False
    return "outputConfig" in shape.members


def make_bedrock_client(settings: dict[str, Any]) -> Any:
    """A bedrock-runtime client from the standard AWS credential chain, retries off."""
    import boto3
    from botocore.config import Config

    timeout = float(settings.get("timeout_s") or 60.0)
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=max(1, int(round(timeout))),
        connect_timeout=min(10, max(1, int(round(timeout)))),
        max_pool_connections=int(settings.get("concurrency") or 8),
    )
    region = settings.get("region") or os.environ.get("AWS_REGION") or None
    return boto3.client("bedrock-runtime", region_name=region, config=config)


class _OpenAICompat:
    """One POST to {base_url}/chat/completions per attempt (httpx, synchronous)."""

    def __init__(self, settings: dict[str, Any], http_client: Any) -> None:
        self.settings = settings
        self.http = http_client
        self.url = str(settings["base_url"]).rstrip("/") + "/chat/completions"
        self.mode_cache: str | None = None

    def modes(self, schema: dict[str, Any] | None) -> list[str]:
        if schema is None:
            return ["none"]
        wanted = self.settings.get("structured_output") or "auto"
        if wanted != "auto":
            return [wanted]
        start = _FALLBACK_ORDER.index(self.mode_cache) if self.mode_cache else 0
        return list(_FALLBACK_ORDER[start:])

    def payload(
        self, system: str, user: str, schema: dict[str, Any] | None, prior: tuple, mode: str
    ) -> dict[str, Any]:
        if schema is not None and mode in ("json_object", "prompt"):
            system = f"{system}\n\n{schema_instruction(schema)}".strip()
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        for user_text, assistant_text in prior:
            messages.append({"role": "user", "content": user_text})
            messages.append({"role": "assistant", "content": assistant_text})
        messages.append({"role": "user", "content": user})
        body: dict[str, Any] = {
            "model": self.settings["model_id"],
            "messages": messages,
            "max_tokens": int(self.settings.get("max_tokens") or 1024),
            "stream": False,
        }
        if self.settings.get("temperature") is not None:
            body["temperature"] = self.settings["temperature"]
        if self.settings.get("top_p") is not None:
            body["top_p"] = self.settings["top_p"]
        if mode == "json_schema" and schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(schema), "schema": schema},
            }
        elif mode == "json_object" and schema is not None:
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        name = self.settings.get("api_key_env")
        if name:
            key = os.environ.get(name, "").strip()
            if not key:
                raise JudgeError(f"environment variable {name} (the judge's API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def complete(self, system: str, user: str, schema: dict[str, Any] | None, prior: tuple) -> str:
        headers = self.headers()
        modes = self.modes(schema)
        for index, mode in enumerate(modes):
            try:
                text = self._post(self.payload(system, user, schema, prior, mode), headers)
            except JudgeError as exc:
                fallback = mode in ("json_schema", "json_object") and index + 1 < len(modes)
                if exc.status in (400, 422) and fallback:
                    continue
                raise
            if (self.settings.get("structured_output") or "auto") == "auto" and mode != "none":
                self.mode_cache = mode
            return text
        raise JudgeError("no structured-output mode left to try")

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        import httpx

        timeout = float(self.settings.get("timeout_s") or 60.0)
        try:
            response = self.http.post(self.url, json=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise JudgeError(f"{self.url} timed out", code="timeout", retryable=True) from exc
        except httpx.TransportError as exc:
            raise JudgeError(
                f"could not reach {self.url}: {exc}", code="connection", retryable=True
            ) from exc
        status = response.status_code
        if status >= 400:
            retryable = status in (408, 429) or status >= 500
            raise JudgeError(
                f"HTTP {status} from {self.url}: {response.text[:300]}",
                code=f"http_{status}",
                retryable=retryable,
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            message = response.json()["choices"][0].get("message") or {}
            content = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise JudgeError(
                f"malformed response from {self.url}", code="malformed_response", retryable=True
            ) from exc
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""


class Judge:
    """The judge of one reward function: retries with full-jitter exponential backoff.

    `client_factory` (no arguments) returns the boto3 bedrock-runtime client to use (tests
    inject a Stubber-wrapped client); `http_client` is an httpx.Client for OpenAI-compatible
    judges. `sleep` is injectable so tests do not wait.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        client_factory: Callable[[], Any] | None = None,
        http_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        provider = settings.get("provider")
        if provider == "bedrock":
            client = client_factory() if client_factory else make_bedrock_client(settings)
            self.backend: Any = _Bedrock(settings, client)
        elif provider == "openai_compat":
            if http_client is None:
                import httpx

                limit = int(settings.get("concurrency") or 8)
                http_client = httpx.Client(
                    limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
                )
            self.backend = _OpenAICompat(settings, http_client)
        else:
            raise ValueError(f"unsupported judge provider {provider!r}")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Delay before attempt `attempt + 1`: full jitter, but never less than Retry-After."""
        base = float(self.settings.get("base_delay_s", 1.0))
        cap = min(float(self.settings.get("max_delay_s", 30.0)), base * (2 ** (attempt - 1)))
        with self._rng_lock:
            delay = self.rng.uniform(0.0, max(cap, 0.0))
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def ask(
        self,
        system: str,
        user: str,
        schema: dict[str, Any] | None,
        prior: tuple[tuple[str, str], ...] = (),
    ) -> tuple[str, int]:
        """(reply text, attempts used); raises the last JudgeError when every attempt failed."""
        attempts = max(1, int(self.settings.get("max_attempts") or 1))
        for attempt in range(1, attempts + 1):
            try:
                return self.backend.complete(system, user, schema, prior), attempt
            except JudgeError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                self.sleep(self.backoff(attempt, exc.retry_after))
        raise JudgeError("unreachable")
