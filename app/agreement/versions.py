"""Compare two judge versions against the same human labels: figure changes and flipped items."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from app.agreement.reliability import agreement_figures
from app.agreement.stats import FAIL, AgreementFigures, BinaryClass, figure_values

Item = TypeVar("Item", bound=Hashable)
FlipChange = Literal["now agrees", "now disagrees", "still disagrees", "no human label"]


@dataclass(frozen=True)
class Flip(Generic[Item]):
    """An item whose verdict changed between the two versions."""

    item: Item
    old: Any
    new: Any
    human: Any  # None when the item has no human label
    change: FlipChange


@dataclass(frozen=True)
class FigureChange:
    old: float | None
    new: float | None
    delta: float | None  # new - old; None when either side is undefined


@dataclass(frozen=True)
class VersionComparison(Generic[Item]):
    """Figures of both versions on the items both judged and the human labelled.

    ``changes`` is keyed like :func:`app.agreement.stats.figure_values`. ``flips`` lists every
    item judged by both versions whose verdict changed, labelled or not, in ``old``'s order.
    """

    n_compared: int
    old: AgreementFigures
    new: AgreementFigures
    changes: dict[str, FigureChange]
    flips: list[Flip[Item]]

    def flips_by_change(self, change: FlipChange) -> list[Flip[Item]]:
        return [flip for flip in self.flips if flip.change == change]


def _change(old: float | None, new: float | None) -> FigureChange:
    delta = None if old is None or new is None else new - old
    return FigureChange(old=old, new=new, delta=delta)


def _flip_change(old: Any, new: Any, human: Any) -> FlipChange:
    if human is None:
        return "no human label"
    if new == human:
        return "now agrees"
    if old == human:
        return "now disagrees"
    return "still disagrees"  # possible on scales: 2 -> 4 when the human said 3


def compare_versions(
    old: Mapping[Item, Any],
    new: Mapping[Item, Any],
    human: Mapping[Item, Any],
    *,
    levels: Sequence[int] | None = None,
    pass_level: int | None = None,
    positive: BinaryClass = FAIL,
) -> VersionComparison[Item]:
    """Change in every agreement figure from ``old`` to ``new`` verdicts ``{item: verdict}``.

    Both versions are scored on the same items (judged by both, labelled by the human) so the
    change is not an artefact of different samples. None verdicts or labels count as missing.
    """
    old_v = {item: v for item, v in old.items() if v is not None}
    new_v = {item: v for item, v in new.items() if v is not None}
    human_v = {item: v for item, v in human.items() if v is not None}
    compared = [item for item in old_v if item in new_v and item in human_v]
    kind_values = [*old_v.values(), *new_v.values(), *human_v.values()]
    reference = [human_v[item] for item in compared]
    figures = [
        agreement_figures(
            [version[item] for item in compared],
            reference,
            levels=levels,
            pass_level=pass_level,
            positive=positive,
            kind_values=kind_values,
        )
        for version in (old_v, new_v)
    ]
    before, after = figure_values(figures[0]), figure_values(figures[1])
    changes = {name: _change(before[name], after[name]) for name in before}
    flips = [
        Flip(
            item,
            old_v[item],
            new_v[item],
            human_v.get(item),
            _flip_change(old_v[item], new_v[item], human_v.get(item)),
        )
        for item in old_v
        if item in new_v and old_v[item] != new_v[item]
    ]
    return VersionComparison(
        n_compared=len(compared), old=figures[0], new=figures[1], changes=changes, flips=flips
    )
