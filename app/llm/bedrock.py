"""Judge provider for Amazon Bedrock Runtime Converse (boto3), credentials from the AWS chain only.

botocore's own retries are off (total_max_attempts=1): call_with_retries owns retrying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from app.llm.base import (
    JudgeCall,
    JudgeReply,
    ProviderError,
    parse_retry_after,
    schema_instruction,
    schema_name,
)
from app.llm.config import ProviderConfig

logger = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
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
NON_RETRYABLE_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "ModelErrorException",
    }
)
# (region, model_id) -> "native_json" or "prompt": what worked last time for that model.
_MODE_CACHE: dict[tuple[str, str], str] = {}


def clear_mode_cache() -> None:
    """Forget which models accepted native JSON output (tests)."""
    _MODE_CACHE.clear()


def build_client(cfg: ProviderConfig) -> Any:
    """A bedrock-runtime client from the standard credential chain, with botocore retries off."""
    import boto3

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=max(1, int(round(cfg.timeout_s))),
        connect_timeout=min(10, max(1, int(round(cfg.timeout_s)))),
        max_pool_connections=cfg.concurrency,
    )
    try:
        return boto3.client("bedrock-runtime", region_name=cfg.region, config=config)
    except NoRegionError as exc:
        raise ProviderError(
            "no AWS region: set `region` on the judge configuration or AWS_REGION",
            retryable=False,
            code="no_region",
        ) from exc


def supports_output_config(client: Any) -> bool:
    """Whether the installed botocore's Converse model has the outputConfig parameter."""
    try:
        shape = client.meta.service_model.operation_model("Converse").input_shape
    except Exception:  # an odd client (or a double) without a service model
        return False
    return "outputConfig" in shape.members


class BedrockProvider:
    """One Converse call per complete(), run in this provider's own thread pool."""

    def __init__(self, cfg: ProviderConfig, *, client: Any = None) -> None:
        self.cfg = cfg
        self.limiter = asyncio.Semaphore(cfg.concurrency)
        self.client = client if client is not None else build_client(cfg)
        self._native_json = supports_output_config(self.client)
        region = cfg.region or getattr(getattr(self.client, "meta", None), "region_name", "")
        self._cache_key = (str(region), cfg.model_id)
        # A dedicated pool: asyncio's default executor has only min(32, cpus + 4) threads,
        # which would cap judge concurrency far below `concurrency` on small machines. Twice the
        # concurrency, because a thread whose call timed out keeps running until botocore's own
        # read timeout and must not delay the retry that replaces it.
        self._executor = ThreadPoolExecutor(
            max_workers=2 * cfg.concurrency, thread_name_prefix="bedrock-judge"
        )

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def complete(self, call: JudgeCall) -> JudgeReply:
        modes = self._modes(call)
        for index, mode in enumerate(modes):
            try:
                reply = await self._converse(call, mode)
            except ProviderError as exc:
                if (
                    mode == "native_json"
                    and exc.code == "ValidationException"
                    and index + 1 < len(modes)
                ):
                    logger.info(
                        "Bedrock model %s rejected outputConfig (%s); using prompt + parse",
                        self.cfg.model_id,
                        exc.message,
                    )
                    continue
                raise
            if self.cfg.structured_output == "auto" and mode != "none":
                _MODE_CACHE[self._cache_key] = mode
            return reply
        raise AssertionError("unreachable: the last mode either returns or raises")

    def _modes(self, call: JudgeCall) -> list[str]:
        if call.output_schema is None:
            return ["none"]
        wanted = self.cfg.structured_output
        if wanted == "json_schema":
            if not self._native_json:
                raise ProviderError(
                    "structured_output=json_schema needs a botocore with Converse outputConfig",
                    retryable=False,
                    code="unsupported",
                )
            return ["native_json"]
        if wanted in ("json_object", "prompt") or not self._native_json:
            return ["prompt"]
        if _MODE_CACHE.get(self._cache_key) == "prompt":
            return ["prompt"]
        return ["native_json", "prompt"]

    def request(self, call: JudgeCall, mode: str) -> dict[str, Any]:
        """The Converse keyword arguments for `call` in structured-output `mode`."""
        system = call.system
        if call.output_schema is not None and mode == "prompt":
            system = f"{system}\n\n{schema_instruction(call.output_schema)}".strip()
        messages: list[dict[str, Any]] = []
        for user_text, assistant_text in call.prior_turns:
            messages.append({"role": "user", "content": [{"text": user_text}]})
            messages.append({"role": "assistant", "content": [{"text": assistant_text}]})
        messages.append({"role": "user", "content": [{"text": call.user}]})
        inference: dict[str, Any] = {"maxTokens": call.max_tokens}
        if call.temperature is not None:
            inference["temperature"] = call.temperature
        if call.top_p is not None:
            inference["topP"] = call.top_p
        kwargs: dict[str, Any] = {
            "modelId": self.cfg.model_id,
            "messages": messages,
            "inferenceConfig": inference,
        }
        if system:
            kwargs["system"] = [{"text": system}]
        if mode == "native_json" and call.output_schema is not None:
            kwargs["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {
                        "jsonSchema": {
                            "schema": json.dumps(call.output_schema),
                            "name": schema_name(call),
                        }
                    },
                }
            }
        return kwargs

    async def _converse(self, call: JudgeCall, mode: str) -> JudgeReply:
        kwargs = self.request(call, mode)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            response = await loop.run_in_executor(
                self._executor, lambda: self.client.converse(**kwargs)
            )
        except ClientError as exc:
            raise map_client_error(exc) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise ProviderError(
                f"Bedrock timed out: {exc}", retryable=True, code="timeout"
            ) from exc
        except BotoConnectionError as exc:
            raise ProviderError(
                f"could not reach Bedrock: {exc}", retryable=True, code="connection"
            ) from exc
        except NoCredentialsError as exc:
            raise ProviderError(
                "no AWS credentials found in the standard chain (environment, shared config, "
                "SSO, instance or task role)",
                retryable=False,
                code="no_credentials",
            ) from exc
        except BotoCoreError as exc:
            raise ProviderError(
                f"Bedrock client error: {exc}", retryable=False, code=type(exc).__name__
            ) from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        return self._reply(response, latency_ms, mode)

    def _reply(self, response: dict[str, Any], latency_ms: int, mode: str) -> JudgeReply:
        content = ((response.get("output") or {}).get("message") or {}).get("content") or []
        # Reasoning models put a reasoningContent block first: the answer is the first text block.
        text = next(
            (b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)),
            "",
        )
        usage = response.get("usage") or {}
        return JudgeReply(
            text=text,
            input_tokens=int(usage.get("inputTokens") or 0),
            output_tokens=int(usage.get("outputTokens") or 0),
            latency_ms=latency_ms,
            attempts=1,
            structured_mode=mode,
            model=self.cfg.model_id,
            stop_reason=response.get("stopReason"),
        )


def map_client_error(exc: ClientError) -> ProviderError:
    """Translate a botocore ClientError into a ProviderError with the right retryability."""
    response: dict[str, Any] = dict(exc.response)
    error: dict[str, Any] = response.get("Error") or {}
    meta: dict[str, Any] = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "ClientError")
    status = meta.get("HTTPStatusCode")
    message = str(error.get("Message") or exc)
    if code in RETRYABLE_CODES:
        retryable = True
    elif code in NON_RETRYABLE_CODES:
        retryable = False
    else:
        retryable = isinstance(status, int) and (status == 429 or status >= 500)
    headers = meta.get("HTTPHeaders") or {}
    return ProviderError(
        f"Bedrock {code}: {message}",
        retryable=retryable,
        status=status if isinstance(status, int) else None,
        retry_after=parse_retry_after(headers.get("retry-after")),
        code=code,
    )
