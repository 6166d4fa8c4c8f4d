"""What the drift signals read and say (pure): the signal kinds and severities, the thresholds, a
step bucket's statistics, an agreement bucket and one signal's result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class SignalKind(StrEnum):
    agreement_drop = "agreement_drop"
    reward_without_quality = "reward_without_quality"
    length_hacking = "length_hacking"
    criterion_divergence = "criterion_divergence"
    grounding_decay = "grounding_decay"
    judge_addressed_text = "judge_addressed_text"
    judge_failing = "judge_failing"
    signal_collapse = "signal_collapse"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


TITLES = {
    SignalKind.agreement_drop: "Judge–human agreement dropped",
    SignalKind.reward_without_quality: "Reward rising without quality",
    SignalKind.length_hacking: "Length hacking",
    SignalKind.criterion_divergence: "Criteria diverging",
    SignalKind.grounding_decay: "Grounding decay",
    SignalKind.judge_addressed_text: "Text addressed to the judge",
    SignalKind.judge_failing: "Judge failing",
    SignalKind.signal_collapse: "Learning signal collapse",
}

MEASURES = {
    SignalKind.agreement_drop: "the share of audited samples where the training-time judge "
    "agreed with the reviewers, early buckets against late ones",
    SignalKind.reward_without_quality: "the recorded reward's trend against the reviewers' "
    'pass rate ("did this deserve its reward?") in the audit',
    SignalKind.length_hacking: "response length (characters) and the reward–length rank "
    "correlation (Spearman) per bucket, early against late",
    SignalKind.criterion_divergence: "each judge criterion's mean (pass rate for pass/fail "
    "criteria) and each component's mean score: trends up and down at the same time",
    SignalKind.grounding_decay: "the share of quoted excerpts that do not occur in the target "
    "document, early against late",
    SignalKind.judge_addressed_text: "the share of responses matching the documented patterns "
    "of text addressed to the judge (app/probes/addressed.py)",
    SignalKind.judge_failing: "the judge error rate and the neutral-reward rate per bucket "
    "against the threshold",
    SignalKind.signal_collapse: "the share of GRPO groups whose rewards are all equal (no "
    "learning signal), early against late",
}


@dataclass(frozen=True)
class DriftThresholds:
    """Per-project settings (Project.settings["drift"]); defaults documented in docs/drift.md."""

    alpha: float = 0.001  # per signal, before the Bonferroni correction inside a signal
    min_bucket_n: int = 20  # buckets with fewer samples are left out of the tests
    min_buckets: int = 4
    agreement_drop: float = 0.10  # absolute drop in agreement (share)
    reward_rise: float = 0.05  # absolute rise in mean reward
    quality_rise_tolerance: float = 0.02  # human pass rate may rise this little and still "flat"
    length_ratio: float = 1.20  # late / early mean length
    correlation_rise: float = 0.15  # late - early Spearman rho
    criterion_change: float = 0.10  # change as a share of the criterion's scale
    grounding_rise: float = 0.10  # absolute rise in the share of ungrounded excerpts
    addressed_rate: float = 0.02  # late share of responses addressed to the judge
    judge_error_rate: float = 0.05  # judge error or neutral-reward rate
    collapse_rise: float = 0.15  # absolute rise in the share of zero-spread groups

    @classmethod
    def from_settings(cls, value: dict[str, Any] | None) -> DriftThresholds:
        """Known keys from stored settings (numbers only); the rest keep their defaults."""
        value = value or {}
        kwargs: dict[str, Any] = {}
        for item in fields(cls):
            raw = value.get(item.name)
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                kwargs[item.name] = int(raw) if item.type in (int, "int") else float(raw)
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BucketStats:
    """The figures of one step bucket the signals read (a subset of the series)."""

    step_start: int
    step_end: int
    n: int
    reward_mean: float | None = None
    reward_sd: float | None = None
    length_mean: float | None = None
    length_sd: float | None = None
    reward_length_spearman: float | None = None
    judge_error_rate: float | None = None
    neutral_rate: float | None = None
    judge_addressed: int = 0
    quotes: int = 0
    ungrounded_share: float | None = None
    groups: int = 0
    zero_spread_share: float | None = None
    criteria: dict[str, float] = field(default_factory=dict)  # name -> mean
    criteria_binary: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_series(cls, row: dict[str, Any]) -> BucketStats:
        criteria = {
            k: v["mean"] for k, v in row.get("criteria", {}).items() if v.get("mean") is not None
        }
        binary = {k: bool(v.get("binary")) for k, v in row.get("criteria", {}).items()}
        for name, comp in row.get("components", {}).items():
            if comp.get("mean") is not None:
                criteria[f"component:{name}"] = comp["mean"]
                binary[f"component:{name}"] = True  # scores are 0..1
        return cls(
            step_start=row["step_start"],
            step_end=row["step_end"],
            n=row["n"],
            reward_mean=row.get("reward_mean"),
            reward_sd=row.get("reward_sd"),
            length_mean=row.get("length_mean"),
            length_sd=row.get("length_sd"),
            reward_length_spearman=row.get("reward_length_spearman"),
            judge_error_rate=row.get("judge_error_rate"),
            neutral_rate=row.get("neutral_rate"),
            judge_addressed=int(row.get("judge_addressed") or 0),
            quotes=int(row.get("quotes") or 0),
            ungrounded_share=row.get("ungrounded_share"),
            groups=int(row.get("groups") or 0),
            zero_spread_share=row.get("zero_spread_share"),
            criteria=criteria,
            criteria_binary=binary,
        )


@dataclass(frozen=True)
class AgreementBucket:
    """Judge against reviewers in one step bucket (supplied by the audit, issue #14 part 5).

    n: audited samples with a reviewer verdict; agreements: of them, where the training-time
    judge agreed with the reviewers; human_passes: where the reviewers said the sample deserved
    its reward (or passed). kappa is shown, not tested.
    """

    step_start: int
    step_end: int
    n: int
    agreements: int
    human_passes: int
    kappa: float | None = None


@dataclass(frozen=True)
class SignalResult:
    kind: SignalKind
    fired: bool
    evaluated: bool  # False when the data needed is missing (the reason says what)
    onset_step: int | None = None
    onset_bucket: int | None = None
    severity: Severity | None = None
    p_value: float | None = None
    statistic: str = ""
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def measures(self) -> str:
        return MEASURES[self.kind]

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "onset_step": self.onset_step,
            "severity": self.severity.value if self.severity else None,
            "evidence": {
                **self.evidence,
                "summary": self.summary,
                "p_value": self.p_value,
                "statistic": self.statistic,
            },
        }
