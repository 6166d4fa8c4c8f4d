"""Judge provider for OpenAI-compatible /chat/completions (vLLM, Ollama, llama.cpp, OpenAI).

Structured output is tried as json_schema, then json_object, then prompt-only when the server
rejects a mode with 400/422; the mode that worked is remembered per endpoint and model.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import time
import urllib.request
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from app.llm.base import (
    JudgeCall,
    JudgeReply,
    ProviderError,
    parse_retry_after,
    schema_instruction,
    schema_name,
)
from app.llm.config import ProviderConfig, process_egress_policy
from app.llm.egress import EgressPolicy, address_problem, key_var_problem, url_problem

logger = logging.getLogger(__name__)

FALLBACK_ORDER: tuple[str, ...] = ("json_schema", "json_object", "prompt")
# (base_url, model_id) -> the structured-output mode that last worked there.
_MODE_CACHE: dict[tuple[str, str], str] = {}
# Error texts are shown to project members: a status line and at most a short error code from
# the body, never the body itself (a judge URL must not become a way to read other servers).
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,60}$")
# Idle keep-alive connections are kept this long; a judge run reuses them call after call.
_KEEPALIVE_S = 30.0


def cached_mode(base_url: str, model_id: str) -> str | None:
    """The structured-output mode remembered for an endpoint and model, if any."""
    return _MODE_CACHE.get((base_url.rstrip("/"), model_id))


def clear_mode_cache() -> None:
    """Forget every remembered mode (tests; or after a server upgrade)."""
    _MODE_CACHE.clear()


class OpenAICompatProvider:
    """One attempt per complete(); retries belong to call_with_retries.

    Holds a pool of keep-alive connections (aiohttp: its CPU cost per call is about half of
    httpx's, which decides a judge run's rate on a small machine; docs/benchmarks.md), created
    in the event loop of the first call. Use one instance within one event loop and aclose() it.
    """

    def __init__(self, cfg: ProviderConfig, *, egress: EgressPolicy | None = None) -> None:
        if not cfg.base_url:
            raise ValueError("base_url is required for an OpenAI-compatible provider")
        self.cfg = cfg
        self.egress = egress if egress is not None else process_egress_policy()
        self.limiter = asyncio.Semaphore(cfg.concurrency)
        self._base_url = cfg.base_url.rstrip("/")
        self._url = f"{self._base_url}/chat/completions"
        self._session: aiohttp.ClientSession | None = None
        self._proxy = env_proxy(self._url)
        # Checked again here, not only when saved: a configuration saved before a policy
        # existed (or under a looser one) must not send a forbidden key or reach a refused host.
        problem = url_problem(self._base_url, self.egress)
        if problem is not None:
            raise ProviderError(
                f"judge base URL refused: {problem}", retryable=False, code="outbound_refused"
            )
        problem = key_var_problem(cfg.api_key_env, self.egress)
        if problem is not None:
            raise ProviderError(
                f"API key variable refused: {problem}", retryable=False, code="key_var_refused"
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            proxy_host = urlsplit(self._proxy).hostname if self._proxy else None
            connector = aiohttp.TCPConnector(
                limit=self.cfg.concurrency,
                limit_per_host=0,
                keepalive_timeout=_KEEPALIVE_S,
                resolver=PolicyResolver(self.egress, trusted_host=proxy_host),
            )
            # Every call sets its own timeout; cookies are never part of a judge call.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def complete(self, call: JudgeCall) -> JudgeReply:
        headers = self._headers()
        modes = self._modes(call)
        for index, mode in enumerate(modes):
            try:
                reply = await self._post(self._payload(call, mode), headers, call, mode)
            except ProviderError as exc:
                can_fall_back = mode in ("json_schema", "json_object") and index + 1 < len(modes)
                if exc.status in (400, 422) and can_fall_back:
                    logger.info(
                        "%s rejected response_format %s (%s); trying %s",
                        self._base_url,
                        mode,
                        exc.message,
                        modes[index + 1],
                    )
                    continue
                raise
            if self.cfg.structured_output == "auto" and mode != "none":
                _MODE_CACHE[(self._base_url, self.cfg.model_id)] = mode
            return reply
        raise AssertionError("unreachable: the last mode either returns or raises")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        name = self.cfg.api_key_env
        if name:
            problem = key_var_problem(name, self.egress)
            if problem is not None:
                raise ProviderError(
                    f"API key variable refused: {problem}", retryable=False, code="key_var_refused"
                )
            key = os.environ.get(name, "").strip()
            if not key:
                raise ProviderError(
                    f"environment variable {name} is not set; this judge configuration reads "
                    f"its API key from {name} (api_key_env)",
                    retryable=False,
                    code="missing_api_key",
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _modes(self, call: JudgeCall) -> list[str]:
        if call.output_schema is None:
            return ["none"]
        if self.cfg.structured_output != "auto":
            return [self.cfg.structured_output]
        remembered = _MODE_CACHE.get((self._base_url, self.cfg.model_id))
        start = FALLBACK_ORDER.index(remembered) if remembered in FALLBACK_ORDER else 0
        return list(FALLBACK_ORDER[start:])

    def _payload(self, call: JudgeCall, mode: str) -> dict[str, Any]:
        system = call.system
        if call.output_schema is not None and mode in ("json_object", "prompt"):
            # The server will not enforce the schema, so the model must read it (OpenAI's
            # json_object mode also requires the word "JSON" in the messages).
            system = f"{system}\n\n{schema_instruction(call.output_schema)}".strip()
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        for user_text, assistant_text in call.prior_turns:
            messages.append({"role": "user", "content": user_text})
            messages.append({"role": "assistant", "content": assistant_text})
        messages.append({"role": "user", "content": call.user})

        payload: dict[str, Any] = {
            "model": self.cfg.model_id,
            "messages": messages,
            "max_tokens": call.max_tokens,
            "stream": False,
        }
        if call.temperature is not None:
            payload["temperature"] = call.temperature
        if call.top_p is not None:
            payload["top_p"] = call.top_p
        if mode == "json_schema" and call.output_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name(call), "schema": call.output_schema},
            }
        elif mode == "json_object" and call.output_schema is not None:
            # llama.cpp enforces a schema given here; other servers ignore the extra key.
            payload["response_format"] = {"type": "json_object", "schema": call.output_schema}
        return payload

    async def _post(
        self, payload: dict[str, Any], headers: dict[str, str], call: JudgeCall, mode: str
    ) -> JudgeReply:
        # orjson: ~12 µs for a 14 KB prompt where the json module takes ~140 µs.
        body = orjson.dumps(payload)
        started = time.perf_counter()
        try:
            async with self._client().post(
                self._url,
                data=body,
                headers=headers,
                proxy=self._proxy,
                # A redirect could lead anywhere, including to a literal address the resolver
                # never sees: judge endpoints answer directly.
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=call.timeout_s),
            ) as response:
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError as exc:
            raise ProviderError(
                f"{self._url} timed out ({type(exc).__name__})", retryable=True, code="timeout"
            ) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, OutboundRefused):
                raise ProviderError(
                    f"judge base URL refused: {exc.os_error}",
                    retryable=False,
                    code="outbound_refused",
                ) from exc
            raise ProviderError(
                f"could not resolve the host of {self._url}: {exc.os_error}",
                retryable=True,
                code="connection",
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"could not reach {self._url}: {type(exc).__name__}: {exc}",
                retryable=True,
                code="connection",
            ) from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        if 300 <= status < 400:
            raise ProviderError(
                f"{status_line(status)} from {self._url}: judge endpoints must answer directly "
                "(redirects are not followed)",
                retryable=False,
                status=status,
                code="redirect",
            )
        if status >= 400:
            raise _http_error(self._url, status, response_headers, raw)
        return self._reply(status, raw, latency_ms, mode)

    def _reply(self, status: int, raw: bytes, latency_ms: int, mode: str) -> JudgeReply:
        try:
            body = orjson.loads(raw)
            choice = body["choices"][0]
            message = choice.get("message") or {}
            content = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            logger.debug("malformed response from %s: %r", self._url, raw[:300])
            raise ProviderError(
                f"malformed response from {self._url}: HTTP {status}, {len(raw)} bytes that are "
                "not an OpenAI-compatible chat completion",
                retryable=True,
                status=status,
                code="malformed_response",
            ) from exc
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        usage = body.get("usage") or {}
        return JudgeReply(
            text=content if isinstance(content, str) else "",
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            latency_ms=latency_ms,
            attempts=1,
            structured_mode=mode,
            model=str(body.get("model") or self.cfg.model_id),
            stop_reason=choice.get("finish_reason"),
        )


def env_proxy(url: str) -> str | None:
    """The proxy for `url` from HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as httpx and requests
    honour them; looked up once per provider rather than on every call."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def status_line(status: int) -> str:
    """`HTTP 429 Too Many Requests`: the standard reason phrase, never the server's own."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _error_code(raw: bytes) -> str | None:
    """The OpenAI-style error code or type from a body (context_length_exceeded, ...) when it
    is a short token; free text from the body is never passed on."""
    try:
        error = orjson.loads(raw).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    for key in ("code", "type"):
        value = error.get(key)
        if isinstance(value, str) and _ERROR_CODE.match(value):
            return value
    return None


def _http_error(url: str, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
    logger.debug("%s from %s: %r", status, url, raw[:300])
    retry_after = parse_retry_after(headers.get("retry-after"))
    code_text = _error_code(raw)
    message = f"{status_line(status)} from {url}" + (f" ({code_text})" if code_text else "")
    if status == 429:
        code, retryable = "rate_limited", True
    elif status == 408:
        code, retryable = "timeout", True
    elif status >= 500:
        code, retryable = "server_error", True
    elif status in (401, 403):
        code, retryable = "auth", False
    elif status == 404:
        code, retryable = "not_found", False
    else:
        code, retryable = "bad_request", False
    return ProviderError(
        message, retryable=retryable, status=status, retry_after=retry_after, code=code
    )


class OutboundRefused(OSError):
    """A judge host resolved to an address the egress policy refuses."""


class PolicyResolver(AbstractResolver):
    """Resolves as aiohttp would, then refuses the whole answer if any address is forbidden:
    aiohttp connects only to addresses this returns, so the checked address is the one used.
    (Literal IPs never reach a resolver; the provider checks those before any call.)"""

    def __init__(self, policy: EgressPolicy, *, trusted_host: str | None = None) -> None:
        self._policy = policy
        self._inner = aiohttp.DefaultResolver()
        # The operator's own HTTP proxy, when one is configured, is not a judge endpoint.
        self._trusted = trusted_host

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host == self._trusted:
            return results
        for result in results:
            problem = address_problem(
                ipaddress.ip_address(result["host"].split("%", 1)[0]), self._policy, host
            )
            if problem is not None:
                raise OutboundRefused(problem)
        return results

    async def close(self) -> None:
        await self._inner.close()
