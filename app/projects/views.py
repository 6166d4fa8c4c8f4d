"""HTML routes: the project list, creation, overview and settings with members."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from app.auth.dependencies import CurrentUser, ProjectManager, ProjectReader, SessionDep
from app.core.errors import InvalidInput
from app.core.ids import Id, Int32
from app.core.problems import problem
from app.drift import service as drift_service
from app.projects import service as project_service
from app.projects.models import Role
from app.web.flash import flash
from app.web.forms import form_error_context
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: projects"])


@router.get("/", include_in_schema=False)
def project_list_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    rows = project_service.list_projects_for(session, user)
    return render(
        request,
        "projects/list.html",
        {"rows": rows, "error": None, "form": {}},
        fragment="projects/_list.html",
    )


@router.post("/projects", include_in_schema=False)
def project_create_action(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)],
    description: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    project = project_service.create_project(
        session, name=name, description=description, owner=user
    )
    response = redirect(request, project_url(project.id))
    flash(request, response, f"Project “{project.name}” created. You are its admin.")
    return response


@router.get("/projects/{project_id}", include_in_schema=False)
def project_overview_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    stats = project_service.project_counts(session, ctx.project_id)
    drift_runs = drift_service.project_signal_summary(session, ctx.project)
    context = {"ctx": ctx, "stats": stats, "drift_runs": drift_runs}
    return render(request, "projects/overview.html", context)


def _parse_schema(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise _schema_problem(
            f"is not valid JSON: check {where} (a missing comma, quote or bracket)."
        ) from None
    except RecursionError:
        raise InvalidInput("The output JSON Schema is nested too deeply to read.") from None
    if not isinstance(value, dict):
        raise _schema_problem("must be a JSON object, written between { and }.")
    return value


def _schema_problem(message: str) -> InvalidInput:
    problems = [problem("output_schema", message, {"output_schema": "Expected output format"})]
    return InvalidInput("The settings were not saved; please correct:", details=problems)


SETTINGS_FIELDS = (
    "name",
    "description",
    "policy_system_prompt",
    "output_schema",
    "document_location.source",
    "document_location.metadata_key",
    "document_location.start_marker",
    "document_location.end_marker",
)


def _settings_context(
    session: Any, ctx: ProjectReader, form: dict[str, str] | None = None, error: Any = None
) -> dict[str, Any]:
    members = project_service.list_members(session, ctx.project_id)
    return {
        "ctx": ctx,
        "members": members,
        "document": project_service.document_location(ctx.project),
        "document_sources": [
            ("field", "the rollout's target_document field"),
            ("metadata", "a metadata key (a custom field of a training row)"),
            ("user_message", "the user message, between two markers"),
        ],
        "roles": [r.value for r in Role],
        "single_approver": project_service.single_approver_allowed(ctx.project),
        "form": form,
        **form_error_context(error, SETTINGS_FIELDS),
    }


@router.get("/projects/{project_id}/settings", include_in_schema=False)
def project_settings_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    return render(request, "projects/settings.html", _settings_context(session, ctx))


@router.post("/projects/{project_id}/settings/approval-policy", include_in_schema=False)
def project_approval_policy_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectManager,
    single_approver: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    allowed = single_approver in ("1", "on", "true")
    project_service.set_single_approver(session, ctx.project, actor=ctx.user, allowed=allowed)
    response = redirect(request, project_url(ctx.project_id, "settings"))
    message = (
        "A single approver is now enough." if allowed else "A second expert must now sign off."
    )
    flash(request, response, message)
    return response


@router.post("/projects/{project_id}/settings", include_in_schema=False)
def project_settings_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectManager,
    name: Annotated[str, Form(max_length=200)],
    revision: Annotated[Int32, Form()],
    description: Annotated[str, Form(max_length=20_000)] = "",
    policy_system_prompt: Annotated[str, Form(max_length=200_000)] = "",
    output_schema: Annotated[str, Form(max_length=200_000)] = "",
    document_source: Annotated[str, Form(max_length=20)] = "field",
    document_metadata_key: Annotated[str, Form(max_length=200)] = "",
    document_start_marker: Annotated[str, Form(max_length=200)] = "",
    document_end_marker: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        location = project_service.parse_document_location(
            {
                "source": document_source,
                "metadata_key": document_metadata_key,
                "start_marker": document_start_marker,
                "end_marker": document_end_marker,
            }
        )
        project_service.update_project(
            session,
            ctx.project,
            actor=ctx.user,
            expected_revision=revision,
            name=name,
            description=description,
            policy_system_prompt=policy_system_prompt,
            output_schema=_parse_schema(output_schema),
            document_location=location,
        )
    except InvalidInput as exc:
        # Nothing was stored: show the same form with what was typed and the message beside it.
        session.rollback()
        session.refresh(ctx.project)
        typed = {
            "name": name,
            "description": description,
            "policy_system_prompt": policy_system_prompt,
            "output_schema": output_schema,
            "revision": str(revision),
            "document_source": document_source,
            "document_metadata_key": document_metadata_key,
            "document_start_marker": document_start_marker,
            "document_end_marker": document_end_marker,
        }
        context = _settings_context(session, ctx, typed, exc)
        return render(request, "projects/settings.html", context, status_code=422)
    response = redirect(request, project_url(ctx.project_id, "settings"))
    flash(request, response, "Settings saved.")
    return response


@router.post("/projects/{project_id}/members", include_in_schema=False)
def member_add_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectManager,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    project_service.add_member(session, ctx.project, email=email, role=role, actor=ctx.user)
    response = redirect(request, project_url(ctx.project_id, "settings"))
    flash(request, response, f"{email.strip()} added as {role}.")
    return response


@router.post("/projects/{project_id}/members/{membership_id}/role", include_in_schema=False)
def member_role_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectManager,
    membership_id: Id,
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    project_service.set_member_role(
        session, ctx.project, membership_id=membership_id, role=role, actor=ctx.user
    )
    response = redirect(request, project_url(ctx.project_id, "settings"))
    flash(request, response, "Role changed.")
    return response


@router.post("/projects/{project_id}/members/{membership_id}/remove", include_in_schema=False)
def member_remove_action(
    request: Request, session: SessionDep, ctx: ProjectManager, membership_id: Id
) -> Response:
    project_service.remove_member(session, ctx.project, membership_id=membership_id, actor=ctx.user)
    response = redirect(request, project_url(ctx.project_id, "settings"))
    flash(request, response, "Member removed.")
    return response
