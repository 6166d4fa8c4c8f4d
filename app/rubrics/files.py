"""Rubric as code: a whole rubric (draft, versions, sign-offs) exported to and imported from a
YAML or JSON document (the format itself lives in `serialization.py`)."""

from __future__ import annotations

import re

from sqlmodel import Session, select

from app.audit import service as audit_service
from app.auth.models import User
from app.core.errors import InvalidInput, NotFound
from app.projects.models import Project
from app.rubrics import forms
from app.rubrics.models import Rubric, RubricApproval, RubricVersion
from app.rubrics.output_schema import build_output_schema
from app.rubrics.serialization import (
    Approval,
    Format,
    RubricDocument,
    RubricFormatError,
    RubricVersionDocument,
    dump_rubric,
    load_rubric,
)
from app.rubrics.service import (
    approvals_for,
    as_utc,
    clean_name,
    ensure_name_free,
    flush_unique,
    list_versions,
    user_label,
    version_definition,
)

MAX_IMPORT_CHARS = 20_000_000


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
                created_at=as_utc(v.created_at),
                content_hash=v.content_hash,
                approvals=[
                    Approval(by=a.user_label, at=as_utc(a.approved_at), comment=a.comment)
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
    rubric_name = clean_name(name or doc.name)
    ensure_name_free(session, project.id or 0, rubric_name)
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
    flush_unique(session, rubric_name)
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
