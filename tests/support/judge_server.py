"""A local OpenAI-compatible judge server for tests and benchmarks: real HTTP, scripted faults.

It is a test double, not an LLM: answers are JSON instances of the requested schema, chosen by a
hash of the user message. Runs uvicorn + Starlette on 127.0.0.1 (ephemeral port) in a background
thread; one event loop serves every request, so hundreds of slow requests need no extra threads.

    with JudgeServer(latency_s=0.2, faults=FaultSequence(["rate_limit", None])) as server:
        ...  # point a provider at server.base_url; assert on server.requests / server.faults

Faults (per server plan, or per request via the `X-Judge-Fault` header or a
`[[judge-fault:<kind>]]` marker in any message):
  rate_limit            429 with Retry-After (seconds or HTTP-date)
  server_error          500
  unavailable           503
  timeout               sleeps `hang_s` before answering (past the client's timeout)
  malformed_body        200 with a truncated, non-JSON body
  slow_body             headers at once, then the body trickled in `slow_chunks` pieces
  invalid_json_content  a valid envelope whose answer text is not JSON
  reject_json_schema    400 when the request asks for response_format json_schema
  bad_request           400 for any request

Modes (how a normal answer is chosen):
  schema     a seeded instance of the requested schema (the default)
  gullible   a judge that can be gamed: every score rises with the response's length, and any
             text addressed to the judge (app/probes/addressed.py) gets full marks
  robust     a judge that cannot be gamed this way: the same middle score for every response,
             the lowest for text addressed to the judge
  noisy      a judge that answers differently each time it is asked: a random place on every
             scale, a random winner (self-consistency probes measure it)
For preference (pairwise) prompts the gullible judge always picks the response shown first
(position bias), the robust one picks by the responses' content whatever their order.
Per-item answers always score each item of the prompt's response exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.llm.schema_instance import instance_for_prompt, prompt_response, seed_for
from app.probes.addressed import is_judge_addressed

FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",
    "server_error",
    "unavailable",
    "timeout",
    "malformed_body",
    "slow_body",
    "invalid_json_content",
    "reject_json_schema",
    "bad_request",
)
ALL_FORMATS: tuple[str, ...] = ("json_schema", "json_object", "text")
FAULT_HEADER = "x-judge-fault"
_MARKER = re.compile(r"\[\[judge-fault:([a-z_]+)\]\]")
# Pauses up to this long are plain sleeps; longer ones (hangs) wake when the server stops.
_SHORT_PAUSE_S = 1.0
JUDGE_MODES: tuple[str, ...] = ("schema", "gullible", "robust", "harsh", "noisy")
_PAIR_BLOCK = re.compile(r"<response_([ab])>\n(.*?)\n</response_\1>", re.DOTALL)
# The gullible judge gives full marks from this many characters of response on.
GULLIBLE_FULL_LENGTH = 8000
INVALID_JSON_ANSWER = 'I would rate this a 4 out of 5. {score: 4, justification: "mostly right"'


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")


class FaultPlan(Protocol):
    """Decides the fault for the n-th request (0-based) that carries no per-request override."""

    def fault_for(self, index: int) -> str | None: ...


@dataclass
class FaultSequence:
    """An explicit per-request script: entry n applies to request n; None means answer normally.
    After the script ends, requests succeed (or the script repeats when `cycle`)."""

    faults: Sequence[str | None]
    cycle: bool = False

    def __post_init__(self) -> None:
        for kind in self.faults:
            _check_kind(kind)

    def fault_for(self, index: int) -> str | None:
        if index < len(self.faults):
            return self.faults[index]
        if self.cycle and self.faults:
            return self.faults[index % len(self.faults)]
        return None


@dataclass
class FaultProbability:
    """Each request independently gets fault k with probability rates[k]; seeded, so a given
    request order always yields the same faults."""

    rates: dict[str, float]
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            _check_kind(kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {kind} must be between 0 and 1")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        self._rng = random.Random(self.seed)

    def fault_for(self, index: int) -> str | None:
        draw = self._rng.random()
        cumulative = 0.0
        for kind, rate in self.rates.items():
            cumulative += rate
            if draw < cumulative:
                return kind
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One /chat/completions request as the server saw it."""

    index: int
    model: str | None
    response_format: str | None  # json_schema | json_object | text | None (absent)
    fault: str | None  # the fault applied (including unauthorized / rejected_format)
    authorization: str | None
    body: dict[str, Any]


class JudgeServer:
    """Starts on enter (or start()), stops on exit (or stop()). Counters are thread-safe."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        retry_after_s: float = 1.0,
        retry_after_format: Literal["seconds", "http-date"] = "seconds",
        hang_s: float = 30.0,
        slow_chunks: int = 8,
        slow_chunk_delay_s: float = 0.05,
        accepted_formats: Collection[str] = ALL_FORMATS,
        api_key: str | None = None,
        default_schema: dict[str, Any] | None = None,
        responder: Callable[[dict[str, Any]], str] | None = None,
        max_records: int = 10_000,
        mode: Literal["schema", "gullible", "robust", "harsh", "noisy"] = "schema",
    ) -> None:
        if mode not in JUDGE_MODES:
            raise ValueError(f"unknown judge mode {mode!r}; known: {', '.join(JUDGE_MODES)}")
        self.mode = mode
        self._noise = random.Random(0)
        self.latency_s = latency_s
        self.retry_after_s = retry_after_s
        self.retry_after_format = retry_after_format
        self.hang_s = hang_s
        self.slow_chunks = max(1, slow_chunks)
        self.slow_chunk_delay_s = slow_chunk_delay_s
        self.accepted_formats = frozenset(accepted_formats)
        self.api_key = api_key
        self.default_schema = default_schema
        self.responder = responder
        self._plan: FaultPlan | None = faults
        self._plan_index = 0
        self._lock = threading.Lock()
        self._requests = 0
        self._faults: Counter[str] = Counter()
        self._formats: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1); POST {base_url}/chat/completions."""
        if not self.port:
            raise RuntimeError("JudgeServer is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> JudgeServer:
        if self._thread is not None:
            raise RuntimeError("JudgeServer already started")
        self._ready.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        # Listening before uvicorn starts means early connections wait in the backlog.
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            backlog=2048,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="judge-server"
        )
        self._thread.start()
        if not self._ready.wait(timeout=15):
            self.stop()
            raise RuntimeError("JudgeServer did not start within 15 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._thread = None
        self._server = None

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- configuration and counters -------------------------------------------------------

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan; its request index starts again at 0."""
        with self._lock:
            self._plan = plan
            self._plan_index = 0

    @property
    def requests(self) -> int:
        """How many /chat/completions requests arrived."""
        with self._lock:
            return self._requests

    @property
    def faults(self) -> dict[str, int]:
        """Requests per applied fault kind (plus `unauthorized` and `rejected_format`)."""
        with self._lock:
            return dict(self._faults)

    @property
    def formats(self) -> dict[str, int]:
        """Requests per response_format type (`none` when absent)."""
        with self._lock:
            return dict(self._formats)

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being handled at the same moment."""
        with self._lock:
            return self._max_in_flight

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def reset_counters(self) -> None:
        with self._lock:
            self._requests = 0
            self._faults.clear()
            self._formats.clear()
            self._max_in_flight = self._in_flight
            self._records.clear()

    # ---- the ASGI app -----------------------------------------------------------------------

    def _app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            yield

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _models(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "judge-test", "object": "model", "owned_by": "test"}],
            }
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops (so shutdown never waits on a hang)."""
        if seconds <= 0 or self._stopping is None:
            return
        if seconds <= _SHORT_PAUSE_S:  # the common latency: a plain sleep costs the least CPU
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _chat(self, request: Request) -> Response:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self._handle(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (ValueError, KeyError, TypeError) as exc:
            with self._lock:
                self._requests += 1
                self._faults["invalid_request"] += 1
            return _error(400, f"invalid request body: {exc}", "invalid_request_error")

        response_format = body.get("response_format") or {}
        format_type = response_format.get("type") if isinstance(response_format, dict) else None
        authorization = request.headers.get("authorization")
        override = request.headers.get(FAULT_HEADER) or _marker(messages)
        if override is not None and override != "none" and override not in FAULT_KINDS:
            return _error(400, f"unknown fault {override!r}", "invalid_request_error")

        with self._lock:
            index = self._requests
            self._requests += 1
            self._formats[format_type or "none"] += 1
            if override is not None:
                fault = None if override == "none" else override
            else:
                fault = self._plan.fault_for(self._plan_index) if self._plan else None
                self._plan_index += 1
            if self.api_key is not None and authorization != f"Bearer {self.api_key}":
                fault = "unauthorized"
            elif format_type is not None and format_type not in self.accepted_formats:
                fault = "rejected_format"
            elif fault == "reject_json_schema" and format_type != "json_schema":
                fault = None  # only json_schema requests are rejected by this fault
            if fault is not None:
                self._faults[fault] += 1
            self._records.append(
                RequestRecord(index, body.get("model"), format_type, fault, authorization, body)
            )

        if fault == "unauthorized":
            return _error(401, "invalid or missing API key", "authentication_error")
        if fault in ("rejected_format", "reject_json_schema"):
            return _error(
                400,
                f"response_format type {format_type!r} is not supported by this server",
                "invalid_request_error",
                param="response_format",
            )
        if fault == "bad_request":
            return _error(400, "bad request (injected fault)", "invalid_request_error")

        await self._pause(self.latency_s)
        if fault == "rate_limit":
            return _error(
                429,
                "rate limit reached (injected fault)",
                "rate_limit_error",
                headers={"Retry-After": self._retry_after_value()},
            )
        if fault == "server_error":
            return _error(500, "internal error (injected fault)", "server_error")
        if fault == "unavailable":
            return _error(503, "service unavailable (injected fault)", "server_error")
        if fault == "timeout":
            await self._pause(self.hang_s)
        if fault == "malformed_body":
            return Response(
                b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "{\\"sco',
                status_code=200,
                media_type="application/json",
            )

        text = INVALID_JSON_ANSWER if fault == "invalid_json_content" else self._answer(body)
        payload = orjson.dumps(self._completion(body, text))
        if fault == "slow_body":
            return StreamingResponse(self._trickle(payload), media_type="application/json")
        return Response(payload, status_code=200, media_type="application/json")

    async def _trickle(self, payload: bytes) -> AsyncIterator[bytes]:
        size = -(-len(payload) // self.slow_chunks)
        for start in range(0, len(payload), size):
            if start:
                await self._pause(self.slow_chunk_delay_s)
            yield payload[start : start + size]

    def _retry_after_value(self) -> str:
        if self.retry_after_format == "http-date":
            return email.utils.formatdate(time.time() + self.retry_after_s, usegmt=True)
        seconds = self.retry_after_s
        return str(int(seconds)) if float(seconds).is_integer() else str(seconds)

    def _answer(self, body: dict[str, Any]) -> str:
        if self.responder is not None:
            return self.responder(body)
        response_format = body.get("response_format") or {}
        schema: Any = None
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
        elif response_format.get("type") == "json_object":
            schema = response_format.get("schema")
        if not isinstance(schema, dict):
            schema = self.default_schema
        user = _last_user(body["messages"])
        answer = instance_for_prompt(schema, user)
        if self.mode != "schema" and isinstance(schema, dict):
            _set_scores(answer, schema, self._fraction(user))
            winner = self._winner(user)
            if winner is not None:
                _set_winners(answer, winner)
        return orjson.dumps(answer).decode()

    def _winner(self, user: str) -> str | None:
        """A preference judge's choice, in the order shown (None: not a pair prompt)."""
        shown = dict(_PAIR_BLOCK.findall(user))
        if set(shown) != {"a", "b"}:
            return None
        if self.mode == "gullible":
            return "A"  # whatever comes first
        if self.mode == "noisy":
            return self._noise.choice(["A", "B", "tie"])
        if self.mode == "harsh":
            return None  # harsh scores; its winners stay those of the schema instance
        # robust: the same response wins in either order (chosen by content, not position)
        a, b = (seed_for(shown[k]) for k in ("a", "b"))
        return "tie" if a == b else ("A" if a < b else "B")

    def _fraction(self, user: str) -> float:
        """Where on each criterion's scale this judge puts the response (0 lowest, 1 highest)."""
        response = prompt_response(user) or user
        if self.mode == "harsh":
            return 0.0
        if self.mode == "noisy":
            return self._noise.random()
        if self.mode == "gullible":
            if is_judge_addressed(response):
                return 1.0
            return min(1.0, len(response) / GULLIBLE_FULL_LENGTH)
        return 0.0 if is_judge_addressed(response) else 0.5

    @staticmethod
    def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt_chars = sum(len(_content_text(m.get("content"))) for m in body["messages"])
        prompt_tokens = (prompt_chars + 3) // 4
        completion_tokens = (len(text) + 3) // 4
        digest = f"{seed_for(_last_user(body['messages'])):016x}"
        return {
            "id": f"chatcmpl-{digest[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "judge-test",
            "system_fingerprint": "rubric-studio-test-judge",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _score_value(schema: dict[str, Any], fraction: float) -> Any:
    if schema.get("type") == "boolean":
        return fraction >= 0.5
    if "enum" in schema:
        options = list(schema["enum"])
        return options[min(len(options) - 1, int(fraction * len(options)))]
    low, high = float(schema.get("minimum", 0)), float(schema.get("maximum", 1))
    value = low + fraction * (high - low)
    return int(round(value)) if schema.get("type") == "integer" else value


def _set_scores(value: Any, schema: dict[str, Any], fraction: float) -> None:
    """Overwrite every criterion `score` in an answer with the score at `fraction` of its scale."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if name not in value or not isinstance(sub, dict):
                continue
            if name == "score" and "properties" not in sub:
                value[name] = _score_value(sub, fraction)
            else:
                _set_scores(value[name], sub, fraction)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for entry in value:
            _set_scores(entry, schema["items"], fraction)


def _set_winners(value: Any, winner: str) -> None:
    """Set every `winner` in a preference answer (overall and per criterion) to `winner`."""
    if isinstance(value, dict):
        for name, sub in value.items():
            if name == "winner" and isinstance(sub, str):
                value[name] = winner
            else:
                _set_winners(sub, winner)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _last_user(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _marker(messages: list[Any]) -> str | None:
    for message in messages:
        if isinstance(message, dict):
            match = _MARKER.search(_content_text(message.get("content")))
            if match:
                return match.group(1)
    return None


def _error(
    status: int,
    message: str,
    kind: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": None}},
        status_code=status,
        headers=headers,
    )
