"""Judge-versus-reference agreement figures for binary, ordinal and categorical verdicts.

Pure statistics: scikit-learn and scipy do the maths; an undefined figure is None with a reason.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from scipy.stats import binomtest, spearmanr
from sklearn.metrics import mean_absolute_error

CONFIDENCE_LEVEL = 0.95

FAIL: Final = "fail"
PASS: Final = "pass"
BinaryClass = Literal["fail", "pass"]
BINARY_LABELS: list[str] = [FAIL, PASS]

# Reason strings shown in place of a figure that cannot be computed.
NO_ITEMS = "not defined: no items"
ONE_CLASS = "not defined: only one class present"
ONE_LEVEL = "not defined: only one level present"
CONSTANT = "not defined: constant scores"
TOO_FEW = "not defined: fewer than 2 items"


@dataclass(frozen=True)
class Figure:
    """A single figure; ``value`` is None (never NaN) when undefined, and ``reason`` says why."""

    value: float | None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    @classmethod
    def of(cls, value: Any, reason_if_undefined: str) -> Figure:
        """Wrap a computed number, turning NaN or infinity into None with the given reason."""
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return cls(None, reason_if_undefined)
        return cls(number)

    @classmethod
    def of_optional(cls, value: float | None, reason_if_undefined: str) -> Figure:
        """Like ``of``, for a computation that returns None when undefined."""
        return (
            cls(None, reason_if_undefined) if value is None else cls.of(value, reason_if_undefined)
        )

    @classmethod
    def undefined(cls, reason: str) -> Figure:
        return cls(None, reason)


@dataclass(frozen=True)
class Proportion:
    """``k`` successes out of ``n`` with a Wilson confidence interval (None when ``n`` is 0)."""

    k: int
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def percent(self) -> float | None:
        return None if self.value is None else 100.0 * self.value


def proportion(k: int, n: int, empty_reason: str = NO_ITEMS) -> Proportion:
    """k out of n with the 95% Wilson score interval from scipy's binomial test."""
    if n == 0:
        return Proportion(k=0, n=0, value=None, ci_low=None, ci_high=None, reason=empty_reason)
    result = binomtest(int(k), int(n))
    ci = result.proportion_ci(confidence_level=CONFIDENCE_LEVEL, method="wilson")
    return Proportion(
        k=int(k),
        n=int(n),
        value=float(result.statistic),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
    )


def binomial_p_value(k: int, n: int, p: float = 0.5) -> Figure:
    """Two-sided binomial test of k out of n against the rate ``p`` (None when ``n`` is 0)."""
    if n == 0:
        return Figure.undefined(NO_ITEMS)
    return Figure.of(binomtest(int(k), int(n), p=p).pvalue, NO_ITEMS)


@dataclass(frozen=True)
class BinaryFigures:
    """Pass/fail agreement. ``confusion[human][judge]`` counts items; positives are ``positive``."""

    n: int
    positive: BinaryClass
    agreement: Proportion
    kappa: Figure
    true_positive_rate: Proportion
    true_negative_rate: Proportion
    confusion: dict[str, dict[str, int]]


@dataclass(frozen=True)
class OrdinalFigures:
    """Agreement on a 1–5 style scale; ``binary`` holds pass/fail figures at ``pass_level``."""

    n: int
    levels: list[int]
    exact: Proportion
    within_one: Proportion
    spearman: Figure
    mean_absolute_error: Figure
    quadratic_kappa: Figure
    confusion: dict[int, dict[int, int]]
    pass_level: int | None
    binary: BinaryFigures | None


@dataclass(frozen=True)
class CategoricalFigures:
    """Agreement on unordered labels (e.g. preference winners). ``confusion[reference][judge]``."""

    n: int
    labels: list[Hashable]
    agreement: Proportion
    kappa: Figure
    confusion: dict[Hashable, dict[Hashable, int]]


AgreementFigures = BinaryFigures | OrdinalFigures | CategoricalFigures


def _check_lengths(judge: Sequence[Any], human: Sequence[Any]) -> None:
    if len(judge) != len(human):
        raise ValueError(f"judge has {len(judge)} values but human has {len(human)}")


def _table(
    reference: Sequence[Any], judge: Sequence[Any], labels: Sequence[Any]
) -> np.ndarray[Any, Any]:
    """``table[i][j]``: pairs whose reference is ``labels[i]`` and judge ``labels[j]``. The same
    counts as scikit-learn's ``confusion_matrix`` (values outside ``labels`` are not counted),
    without its per-call input checks, which cost more than the counting on large runs."""
    index = {label: i for i, label in enumerate(labels)}
    size = len(labels)
    codes = [
        index[r] * size + index[j]
        for r, j in zip(reference, judge, strict=True)
        if r in index and j in index
    ]
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=size * size)
    return counts.reshape(size, size).astype(int)


def _kappa_of_table(
    confusion: np.ndarray[Any, Any], undefined_reason: str, weights: str | None = None
) -> Figure:
    """Cohen's kappa of a confusion table, by scikit-learn's ``cohen_kappa_score`` arithmetic
    (the same float64 operations in the same order, so the same value)."""
    table = confusion.astype(np.float64)
    n_classes = table.shape[0]
    sum0 = np.sum(table, axis=0)
    sum1 = np.sum(table, axis=1)
    total = np.sum(sum0)
    if total == 0:
        return Figure.undefined(undefined_reason)
    expected = np.outer(sum0, sum1) / total
    if weights is None:
        w_mat = np.ones([n_classes, n_classes], dtype=np.float64)
        np.fill_diagonal(w_mat, 0)
    else:
        w_mat = np.zeros([n_classes, n_classes], dtype=np.float64)
        w_mat += np.arange(n_classes)
        w_mat = np.abs(w_mat - w_mat.T) if weights == "linear" else (w_mat - w_mat.T) ** 2
    denominator = np.sum(w_mat * expected)
    if denominator == 0:
        return Figure.undefined(undefined_reason)
    return Figure.of(float(1 - np.sum(w_mat * table) / denominator), undefined_reason)


def _confusion_matrix(
    reference: Sequence[Any], judge: Sequence[Any], labels: Sequence[Any]
) -> np.ndarray[Any, Any]:
    return _table(reference, judge, labels)


def _as_bool(value: Any, side: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValueError(f"{side} values must be booleans (True = pass), got {value!r}")


def binary_agreement(
    judge: Sequence[bool], human: Sequence[bool], positive: BinaryClass = FAIL
) -> BinaryFigures:
    """Agreement of pass/fail verdicts (True = pass) with human labels, item by item.

    The true-positive rate is the share of items the human put in the ``positive`` class
    ("fail" by default: catching failures is what a judge is for) that the judge put there too.
    """
    _check_lengths(judge, human)
    if positive not in (FAIL, PASS):
        raise ValueError(f"positive must be 'fail' or 'pass', got {positive!r}")
    judge_labels = [PASS if _as_bool(v, "judge") else FAIL for v in judge]
    human_labels = [PASS if _as_bool(v, "human") else FAIL for v in human]
    matrix = _confusion_matrix(human_labels, judge_labels, BINARY_LABELS)
    pos = BINARY_LABELS.index(positive)
    neg = 1 - pos
    n = len(judge_labels)
    return BinaryFigures(
        n=n,
        positive=positive,
        agreement=proportion(int(np.trace(matrix)), n),
        kappa=_kappa_of_table(matrix, ONE_CLASS) if n else Figure.undefined(NO_ITEMS),
        true_positive_rate=proportion(
            int(matrix[pos, pos]),
            int(matrix[pos].sum()),
            f"not defined: no items the human marked {positive}",
        ),
        true_negative_rate=proportion(
            int(matrix[neg, neg]),
            int(matrix[neg].sum()),
            f"not defined: no items the human marked {BINARY_LABELS[neg]}",
        ),
        confusion=_matrix_dict(matrix, BINARY_LABELS),
    )


def ordinal_agreement(
    judge: Sequence[int],
    human: Sequence[int],
    levels: Sequence[int],
    pass_level: int | None = None,
) -> OrdinalFigures:
    """Agreement of scale scores with human scores.

    "Within one" means at most one step apart on ``levels`` (so on a 0/5/10 scale, 5 and 10
    are within one). With ``pass_level``, scores at or above it pass, and ``binary`` holds the
    pass/fail figures of that thresholding.
    """
    _check_lengths(judge, human)
    ordered = sorted(set(levels))
    if len(ordered) != len(levels) or not ordered:
        raise ValueError(f"levels must be distinct and non-empty, got {list(levels)!r}")
    for side, values in (("judge", judge), ("human", human)):
        unknown = sorted({v for v in values if v not in ordered})
        if unknown:
            raise ValueError(f"{side} scores {unknown!r} are not among the levels {ordered!r}")
    n = len(judge)
    matrix = _confusion_matrix(human, judge, ordered)
    steps = np.abs(np.subtract.outer(np.arange(len(ordered)), np.arange(len(ordered))))
    if n < 2:
        spearman = Figure.undefined(NO_ITEMS if n == 0 else TOO_FEW)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on constant input; we give a reason
            spearman = Figure.of(spearmanr(list(judge), list(human)).statistic, CONSTANT)
    mae = (
        Figure.of(mean_absolute_error(list(human), list(judge)), NO_ITEMS)
        if n
        else Figure.undefined(NO_ITEMS)
    )
    binary = None
    if pass_level is not None:
        binary = binary_agreement(
            [score >= pass_level for score in judge], [score >= pass_level for score in human]
        )
    return OrdinalFigures(
        n=n,
        levels=ordered,
        exact=proportion(int(np.trace(matrix)), n),
        within_one=proportion(int(matrix[steps <= 1].sum()), n),
        spearman=spearman,
        mean_absolute_error=mae,
        quadratic_kappa=_kappa_of_table(matrix, ONE_LEVEL, weights="quadratic")
        if n
        else Figure.undefined(NO_ITEMS),
        confusion=_matrix_dict(matrix, ordered),
        pass_level=pass_level,
        binary=binary,
    )


def categorical_agreement(
    judge: Sequence[Hashable],
    reference: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
) -> CategoricalFigures:
    """Agreement of unordered labels with a reference: raw agreement, Cohen's kappa, confusion.

    ``labels`` fixes the label order (default: the labels present, sorted).
    """
    _check_lengths(judge, reference)
    present = set(judge) | set(reference)
    if labels is None:
        try:
            ordered: list[Hashable] = sorted(present)  # type: ignore[type-var]
        except TypeError:
            ordered = sorted(present, key=repr)
    else:
        ordered = list(labels)
        unknown = present - set(ordered)
        if unknown:
            raise ValueError(f"values {sorted(map(repr, unknown))} are not among the labels")
    # sklearn needs one comparable label type: give it indices and map back.
    index = {label: i for i, label in enumerate(ordered)}
    judge_codes = [index[v] for v in judge]
    reference_codes = [index[v] for v in reference]
    codes = list(range(len(ordered)))
    matrix = _confusion_matrix(reference_codes, judge_codes, codes)
    n = len(judge_codes)
    return CategoricalFigures(
        n=n,
        labels=ordered,
        agreement=proportion(int(np.trace(matrix)), n),
        kappa=_kappa_of_table(matrix, ONE_CLASS) if n else Figure.undefined(NO_ITEMS),
        confusion=_matrix_dict(matrix, ordered),
    )


def _matrix_dict(matrix: np.ndarray[Any, Any], labels: Sequence[Any]) -> dict[Any, dict[Any, int]]:
    return {
        row_label: {col_label: int(matrix[i, j]) for j, col_label in enumerate(labels)}
        for i, row_label in enumerate(labels)
    }


def figure_values(figures: Any, prefix: str = "") -> dict[str, float | None]:
    """Flatten a figures dataclass to ``{"agreement": 0.8, "binary.kappa": None, ...}``.

    Only Figure and Proportion fields are kept (counts and tables are not figures); used to
    compare two sets of figures and to freeze them into an export.
    """
    values: dict[str, float | None] = {}
    for field in dataclasses.fields(figures):
        item = getattr(figures, field.name)
        if isinstance(item, Figure | Proportion):
            values[prefix + field.name] = item.value
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            values.update(figure_values(item, prefix=f"{prefix}{field.name}."))
    return values
