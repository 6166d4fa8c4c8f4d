"""A deterministic in-process judge for unit tests and demos: a test double, never a real LLM.

Answers are schema instances seeded by the user message, so the same call always gets the same
answer. A script of canned replies or ProviderErrors can be queued to drive retry paths.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable

from app.llm.base import JudgeCall, JudgeReply, ProviderError
from app.llm.schema_instance import instance_for_prompt

FAKE_STRUCTURED_MODE = "fake"

ScriptStep = str | ProviderError


class FakeProvider:
    """Replies from `script` first (str = reply text, ProviderError = raised), then from
    `responder(call)` if given, else a JSON instance of the call's schema (or a default score)."""

    def __init__(
        self,
        model_id: str = "fake-judge",
        *,
        script: Iterable[ScriptStep] = (),
        responder: Callable[[JudgeCall], str] | None = None,
        concurrency: int = 8,
    ) -> None:
        self.model_id = model_id
        self.limiter = asyncio.Semaphore(concurrency)
        self.calls: list[JudgeCall] = []
        self.closed = False
        self._script: deque[ScriptStep] = deque(script)
        self._responder = responder

    def queue(self, *steps: ScriptStep) -> None:
        """Append canned replies or errors to the script."""
        self._script.extend(steps)

    async def complete(self, call: JudgeCall) -> JudgeReply:
        self.calls.append(call)
        await asyncio.sleep(0)  # a real await point, like any provider
        if self._script:
            step = self._script.popleft()
            if isinstance(step, ProviderError):
                raise step
            text = step
        elif self._responder is not None:
            text = self._responder(call)
        else:
            text = json.dumps(instance_for_prompt(call.output_schema, call.user))
        return JudgeReply(
            text=text,
            input_tokens=_count_tokens(call.system) + _count_tokens(call.user),
            output_tokens=_count_tokens(text),
            latency_ms=0,
            attempts=1,
            structured_mode=FAKE_STRUCTURED_MODE,
            model=self.model_id,
            stop_reason="end_turn",
        )

    async def aclose(self) -> None:
        self.closed = True


def _count_tokens(text: str) -> int:
    # A stand-in count (about four characters a token), stable across runs.
    return (len(text) + 3) // 4
