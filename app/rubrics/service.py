"""Rubrics: drafts saved with an optimistic lock, frozen published versions, sign-off, few-shot
examples, live preview and rubric-as-code export/import. Public functions commit once.

Audit policy: create, import, publish, approve, example add/remove and archive are recorded
one by one. Autosaved drafts would flood the log, so `rubric.draft_save` is recorded at most
once per user and rubric per DRAFT_AUDIT_WINDOW (the draft itself keeps who saved it last).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit import service as audit_service
from app.audit.models import AuditEvent
from app.auth.models import User
from app.core.clock import utcnow
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.json_limits import check_json
from app.projects.models import Project
from app.rubrics import forms
from app.rubrics.builtin import BUILTIN_DESCRIPTIONS, BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import (
    RubricDefinition,
    RubricMode,
    canonical_json,
)
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from app.rubrics.prompt_defaults import default_templates

DRAFT_AUDIT_WINDOW = timedelta(minutes=10)
MAX_DRAFT_CHARS = 2_000_000
EXAMPLE_EXCERPT_CHARS = 2_000
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


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("Give the rubric a name.")
    if len(cleaned) > 200:
        raise InvalidInput("The rubric name must be at most 200 characters.")
    return cleaned


def ensure_name_free(session: Session, project_id: int, name: str) -> None:
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
    name = clean_name(name)
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
    ensure_name_free(session, project.id or 0, name)
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
    flush_unique(session, name)
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


def flush_unique(session: Session, name: str) -> None:
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
        when = as_utc(rubric.draft_updated_at).strftime("%Y-%m-%d %H:%M:%S UTC")
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


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def user_label(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id is not None else None
    return user.label if user is not None else "someone"


def normalize_draft(rubric: Rubric, draft: Any) -> dict[str, Any]:
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


def write_draft(
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


def audit_draft_save(session: Session, rubric: Rubric, actor: User, detail: str) -> None:
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
    draft = normalize_draft(rubric, draft)
    if keep_examples:
        draft["examples"] = current_draft(session, rubric).get("examples", [])
    changed = write_draft(
        session, rubric, actor=actor, expected_revision=expected_revision, draft=draft
    )
    if changed:
        audit_draft_save(session, rubric, actor, "edit")
    session.commit()
    return DraftSaved(
        revision=rubric.draft_revision,
        changed=changed,
        check=forms.check_draft(draft),
        saved_at=as_utc(rubric.draft_updated_at),
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
    draft = normalize_draft(rubric, draft)
    draft["system_template"], draft["user_template"] = _generated_templates(draft)
    draft["examples"] = current_draft(session, rubric).get("examples", [])
    changed = write_draft(
        session, rubric, actor=actor, expected_revision=expected_revision, draft=draft
    )
    if changed:
        audit_draft_save(session, rubric, actor, "regenerate_templates")
    session.commit()
    return DraftSaved(rubric.draft_revision, changed, forms.check_draft(draft), utcnow())
