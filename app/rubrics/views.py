"""HTML routes for rubrics: list, create and import, the editor with autosave and live preview,
and few-shot examples. A rubric's versions (publish, sign-off, comparison, export) are in
`version_views.py`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.responses import Response

from app.auth.dependencies import (
    ProjectContext,
    ProjectReader,
    RubricEditor,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.errors import InvalidInput, NotFound
from app.core.ids import NonNegInt32
from app.rollouts import service as rollout_service
from app.rubrics import comparison as rubric_comparison
from app.rubrics import examples as rubric_examples
from app.rubrics import files as rubric_files
from app.rubrics import forms
from app.rubrics import previews as rubric_previews
from app.rubrics import serialization as rubric_serialization
from app.rubrics import service as rubric_service
from app.rubrics.definition import RubricMode
from app.rubrics.deps import ProjectRubric
from app.rubrics.diff import side_by_side
from app.rubrics.models import Rubric
from app.rubrics.prompting import (
    SAMPLE_CONTEXT,
    TEMPLATE_FILTERS,
    TEMPLATE_VARIABLES,
    TemplateError,
)
from app.web.flash import flash
from app.web.htmx import is_htmx, redirect, render

router = APIRouter(tags=["pages: rubrics"])


BASE = "/projects/{project_id}/rubrics"


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (last value wins), for the editor's dynamic field names."""
    if not request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return {}
    form = await request.form()
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(form_fields)]


def rubric_url(rubric: Rubric, suffix: str = "") -> str:
    return f"/projects/{rubric.project_id}/rubrics/{rubric.id}{suffix}"


def form_revision(fields: dict[str, str]) -> int:
    try:
        return int(fields.get("draft_revision", ""))
    except ValueError:
        raise InvalidInput("draft_revision is missing: reload the page.") from None


def _error_lines(errors: list[TemplateError], sources: dict[str, str]) -> list[dict[str, Any]]:
    """Template errors with the offending source line, for inline display."""
    result = []
    for error in errors:
        lines = sources.get(error.part, "").split("\n")
        text = lines[error.line - 1] if error.line and 0 < error.line <= len(lines) else None
        result.append(
            {"part": error.part, "line": error.line, "message": error.message, "source": text}
        )
    return result


def _status_context(
    rubric: Rubric, draft: dict[str, Any], check: forms.DraftCheck
) -> dict[str, Any]:
    sources = {
        "system": str(draft.get("system_template") or ""),
        "user": str(draft.get("user_template") or ""),
    }
    errors = _error_lines(check.template_errors, sources)
    return {
        "rubric": rubric,
        "check": check,
        "template_errors": {
            "system": [e for e in errors if e["part"] == "system"],
            "user": [e for e in errors if e["part"] == "user"],
        },
    }


def _editor_context(
    request: Request,
    session: SessionDep,
    ctx: ProjectContext,
    rubric: Rubric,
    draft: dict[str, Any] | None = None,
    conflict: rubric_service.DraftConflict | None = None,
) -> dict[str, Any]:
    draft = draft if draft is not None else rubric_service.current_draft(session, rubric)
    check = forms.check_draft(draft)
    versions = rubric_service.list_versions(session, rubric.id or 0)
    approvals = rubric_service.approvals_for(session, [v.id or 0 for v in versions])
    return {
        "ctx": ctx,
        "state": forms.editor_state(draft, rubric.mode),
        "revision": rubric.draft_revision,
        "versions": versions,
        "approvals": approvals,
        "can_edit": ctx.can(Permission.rubric_edit),
        "can_publish": ctx.can(Permission.rubric_publish),
        "updated_by": rubric_service.user_label(session, rubric.draft_updated_by_id),
        "variables": TEMPLATE_VARIABLES,
        "filters": TEMPLATE_FILTERS,
        "aggregations": forms.AGGREGATION_LABELS,
        "rollouts": rubric_previews.find_rollouts(session, ctx.project_id),
        "candidates": rubric_previews.example_candidates(session, ctx.project_id),
        "conflict": _conflict_context(conflict, draft) if conflict else None,
        "saved": None,
    } | _status_context(rubric, draft, check)


def _conflict_context(
    conflict: rubric_service.DraftConflict, yours: dict[str, Any]
) -> dict[str, Any]:
    theirs_text = rubric_serialization.readable_yaml(conflict.current_draft)
    yours_text = rubric_serialization.readable_yaml(yours)
    return {
        "message": conflict.message,
        "revision": conflict.current_revision,
        "updated_by": conflict.updated_by,
        "rows": rubric_comparison.with_context(side_by_side(theirs_text, yours_text)),
    }


# --------------------------------------------------------------------------- list, create, import


@router.get(BASE, include_in_schema=False)
def rubric_list_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    show_archived = request.query_params.get("archived") == "1"
    rows = rubric_service.list_rubrics(session, ctx.project_id, include_archived=show_archived)
    context = {
        "ctx": ctx,
        "rows": rows,
        "choices": rubric_service.template_choices(),
        "can_edit": ctx.can(Permission.rubric_edit),
        "show_archived": show_archived,
    }
    return render(request, "rubrics/list.html", context)


@router.post(BASE, include_in_schema=False)
def rubric_create_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    name: Annotated[str, Form(max_length=200)],
    template: Annotated[str, Form(max_length=100)] = "blank_rubric",
    description: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    rubric = rubric_service.create_rubric(
        session, ctx.project, actor=ctx.user, name=name, description=description, template=template
    )
    response = redirect(request, rubric_url(rubric))
    flash(request, response, f"Rubric “{rubric.name}” created. Changes are saved as you type.")
    return response


@router.post(BASE + "/import", include_in_schema=False)
def rubric_import_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    # Sync route (runs in a worker thread): the spooled upload is read directly.
    raw = file.file.read(rubric_files.MAX_IMPORT_CHARS * 4 + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The rubric file must be UTF-8 text (YAML or JSON).") from None
    rubric = rubric_files.import_rubric(
        session,
        ctx.project,
        actor=ctx.user,
        text=text,
        fmt=rubric_files.guess_format(file.filename or "", text),
        name=name or None,
    )
    response = redirect(request, rubric_url(rubric))
    flash(request, response, f"Imported rubric “{rubric.name}”.")
    return response


# --------------------------------------------------------------------------- editor


@router.get(BASE + "/{rubric_id}", include_in_schema=False)
def rubric_edit_page(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    criterion: str | None = None,
    example: NonNegInt32 | None = None,
) -> Response:
    """`?criterion=KEY&example=ROLLOUT_ID` comes from "Propose an edit" on a disagreement."""
    context = _editor_context(request, session, ctx, rubric)
    context["proposal"] = _proposal(session, ctx, context, criterion, example)
    return render(request, "rubrics/editor.html", context)


def _proposal(
    session: SessionDep,
    ctx: ProjectContext,
    context: dict[str, Any],
    criterion: str | None,
    example: int | None,
) -> dict[str, Any] | None:
    if criterion is None and example is None:
        return None
    project_id = ctx.project_id
    names = {c.key: c.name for c in context["state"].criteria}
    rollout = None
    if example is not None:
        try:
            rollout = rollout_service.get_rollout(session, project_id, example)
        except NotFound:
            rollout = None
    if rollout is not None:
        # The disputed rollout goes first in the preview picker, and in the example picker
        # unless it is a locked gold test item.
        context["rollouts"] = [rollout, *(r for r in context["rollouts"] if r.id != rollout.id)]
        candidates = rubric_previews.example_candidates(session, project_id, q=str(rollout.id))
        if any(r.id == rollout.id for r in candidates):
            rest = (r for r in context["candidates"] if r.id != rollout.id)
            context["candidates"] = [rollout, *rest]
    return {
        "criterion": criterion if criterion in names else None,
        "criterion_name": names.get(criterion or ""),
        "rollout": rollout,
    }


def conflict_response(
    request: Request,
    session: SessionDep,
    ctx: ProjectContext,
    rubric: Rubric,
    exc: rubric_service.DraftConflict,
    yours: dict[str, Any],
) -> Response:
    context = _editor_context(request, session, ctx, rubric, draft=yours, conflict=exc)
    return render(
        request,
        "rubrics/editor.html",
        context,
        fragment="rubrics/_conflict.html",
        status_code=409,
        headers={"HX-Retarget": "#draft-status", "HX-Reswap": "outerHTML"},
    )


@router.post(BASE + "/{rubric_id}/draft", include_in_schema=False)
def rubric_draft_save_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    rubric: ProjectRubric,
    fields: FormFields,
) -> Response:
    draft = forms.draft_from_form(fields, rubric.mode)
    try:
        saved = rubric_service.save_draft(
            session,
            rubric,
            actor=ctx.user,
            expected_revision=form_revision(fields),
            draft=draft,
            keep_examples=True,
        )
    except rubric_service.DraftConflict as exc:
        return conflict_response(request, session, ctx, rubric, exc, draft)
    if not is_htmx(request):
        response = redirect(request, rubric_url(rubric))
        flash(request, response, f"Draft saved (revision {saved.revision}).")
        return response
    context = _status_context(rubric, draft, saved.check) | {
        "saved": saved,
        "revision": saved.revision,
        "conflict": None,
        "can_publish": ctx.can(Permission.rubric_publish),
    }
    return render(request, "rubrics/_autosave.html", context)


@router.post(BASE + "/{rubric_id}/regenerate", include_in_schema=False)
def rubric_regenerate_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    rubric: ProjectRubric,
    fields: FormFields,
) -> Response:
    draft = forms.draft_from_form(fields, rubric.mode)
    try:
        rubric_service.regenerate_templates(
            session, rubric, actor=ctx.user, expected_revision=form_revision(fields), draft=draft
        )
    except rubric_service.DraftConflict as exc:
        return conflict_response(request, session, ctx, rubric, exc, draft)
    response = redirect(request, rubric_url(rubric) + "#templates")
    flash(request, response, "Templates regenerated from the structure and saved.")
    return response


@router.post(BASE + "/{rubric_id}/preview", include_in_schema=False)
def rubric_preview_action(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    rubric: ProjectRubric,
    fields: FormFields,
) -> Response:
    """Render what the judge would receive for the draft as typed (nothing is saved)."""
    stored = rubric_service.current_draft(session, rubric)
    draft = forms.draft_from_form(fields, rubric.mode) if "title" in fields else stored
    draft["examples"] = stored.get("examples", [])
    rollout = partner = None
    if fields.get("rollout_id", "").isdigit():
        rollout = rollout_service.get_rollout(session, rubric.project_id, int(fields["rollout_id"]))
        if fields.get("rollout_b_id", "").isdigit():
            partner = rollout_service.get_rollout(
                session, rubric.project_id, int(fields["rollout_b_id"])
            )
        elif rubric.mode == RubricMode.preference:
            partner = rubric_previews.pair_partner(session, rollout)
    context_obj = (
        rubric_previews.prompt_context(rollout, partner) if rollout is not None else SAMPLE_CONTEXT
    )
    preview = rubric_previews.render_preview(draft, context_obj)
    sources = {
        "system": draft.get("system_template") or "",
        "user": draft.get("user_template") or "",
    }
    context = {
        "preview": preview,
        "rollout": rollout,
        "partner": partner,
        "template_errors": _error_lines(preview.template_errors, sources),
    }
    return render(request, "rubrics/_preview.html", context)


@router.get(BASE + "/{rubric_id}/rollout-options", include_in_schema=False)
def rubric_rollout_options(
    request: Request,
    session: SessionDep,
    ctx: ProjectReader,
    _rubric: ProjectRubric,
    q: str = "",
    purpose: str = "preview",
) -> Response:
    finder = (
        rubric_previews.example_candidates
        if purpose == "example"
        else rubric_previews.find_rollouts
    )
    rollouts = finder(session, ctx.project_id, q[:200])
    return render(request, "rubrics/_rollout_options.html", {"rollouts": rollouts, "q": q})


# --------------------------------------------------------------------------- few-shot examples


@router.get(BASE + "/{rubric_id}/examples/label-fields", include_in_schema=False)
def rubric_example_label_fields(
    request: Request, session: SessionDep, ctx: ProjectReader, rubric: ProjectRubric
) -> Response:
    state = forms.editor_state(rubric_service.current_draft(session, rubric), rubric.mode)
    return render(request, "rubrics/_example_labels.html", {"state": state})


def _label_from_fields(fields: dict[str, str], rubric: Rubric) -> dict[str, Any]:
    label: dict[str, Any] = {}
    for key, raw in fields.items():
        if not key.startswith("label-") or raw == "":
            continue
        name = key.removeprefix("label-")
        if rubric.mode == RubricMode.preference or raw in ("A", "B", "tie"):
            label[name] = raw
        elif raw in ("true", "false"):
            label[name] = raw == "true"
        else:
            try:
                label[name] = int(raw)
            except ValueError:
                raise InvalidInput(f"The label for {name} must be a number.") from None
    return label


def _examples_response(
    request: Request, session: SessionDep, ctx: ProjectContext, rubric: Rubric, message: str
) -> Response:
    if not is_htmx(request):
        response = redirect(request, rubric_url(rubric) + "#examples")
        flash(request, response, message)
        return response
    context = _editor_context(request, session, ctx, rubric) | {"examples_message": message}
    # The examples are part of the prompt: the preview listens for this event and re-renders.
    headers = {"HX-Trigger": "rubric-examples-changed"}
    return render(request, "rubrics/_examples_saved.html", context, headers=headers)


@router.post(BASE + "/{rubric_id}/examples", include_in_schema=False)
def rubric_example_add_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    rubric: ProjectRubric,
    fields: FormFields,
) -> Response:
    if not fields.get("rollout_id", "").isdigit():
        raise InvalidInput("Choose the rollout to attach as a worked example.")
    rollout_b = fields.get("rollout_b_id", "").strip()
    if rollout_b and not rollout_b.isdigit():
        raise InvalidInput("Response B must be a rollout id (a number).")
    try:
        rubric_examples.add_example(
            session,
            rubric,
            actor=ctx.user,
            expected_revision=form_revision(fields),
            rollout_id=int(fields["rollout_id"]),
            rollout_b_id=int(rollout_b) if rollout_b else None,
            label=_label_from_fields(fields, rubric),
            critique=fields.get("critique", "")[:20_000],
            input_excerpt=fields.get("input_excerpt", "")[:20_000],
        )
    except rubric_service.DraftConflict as exc:
        return conflict_response(
            request, session, ctx, rubric, exc, rubric_service.current_draft(session, rubric)
        )
    return _examples_response(
        request, session, ctx, rubric, f"Rollout {fields['rollout_id']} attached as an example."
    )


@router.post(BASE + "/{rubric_id}/examples/{index}/remove", include_in_schema=False)
def rubric_example_remove_action(
    request: Request,
    session: SessionDep,
    ctx: RubricEditor,
    rubric: ProjectRubric,
    index: NonNegInt32,
    fields: FormFields,
) -> Response:
    try:
        rubric_examples.remove_example(
            session, rubric, actor=ctx.user, expected_revision=form_revision(fields), index=index
        )
    except rubric_service.DraftConflict as exc:
        return conflict_response(
            request, session, ctx, rubric, exc, rubric_service.current_draft(session, rubric)
        )
    return _examples_response(request, session, ctx, rubric, f"Example {index + 1} removed.")
