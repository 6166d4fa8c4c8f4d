"""Pairwise-preference agreement, swapped-order verdicts, position and length bias."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from app.agreement.preference import (
    NO_TIE_FREE_VOTES,
    PairVote,
    combine_swapped,
    flip_winner,
    human_human_agreement,
    length_bias,
    normalise_winner,
    position_bias,
    preference_agreement,
)
from app.agreement.stats import NO_ITEMS, Figure


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("model_a", "a"),
        ("A", "a"),
        ("first", "a"),
        (1, "a"),
        ("model_b", "b"),
        (" B ", "b"),
        ("second", "b"),
        ("2", "b"),
        ("tie", "tie"),
        ("tie (inconsistent)", "tie"),
        ("TIE", "tie"),
    ],
)
def test_normalise_winner(raw: str | int, expected: str):
    assert normalise_winner(raw) == expected


@pytest.mark.parametrize("raw", ["model_c", "", "3", "both"])
def test_normalise_winner_rejects_unknown(raw: str):
    with pytest.raises(ValueError, match="not a pairwise verdict"):
        normalise_winner(raw)


def test_flip_winner():
    assert [flip_winner(w) for w in ("a", "b", "tie")] == ["b", "a", "tie"]


@pytest.mark.parametrize(
    ("ab", "ba", "expected"),
    [
        ("a", "b", "a"),  # a preferred in both orders
        ("b", "a", "b"),
        ("first", "second", "a"),
        ("a", "a", "tie"),  # always the first position: inconsistent
        ("b", "b", "tie"),
        ("tie", "tie", "tie"),
        ("a", "tie", "tie"),
        ("tie", "a", "tie"),
    ],
)
def test_combine_swapped(ab: str, ba: str, expected: str):
    assert combine_swapped(ab, ba) == expected


def test_pair_vote_key_is_order_free():
    forward = PairVote("q1", "alpaca", "vicuna", "model_a", "j", turn=2)
    backward = PairVote("q1", "vicuna", "alpaca", "model_b", "j", turn=2)
    assert forward.keyed() == backward.keyed() == (("q1", 2, "alpaca", "vicuna"), "a")
    assert PairVote("q1", "vicuna", "alpaca", "tie").keyed()[1] == "tie"


def test_pair_vote_needs_two_models():
    with pytest.raises(ValueError, match="two different models"):
        PairVote("q1", "same", "same", "tie")


def test_preference_agreement_counts_each_human_vote_and_skips_ties():
    judge = [
        PairVote(1, "x", "y", "model_a", "gpt"),
        PairVote(2, "y", "x", "model_a", "gpt"),  # y wins, stated in the other order
        PairVote(3, "x", "y", "tie", "gpt"),
        PairVote(4, "x", "y", "model_a", "gpt"),  # nobody labelled question 4
    ]
    human = [
        PairVote(1, "x", "y", "model_a", "e1"),  # agree
        PairVote(1, "y", "x", "model_a", "e2"),  # disagree (y wins)
        PairVote(2, "x", "y", "model_b", "e1"),  # agree (y wins)
        PairVote(3, "x", "y", "tie", "e1"),  # agree, but a tie
        PairVote(3, "x", "y", "model_b", "e2"),  # disagree, judge said tie
        PairVote(1, "x", "y", "model_a", "e3", turn=2),  # other turn: no judge vote
    ]
    figures = preference_agreement(judge, human)
    assert (figures.with_ties.k, figures.with_ties.n) == (3, 5)
    assert (figures.without_ties.k, figures.without_ties.n) == (2, 3)
    assert figures.n_keys == 3
    assert figures.with_ties.percent == pytest.approx(60.0)


def test_preference_agreement_without_overlap_or_without_tie_free_votes():
    none = preference_agreement([PairVote(1, "x", "y", "a")], [PairVote(2, "x", "y", "a")])
    assert none.n_keys == 0
    assert none.with_ties.value is None and none.with_ties.reason == NO_ITEMS
    ties = preference_agreement([PairVote(1, "x", "y", "tie")], [PairVote(1, "x", "y", "a")])
    assert (ties.with_ties.k, ties.with_ties.n) == (0, 1)
    assert ties.without_ties.value is None and ties.without_ties.reason == NO_TIE_FREE_VOTES


def test_human_human_agreement_pairs_different_voters_only():
    votes = [
        PairVote(1, "x", "y", "a", "e1"),
        PairVote(1, "y", "x", "b", "e2"),  # agrees with e1
        PairVote(1, "x", "y", "tie", "e3"),
        PairVote(1, "x", "y", "b", "e1"),  # e1 again: never compared with itself
        PairVote(2, "x", "y", "a", "e1"),  # a single voter: nothing to compare
    ]
    figures = human_human_agreement(votes)
    # Pairs: (e1a,e2) agree, (e1a,e3), (e2,e3), (e2,e1b), (e3,e1b) -> 1 of 5; tie-free: 2 pairs.
    assert (figures.with_ties.k, figures.with_ties.n) == (1, 5)
    assert (figures.without_ties.k, figures.without_ties.n) == (1, 2)
    assert figures.n_keys == 1


vote_strategy = st.builds(
    PairVote,
    question_id=st.integers(1, 3),
    model_a=st.just("m1"),
    model_b=st.sampled_from(["m2", "m3"]),
    winner=st.sampled_from(["model_a", "model_b", "tie"]),
    voter=st.sampled_from(["e1", "e2", "e3"]),
    turn=st.integers(1, 2),
)


def _swapped(vote: PairVote) -> PairVote:
    winner = {"model_a": "model_b", "model_b": "model_a"}.get(str(vote.winner), vote.winner)
    return PairVote(vote.question_id, vote.model_b, vote.model_a, winner, vote.voter, vote.turn)


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(
    judge=st.lists(vote_strategy, max_size=15),
    human=st.lists(vote_strategy, max_size=15),
    flips=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_preference_figures_do_not_depend_on_how_pairs_are_written(
    judge: list[PairVote], human: list[PairVote], flips: list[bool]
):
    rewritten_judge = [_swapped(v) if f else v for v, f in zip(judge, flips, strict=False)]
    rewritten_human = [_swapped(v) if f else v for v, f in zip(human, flips[15:], strict=False)]
    assert preference_agreement(judge, human) == preference_agreement(
        rewritten_judge, rewritten_human
    )
    assert human_human_agreement(human) == human_human_agreement(rewritten_human)
    # Every judge vote meets every human vote on its key.
    figures = preference_agreement(judge, human)
    keys = [v.keyed()[0] for v in human]
    assert figures.with_ties.n == sum(keys.count(v.keyed()[0]) for v in judge)


def test_position_bias_shares():
    pairs = [
        ("a", "b"),  # consistent: a
        ("tie", "tie"),  # consistent tie
        ("a", "a"),  # first position both times
        ("second", "second"),  # second position both times
        ("a", "tie"),  # inconsistent, no positional pattern
        (None, "a"),  # error
    ]
    figures = position_bias(pairs)
    assert (figures.n_pairs, figures.n_errors) == (6, 1)
    assert (figures.consistent.k, figures.consistent.n) == (2, 5)
    assert (figures.inconsistent.k, figures.inconsistent.n) == (3, 5)
    assert figures.biased_first.k == 1 and figures.biased_second.k == 1
    # Decisive positional verdicts: a, b, a, a, b, b, a -> 4 of 7 name the first position.
    assert (figures.first_position_rate.k, figures.first_position_rate.n) == (4, 7)
    assert figures.first_position_p_value.value == pytest.approx(binomtest(4, 7).pvalue)


def test_position_bias_of_a_judge_that_always_picks_the_first_response():
    figures = position_bias([("a", "a")] * 20)
    assert figures.inconsistent.value == 1.0
    assert figures.biased_first.value == 1.0
    assert figures.first_position_rate.value == 1.0
    assert figures.first_position_p_value.value is not None
    assert figures.first_position_p_value.value < 1e-6


def test_position_bias_with_nothing_judged():
    figures = position_bias([(None, None)])
    assert figures.n_errors == 1
    assert figures.consistent.value is None and figures.consistent.reason == NO_ITEMS
    assert figures.first_position_rate.reason == "not defined: no decisive verdicts"
    assert figures.first_position_p_value == Figure(None, NO_ITEMS)
    assert position_bias([]).n_pairs == 0


def test_length_bias():
    figures = length_bias(
        ["a", "b", "b", "tie", None, "a"],
        [100, 100, 10, 5, 5, 7],
        [10, 50, 100, 1, 1, 7],
    )
    # decisive on unequal lengths: a (longer) yes, b (shorter) no, b (longer) yes.
    assert (figures.longer_wins.k, figures.longer_wins.n) == (2, 3)
    assert (figures.n, figures.n_errors, figures.n_ties, figures.n_equal_length) == (6, 1, 1, 1)
    assert figures.p_value.value == pytest.approx(binomtest(2, 3).pvalue)


def test_length_bias_undefined_and_mismatched():
    figures = length_bias(["tie"], [1], [2])
    assert figures.longer_wins.value is None
    assert figures.longer_wins.reason == figures.p_value.reason
    assert figures.p_value.reason == "not defined: no decisive verdicts on pairs of unequal length"
    with pytest.raises(ValueError, match="same length"):
        length_bias(["a"], [1, 2], [1])


@settings(deadline=None)  # shared CI cores: no wall-clock limits
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a", "b", "tie"]), st.integers(0, 5), st.integers(0, 5)),
        max_size=30,
    )
)
def test_length_bias_is_symmetric_in_the_pair_order(rows: list[tuple[str, int, int]]):
    winners = [w for w, _, _ in rows]
    forward = length_bias(winners, [a for _, a, _ in rows], [b for _, _, b in rows])
    backward = length_bias(
        [flip_winner(normalise_winner(w)) for w in winners],
        [b for _, _, b in rows],
        [a for _, a, _ in rows],
    )
    assert forward == backward
