"""Judge reliability figures: self-consistency over repeats and agreement between two judges.

Krippendorff's alpha and Gwet's AC1 come from the pure module ``chance``; the rest reuses
``stats``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from app.agreement.bootstrap import Interval, cluster_bootstrap
from app.agreement.chance import gwet_ac1, krippendorff_alpha, value_counts
from app.agreement.stats import (
    FAIL,
    NO_ITEMS,
    AgreementFigures,
    BinaryClass,
    Figure,
    Proportion,
    binary_agreement,
    categorical_agreement,
    ordinal_agreement,
    proportion,
)

Score = bool | int | float | str
Item = TypeVar("Item", bound=Hashable)
LevelOfMeasurement = Literal["nominal", "ordinal", "interval", "ratio"]

NOT_NUMERIC = "not defined: scores are not numeric"
ONE_VALUE = "not defined: only one value present"


@dataclass(frozen=True)
class SelfConsistencyFigures:
    """How a judge agrees with itself when the same item is judged several times.

    Items with fewer than two usable repeats are skipped; None repeats (judge errors) are
    dropped. ``mean_std`` is the mean over items of the sample standard deviation (ddof=1)
    of their scores, for numeric scores only. ``alpha`` is Krippendorff's alpha with the
    repeats as coders.
    """

    n_items: int
    n_skipped: int
    n_missing: int
    all_agree: Proportion
    mean_std: Figure
    alpha: Figure
    level_of_measurement: LevelOfMeasurement


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def self_consistency(
    repeats: Mapping[Item, Sequence[Score | None]],
    level_of_measurement: LevelOfMeasurement | None = None,
) -> SelfConsistencyFigures:
    """Self-consistency of repeated verdicts: ``{item: [score of repeat 1, repeat 2, ...]}``.

    The level of measurement defaults to "interval" for numeric scores and "nominal" for
    booleans and labels; pass "ordinal" for a 1–5 scale judged as ranks.
    """
    usable: list[list[Score]] = []
    missing = skipped = 0
    for scores in repeats.values():
        present = [s for s in scores if s is not None]
        missing += len(scores) - len(present)
        if len(present) < 2:
            skipped += 1
        else:
            usable.append(present)
    values = [s for scores in usable for s in scores]
    numeric = bool(values) and all(_is_numeric(v) for v in values)
    level: LevelOfMeasurement = level_of_measurement or ("interval" if numeric else "nominal")
    if level != "nominal" and values and not numeric:
        raise ValueError(f"level {level!r} needs numeric scores")

    agreeing = sum(len(set(scores)) == 1 for scores in usable)
    if not usable:
        mean_std = Figure.undefined(NO_ITEMS)
    elif not numeric:
        mean_std = Figure.undefined(NOT_NUMERIC)
    else:
        stds = [np.std(np.asarray(scores, dtype=float), ddof=1) for scores in usable]
        mean_std = Figure.of(np.mean(stds), NO_ITEMS)
    return SelfConsistencyFigures(
        n_items=len(usable),
        n_skipped=skipped,
        n_missing=missing,
        all_agree=proportion(agreeing, len(usable)),
        mean_std=mean_std,
        alpha=_alpha(usable, level, numeric),
        level_of_measurement=level,
    )


def _alpha(usable: list[list[Score]], level: LevelOfMeasurement, numeric: bool) -> Figure:
    if not usable:
        return Figure.undefined(NO_ITEMS)
    distinct = {v for scores in usable for v in scores}
    if len(distinct) < 2:  # the package refuses a one-value domain; alpha is undefined there
        return Figure.undefined(ONE_VALUE)
    ordered = sorted(distinct) if numeric else sorted(distinct, key=repr)
    domain = [float(v) for v in ordered] if numeric else None
    return Figure.of_optional(
        krippendorff_alpha(value_counts(usable, ordered), domain, level), ONE_VALUE
    )


@dataclass(frozen=True)
class InterAnnotatorFigures:
    """Agreement among experts on the items two or more of them labelled.

    ``alpha``: Krippendorff's alpha at ``level_of_measurement``; ``ac1``: Gwet's AC1 over the
    ``categories`` (stable when one answer dominates, where kappa-type figures collapse).
    Intervals: percentile bootstrap over items.
    """

    n_items: int
    all_agree: Proportion
    alpha: Figure
    alpha_ci: Interval
    ac1: Figure
    ac1_ci: Interval
    level_of_measurement: LevelOfMeasurement


def inter_annotator(
    by_item: Mapping[Item, Sequence[Score]],
    categories: Sequence[Score],
    level: LevelOfMeasurement = "nominal",
    *,
    resamples: int = 1000,
) -> InterAnnotatorFigures:
    """Alpha and AC1 with bootstrap intervals for ``{item: [each expert's value]}``."""
    units = [list(values) for values in by_item.values() if len(values) >= 2]
    domain = list(categories)
    extra = sorted({v for unit in units for v in unit} - set(domain), key=repr)
    domain.extend(extra)
    numeric = all(_is_numeric(v) for v in domain)
    values = [float(v) for v in domain] if numeric else None
    counts = value_counts(units, domain)
    level = level if numeric or level == "nominal" else "nominal"

    def alpha(rows: Sequence[int]) -> float | None:
        return krippendorff_alpha(counts[list(rows)], values, level)

    def ac1(rows: Sequence[int]) -> float | None:
        return gwet_ac1(counts[list(rows)])

    indices = list(range(len(units)))
    return InterAnnotatorFigures(
        n_items=len(units),
        all_agree=proportion(sum(len(set(u)) == 1 for u in units), len(units)),
        alpha=Figure.of_optional(alpha(indices), ONE_VALUE if units else NO_ITEMS),
        alpha_ci=cluster_bootstrap(indices, alpha, resamples=resamples),
        ac1=Figure.of_optional(ac1(indices), NO_ITEMS),
        ac1_ci=cluster_bootstrap(indices, ac1, resamples=resamples),
        level_of_measurement=level,
    )


@dataclass(frozen=True)
class CrossJudgeFigures:
    """Agreement between two judges on the items both judged; judge_b is the reference side."""

    n_a: int
    n_b: int
    n_common: int
    figures: AgreementFigures


def agreement_figures(
    judge: Sequence[Any],
    reference: Sequence[Any],
    *,
    levels: Sequence[int] | None = None,
    pass_level: int | None = None,
    positive: BinaryClass = FAIL,
    kind_values: Sequence[Any] | None = None,
) -> AgreementFigures:
    """Figures of the right kind for the verdicts: ordinal when ``levels`` are given, binary
    when every verdict is a boolean, categorical otherwise.

    ``kind_values`` (default: the verdicts themselves) decides the kind, so that an empty
    comparison still yields the kind of figures its verdicts would have had.
    """
    sample = list(kind_values) if kind_values is not None else [*judge, *reference]
    if levels is not None:
        return ordinal_agreement(judge, reference, levels, pass_level=pass_level)
    if sample and all(isinstance(v, bool | np.bool_) for v in sample):
        return binary_agreement(judge, reference, positive=positive)
    return categorical_agreement(judge, reference)


def cross_judge_agreement(
    judge_a: Mapping[Item, Any],
    judge_b: Mapping[Item, Any],
    *,
    levels: Sequence[int] | None = None,
    pass_level: int | None = None,
    positive: BinaryClass = FAIL,
) -> CrossJudgeFigures:
    """Agreement of two judges' verdicts ``{item: verdict}`` on their common items.

    None verdicts (errors) count as not judged. Binary verdicts use judge_b as the reference
    for the true-positive and true-negative rates.
    """
    a = {item: v for item, v in judge_a.items() if v is not None}
    b = {item: v for item, v in judge_b.items() if v is not None}
    common = [item for item in a if item in b]
    figures = agreement_figures(
        [a[item] for item in common],
        [b[item] for item in common],
        levels=levels,
        pass_level=pass_level,
        positive=positive,
        kind_values=[*a.values(), *b.values()],
    )
    return CrossJudgeFigures(n_a=len(a), n_b=len(b), n_common=len(common), figures=figures)
