"""Judge-human agreement over training steps: the training-time judge's verdicts (recorded in
each drift sample) against reviewers' audit labels, per step bucket, and early versus late.

Pure: pairs in, figures out (statistics from app/agreement/stats.py).

Definitions
- A pair is one (sample, criterion, reviewer): the judge's recorded value and the reviewer's
  label for that criterion, both read as pass/fail (pass/fail criteria as they are; scale
  criteria pass at the midpoint level or above, the studio's rule everywhere).
- Per bucket: agreement (share of pairs where both say the same, 95% Wilson interval), Cohen's
  kappa, and the judge's true-positive rate (of the pairs the reviewer failed, the share the
  judge failed) and true-negative rate, with Wilson intervals. The reviewers' pass rate and
  "deserved its reward" share (yes / (yes + no)) per bucket describe quality as people see it.
- Early versus late: pairs of the first third of the labelled buckets against the last third
  (at least one bucket each); the difference of agreement and Fisher's exact test (two-sided)
  on the 2x2 table agree/disagree x early/late. Pairs of one sample are not independent (its
  criteria share a response), so the p-value is somewhat optimistic; the sample counts are
  shown next to it.
- For the drift signals (sample level, `signal_buckets`): a sample agrees when most of its
  pairs agree (a tie does not); it passes for people when most "deserved its reward?" answers
  are yes, or, without answers, when most of its pairs are human passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import fisher_exact

from app.agreement.stats import BinaryFigures, Figure, Proportion, binary_agreement, proportion
from app.drift.buckets import BucketPlan
from app.drift.signal_types import AgreementBucket as SignalAgreement

TEST_NAME = "Fisher's exact test, two-sided"


@dataclass(frozen=True)
class AuditPair:
    """One criterion of one sample, as the training-time judge and one reviewer saw it."""

    sample_id: int
    step: int
    criterion: str
    judge_pass: bool
    human_pass: bool


@dataclass(frozen=True)
class DeservedAnswer:
    sample_id: int
    step: int
    deserved: str  # yes | no | unsure


@dataclass(frozen=True)
class BucketAgreement:
    bucket: int
    step_start: int
    step_end: int
    samples: int
    figures: BinaryFigures
    human_pass_rate: Proportion
    deserved: Proportion
    judged_samples: int = 0  # samples with at least one pair
    agreeing_samples: int = 0
    passing_samples: int = 0

    @property
    def n(self) -> int:
        return self.figures.n

    @property
    def agreement(self) -> float | None:
        return self.figures.agreement.value

    @property
    def kappa(self) -> float | None:
        return self.figures.kappa.value


@dataclass(frozen=True)
class EarlyLate:
    early_steps: tuple[int, int]
    late_steps: tuple[int, int]
    early: Proportion
    late: Proportion
    early_samples: int
    late_samples: int
    difference: float | None  # late - early agreement
    p_value: Figure
    test: str = TEST_NAME


@dataclass(frozen=True)
class StepAgreement:
    buckets: list[BucketAgreement]
    early_late: EarlyLate | None
    pairs: int
    samples: int


def _bucket_rows(
    plan: BucketPlan, pairs: Sequence[AuditPair], answers: Sequence[DeservedAnswer]
) -> tuple[dict[int, list[AuditPair]], dict[int, list[DeservedAnswer]]]:
    by_pair: dict[int, list[AuditPair]] = defaultdict(list)
    by_answer: dict[int, list[DeservedAnswer]] = defaultdict(list)
    for pair in pairs:
        by_pair[plan.index_of(pair.step)].append(pair)
    for answer in answers:
        by_answer[plan.index_of(answer.step)].append(answer)
    return by_pair, by_answer


def _deserved(answers: Iterable[DeservedAnswer]) -> Proportion:
    decided = [a for a in answers if a.deserved in ("yes", "no")]
    return proportion(
        sum(1 for a in decided if a.deserved == "yes"),
        len(decided),
        "not defined: no yes/no answers",
    )


def _agreeing(pairs: Sequence[AuditPair]) -> int:
    return sum(1 for p in pairs if p.judge_pass == p.human_pass)


def early_late(
    buckets: Sequence[BucketAgreement], by_pair: dict[int, list[AuditPair]]
) -> EarlyLate | None:
    """First third of the labelled buckets against the last third (None with fewer than two)."""
    labelled = [b for b in buckets if b.n > 0]
    if len(labelled) < 2:
        return None
    third = max(1, len(labelled) // 3)
    early_b, late_b = labelled[:third], labelled[-third:]
    early_pairs = [p for b in early_b for p in by_pair[b.bucket]]
    late_pairs = [p for b in late_b for p in by_pair[b.bucket]]
    early_k, late_k = _agreeing(early_pairs), _agreeing(late_pairs)
    early_p = proportion(early_k, len(early_pairs))
    late_p = proportion(late_k, len(late_pairs))
    table = [
        [early_k, len(early_pairs) - early_k],
        [late_k, len(late_pairs) - late_k],
    ]
    _odds, p_value = fisher_exact(table, alternative="two-sided")
    difference = (
        late_p.value - early_p.value
        if late_p.value is not None and early_p.value is not None
        else None
    )
    return EarlyLate(
        early_steps=(early_b[0].step_start, early_b[-1].step_end),
        late_steps=(late_b[0].step_start, late_b[-1].step_end),
        early=early_p,
        late=late_p,
        early_samples=len({p.sample_id for p in early_pairs}),
        late_samples=len({p.sample_id for p in late_pairs}),
        difference=difference,
        p_value=Figure.of(p_value, "not defined"),
    )


def _sample_counts(
    pairs: Sequence[AuditPair], answers: Sequence[DeservedAnswer]
) -> tuple[int, int, int]:
    """(samples judged, samples where most pairs agree, samples passing for people)."""
    by_sample: dict[int, list[AuditPair]] = defaultdict(list)
    for pair in pairs:
        by_sample[pair.sample_id].append(pair)
    votes: dict[int, list[bool]] = defaultdict(list)
    for answer in answers:
        if answer.deserved in ("yes", "no"):
            votes[answer.sample_id].append(answer.deserved == "yes")
    agreeing = passing = 0
    for sample_id, rows in by_sample.items():
        agreeing += 2 * _agreeing(rows) > len(rows)
        said = votes.get(sample_id)
        if said:
            passing += 2 * sum(said) > len(said)
        else:
            passing += 2 * sum(1 for p in rows if p.human_pass) > len(rows)
    return len(by_sample), agreeing, passing


def agreement_over_steps(
    plan: BucketPlan, pairs: Sequence[AuditPair], answers: Sequence[DeservedAnswer] = ()
) -> StepAgreement:
    """Per-bucket figures (only buckets with pairs or answers) and the early/late comparison."""
    by_pair, by_answer = _bucket_rows(plan, pairs, answers)
    buckets = []
    for index in sorted(set(by_pair) | set(by_answer)):
        rows = by_pair.get(index, [])
        first, last = plan.bounds(index)
        figures = binary_agreement([p.judge_pass for p in rows], [p.human_pass for p in rows])
        samples = {p.sample_id for p in rows} | {a.sample_id for a in by_answer.get(index, [])}
        judged, agreeing, passing = _sample_counts(rows, by_answer.get(index, []))
        buckets.append(
            BucketAgreement(
                bucket=index,
                step_start=first,
                step_end=last,
                samples=len(samples),
                figures=figures,
                human_pass_rate=proportion(sum(1 for p in rows if p.human_pass), len(rows)),
                deserved=_deserved(by_answer.get(index, [])),
                judged_samples=judged,
                agreeing_samples=agreeing,
                passing_samples=passing,
            )
        )
    return StepAgreement(
        buckets=buckets,
        early_late=early_late(buckets, by_pair),
        pairs=len(pairs),
        samples=len({p.sample_id for p in pairs} | {a.sample_id for a in answers}),
    )


def signal_buckets(result: StepAgreement) -> list[SignalAgreement]:
    """The per-bucket sample counts the drift signals read (agreement_drop,
    reward_without_quality), in step order."""
    return [
        SignalAgreement(
            step_start=b.step_start,
            step_end=b.step_end,
            n=b.judged_samples,
            agreements=b.agreeing_samples,
            human_passes=b.passing_samples,
            kappa=b.kappa,
        )
        for b in result.buckets
        if b.judged_samples > 0
    ]
