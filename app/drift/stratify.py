"""The design of a stratified audit: strata names and how many samples each gets.

Pure: no database. The database computes each sample's stratum (step bucket x reward quantile
within the bucket, optionally x length half or x one criterion's verdict) and counts them; this
module spreads the requested size over the strata and names them.

Allocation is EQUAL, not proportional: every stratum gets the same share (as far as it holds
samples; what a small stratum cannot take goes to the others, in stratum order). An audit asks
"is the judge still right late in training, and at low and high rewards?", so early and late
buckets and low and high rewards must all be seen, however many samples each has.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_AUDIT_SIZE = 5000
DEFAULT_STEP_BUCKETS = 5
DEFAULT_REWARD_QUANTILES = 4


class ExtraStratum(StrEnum):
    """An optional third stratifier."""

    none = "none"
    length = "length"  # shorter / longer half of the bucket's responses
    criterion = "criterion"  # the training-time judge's verdict on one criterion: pass / fail


@dataclass(frozen=True, order=True)
class Stratum:
    bucket: int
    quantile: int  # 1 = lowest rewards of the bucket
    extra: int = -1  # length: 1 shorter, 2 longer half; criterion: 1 pass, 0 fail; -1 none

    def name(self, extra: ExtraStratum) -> str:
        text = f"b{self.bucket}-q{self.quantile}"
        if extra == ExtraStratum.length:
            text += "-short" if self.extra == 1 else "-long"
        elif extra == ExtraStratum.criterion:
            text += {1: "-pass", 0: "-fail"}.get(self.extra, "-unjudged")
        return text


def allocate(counts: dict[Stratum, int], size: int) -> dict[Stratum, int]:
    """Equal allocation of `size` over the strata, capped by what each holds; the remainder
    goes to the strata with room, in stratum order (deterministic)."""
    quota = {stratum: 0 for stratum in counts}
    left = min(size, sum(counts.values()))
    while left > 0:
        open_strata = sorted(s for s in counts if quota[s] < counts[s])
        share = max(1, left // len(open_strata))
        for stratum in open_strata:
            take = min(share, counts[stratum] - quota[stratum], left)
            quota[stratum] += take
            left -= take
            if left == 0:
                break
    return {s: q for s, q in quota.items() if q > 0}


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


def design_record(
    *,
    size: int,
    seed: int,
    plan: dict[str, int],
    quantiles: int,
    extra: ExtraStratum,
    criterion: str | None,
    counts: dict[Stratum, int],
    quota: dict[Stratum, int],
) -> dict[str, Any]:
    """The design as stored with the audit (enough to draw the same sample again)."""
    return {
        "size": size,
        "seed": seed,
        "step_buckets": plan,
        "reward_quantiles": quantiles,
        "extra": extra.value,
        "criterion": criterion,
        "allocation": "equal",
        "sampled": sum(quota.values()),
        "strata": [
            {
                "name": s.name(extra),
                "bucket": s.bucket,
                "quantile": s.quantile,
                "extra": s.extra,
                "available": counts[s],
                "drawn": quota.get(s, 0),
            }
            for s in sorted(counts)
        ],
    }
