"""Fixtures for export tests: demo rollouts (see builders.py for bundle builders)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.exports.builders import demo_sample_rollouts


@pytest.fixture(scope="session")
def demo_rollouts() -> list[dict[str, Any]]:
    return demo_sample_rollouts()
