"""Rubrics: drafts saved with an optimistic lock, frozen published versions, sign-off, few-shot
examples, live preview and rubric-as-code export/import. Public functions commit once.

Audit policy: create, import, publish, approve, example add/remove and archive are recorded
one by one. Autosaved drafts would flood the log, so `rubric.draft_save` is recorded at most
once per user and rubric per DRAFT_AUDIT_WINDOW (the draft itself keeps who saved it last).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from pydantic import BaseModel
from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.audit.models import AuditEvent
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.core.json_limits import check_json
from app.labels.models import GoldItem
from app.projects import service as project_service
from app.projects.models import Project
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout, RolloutPair
from app.rubrics import forms
from app.rubrics.builtin import BUILTIN_DESCRIPTIONS, BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import (
    Criterion,
    RubricDefinition,
    RubricMode,
    canonical_json,
    content_hash,
)
from app.rubrics.diff import DiffRow, RubricDiff, diff_definitions, side_by_side
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import (
    SAMPLE_CONTEXT,
    PromptContext,
    TemplateError,
    default_templates,
    estimate_tokens,
    materialize_templates,
    render_prompt,
)
from app.rubrics.serialization import (
    Approval,
    Format,
    RubricDocument,
    RubricFormatError,
    RubricVersionDocument,
    dump_rubric,
    load_rubric,
)

DRAFT_AUDIT_WINDOW = timedelta(minutes=10)
MAX_DRAFT_CHARS = 2_000_000
MAX_IMPORT_CHARS = 20_000_000
EXAMPLE_EXCERPT_CHARS = 2_000
DEMO_RUBRIC_NAME = "Contract review comments"
BLANK_CHOICES = {
    "blank_rubric": "Blank rubric (score one response against criteria)",
    "blank_preference": "Blank preference (compare two responses)",
}


# --------------------------------------------------------------------------- reading


@dataclass
class RubricRow:
    rubric: Rubric
    latest_version: int | None
    approvals: int
    latest_version_id: int | None = None


def template_choices() -> dict[str, str]:
    """What a new rubric can start from: a blank design or a built-in template."""
    choices = {
        key: f"{BUILTIN_TEMPLATES[key].title} — {text}"
        for key, text in BUILTIN_DESCRIPTIONS.items()
    }
    return choices | BLANK_CHOICES


def list_rubrics(
    session: Session, project_id: int, *, include_archived: bool = False
) -> list[RubricRow]:
    query = select(Rubric).where(Rubric.project_id == project_id)
    if not include_archived:
        query = query.where(col(Rubric.archived).is_(False))
    rubrics = list(session.exec(query.order_by(col(Rubric.name))))
    ids = [r.id for r in rubrics]
    latest: dict[int, int] = {}
    latest_ids: dict[int, int] = {}
    approvals: dict[int, int] = {}
    if ids:
        newest = (
            select(RubricVersion.rubric_id, func.max(RubricVersion.number).label("number"))
            .where(col(RubricVersion.rubric_id).in_(ids))
            .group_by(col(RubricVersion.rubric_id))
            .subquery()
        )
        for rubric_id, number, version_id in session.exec(
            select(RubricVersion.rubric_id, RubricVersion.number, RubricVersion.id).join(
                newest,
                (col(RubricVersion.rubric_id) == newest.c.rubric_id)
                & (col(RubricVersion.number) == newest.c.number),
            )
        ):
            latest[rubric_id] = number
            latest_ids[rubric_id] = int(version_id or 0)
        for rubric_id, count in session.exec(
            select(RubricVersion.rubric_id, func.count(col(RubricApproval.id)))
            .join(RubricApproval, col(RubricApproval.rubric_version_id) == col(RubricVersion.id))
            .where(col(RubricVersion.rubric_id).in_(ids))
            .group_by(col(RubricVersion.rubric_id))
        ):
            approvals[rubric_id] = count
    return [
        RubricRow(r, latest.get(r.id or 0), approvals.get(r.id or 0, 0), latest_ids.get(r.id or 0))
        for r in rubrics
    ]


def get_rubric(session: Session, project_id: int, rubric_id: int) -> Rubric:
    rubric = session.get(Rubric, rubric_id)
    if rubric is None or rubric.project_id != project_id:
        raise NotFound("No such rubric in this project.")
    return rubric


def list_versions(session: Session, rubric_id: int) -> list[RubricVersion]:
    """Newest first."""
    query = select(RubricVersion).where(RubricVersion.rubric_id == rubric_id)
    return list(session.exec(query.order_by(col(RubricVersion.number).desc())))


def latest_version(session: Session, rubric_id: int) -> RubricVersion | None:
    query = select(RubricVersion).where(RubricVersion.rubric_id == rubric_id)
    return session.exec(query.order_by(col(RubricVersion.number).desc()).limit(1)).first()


def get_project_version(session: Session, project_id: int, version_id: int) -> RubricVersion:
    """A rubric version of the project by id (the one reader other domains use)."""
    version = session.get(RubricVersion, version_id)
    if version is None or version.project_id != project_id:
        raise NotFound("No such published rubric version in this project.")
    return version


@dataclass(frozen=True)
class VersionChoice:
    """A published version with its rubric, for choosing what to label, judge or export."""

    version: RubricVersion
    rubric: Rubric

    @property
    def id(self) -> int:
        return self.version.id or 0

    @property
    def rubric_id(self) -> int:
        return self.rubric.id or 0

    @property
    def rubric_name(self) -> str:
        return self.rubric.name

    @property
    def number(self) -> int:
        return self.version.number

    @property
    def mode(self) -> str:
        return self.rubric.mode

    @property
    def label(self) -> str:
        return f"{self.rubric.name} v{self.version.number}"


def version_choices(
    session: Session, project_id: int, *, mode: str | None = None
) -> list[VersionChoice]:
    """Every published version of the project (of one mode, if given), newest first per rubric."""
    query = (
        select(RubricVersion, Rubric)
        .join(Rubric, col(Rubric.id) == col(RubricVersion.rubric_id))
        .where(RubricVersion.project_id == project_id)
    )
    if mode is not None:
        query = query.where(Rubric.mode == mode)
    query = query.order_by(col(Rubric.name), col(RubricVersion.number).desc())
    return [VersionChoice(v, r) for v, r in session.exec(query)]


def get_version(session: Session, rubric: Rubric, number: int) -> RubricVersion:
    version = session.exec(
        select(RubricVersion).where(
            RubricVersion.rubric_id == rubric.id, RubricVersion.number == number
        )
    ).first()
    if version is None:
        raise NotFound(f"Rubric “{rubric.name}” has no version {number}.")
    return version


def approvals_for(session: Session, version_ids: list[int]) -> dict[int, list[RubricApproval]]:
    """Sign-offs per version id, in the order they were recorded."""
    result: dict[int, list[RubricApproval]] = {vid: [] for vid in version_ids}
    if not version_ids:
        return result
    query = (
        select(RubricApproval)
        .where(col(RubricApproval.rubric_version_id).in_(version_ids))
        # Insertion order (not the timestamp) so an imported file's order is kept exactly.
        .order_by(col(RubricApproval.id))
    )
    for approval in session.exec(query):
        result.setdefault(approval.rubric_version_id, []).append(approval)
    return result


def version_definition(version: RubricVersion) -> RubricDefinition:
    return RubricDefinition.model_validate(version.definition)


def blank_draft(title: str, mode: str) -> dict[str, Any]:
    """A starting draft: one pass/fail criterion (rubric) or an instruction to fill (preference)."""
    draft: dict[str, Any] = {"mode": mode, "title": title}
    if mode == RubricMode.preference:
        draft["preference_instruction"] = ""
        draft["criteria"] = []
    else:
        draft["criteria"] = [
            {
                "key": "Criterion_1",
                "name": "Criterion 1",
                "description": "",
                "type": "boolean",
                "levels": [],
                "weight": 1.0,
                "hard_fail": False,
            }
        ]
    draft["system_template"], draft["user_template"] = _generated_templates(draft)
    return draft


def current_draft(session: Session, rubric: Rubric) -> dict[str, Any]:
    """The draft; for an imported rubric without one, its newest version as the starting point."""
    if rubric.draft is not None:
        return dict(rubric.draft)
    version = latest_version(session, rubric.id or 0)
    if version is not None:
        return dict(version.definition)
    return blank_draft(rubric.name, rubric.mode)


# --------------------------------------------------------------------------- creating


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("Give the rubric a name.")
    if len(cleaned) > 200:
        raise InvalidInput("The rubric name must be at most 200 characters.")
    return cleaned


def _ensure_name_free(session: Session, project_id: int, name: str) -> None:
    clash = session.exec(
        select(Rubric.id).where(Rubric.project_id == project_id, Rubric.name == name)
    ).first()
    if clash is not None:
        raise Conflict(f"This project already has a rubric named “{name}”. Choose another name.")


def create_rubric(
    session: Session,
    project: Project,
    *,
    actor: User,
    name: str,
    description: str = "",
    template: str = "blank_rubric",
) -> Rubric:
    """A new rubric whose draft starts from a built-in template or a blank design."""
    name = _clean_name(name)
    if template in BUILTIN_TEMPLATES:
        definition = get_builtin(template)
        draft = definition.model_dump(mode="json")
        mode = definition.mode
    elif template in BLANK_CHOICES:
        mode = "preference" if template == "blank_preference" else "rubric"
        draft = blank_draft(name, mode)
    else:
        raise InvalidInput(
            f"Unknown template “{template}”; choose one of: {', '.join(template_choices())}."
        )
    _ensure_name_free(session, project.id or 0, name)
    rubric = Rubric(
        project_id=project.id or 0,
        name=name,
        description=description.strip(),
        mode=mode,
        draft=draft,
        draft_updated_by_id=actor.id,
        created_by_id=actor.id,
    )
    session.add(rubric)
    _flush_unique(session, name)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.create",
        object_type="rubric",
        object_id=rubric.id,
        project_id=project.id,
        summary=f"created rubric {name} from {template}",
        details={"template": template, "mode": mode},
    )
    session.commit()
    return rubric


def _flush_unique(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"This project already has a rubric named “{name}”. Choose another name."
        ) from None


# --------------------------------------------------------------------------- drafts


class DraftConflict(Conflict):
    """The draft changed since the caller read it; nothing was overwritten."""

    def __init__(self, rubric: Rubric, current: dict[str, Any], updated_by: str) -> None:
        when = _as_utc(rubric.draft_updated_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(
            f"Not saved: {updated_by} saved a newer draft (revision {rubric.draft_revision}) "
            f"at {when}. Compare the two versions below; nothing was overwritten."
        )
        self.current_draft = current
        self.current_revision = rubric.draft_revision
        self.updated_by = updated_by
        self.updated_at = rubric.draft_updated_at


@dataclass
class DraftSaved:
    revision: int
    changed: bool
    check: forms.DraftCheck
    saved_at: datetime


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def user_label(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id is not None else None
    return user.label if user is not None else "someone"


def _normalize_draft(rubric: Rubric, draft: Any) -> dict[str, Any]:
    if not isinstance(draft, dict):
        raise InvalidInput("The draft must be a JSON object (a rubric definition).")
    mode = draft.get("mode", rubric.mode)
    if mode != rubric.mode:
        raise InvalidInput(
            f"This is a {rubric.mode} rubric; its mode cannot change to “{mode}”. "
            "Create a new rubric for the other judge architecture."
        )
    check_json(draft, "The draft")
    if len(canonical_json(draft)) > MAX_DRAFT_CHARS:
        raise InvalidInput(f"The draft is larger than {MAX_DRAFT_CHARS:,} characters.")
    normalised: dict[str, Any] = {"mode": rubric.mode} | draft
    if isinstance(draft.get("examples"), list):
        normalised["examples"] = [
            forms.normalise_example(e) if isinstance(e, dict) else e for e in draft["examples"]
        ]
    return normalised


def _write_draft(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    expected_revision: int,
    draft: dict[str, Any],
) -> bool:
    """Store `draft` if the caller read the newest revision; flushes only. Returns whether the
    stored draft changed. Raises DraftConflict (after a rollback) when the revision is stale."""
    session.refresh(rubric)
    stored = current_draft(session, rubric)
    if canonical_json(stored) == canonical_json(draft) and rubric.draft is not None:
        # Same text (e.g. a late autosave of what was just published): nothing to overwrite.
        return False
    if rubric.draft_revision != expected_revision:
        raise DraftConflict(rubric, stored, user_label(session, rubric.draft_updated_by_id))
    # A conditional UPDATE is the lock: of two saves of one revision exactly one matches.
    result = session.execute(
        update(Rubric)
        .where(col(Rubric.id) == rubric.id, col(Rubric.draft_revision) == expected_revision)
        .values(
            draft=draft,
            draft_revision=expected_revision + 1,
            draft_updated_by_id=actor.id,
            draft_updated_at=utcnow(),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(rubric)
        raise DraftConflict(
            rubric, current_draft(session, rubric), user_label(session, rubric.draft_updated_by_id)
        )
    session.refresh(rubric)
    return True


def _audit_draft_save(session: Session, rubric: Rubric, actor: User, detail: str) -> None:
    since = utcnow() - DRAFT_AUDIT_WINDOW
    recent = session.exec(
        select(AuditEvent.id)
        .where(
            AuditEvent.action == "rubric.draft_save",
            AuditEvent.object_id == str(rubric.id),
            AuditEvent.actor_id == actor.id,
            col(AuditEvent.created_at) >= since,
        )
        .limit(1)
    ).first()
    if recent is not None:
        return
    audit_service.record(
        session,
        actor=actor,
        action="rubric.draft_save",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"edited the draft of {rubric.name} (revision {rubric.draft_revision}); "
        f"further saves by the same person within {int(DRAFT_AUDIT_WINDOW.total_seconds() // 60)}"
        " minutes are not logged one by one",
        details={"revision": rubric.draft_revision, "change": detail},
    )


def save_draft(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    expected_revision: int,
    draft: Any,
    keep_examples: bool = False,
) -> DraftSaved:
    """Autosave: store the draft as typed (valid or not) unless someone saved in between.

    `keep_examples` keeps the stored few-shot examples (the editor form does not carry them).
    Raises DraftConflict (409) for a stale revision with different content.
    """
    draft = _normalize_draft(rubric, draft)
    if keep_examples:
        draft["examples"] = current_draft(session, rubric).get("examples", [])
    changed = _write_draft(
        session, rubric, actor=actor, expected_revision=expected_revision, draft=draft
    )
    if changed:
        _audit_draft_save(session, rubric, actor, "edit")
    session.commit()
    return DraftSaved(
        revision=rubric.draft_revision,
        changed=changed,
        check=forms.check_draft(draft),
        saved_at=_as_utc(rubric.draft_updated_at),
    )


def _generated_templates(draft: dict[str, Any]) -> tuple[str, str]:
    # The generated templates depend only on the mode and on per-item aggregation, so they
    # can be produced even while other parts of the draft are still invalid.
    preference = draft.get("mode") == "preference"
    per_item = not preference and draft.get("aggregation") == "per_item_mean"
    shape = RubricDefinition.model_construct(
        mode="preference" if preference else "rubric",
        aggregation="per_item_mean" if per_item else "weighted_mean",
        title="",
    )
    return default_templates(shape)


def regenerate_templates(
    session: Session, rubric: Rubric, *, actor: User, expected_revision: int, draft: Any
) -> DraftSaved:
    """Replace both template texts with the ones generated from the structure, and save."""
    draft = _normalize_draft(rubric, draft)
    draft["system_template"], draft["user_template"] = _generated_templates(draft)
    draft["examples"] = current_draft(session, rubric).get("examples", [])
    changed = _write_draft(
        session, rubric, actor=actor, expected_revision=expected_revision, draft=draft
    )
    if changed:
        _audit_draft_save(session, rubric, actor, "regenerate_templates")
    session.commit()
    return DraftSaved(rubric.draft_revision, changed, forms.check_draft(draft), utcnow())


# --------------------------------------------------------------------------- publishing


def _problem_details(check: forms.DraftCheck) -> list[dict[str, str]]:
    details = [{"field": "definition", "message": p} for p in check.problems]
    for error in check.template_errors:
        where = f"{error.part}_template" + (f" line {error.line}" if error.line else "")
        details.append({"field": where, "message": error.message})
    return details


def publish_version(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    change_note: str,
    expected_revision: int | None = None,
    draft: Any = None,
    keep_examples: bool = False,
) -> RubricVersion:
    """Freeze the draft as version N+1 (templates materialized, output schema, hash).

    With `draft`, that text is saved first (same revision check) and published in the same
    transaction, so what the editor shows is what gets published.
    """
    note = change_note.strip()
    if not note:
        raise InvalidInput("A change note is required: say what changed in this version and why.")
    if draft is not None:
        if expected_revision is None:
            raise InvalidInput("draft_revision is required to save and publish a draft.")
        normalized = _normalize_draft(rubric, draft)
        if keep_examples:
            normalized["examples"] = current_draft(session, rubric).get("examples", [])
        if _write_draft(
            session, rubric, actor=actor, expected_revision=expected_revision, draft=normalized
        ):
            _audit_draft_save(session, rubric, actor, "edit before publishing")
    else:
        session.refresh(rubric)
        if expected_revision is not None and rubric.draft_revision != expected_revision:
            raise DraftConflict(
                rubric,
                current_draft(session, rubric),
                user_label(session, rubric.draft_updated_by_id),
            )
    check = forms.check_draft(current_draft(session, rubric))
    if not check.ok or check.definition is None:
        session.commit()  # keep the saved draft; only the publication is refused
        raise InvalidInput(
            "The draft cannot be published yet; fix these problems first.",
            details=_problem_details(check),
        )
    definition = materialize_templates(check.definition)
    digest = content_hash(definition)
    previous = latest_version(session, rubric.id or 0)
    if previous is not None and previous.content_hash == digest:
        session.commit()
        raise InvalidInput(
            f"Nothing changed since version {previous.number}; edit the draft before publishing."
        )
    number = (previous.number if previous else 0) + 1
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=rubric.project_id,
        number=number,
        definition=definition.model_dump(mode="json"),
        output_schema=build_output_schema(definition),
        content_hash=digest,
        change_note=note,
        created_by_id=actor.id,
        created_by_label=actor.email,
    )
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"Someone else published version {number} at the same moment. Reload and try again."
        ) from None
    rubric.draft_based_on_version = number
    session.add(rubric)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.publish",
        object_type="rubric_version",
        object_id=version.id,
        project_id=rubric.project_id,
        summary=f"published {rubric.name} v{number}: {note[:200]}",
        details={"rubric_id": rubric.id, "number": number, "content_hash": digest},
    )
    session.commit()
    return version


def can_sign_off(session: Session, version: RubricVersion, actor: User) -> bool:
    """False when `actor` published `version` and the project requires a second person."""
    if version.created_by_id is None or version.created_by_id != actor.id:
        return True
    project = session.get(Project, version.project_id)
    return project is not None and project_service.single_approver_allowed(project)


def approve_version(
    session: Session, version: RubricVersion, *, actor: User, comment: str = ""
) -> RubricApproval:
    """Record an expert's sign-off of a published version (once per person). The publisher
    cannot sign off their own version unless the project allows a single approver."""
    if not can_sign_off(session, version, actor):
        raise PermissionDenied(
            f"You published version {version.number}, so another expert must sign it off. "
            "(A project admin can allow a single approver in the project settings; exports "
            "then say so in their manifest.)"
        )
    existing = session.exec(
        select(RubricApproval).where(
            RubricApproval.rubric_version_id == version.id, RubricApproval.user_id == actor.id
        )
    ).first()
    if existing is not None:
        raise Conflict(f"You already signed off version {version.number}.")
    approval = RubricApproval(
        rubric_version_id=version.id or 0,
        user_id=actor.id,
        user_label=actor.email,
        comment=comment.strip(),
    )
    session.add(approval)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"You already signed off version {version.number}.") from None
    audit_service.record(
        session,
        actor=actor,
        action="rubric.approve",
        object_type="rubric_version",
        object_id=version.id,
        project_id=version.project_id,
        summary=f"signed off v{version.number} of rubric {version.rubric_id}",
        details={"rubric_id": version.rubric_id, "number": version.number},
    )
    session.commit()
    return approval


def archive_rubric(session: Session, rubric: Rubric, *, actor: User, archived: bool) -> Rubric:
    """Hide (or restore) a rubric in the list; its versions stay untouched."""
    rubric.archived = archived
    session.add(rubric)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.archive" if archived else "rubric.restore",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"{'archived' if archived else 'restored'} rubric {rubric.name}",
    )
    session.commit()
    return rubric


# --------------------------------------------------------------------------- comparing


@dataclass
class Comparison:
    """Two definitions side by side: structured changes, template source and rendered prompt."""

    diff: RubricDiff
    rendered_system_rows: list[DiffRow]
    rendered_user_rows: list[DiffRow]
    render_error: str | None = None
    schema_changed: bool = False

    @property
    def rendered_changed(self) -> bool:
        return any(r.kind != "equal" for r in self.rendered_system_rows + self.rendered_user_rows)


@dataclass(frozen=True)
class Gap:
    """A run of unchanged lines left out of a side-by-side view."""

    count: int
    kind: str = "gap"


def with_context(rows: list[DiffRow], context: int = 3) -> list[DiffRow | Gap]:
    """Changed rows with `context` unchanged rows around them; longer unchanged runs become
    a Gap, so a change in a long prompt is visible without scrolling."""
    keep = [False] * len(rows)
    for index, row in enumerate(rows):
        if row.kind != "equal":
            for near in range(max(0, index - context), min(len(rows), index + context + 1)):
                keep[near] = True
    result: list[DiffRow | Gap] = []
    skipped = 0
    for row, kept in zip(rows, keep, strict=True):
        if kept:
            if skipped:
                result.append(Gap(skipped))
                skipped = 0
            result.append(row)
        else:
            skipped += 1
    if skipped:
        result.append(Gap(skipped))
    return result


def compare_definitions(before: RubricDefinition, after: RubricDefinition) -> Comparison:
    diff = diff_definitions(before, after)
    # Criteria are rendered by loops, so a criterion edit shows as a changed prompt line only
    # in the rendered text: compare that too, on the built-in sample rollout.
    try:
        a, b = render_prompt(before, SAMPLE_CONTEXT), render_prompt(after, SAMPLE_CONTEXT)
    except TemplateError as exc:
        return Comparison(diff, [], [], render_error=str(exc))
    return Comparison(
        diff,
        side_by_side(a.system, b.system),
        side_by_side(a.user, b.user),
        schema_changed=build_output_schema(before) != build_output_schema(after),
    )


# --------------------------------------------------------------------------- rollouts


def _search(query: Any, q: str | None) -> Any:
    q = (q or "").strip()
    if not q:
        return query
    conditions = [col(Rollout.external_id).contains(q), col(Rollout.model).contains(q)]
    if q.isdigit():
        conditions.append(col(Rollout.id) == int(q))
    return query.where(or_(*conditions))


def find_rollouts(
    session: Session, project_id: int, q: str | None = None, *, limit: int = 50
) -> list[Rollout]:
    """Any rollout of the project (for the preview), by id, external id or model."""
    query = _search(select(Rollout).where(Rollout.project_id == project_id), q)
    return list(session.exec(query.order_by(col(Rollout.id)).limit(limit)))


def example_candidates(
    session: Session, project_id: int, q: str | None = None, *, limit: int = 50
) -> list[Rollout]:
    """Rollouts that may become few-shot examples: never a gold item of the test split, so a
    judge is not shown the answers it will be graded on."""
    test_split = select(GoldItem.rollout_id).where(
        GoldItem.project_id == project_id, GoldItem.split == "test"
    )
    query = select(Rollout).where(
        Rollout.project_id == project_id, col(Rollout.id).not_in(test_split)
    )
    return list(session.exec(_search(query, q).order_by(col(Rollout.id)).limit(limit)))


def pair_partner(session: Session, rollout: Rollout) -> Rollout | None:
    """The other response of a preference pair the rollout belongs to, if any."""
    pair = session.exec(
        select(RolloutPair).where(
            or_(
                col(RolloutPair.rollout_a_id) == rollout.id,
                col(RolloutPair.rollout_b_id) == rollout.id,
            )
        )
    ).first()
    if pair is None:
        return None
    other = pair.rollout_b_id if pair.rollout_a_id == rollout.id else pair.rollout_a_id
    return session.get(Rollout, other)


def prompt_context(rollout: Rollout, rollout_b: Rollout | None = None) -> PromptContext:
    """What a judge prompt can show about a rollout (and its pair partner in preference mode)."""
    return PromptContext(
        input_messages=list(rollout.input_messages or []),
        target_document=rollout.target_document,
        references=[r for r in rollout.reference_documents or [] if isinstance(r, dict)],
        response=rollout.response,
        response_a=rollout.response,
        response_b=rollout_b.response if rollout_b is not None else None,
        reference_answer=rollout.reference_answer,
        metadata=dict(rollout.metadata_ or {}),
    )


@dataclass
class Preview:
    """The exact judge messages for one rollout, or why they cannot be shown."""

    messages: list[dict[str, str]] = field(default_factory=list)
    system_tokens: int = 0
    user_tokens: int = 0
    problems: list[str] = field(default_factory=list)
    template_errors: list[TemplateError] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.system_tokens + self.user_tokens


def render_preview(draft: dict[str, Any], ctx: PromptContext) -> Preview:
    definition, problems = forms.parse_definition(draft)
    if definition is None:
        return Preview(problems=problems)
    try:
        rendered = render_prompt(definition, ctx)
    except TemplateError as exc:
        return Preview(template_errors=[exc])
    return Preview(
        messages=rendered.messages(),
        system_tokens=estimate_tokens(rendered.system),
        user_tokens=estimate_tokens(rendered.user),
    )


# --------------------------------------------------------------------------- few-shot examples


def _check_candidate(session: Session, project_id: int, rollout_id: int) -> Rollout:
    rollout = rollout_service.get_rollout(session, project_id, rollout_id)
    test_item = session.exec(
        select(GoldItem.id).where(
            GoldItem.project_id == project_id,
            GoldItem.rollout_id == rollout_id,
            GoldItem.split == "test",
        )
    ).first()
    if test_item is not None:
        raise InvalidInput(
            f"Rollout {rollout_id} is in the gold test split: it cannot be a worked example, "
            "or the judge would be graded on answers it was shown."
        )
    return rollout


def _excerpt(rollout: Rollout) -> str:
    ctx = prompt_context(rollout)
    text = ctx.prompt
    return text if len(text) <= EXAMPLE_EXCERPT_CHARS else text[: EXAMPLE_EXCERPT_CHARS - 1] + "…"


def add_example(
    session: Session,
    rubric: Rubric,
    *,
    actor: User,
    expected_revision: int,
    rollout_id: int,
    label: dict[str, Any],
    critique: str = "",
    rollout_b_id: int | None = None,
    input_excerpt: str = "",
) -> DraftSaved:
    """Attach a rollout (or a pair, in preference mode) to the draft as a worked example."""
    rollout = _check_candidate(session, rubric.project_id, rollout_id)
    example: dict[str, Any] = {
        "rollout_id": rollout.id,
        "input_excerpt": input_excerpt.strip() or _excerpt(rollout),
        "response": rollout.response,
        "response_b": "",
        "label": {k: v for k, v in label.items() if v is not None and v != ""},
        "critique": critique.strip(),
    }
    if rubric.mode == RubricMode.preference:
        partner = (
            _check_candidate(session, rubric.project_id, rollout_b_id)
            if rollout_b_id is not None
            else pair_partner(session, rollout)
        )
        if partner is None:
            raise InvalidInput(
                "A preference example needs two responses: give the id of response B "
                f"(rollout {rollout_id} is not part of a pair)."
            )
        example["response_b"] = partner.response
    draft = current_draft(session, rubric)
    draft["examples"] = [*draft.get("examples", []), example]
    _write_draft(session, rubric, actor=actor, expected_revision=expected_revision, draft=draft)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.example_add",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"attached rollout {rollout_id} as a worked example to {rubric.name}",
        details={"rollout_id": rollout_id, "label": example["label"]},
    )
    session.commit()
    return DraftSaved(rubric.draft_revision, True, forms.check_draft(draft), utcnow())


def remove_example(
    session: Session, rubric: Rubric, *, actor: User, expected_revision: int, index: int
) -> DraftSaved:
    draft = current_draft(session, rubric)
    examples = list(draft.get("examples", []))
    if not 0 <= index < len(examples):
        raise NotFound(f"The draft has no example #{index + 1}.")
    removed = examples.pop(index)
    draft["examples"] = examples
    _write_draft(session, rubric, actor=actor, expected_revision=expected_revision, draft=draft)
    audit_service.record(
        session,
        actor=actor,
        action="rubric.example_remove",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"removed worked example #{index + 1} from {rubric.name}",
        details={"rollout_id": removed.get("rollout_id") if isinstance(removed, dict) else None},
    )
    session.commit()
    return DraftSaved(rubric.draft_revision, True, forms.check_draft(draft), utcnow())


# --------------------------------------------------------------------------- rubric as code


def export_document(
    session: Session, rubric: Rubric, *, version: int | None = None
) -> RubricDocument:
    """All versions and the draft (when it is valid), or only one version."""
    versions = list(reversed(list_versions(session, rubric.id or 0)))
    if version is not None:
        versions = [v for v in versions if v.number == version]
        if not versions:
            raise NotFound(f"Rubric “{rubric.name}” has no version {version}.")
    approvals = approvals_for(session, [v.id or 0 for v in versions])
    draft = None
    if version is None and rubric.draft is not None:
        draft, _ = forms.parse_definition(rubric.draft)
    return RubricDocument(
        name=rubric.name,
        description=rubric.description,
        mode=rubric.mode,
        draft=draft,
        versions=[
            RubricVersionDocument(
                number=v.number,
                definition=version_definition(v),
                change_note=v.change_note,
                created_by=v.created_by_label or user_label(session, v.created_by_id),
                created_at=_as_utc(v.created_at),
                content_hash=v.content_hash,
                approvals=[
                    Approval(by=a.user_label, at=_as_utc(a.approved_at), comment=a.comment)
                    for a in approvals.get(v.id or 0, [])
                ],
            )
            for v in versions
        ],
    )


def export_text(
    session: Session, rubric: Rubric, *, fmt: str = "yaml", version: int | None = None
) -> tuple[str, str]:
    """(file name, text) of the rubric document."""
    if fmt not in ("yaml", "json"):
        raise InvalidInput("Export format must be yaml or json.")
    doc = export_document(session, rubric, version=version)
    # ASCII only: the name goes into a Content-Disposition header.
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", rubric.name).strip("-")
    suffix = f"-v{version}" if version is not None else ""
    return f"{stem or 'rubric'}{suffix}.rubric.{fmt}", dump_rubric(doc, fmt)  # type: ignore[arg-type]


def guess_format(filename: str, text: str) -> Format:
    if filename.lower().endswith(".json") or text.lstrip().startswith("{"):
        return "json"
    return "yaml"


def _user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def import_rubric(
    session: Session,
    project: Project,
    *,
    actor: User,
    text: str,
    fmt: Format,
    name: str | None = None,
) -> Rubric:
    """Create a rubric with the document's versions (hashes checked), sign-offs and draft."""
    if len(text) > MAX_IMPORT_CHARS:
        raise InvalidInput(f"The file is larger than {MAX_IMPORT_CHARS:,} characters.")
    try:
        doc = load_rubric(text, fmt)
    except RubricFormatError as exc:
        raise InvalidInput(
            "The rubric file cannot be imported.",
            details=[
                {
                    "field": issue.path + (f" (line {issue.line})" if issue.line else ""),
                    "message": issue.message,
                }
                for issue in exc.issues
            ],
        ) from None
    rubric_name = _clean_name(name or doc.name)
    _ensure_name_free(session, project.id or 0, rubric_name)
    rubric = Rubric(
        project_id=project.id or 0,
        name=rubric_name,
        description=doc.description,
        mode=doc.mode,
        draft=doc.draft.model_dump(mode="json") if doc.draft is not None else None,
        draft_based_on_version=doc.versions[-1].number if doc.versions else None,
        draft_updated_by_id=actor.id,
        created_by_id=actor.id,
    )
    session.add(rubric)
    _flush_unique(session, rubric_name)
    for vdoc in doc.versions:
        creator = _user_by_email(session, vdoc.created_by)
        version = RubricVersion(
            rubric_id=rubric.id or 0,
            project_id=rubric.project_id,
            number=vdoc.number,
            definition=vdoc.definition.model_dump(mode="json"),
            output_schema=build_output_schema(vdoc.definition),
            content_hash=vdoc.content_hash,
            change_note=vdoc.change_note,
            created_by_id=creator.id if creator else None,
            created_by_label=vdoc.created_by,
            created_at=vdoc.created_at,
        )
        session.add(version)
        session.flush()
        approvers: set[int] = set()
        for adoc in vdoc.approvals:
            approver = _user_by_email(session, adoc.by)
            # One sign-off per account: a repeated name in the file keeps only its label.
            approver_id = approver.id if approver and approver.id not in approvers else None
            if approver_id is not None:
                approvers.add(approver_id)
            session.add(
                RubricApproval(
                    rubric_version_id=version.id or 0,
                    user_id=approver_id,
                    user_label=adoc.by,
                    comment=adoc.comment,
                    approved_at=adoc.at,
                )
            )
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action="rubric.import",
        object_type="rubric",
        object_id=rubric.id,
        project_id=rubric.project_id,
        summary=f"imported rubric {rubric_name} with {len(doc.versions)} version(s)",
        details={
            "versions": [v.number for v in doc.versions],
            "hashes": [v.content_hash for v in doc.versions],
            "has_draft": doc.draft is not None,
        },
    )
    session.commit()
    return rubric


# --------------------------------------------------------------------------- demo


def ensure_demo_rubric(session: Session, project: Project, admin: User) -> Rubric:
    """The demo project's contract review rubric: v1 published and signed off. Idempotent."""
    rubric = session.exec(
        select(Rubric).where(Rubric.project_id == project.id, Rubric.name == DEMO_RUBRIC_NAME)
    ).first()
    if rubric is None:
        rubric = create_rubric(
            session,
            project,
            actor=admin,
            name=DEMO_RUBRIC_NAME,
            description="The reference case: each review comment scored 1-5 on grounding, "
            "consistency with the playbook and actionability.",
            template="legal_contract_review",
        )
    version = latest_version(session, rubric.id or 0)
    if version is None:
        version = publish_version(
            session,
            rubric,
            actor=admin,
            change_note="Initial version from the built-in contract review template.",
        )
    if not approvals_for(session, [version.id or 0])[version.id or 0]:
        # The demo has one user, who publishes and signs off: its project allows a single
        # approver, and its exports say so.
        project_service.set_single_approver(session, project, actor=admin, allowed=True)
        approve_version(
            session, version, actor=admin, comment="Reviewed against the playbook for the demo."
        )
    return rubric


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line text as | blocks, so template and description changes diff line by line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    )


_ReadableDumper.add_representer(str, _represent_str)


def _in_field_order(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    # Both sides of a comparison get every field in the same order, so only real edits differ.
    ordered: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in data:
            ordered[name] = data[name]
        elif not info.is_required():
            ordered[name] = info.get_default(call_default_factory=True)
    return ordered | {k: v for k, v in data.items() if k not in ordered}


def readable_yaml(draft: dict[str, Any]) -> str:
    """A draft as YAML for people (the conflict view): fields in the definition's order, one
    line per value (no wrapping) so a line-by-line comparison shows exactly what differs."""
    data = _in_field_order(draft, RubricDefinition)
    if isinstance(data.get("criteria"), list):
        data["criteria"] = [
            _in_field_order(c, Criterion) if isinstance(c, dict) else c for c in data["criteria"]
        ]
    return yaml.dump(
        data, Dumper=_ReadableDumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )
