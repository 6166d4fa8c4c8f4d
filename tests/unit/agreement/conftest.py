"""Fixtures for the agreement statistics tests: where the shared real data sets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The repository's checkout has shared/ beside it (on developer machines and in CI).
_DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("RUBRIC_STUDIO_SHARED_DATA", _DEFAULT_DATA))
    assert path.is_dir(), f"shared data not found at {path} (set RUBRIC_STUDIO_SHARED_DATA)"
    return path
