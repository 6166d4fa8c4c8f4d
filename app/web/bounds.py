"""Bounds on heavy requests, as one ASGI middleware:

- at most `RS_HEAVY_CONCURRENCY` heavy pages (HEAVY_ROUTES: searches, agreement, disagreements,
  reward preview, drift dashboards, leaderboards, slices) run at once in a web process; one more
  waits up to `RS_HEAVY_WAIT_S` for a slot, then answers 503 with `Retry-After`;
- when the client of a GET goes away, the database statement it is waiting on is cancelled
  (app/core/db.py StatementCanceller), instead of running on to the statement timeout;
- after heavy pages, once none has run for `TRIM_AFTER_S`, freed memory is handed back to the
  operating system (glibc `malloc_trim`), so the process returns towards its baseline. Waiting
  for a quiet moment keeps the full collection and the trim (hundreds of milliseconds with a
  large heap) out of the way of a client's next heavy page.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any

from starlette.requests import Request

from app.core.db import CANCELLER_KEY, StatementCanceller

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Route paths (as the routers declare them) whose cost grows with the data: a search or a scan
# of a run, a project or a training run. tests/integration/core/test_bounds.py checks each is
# a real route, so a renamed route cannot drop out of the cap unnoticed.
HEAVY_ROUTES: tuple[str, ...] = (
    "/projects/{project_id}/rollouts",
    "/projects/{project_id}/rollouts/groups",
    "/api/v1/projects/{project_id}/rollouts",
    "/projects/{project_id}/agreement",
    "/projects/{project_id}/agreement/compare",
    "/projects/{project_id}/agreement/leaderboard",
    "/projects/{project_id}/agreement/leaderboard.csv",
    "/projects/{project_id}/agreement/runs/{run_id}",
    "/projects/{project_id}/agreement/runs/{run_id}/slices",
    "/api/v1/projects/{project_id}/agreement/compare",
    "/api/v1/projects/{project_id}/agreement/leaderboard",
    "/api/v1/projects/{project_id}/runs/{run_id}/agreement",
    "/api/v1/projects/{project_id}/runs/{run_id}/agreement/slices",
    "/projects/{project_id}/disagreements/{run_id}",
    "/projects/{project_id}/disagreements/{run_id}/rollouts/{rollout_id}",
    "/api/v1/projects/{project_id}/runs/{run_id}/disagreements",
    "/projects/{project_id}/rewards/preview",
    "/api/v1/projects/{project_id}/reward-preview",
    "/projects/{project_id}/rubrics/{rubric_id}/compare",
    "/projects/{project_id}/training-runs/{run_id:int}",
    "/projects/{project_id}/training-runs/{run_id:int}/series.csv",
    "/projects/{project_id}/training-runs/{run_id:int}/signals/{kind}",
    "/api/v1/projects/{project_id}/training-runs/{run_id}/agreement",
    "/api/v1/projects/{project_id}/training-runs/{run_id}/series",
    "/api/v1/projects/{project_id}/training-runs/{run_id}/series.csv",
    "/api/v1/projects/{project_id}/training-runs/{run_id}/signals",
)

# Seconds without a heavy page before memory is trimmed.
TRIM_AFTER_S = 1.0

BUSY_MESSAGE = (
    "The server is busy with other large pages right now. Nothing was changed; try again in a "
    "few seconds."
)


def _route_regex(path: str) -> str:
    escaped = re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
    return re.sub(r"\{[^}]+\}", r"[^/]+", re.sub(r"\{[^}:]+:int\}", r"[0-9]+", escaped))


HEAVY_PATH = re.compile("^(?:" + "|".join(_route_regex(p) for p in HEAVY_ROUTES) + ")$")


def is_heavy(path: str) -> bool:
    return HEAVY_PATH.match(path) is not None


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_memory() -> bool:
    """Collect cyclic garbage (a page's ORM objects and their states refer to each other), then
    hand the heap's free pages back to the OS; True when glibc did release some."""
    gc.collect()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


class HeavyRequestBounds:
    """The ASGI middleware; one instance per app, state per event loop."""

    def __init__(self, app: ASGIApp, settings: Any) -> None:
        self.app = app
        self.settings = settings
        # One semaphore per event loop (a server has one; test clients may start several).
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self.running_heavy = 0
        self.heavy_started = 0  # heavy pages started so far (a trim waits for a quiet moment)
        self.trims = 0

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.settings.heavy_concurrency)
        return slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        heavy = is_heavy(scope["path"])
        if not heavy or self.settings.heavy_concurrency <= 0:
            await self._watched(scope, receive, send, heavy)
            return
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self.settings.heavy_wait_s)
        except TimeoutError:
            await self._busy(scope, receive, send)
            return
        try:
            await self._watched(scope, receive, send, heavy)
        finally:
            slots.release()

    async def _busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        from app.web.errors import error_response

        log.warning("heavy request refused, %d running: %s", self.running_heavy, scope["path"])
        response = error_response(
            Request(scope, receive),
            503,
            BUSY_MESSAGE,
            headers={"Retry-After": str(self.settings.heavy_retry_after_s)},
        )
        await response(scope, receive, send)

    async def _watched(self, scope: Scope, receive: Receive, send: Send, heavy: bool) -> None:
        if heavy:
            self.running_heavy += 1
            self.heavy_started += 1
        try:
            if scope["method"] in ("GET", "HEAD"):
                await self._cancel_on_disconnect(scope, receive, send)
            else:
                # A request with a body reads it itself (an upload must keep its backpressure).
                await self.app(scope, receive, send)
        finally:
            if heavy:
                self.running_heavy -= 1
                if self.running_heavy == 0 and self.settings.memory_trim:
                    loop = asyncio.get_running_loop()
                    loop.call_later(TRIM_AFTER_S, self._trim_if_quiet, loop, self.heavy_started)

    def _trim_if_quiet(self, loop: asyncio.AbstractEventLoop, started: int) -> None:
        """Trim when no heavy page started since the last one ended (else that one's end will
        schedule its own)."""
        if self.running_heavy == 0 and self.heavy_started == started:
            self.trims += 1
            loop.run_in_executor(None, trim_memory)

    async def _cancel_on_disconnect(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the client's messages ourselves (a GET has no body to hold back), hand them to
        the app as it asks, and cancel the request's statement when the client goes away."""
        canceller = StatementCanceller()
        scope.setdefault("state", {})[CANCELLER_KEY] = canceller
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        answered = False

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = True
            await send(message)

        async def listen() -> None:
            while True:
                message = await receive()
                await inbox.put(message)
                # Servers also say "disconnect" once the answer is complete: nothing to cancel.
                if message["type"] == "http.disconnect" and not answered:
                    sent = await asyncio.get_running_loop().run_in_executor(None, canceller.cancel)
                    if sent:
                        log.info("client went away; cancelled the statement of %s", scope["path"])
                    return
                if message["type"] == "http.disconnect":
                    return

        listener = asyncio.create_task(listen())
        try:
            await self.app(scope, inbox.get, tracked_send)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
