"""What crosses the probes boundary: starting a probe run, and the run and report as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.probes.rewrites import CustomKind


class CustomProbeInput(BaseModel):
    """A user's own rewrite: a regular expression and replacement, or a sandboxed template."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    kind: CustomKind
    pattern: str = Field(default="", max_length=500)
    replacement: str = Field(default="", max_length=5000)
    template: str = Field(default="", max_length=20_000)


class ThresholdsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_uplift: float | None = Field(default=None, ge=0.0, le=1.0)
    addressed_max_uplift: float | None = Field(default=None, ge=0.0, le=1.0)
    max_flip_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="position: most pairs whose winner may change"
    )
    confidence: float | None = Field(default=None, ge=0.5, le=0.999)
    resamples: int | None = Field(default=None, ge=100, le=20_000)


class ProbeRunCreate(BaseModel):
    """Probe a rubric version with a judge configuration under the project's current reward."""

    model_config = ConfigDict(extra="forbid")

    rubric_version_id: int
    judge_config_id: int
    probes: list[str] = Field(
        default_factory=list, max_length=20, description="built-in probe names; empty: all"
    )
    custom: list[CustomProbeInput] = Field(default_factory=list, max_length=10)
    gold_split: Literal["development", "test"] | None = Field(
        default="development",
        description=(
            "the gold set's split to probe (None: all rollouts). The development split falls "
            "back to all rollouts, with a note on the run, when the gold set has none. Drift "
            "samples and earlier probe rewrites are never probed."
        ),
    )
    sample: int | None = Field(default=None, ge=1, le=2000, description="at most this many")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    thresholds: ThresholdsInput = Field(default_factory=ThresholdsInput)


class ProbeRowPublic(BaseModel):
    """One probe's line of the report (the CLI's JSON)."""

    name: str
    n: int
    uplift_mean: float | None
    uplift_ci_low: float | None
    uplift_ci_high: float | None
    share_improved: float | None
    share_changed: float | None = Field(
        default=None, description="position, self-consistency: share of items whose verdict changed"
    )
    share_changed_ci_low: float | None = None
    share_changed_ci_high: float | None = None
    spread_mean: float | None = Field(
        default=None, description="self-consistency: mean (highest - lowest reward) per item"
    )
    passed: bool
    verdict: str
    criteria: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, Any] = Field(default_factory=dict)


class ProbeRunPublic(BaseModel):
    id: int
    project_id: int
    rubric_version_id: int
    judge_config_id: int | None
    judge_run_id: int | None
    status: str
    seed: int
    probes: list[str]
    custom: list[dict[str, Any]]
    thresholds: dict[str, Any]
    selection: dict[str, Any]
    config_hash: str
    reward_revision: int | None
    items_total: int
    items_done: int
    message: str
    passed: bool | None
    report: list[ProbeRowPublic] | None
    created_at: datetime
    finished_at: datetime | None
