"""Fixture for the rollout parsing tests: parse a file's bytes in one call."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from app.rollouts.parsing import ParsedLine, ParseOptions, Problem, iter_parse

Parse = Callable[..., list[ParsedLine | Problem]]


@pytest.fixture
def parse() -> Parse:
    """parse(data, filename=None, **ParseOptions fields) -> every item iter_parse yields."""

    def run(data: bytes | str, filename: str | None = None, **options: Any) -> list[Any]:
        raw = data.encode() if isinstance(data, str) else data
        return list(iter_parse(io.BytesIO(raw), ParseOptions(**options), filename=filename))

    return run
