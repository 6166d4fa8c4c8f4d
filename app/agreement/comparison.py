"""Two judge runs compared: the change in every agreement figure on the items both judged within
a scope (the labelled items, or the gold items of a split), and the items whose verdict flipped.

Only the scope's subjects are read (labels joined to verdicts in SQL, `app.labels.run_subjects`);
the figures are the pure `versions.compare_versions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.agreement.figures import OVERALL, overall_expert, overall_judge, pass_level
from app.agreement.stats import FAIL
from app.agreement.subjects import RunSubject
from app.agreement.versions import VersionComparison, compare_versions
from app.auth.models import User
from app.core.errors import InvalidInput
from app.judging.models import JudgeRun
from app.labels import run_subjects
from app.labels import service as label_service
from app.labels import values as label_values
from app.labels.models import GoldItem, Label
from app.labels.run_subjects import RunContext
from app.rollouts.models import Rollout
from app.rubrics.definition import Criterion

WINNER = "_winner"
Scope = Literal["all", "gold", "gold_development", "gold_test"]
SCOPES: dict[str, str] = {
    "all": "every labelled item both runs judged",
    "gold": "gold items (both splits)",
    "gold_test": "gold items of the test split",
    "gold_development": "gold items of the development split",
}


@dataclass
class ComparedRun:
    """One side of a comparison: the run's context and its subjects within the scope."""

    context: RunContext
    subjects: dict[str, RunSubject]

    @property
    def run(self) -> JudgeRun:
        return self.context.run

    @property
    def version_label(self) -> str:
        return self.context.version_label

    @property
    def definition(self) -> Any:
        return self.context.definition


Item = tuple[str, str | None]  # (subject key, annotator key or None for an unlabelled item)


@dataclass
class FlipRow:
    """An item whose verdict changed on one criterion, with what each expert said."""

    rollout_id: int
    external_id: str
    criterion_key: str
    criterion_name: str
    old: str
    new: str
    experts: list[tuple[str, str, str]] = field(default_factory=list)  # name, value, change


@dataclass
class CriterionComparison:
    key: str
    name: str
    comparison: VersionComparison[Item]
    flips: list[FlipRow]


@dataclass
class RunComparison:
    old: ComparedRun
    new: ComparedRun
    scope: str
    n_items: int
    criteria: list[CriterionComparison]
    skipped: list[str]
    hidden: int


def _scope_rollouts(project_id: int, scope: str, old: RunContext, new: RunContext) -> Any:
    """SQL: the subject keys of the scope's labelled items, or the rollout ids of its gold
    items."""
    if scope == "all":
        return sa_select(col(Label.subject_key)).where(
            col(Label.rubric_version_id).in_(sorted({*old.siblings, *new.siblings})),
            col(Label.status) == "submitted",
        )
    query = select(GoldItem.rollout_id).where(GoldItem.project_id == project_id)
    if scope in ("gold_test", "gold_development"):
        query = query.where(GoldItem.split == scope.removeprefix("gold_"))
    return query


def _comparable(old: Criterion, new: Criterion) -> bool:
    return old.type == new.type and [lv.value for lv in old.levels] == [
        lv.value for lv in new.levels
    ]


def _criterion_maps(
    old: ComparedRun, new: ComparedRun, keys: list[str], criterion: Criterion | None, key: str
) -> tuple[dict[Item, Any], dict[Item, Any], dict[Item, Any], dict[str, str]]:
    old_map: dict[Item, Any] = {}
    new_map: dict[Item, Any] = {}
    human: dict[Item, Any] = {}
    names: dict[str, str] = {}

    def judged(data: ComparedRun, subject_key: str) -> Any:
        subject = data.subjects[subject_key]
        if not subject.reading.ok:
            return None
        if key == WINNER:
            return subject.reading.winner
        if key == OVERALL:
            return overall_judge(data.definition, subject.reading)
        verdict = subject.reading.criteria.get(key)
        return label_values.judge_label(criterion, verdict.value) if criterion and verdict else None

    for subject_key in keys:
        # The same expert labels on both sides: the new run's choice, else the old run's.
        labels = {label.annotator_key: label for label in old.subjects[subject_key].labels}
        labels.update({label.annotator_key: label for label in new.subjects[subject_key].labels})
        before, after = judged(old, subject_key), judged(new, subject_key)
        annotators: list[str | None] = list(labels) or [None]
        for annotator in annotators:
            item: Item = (subject_key, annotator)
            old_map[item], new_map[item] = before, after
            if annotator is None:
                continue
            label = labels[annotator]
            names[annotator] = label.annotator_name or annotator
            if key == WINNER:
                human[item] = label.preference
            elif key == OVERALL:
                human[item] = overall_expert(new.definition, label)
            else:
                human[item] = (label.values or {}).get(key)
    return old_map, new_map, human, names


def compare_runs(
    session: Session, old_run: JudgeRun, new_run: JudgeRun, *, scope: str, viewer: User
) -> RunComparison:
    """The change in every figure from ``old_run`` to ``new_run`` on the items both judged
    (within ``scope``), and the items whose verdict flipped."""
    if scope not in SCOPES:
        raise InvalidInput(f"The scope must be one of {', '.join(SCOPES)}.")
    if old_run.id == new_run.id:
        raise InvalidInput("Choose two different runs to compare.")
    old_context = run_subjects.run_context(session, old_run)
    new_context = run_subjects.run_context(session, new_run)
    if old_context.definition.mode != new_context.definition.mode:
        raise InvalidInput("A preference run cannot be compared with a rubric run.")
    within = _scope_rollouts(old_run.project_id, scope, old_context, new_context)
    old, new = (
        ComparedRun(
            context,
            {
                s.subject_key: s
                for s in run_subjects.subjects(
                    session,
                    context,
                    subject_query=within if scope == "all" else None,
                    rollout_query=None if scope == "all" else within,
                    labelled_only=False,
                    texts=False,
                )
            },
        )
        for context in (old_context, new_context)
    )
    blind = label_service.blind_subjects(session, old_run.project_id, viewer)
    keys = [key for key in old.subjects if key in new.subjects]

    plan: list[tuple[str, str, Criterion | None]] = []
    skipped: list[str] = []
    if old.definition.mode == "preference":
        plan.append((WINNER, "Preferred response", None))
    else:
        new_criteria = {c.key: c for c in new.definition.criteria}
        for before in old.definition.criteria:
            after = new_criteria.get(before.key)
            if after is None or not _comparable(before, after):
                skipped.append(before.name)
            else:
                plan.append((before.key, before.name, after))
        for key in new_criteria:
            if key not in {c.key for c in old.definition.criteria}:
                skipped.append(new_criteria[key].name)
        if label_values.integer_scale(old.definition) == label_values.integer_scale(new.definition):
            plan.append((OVERALL, "Overall", None))
    results: list[CriterionComparison] = []
    hidden: set[str] = set()
    for key, name, criterion in plan:
        old_map, new_map, human, names = _criterion_maps(old, new, keys, criterion, key)
        levels = pass_at = None
        if criterion is not None and criterion.type == "scale":
            levels = [level.value for level in criterion.levels]
            pass_at = pass_level(levels[0], levels[-1])
        elif key == OVERALL and (scale := label_values.integer_scale(new.definition)):
            levels, pass_at = scale, pass_level(scale[0], scale[-1])
        comparison = compare_versions(
            old_map, new_map, human, levels=levels, pass_level=pass_at, positive=FAIL
        )
        grouped: dict[str, FlipRow] = {}
        for flip in comparison.flips:
            subject_key, annotator = flip.item
            if subject_key in blind:
                hidden.add(subject_key)
                continue
            subject = old.subjects[subject_key]
            row = grouped.setdefault(
                subject_key,
                FlipRow(
                    rollout_id=subject.rollout_id,
                    external_id=str(subject.rollout_id),  # named below, once for all flips
                    criterion_key=key,
                    criterion_name=name,
                    old=label_values.format_value(criterion, flip.old),
                    new=label_values.format_value(criterion, flip.new),
                ),
            )
            if annotator is not None:
                row.experts.append(
                    (
                        names.get(annotator, annotator),
                        label_values.format_value(criterion, flip.human),
                        flip.change,
                    )
                )
        results.append(CriterionComparison(key, name, comparison, list(grouped.values())))
    _name_rollouts(session, [row for c in results for row in c.flips])
    n_items = len(set(keys))
    return RunComparison(old, new, scope, n_items, results, skipped, len(hidden))


def _name_rollouts(session: Session, rows: list[FlipRow]) -> None:
    """Each flipped row's external id, in one statement for every flip shown."""
    ids = sorted({row.rollout_id for row in rows})
    if not ids:
        return
    names = {
        int(rid or 0): ext
        for rid, ext in session.exec(
            select(Rollout.id, Rollout.external_id).where(col(Rollout.id).in_(ids))
        ).all()
    }
    for row in rows:
        row.external_id = names.get(row.rollout_id, str(row.rollout_id))
