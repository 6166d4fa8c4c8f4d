"""Agreement figures broken down by a slice of the labelled items, with the unweighted mean.

A slice is a rollout field (``metadata.<key>``, ``group``, ``model``, ``checkpoint``,
``step`` in buckets), the gold split, or the labeller (``annotator``). Labels can also be
filtered to some labellers (one, several, or a project role such as the experts). Only the
labelled subjects are read: labels join verdicts in SQL on the work item's subject key, and the
slice value is computed in SQL (a JSON path for metadata).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, String, cast
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement import pairs
from app.agreement.pairwise import FIGURES as PAIRWISE_FIGURES
from app.agreement.pairwise import pairwise_figures
from app.agreement.stats import Figure, Proportion
from app.agreement.subjects import RunSubject
from app.core import stored
from app.core.errors import InvalidInput
from app.core.memo import VersionedCache
from app.core.stored import FigureKind
from app.judging.models import JudgeRun
from app.labels import run_subjects
from app.labels import service as label_service
from app.labels.models import GoldItem, Label
from app.projects.models import Membership
from app.rollouts.models import Rollout
from app.rubrics.models import RubricVersion

_CHUNK = 500
NO_VALUE = "(none)"
DEFAULT_STEP_BUCKET = 100
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


class SliceKind(StrEnum):
    METADATA = "metadata"
    GROUP = "group"
    MODEL = "model"
    CHECKPOINT = "checkpoint"
    STEP = "step"
    GOLD_SPLIT = "gold_split"
    ANNOTATOR = "annotator"


@dataclass(frozen=True)
class SliceSpec:
    kind: SliceKind
    key: str = ""  # the metadata key
    bucket: int = DEFAULT_STEP_BUCKET

    @property
    def name(self) -> str:
        if self.kind == SliceKind.METADATA:
            return f"metadata.{self.key}"
        if self.kind == SliceKind.STEP:
            return f"step:{self.bucket}"
        return self.kind.value


def parse_slice(text: str) -> SliceSpec:
    """``metadata.<key>``, ``group``, ``model``, ``checkpoint``, ``step`` or ``step:<width>``,
    ``gold_split``, ``annotator``."""
    text = text.strip()
    if text.startswith("metadata."):
        key = text.removeprefix("metadata.")
        if not _METADATA_KEY.match(key):
            raise InvalidInput("A metadata slice names one key of letters, digits, _ or -.")
        return SliceSpec(SliceKind.METADATA, key)
    if text == "step" or text.startswith("step:"):
        width = text.partition(":")[2] or str(DEFAULT_STEP_BUCKET)
        if not width.isdigit() or not 1 <= int(width) <= 10**9:
            raise InvalidInput("A step slice is step or step:<bucket width, a whole number>.")
        return SliceSpec(SliceKind.STEP, bucket=int(width))
    try:
        return SliceSpec(SliceKind(text))
    except ValueError:
        raise InvalidInput(
            "Slice by metadata.<key>, group, model, checkpoint, step[:width], gold_split or "
            "annotator."
        ) from None


def slice_mean(values: Sequence[float | None]) -> float | None:
    """The unweighted mean over the slices where the figure is defined."""
    defined = [v for v in values if v is not None and math.isfinite(v)]
    return sum(defined) / len(defined) if defined else None


def annotator_keys(session: Session, project_id: int, role: str | None) -> list[str] | None:
    """Annotator keys of the members with ``role`` (None: no role filter)."""
    if not role:
        return None
    ids = session.exec(
        select(Membership.user_id).where(
            Membership.project_id == project_id, Membership.role == role
        )
    ).all()
    return [f"user:{i}" for i in ids]


def rollout_slice_values(
    session: Session, project_id: int, rollout_ids: Collection[int] | Select[Any], spec: SliceSpec
) -> dict[int, str]:
    """Each rollout's slice value, computed in SQL; NO_VALUE where it has none."""
    column: Any
    if spec.kind == SliceKind.METADATA:
        column = col(Rollout.metadata_)[spec.key].as_string()
    elif spec.kind == SliceKind.GROUP:
        column = col(Rollout.group_key)
    elif spec.kind == SliceKind.MODEL:
        column = col(Rollout.model)
    elif spec.kind == SliceKind.CHECKPOINT:
        column = col(Rollout.checkpoint)
    elif spec.kind == SliceKind.STEP:
        column = cast((col(Rollout.step) / spec.bucket) * spec.bucket, String)
    else:
        column = col(GoldItem.split)
    values: dict[int, str] = {}
    # A SQL select of rollout ids is one statement whatever its size; a collection of ids is
    # read in chunks.
    if isinstance(rollout_ids, Select):
        batches: list[Any] = [rollout_ids]
    else:
        ids = sorted(rollout_ids)
        batches = [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
    for batch in batches:
        query = sa_select(col(Rollout.id), column).where(col(Rollout.id).in_(batch))
        if spec.kind == SliceKind.GOLD_SPLIT:
            query = query.outerjoin(
                GoldItem,
                (col(GoldItem.rollout_id) == col(Rollout.id))
                & (col(GoldItem.project_id) == project_id),
            )
        for rollout_id, value in session.execute(query):
            text = NO_VALUE if value is None or value == "" else str(value)
            if spec.kind == SliceKind.STEP and value is not None:
                low = int(float(value))
                text = f"{low}–{low + spec.bucket - 1}"
            elif spec.kind == SliceKind.GOLD_SPLIT and value is None:
                text = "not gold"
            values[int(rollout_id)] = text
    return values


# ---- rubric runs: the labelled subjects only ----------------------------------------------------


def labelled_rubric_subjects(
    session: Session, run: JudgeRun, version: RubricVersion, annotators: Collection[str] | None
) -> list[RunSubject]:
    """The run's judged rollouts that carry a submitted label, with those labels (one per
    annotator, as the review chooses them) and the run's reading of its verdict."""
    context = run_subjects.run_context(session, run)
    return run_subjects.labelled_subjects(session, context, annotators=annotators)


# ---- the breakdown ------------------------------------------------------------------------------


@dataclass
class SliceRow:
    value: str
    n: int  # expert labels in the slice
    figures: dict[str, float | None]
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass
class SliceBreakdown:
    run: JudgeRun
    slice: str
    mode: str
    rows: list[SliceRow]
    pooled: SliceRow
    slice_mean: dict[str, float | None]
    annotators: list[str] | None


def _value(item: Figure | Proportion | None) -> float | None:
    return None if item is None else item.value


def _rubric_figures(
    definition: Any, subjects: list[RunSubject]
) -> tuple[dict[str, float | None], int]:
    from app.agreement import service as agreement_service

    figures: dict[str, float | None] = {}
    n = 0
    for criterion in definition.criteria:
        result = agreement_service.criterion_agreement(subjects, criterion, resamples=0)
        binary = result.binary
        figures[f"{criterion.key}.agreement"] = (
            _value(binary.agreement) if result.kind == "boolean" and binary else None
        )
        if result.kind == "scale":
            figures[f"{criterion.key}.agreement"] = _value(result.figures.exact)  # type: ignore[union-attr]
        figures[f"{criterion.key}.kappa"] = _value(
            binary.kappa if result.kind == "boolean" and binary else result.kappa
        )
        figures[f"{criterion.key}.true_positive_rate"] = _value(
            binary.true_positive_rate if binary else None
        )
        figures[f"{criterion.key}.true_negative_rate"] = _value(
            binary.true_negative_rate if binary else None
        )
        n = max(n, result.n)
    return figures, n


# A run's breakdowns by the rollouts' own fields (and by annotator), cached per data version of
# the run, slice and annotators; the run object itself is never cached (each request's own).
_BREAKDOWNS: VersionedCache[SliceBreakdown] = VersionedCache(16)


def run_slices(
    session: Session,
    run: JudgeRun,
    spec: SliceSpec,
    *,
    annotators: Collection[str] | None = None,
) -> SliceBreakdown:
    """The run's figures per slice value, pooled, and the unweighted mean over slices; computed
    once per data version (a gold-split breakdown, which gold edits change, every time)."""
    if spec.kind == SliceKind.GOLD_SPLIT:
        return _run_slices(session, run, spec, annotators=annotators)
    context = run_subjects.run_context(session, run)
    key = (
        "slices",
        *run_subjects.data_version(session, context),
        spec,
        None if annotators is None else tuple(sorted(annotators)),
    )
    found = stored.remembered(
        session,
        _BREAKDOWNS,
        FigureKind.SLICES,
        key,
        lambda: _run_slices(session, run, spec, annotators=annotators),
        judge_run_id=run.id,
    )
    return dataclasses.replace(found, run=run)


def _run_slices(
    session: Session,
    run: JudgeRun,
    spec: SliceSpec,
    *,
    annotators: Collection[str] | None = None,
) -> SliceBreakdown:
    version = session.get(RubricVersion, run.rubric_version_id)
    if version is None:  # pragma: no cover - foreign keys keep it
        raise InvalidInput("The run's rubric version no longer exists.")
    definition = label_service.definition_of(version)
    rows: list[SliceRow] = []
    if definition.mode == "preference":
        items = pairs.pair_items(session, run, version, annotators)
        pooled_figures = pairwise_figures(items, resamples=0)
        pooled = SliceRow(
            "all",
            pooled_figures.n_labels,
            {k: e.value for k, e in pooled_figures.figures.items()},
        )
        if spec.kind == SliceKind.ANNOTATOR:
            labelled = pairs.pair_labels(session, run, version, annotators)
            names_by_key = {
                label.annotator_key: label.annotator_name
                for labels in labelled.values()
                for label in labels
            }
            groups = {
                names_by_key[key]: pairs.pair_items(session, run, version, [key])
                for key in sorted(names_by_key)
            }
        else:
            first = pairs.pair_rollouts(session, [str(i.key) for i in items])
            values = rollout_slice_values(session, run.project_id, set(first.values()), spec)
            groups = defaultdict(list)
            for item in items:
                groups[values.get(first.get(str(item.key), 0), NO_VALUE)].append(item)
        for value, members in sorted(groups.items()):
            figures = pairwise_figures(members, resamples=0)
            rows.append(
                SliceRow(value, figures.n_labels, {k: e.value for k, e in figures.figures.items()})
            )
        names = list(PAIRWISE_FIGURES)
    else:
        subjects = labelled_rubric_subjects(session, run, version, annotators)
        pooled_values, pooled_n = _rubric_figures(definition, subjects)
        pooled = SliceRow("all", sum(len(s.labels) for s in subjects), pooled_values)
        grouped: dict[str, list[RunSubject]] = defaultdict(list)
        if spec.kind == SliceKind.ANNOTATOR:
            for subject in subjects:
                for label in subject.labels:
                    grouped[label.annotator_name or label.annotator_key].append(
                        RunSubject(
                            subject.subject_key,
                            subject.rollout_id,
                            None,
                            None,
                            subject.reading,
                            [label],
                        )
                    )
        else:
            # The labelled rollouts of the run's rubric, in one statement (a superset of the
            # subjects: what a subject is not in is never looked up).
            labelled_rollouts = sa_select(col(Label.rollout_id)).where(
                col(Label.project_id) == run.project_id,
                col(Label.rubric_version_id).in_(
                    label_service.sibling_version_ids(session, version)
                ),
                col(Label.status) == "submitted",
                col(Label.pair_id).is_(None),
            )
            values = rollout_slice_values(session, run.project_id, labelled_rollouts, spec)
            for subject in subjects:
                grouped[values.get(subject.rollout_id, NO_VALUE)].append(subject)
        for value, in_slice in sorted(grouped.items()):
            row_values, _ = _rubric_figures(definition, in_slice)
            rows.append(SliceRow(value, sum(len(s.labels) for s in in_slice), row_values))
        names = list(pooled_values)
    return SliceBreakdown(
        run=run,
        slice=spec.name,
        mode=definition.mode,
        rows=rows,
        pooled=pooled,
        slice_mean={name: slice_mean([row.figures.get(name) for row in rows]) for name in names},
        annotators=list(annotators) if annotators is not None else None,
    )
