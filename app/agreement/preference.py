"""Pairwise-preference figures: judge-human and human-human agreement, position and length bias.

Definitions follow Zheng et al. 2023 ("Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from app.agreement.stats import Figure, Proportion, binomial_p_value, proportion

Winner = Literal["a", "b", "tie"]
# A pair's identity: (question_id, turn, first model, second model) with the models sorted.
PairKey = tuple[Hashable, int, str, str]

_A_NAMES = frozenset({"a", "model_a", "1", "first", "output_1", "response_a"})
_B_NAMES = frozenset({"b", "model_b", "2", "second", "output_2", "response_b"})

_FLIPPED: dict[Winner, Winner] = {"a": "b", "b": "a", "tie": "tie"}

NO_TIE_FREE_VOTES = "not defined: no vote pairs without a tie"


def normalise_winner(value: str | int) -> Winner:
    """Map the many spellings of a pairwise verdict to "a", "b" or "tie".

    "a"/"model_a"/"1"/"first" name the first response, likewise for "b"; anything starting
    with "tie" (such as MT-Bench's "tie (inconsistent)") is a tie.
    """
    text = str(value).strip().lower()
    if text in _A_NAMES:
        return "a"
    if text in _B_NAMES:
        return "b"
    if text.startswith("tie"):
        return "tie"
    raise ValueError(f"not a pairwise verdict: {value!r}")


def flip_winner(winner: Winner) -> Winner:
    """The same verdict seen from the other order of the pair."""
    return _FLIPPED[winner]


def combine_swapped(verdict_ab: str | int, verdict_ba: str | int) -> Winner:
    """One verdict from a judge asked twice, once per presentation order.

    Both arguments are what the judge answered about the order it saw: ``verdict_ab`` when
    shown (a, b), ``verdict_ba`` when shown (b, a), so "a"/"first" in ``verdict_ba`` means b.
    A response wins only if preferred in both orders; a verdict that changes with the order
    is a tie (Zheng et al. 2023).
    """
    first = normalise_winner(verdict_ab)
    second = flip_winner(normalise_winner(verdict_ba))
    return first if first == second else "tie"


@dataclass(frozen=True)
class PairVote:
    """One vote on which of two models' answers to a question (at a turn) is better."""

    question_id: Hashable
    model_a: str
    model_b: str
    winner: str | int
    voter: str = ""
    turn: int = 1

    def __post_init__(self) -> None:
        # A pair of one model with itself has no order to normalise and no winner to agree on.
        if self.model_a == self.model_b:
            raise ValueError(f"a pair needs two different models, got {self.model_a!r} twice")

    def keyed(self) -> tuple[PairKey, Winner]:
        """The pair's order-free key and the winner expressed in that key's order."""
        winner = normalise_winner(self.winner)
        if self.model_a <= self.model_b:
            return (self.question_id, self.turn, self.model_a, self.model_b), winner
        return (self.question_id, self.turn, self.model_b, self.model_a), flip_winner(winner)


@dataclass(frozen=True)
class PreferenceFigures:
    """Agreement over compared vote pairs: all of them, and only those where neither is a tie."""

    with_ties: Proportion
    without_ties: Proportion
    n_keys: int  # pairs (question, turn, models) that contributed at least one comparison


def _by_key(votes: Iterable[PairVote]) -> dict[PairKey, list[tuple[str, Winner]]]:
    grouped: dict[PairKey, list[tuple[str, Winner]]] = defaultdict(list)
    for vote in votes:
        key, winner = vote.keyed()
        grouped[key].append((vote.voter, winner))
    return grouped


def _figures(compared: list[tuple[Winner, Winner]], n_keys: int) -> PreferenceFigures:
    tie_free = [(x, y) for x, y in compared if x != "tie" and y != "tie"]
    return PreferenceFigures(
        with_ties=proportion(sum(x == y for x, y in compared), len(compared)),
        without_ties=proportion(sum(x == y for x, y in tie_free), len(tie_free), NO_TIE_FREE_VOTES),
        n_keys=n_keys,
    )


def preference_agreement(
    judge_votes: Iterable[PairVote], human_votes: Iterable[PairVote]
) -> PreferenceFigures:
    """Judge-human agreement on pairwise votes, as in Zheng et al. 2023.

    Votes meet on the order-free key (question_id, turn, models); every judge vote is compared
    with every human vote on the same key, so each human vote counts separately. "Without ties"
    keeps only comparisons where neither side voted tie. The Wilson intervals treat the
    comparisons as independent, which they are not quite (several humans per key).
    """
    judge = _by_key(judge_votes)
    human = _by_key(human_votes)
    compared: list[tuple[Winner, Winner]] = []
    keys = 0
    for key, judge_side in judge.items():
        human_side = human.get(key, [])
        if not human_side:
            continue
        keys += 1
        compared.extend((j, h) for _, j in judge_side for _, h in human_side)
    return _figures(compared, keys)


def human_human_agreement(human_votes: Iterable[PairVote]) -> PreferenceFigures:
    """Agreement between different voters on the same key (every pair of their votes)."""
    compared: list[tuple[Winner, Winner]] = []
    keys = 0
    for votes in _by_key(human_votes).values():
        pairs = [(x, y) for (vx, x), (vy, y) in combinations(votes, 2) if vx != vy]
        if pairs:
            keys += 1
            compared.extend(pairs)
    return _figures(compared, keys)


@dataclass(frozen=True)
class PositionBiasFigures:
    """How a judge's verdicts move when the two responses swap places.

    Shares are over pairs judged in both orders (``n_pairs - n_errors``). ``biased_first``:
    the judge picked whichever response was shown first, both times (likewise second).
    ``first_position_rate``: among all decisive verdicts, the share naming the first position.
    """

    n_pairs: int
    n_errors: int
    consistent: Proportion
    inconsistent: Proportion
    biased_first: Proportion
    biased_second: Proportion
    first_position_rate: Proportion
    first_position_p_value: Figure  # two-sided binomial test of first_position_rate vs 0.5


def position_bias(
    pairs: Sequence[tuple[str | int | None, str | int | None]],
) -> PositionBiasFigures:
    """Position bias from verdicts in both orders: ``(verdict_ab, verdict_ba)`` per pair.

    Verdicts are positional, as in :func:`combine_swapped`; None marks a judge error, and a
    pair with an error in either order is counted in ``n_errors`` and left out of the shares.
    """
    judged: list[tuple[Winner, Winner]] = []
    for verdict_ab, verdict_ba in pairs:
        if verdict_ab is None or verdict_ba is None:
            continue
        judged.append((normalise_winner(verdict_ab), normalise_winner(verdict_ba)))
    n = len(judged)
    consistent = sum(ab == flip_winner(ba) for ab, ba in judged)
    positional = [v for pair in judged for v in pair if v != "tie"]
    first = positional.count("a")
    return PositionBiasFigures(
        n_pairs=len(pairs),
        n_errors=len(pairs) - n,
        consistent=proportion(consistent, n),
        inconsistent=proportion(n - consistent, n),
        biased_first=proportion(sum(pair == ("a", "a") for pair in judged), n),
        biased_second=proportion(sum(pair == ("b", "b") for pair in judged), n),
        first_position_rate=proportion(first, len(positional), "not defined: no decisive verdicts"),
        first_position_p_value=binomial_p_value(first, len(positional)),
    )


@dataclass(frozen=True)
class LengthBiasFigures:
    """How often decisive verdicts favour the longer response.

    ``longer_wins`` counts verdicts that are not ties, on pairs of unequal length; about 0.5
    means no length preference. ``p_value`` is a two-sided binomial test against 0.5.
    """

    n: int
    n_errors: int
    n_ties: int
    n_equal_length: int
    longer_wins: Proportion
    p_value: Figure


def length_bias(
    winners: Sequence[str | int | None], len_a: Sequence[int], len_b: Sequence[int]
) -> LengthBiasFigures:
    """Share of decisive verdicts (None = judge error) that favour the longer response."""
    if not len(winners) == len(len_a) == len(len_b):
        raise ValueError("winners, len_a and len_b must have the same length")
    errors = ties = equal = longer = decisive = 0
    for raw, length_a, length_b in zip(winners, len_a, len_b, strict=True):
        if raw is None:
            errors += 1
            continue
        winner = normalise_winner(raw)
        if winner == "tie":
            ties += 1
        elif length_a == length_b:
            equal += 1
        else:
            decisive += 1
            longer += (winner == "a") == (length_a > length_b)
    reason = "not defined: no decisive verdicts on pairs of unequal length"
    return LengthBiasFigures(
        n=len(winners),
        n_errors=errors,
        n_ties=ties,
        n_equal_length=equal,
        longer_wins=proportion(longer, decisive, reason),
        p_value=binomial_p_value(longer, decisive) if decisive else Figure.undefined(reason),
    )
