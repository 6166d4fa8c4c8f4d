"""Pairwise figures by the standard definitions (LLMBar, Zeng et al. 2024; MT-Bench, Zheng et al.
2023) for a judge asked about each pair in both presentation orders, against expert labels.

Pure. Every verdict is in the pair's own terms: "A" is the pair's first response whichever order
the judge was shown. A pair's *outcome* is "A" or "B" when both orders name that response,
"tie" when both orders say tie (a real tie), and "inconsistent" when the orders disagree (an
imported MT-Bench "tie (inconsistent)" is the same outcome, given without the two verdicts).
Real ties and inconsistent verdicts are never merged here; the MT-Bench table, which counts an
inconsistent verdict as a tie, is computed elsewhere (`preference`).

Counting: accuracy and kappa against experts count each expert label once (an item labelled by
three experts gives three comparisons); positional agreement, tie and inconsistent rates count
each pair once. Intervals resample whole pairs (`bootstrap`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from app.agreement.bootstrap import METHOD, Interval, percentile_interval, resample_indices
from app.agreement.preference import (
    LengthBiasFigures,
    PositionBiasFigures,
    length_bias,
    position_bias,
)


class Outcome(StrEnum):
    """A pairwise verdict in the pair's terms. INCONSISTENT only describes both orders together."""

    A = "A"
    B = "B"
    TIE = "tie"
    INCONSISTENT = "inconsistent"


_CODE = {Outcome.A: 0, Outcome.B: 1, Outcome.TIE: 2}
_MISSING = -1
_INCONSISTENT = 3
_POSITIONAL = {Outcome.A: "a", Outcome.B: "b", Outcome.TIE: "tie"}
_SWAPPED_POSITIONAL = {Outcome.A: "b", Outcome.B: "a", Outcome.TIE: "tie"}

FIGURES = (
    "accuracy_ab",
    "accuracy_ba",
    "accuracy",
    "both_correct",
    "positional_agreement",
    "kappa_ab",
    "kappa_ba",
    "kappa",
    "kappa_between_orders",
    "tie_rate",
    "inconsistent_rate",
)

DEFINITIONS: dict[str, str] = {
    "accuracy_ab": "Share of expert labels the judge's verdict matches when shown the pair in "
    "its own order (A first). LLMBar: correct_False.",
    "accuracy_ba": "Share of expert labels the judge's verdict matches when shown the pair "
    "swapped (B first), read back in the pair's terms. LLMBar: correct_True.",
    "accuracy": "Mean of accuracy_ab and accuracy_ba. LLMBar: correct_average.",
    "both_correct": "Share of expert labels matched by the verdicts in both orders. "
    "LLMBar: correct_both.",
    "positional_agreement": "Share of pairs whose two verdicts (one per order) name the same "
    "winner, or both say tie. LLMBar: equal.",
    "kappa_ab": "Cohen's kappa between the verdicts in the pair's own order and the expert "
    "labels, over A / B / tie.",
    "kappa_ba": "Cohen's kappa between the verdicts in the swapped order and the expert labels.",
    "kappa": "Mean of kappa_ab and kappa_ba.",
    "kappa_between_orders": "Cohen's kappa between the judge's two verdicts on each pair (one "
    "per order): agreement with itself beyond chance. LLMBar: kappa_agreement.",
    "tie_rate": "Share of pairs the judge called a tie in both orders (real ties).",
    "inconsistent_rate": "Share of pairs whose verdict changed with the order (different "
    "winners, or a winner in one order and a tie in the other); MT-Bench's "
    '"tie (inconsistent)". Equals 1 - positional_agreement.',
    "position_bias": "Of the pairs whose verdict changed with the order, the share where the "
    "response shown first won both times (0.5: no preference for a position).",
    "length_bias": "Share of decisive outcomes (pairs of unequal length) that prefer the longer "
    "response, for the judge and for the experts: a judge far above the experts favours length.",
}

NOT_BOTH_ORDERS = "not defined: no pair judged in both orders"
NO_LABELS = "not defined: no expert labels on pairs judged in this order"


def outcome_of(ab: Outcome | None, ba: Outcome | None) -> Outcome | None:
    """The pair's outcome from its verdicts in both orders (None unless both are present)."""
    if ab is None or ba is None:
        return None
    return ab if ab == ba else Outcome.INCONSISTENT


@dataclass(frozen=True)
class PairItem:
    """One pair: the judge's verdicts in each order (None: not judged or unusable), or only a
    combined outcome when the verdicts came already combined, and the expert labels on it."""

    key: Hashable
    ab: Outcome | None = None
    ba: Outcome | None = None
    combined: Outcome | None = None
    experts: tuple[Outcome, ...] = ()
    len_a: int | None = None
    len_b: int | None = None

    @property
    def outcome(self) -> Outcome | None:
        both = outcome_of(self.ab, self.ba)
        return both if both is not None else self.combined


@dataclass(frozen=True)
class Estimate:
    """One pairwise figure: value (None with a reason when undefined), its denominator and a
    bootstrap interval."""

    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None
    method: str = METHOD


@dataclass(frozen=True)
class PairwiseFigures:
    n_pairs: int
    n_labels: int
    n_both_orders: int
    figures: dict[str, Estimate]
    position: PositionBiasFigures
    first_wins_when_inconsistent: Estimate
    judge_length: LengthBiasFigures
    expert_length: LengthBiasFigures
    confusion_ab: dict[str, dict[str, int]] = field(default_factory=dict)
    confusion_ba: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class _Arrays:
    """Pairs and labels as code arrays, so each bootstrap resample is a few weighted counts."""

    ab: np.ndarray
    ba: np.ndarray
    outcome: np.ndarray
    label_pair: np.ndarray  # for each expert label: the index of its pair
    label_value: np.ndarray

    @classmethod
    def of(cls, items: Sequence[PairItem]) -> _Arrays:
        def code(value: Outcome | None) -> int:
            if value is None:
                return _MISSING
            return _INCONSISTENT if value == Outcome.INCONSISTENT else _CODE[value]

        label_pair = [i for i, item in enumerate(items) for _ in item.experts]
        label_value = [_CODE[v] for item in items for v in item.experts]
        return cls(
            ab=np.array([code(i.ab) for i in items], dtype=int),
            ba=np.array([code(i.ba) for i in items], dtype=int),
            outcome=np.array([code(i.outcome) for i in items], dtype=int),
            label_pair=np.array(label_pair, dtype=int),
            label_value=np.array(label_value, dtype=int),
        )


def _share(hits: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> tuple[float | None, int]:
    total = float((weights * valid).sum())
    if total == 0:
        return None, 0
    return float((weights * (hits & valid)).sum()) / total, int(total)


def weighted_kappa(
    reference: np.ndarray, judge: np.ndarray, weights: np.ndarray, k: int = 3
) -> float | None:
    """Cohen's kappa over ``k`` categories (codes 0..k-1), each row counted ``weights`` times.

    kappa = (p_o - p_e) / (1 - p_e); None when p_e is 1 (one category shared by both sides).
    """
    total = float(weights.sum())
    if total == 0:
        return None
    table = np.bincount(reference * k + judge, weights=weights, minlength=k * k).reshape(k, k)
    observed = float(np.trace(table)) / total
    expected = float((table.sum(axis=1) * table.sum(axis=0)).sum()) / total**2
    if expected >= 1 - 1e-15:
        return None
    return (observed - expected) / (1 - expected)


def _values(arrays: _Arrays, pair_weights: np.ndarray) -> dict[str, tuple[float | None, int]]:
    """Every figure for pairs counted ``pair_weights`` times (ones: the data as it is)."""
    label_weights = pair_weights[arrays.label_pair] if arrays.label_pair.size else pair_weights[:0]
    ab = arrays.ab[arrays.label_pair]
    ba = arrays.ba[arrays.label_pair]
    truth = arrays.label_value
    has_ab, has_ba = ab != _MISSING, ba != _MISSING
    out: dict[str, tuple[float | None, int]] = {}
    out["accuracy_ab"] = _share(ab == truth, has_ab, label_weights)
    out["accuracy_ba"] = _share(ba == truth, has_ba, label_weights)
    first, second = out["accuracy_ab"][0], out["accuracy_ba"][0]
    out["accuracy"] = (
        None if first is None or second is None else (first + second) / 2,
        min(out["accuracy_ab"][1], out["accuracy_ba"][1]),
    )
    out["both_correct"] = _share((ab == truth) & (ba == truth), has_ab & has_ba, label_weights)
    known = arrays.outcome != _MISSING
    out["positional_agreement"] = _share(arrays.outcome != _INCONSISTENT, known, pair_weights)
    for name, judged, has in (("kappa_ab", ab, has_ab), ("kappa_ba", ba, has_ba)):
        out[name] = (
            weighted_kappa(truth[has], judged[has], label_weights[has]),
            int(label_weights[has].sum()),
        )
    k_ab, k_ba = out["kappa_ab"][0], out["kappa_ba"][0]
    out["kappa"] = (
        None if k_ab is None or k_ba is None else (k_ab + k_ba) / 2,
        min(out["kappa_ab"][1], out["kappa_ba"][1]),
    )
    both = (arrays.ab != _MISSING) & (arrays.ba != _MISSING)
    out["kappa_between_orders"] = (
        weighted_kappa(arrays.ab[both], arrays.ba[both], pair_weights[both]),
        int(pair_weights[both].sum()),
    )
    out["tie_rate"] = _share(arrays.outcome == _CODE[Outcome.TIE], known, pair_weights)
    out["inconsistent_rate"] = _share(arrays.outcome == _INCONSISTENT, known, pair_weights)
    return out


_REASONS = {
    "accuracy_ab": NO_LABELS,
    "accuracy_ba": NO_LABELS,
    "accuracy": NO_LABELS,
    "both_correct": NOT_BOTH_ORDERS,
    "positional_agreement": NOT_BOTH_ORDERS,
    "kappa_ab": "not defined: no labels, or one class shared by judge and experts",
    "kappa_ba": "not defined: no labels, or one class shared by judge and experts",
    "kappa": "not defined: a kappa in one order is undefined",
    "kappa_between_orders": "not defined: no pair judged in both orders, or one class only",
    "tie_rate": NOT_BOTH_ORDERS,
    "inconsistent_rate": NOT_BOTH_ORDERS,
}


def _positional(item: PairItem) -> tuple[str | None, str | None]:
    return (
        _POSITIONAL[item.ab] if item.ab is not None else None,
        _SWAPPED_POSITIONAL[item.ba] if item.ba is not None else None,
    )


def _winner(value: Outcome | None) -> str | None:
    return value.value if value in (Outcome.A, Outcome.B, Outcome.TIE) else None


def _lengths(
    winners: list[Outcome | None], items: list[PairItem]
) -> tuple[list[str | None], list[int], list[int]]:
    return (
        ["tie" if w == Outcome.INCONSISTENT else _winner(w) for w in winners],
        [i.len_a or 0 for i in items],
        [i.len_b or 0 for i in items],
    )


def _confusion(arrays: _Arrays, judged: np.ndarray) -> dict[str, dict[str, int]]:
    """Expert label (rows) against the judge's verdict in one order (columns), labels counted."""
    names = [Outcome.A.value, Outcome.B.value, Outcome.TIE.value]
    given = judged[arrays.label_pair]
    has = given != _MISSING
    table = np.bincount(arrays.label_value[has] * 3 + given[has], minlength=9).reshape(3, 3)
    return {r: {c: int(table[i, j]) for j, c in enumerate(names)} for i, r in enumerate(names)}


def pairwise_figures(
    items: Sequence[PairItem], *, resamples: int = 1000, seed: int = 0
) -> PairwiseFigures:
    """All pairwise figures with percentile bootstrap intervals over pairs."""
    arrays = _Arrays.of(items)
    n = len(items)
    point = _values(arrays, np.ones(n))
    draws: dict[str, list[float | None]] = {name: [] for name in FIGURES}
    inconsistent = [i for i in items if i.ab is not None and i.ba is not None and i.ab != i.ba]
    first_hits = [
        1.0 if _positional(i) == ("a", "a") else 0.0
        for i in inconsistent
        if "tie" not in _positional(i)
    ]
    first_draws: list[float | None] = []
    if n >= 2 and resamples:
        for row in resample_indices(n, resamples, seed):
            values = _values(arrays, np.bincount(row, minlength=n).astype(float))
            for name in FIGURES:
                draws[name].append(values[name][0])
    if len(first_hits) >= 2 and resamples:
        hits = np.asarray(first_hits)
        for row in resample_indices(len(hits), resamples, seed + 1):
            first_draws.append(float(hits[row].mean()))
    figures: dict[str, Estimate] = {}
    for name in FIGURES:
        value, denominator = point[name]
        interval = percentile_interval(draws[name]) if draws[name] else Interval(None, None)
        figures[name] = Estimate(
            value=value,
            n=denominator,
            ci_low=interval.low if value is not None else None,
            ci_high=interval.high if value is not None else None,
            reason=None if value is not None else _REASONS[name],
        )
    first_interval = percentile_interval(first_draws) if first_draws else Interval(None, None)
    first_value = sum(first_hits) / len(first_hits) if first_hits else None
    both = [i for i in items if i.ab is not None and i.ba is not None]
    judged = [i for i in items if i.outcome is not None]
    labelled = [(i, e) for i in items for e in i.experts]
    return PairwiseFigures(
        n_pairs=n,
        n_labels=len(labelled),
        n_both_orders=len(both),
        figures=figures,
        position=position_bias([_positional(i) for i in both]),
        first_wins_when_inconsistent=Estimate(
            value=first_value,
            n=len(first_hits),
            ci_low=first_interval.low,
            ci_high=first_interval.high,
            reason=None if first_hits else "not defined: no pair with two different winners",
        ),
        judge_length=length_bias(*_lengths([i.outcome for i in judged], judged)),
        expert_length=length_bias(
            [e.value for _, e in labelled],
            [i.len_a or 0 for i, _ in labelled],
            [i.len_b or 0 for i, _ in labelled],
        ),
        confusion_ab=_confusion(arrays, arrays.ab),
        confusion_ba=_confusion(arrays, arrays.ba),
    )
