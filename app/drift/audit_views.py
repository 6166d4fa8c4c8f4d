"""HTML routes for reviewers: the training run's audit section (agreement over steps, audits,
judge drift checks), the new-audit form, and a judge drift check's page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from app.auth.dependencies import DriftAuditCreator, JudgeRunner, ProjectReader, SessionDep
from app.core.errors import InvalidInput
from app.drift import audit_service, check_service
from app.drift import service as drift_service
from app.drift.audit_service import AuditDesign
from app.drift.deps import ProjectDriftCheck, ProjectTrainingRun
from app.drift.stratify import DEFAULT_REWARD_QUANTILES, DEFAULT_STEP_BUCKETS, ExtraStratum
from app.exports import service as export_service
from app.web.flash import flash
from app.web.htmx import is_htmx, redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: drift audits"])
RUN = "/projects/{project_id}/training-runs/{run_id:int}"


def _run_url(ctx: Any, run_id: int) -> str:
    return project_url(ctx.project_id, "training-runs", run_id)


@router.get(RUN + "/audit-section", include_in_schema=False)
def audit_section_fragment(
    request: Request, session: SessionDep, ctx: ProjectReader, run: ProjectTrainingRun
) -> Response:
    """The dashboard's reviewer section: agreement over steps, audits and drift checks."""
    bundle = audit_service.run_bundle(session, run)
    context = {
        "ctx": ctx,
        "run": run,
        "agreement": audit_service.step_agreement(session, run),
        "audits": audit_service.list_audits(session, run),
        "bundle": bundle,
        "checks": check_service.list_checks(session, ctx.project_id, bundle.id) if bundle else [],
        "base": _run_url(ctx, run.id or 0),
    }
    return render(
        request, "drift/audit_section.html", context, fragment="drift/_audit_section.html"
    )


def _form_values(form: FormData | None) -> dict[str, str]:
    defaults = {
        "size": "60",
        "seed": "",
        "step_buckets": str(DEFAULT_STEP_BUCKETS),
        "reward_quantiles": str(DEFAULT_REWARD_QUANTILES),
        "extra": ExtraStratum.none.value,
        "criterion": "",
        "overlap": "1",
        "name": "",
        "rubric_version_id": "",
    }
    if form is None:
        return defaults
    return defaults | {k: str(form.get(k, "")).strip() for k in defaults}


def _new_page(
    request: Request,
    session: SessionDep,
    ctx: Any,
    run_id: int,
    *,
    values: dict[str, str],
    assignees: list[int],
    error: InvalidInput | None = None,
) -> Response:
    run = drift_service.get_training_run(session, ctx.project_id, run_id)
    bundle = audit_service.run_bundle(session, run)
    context = {
        "ctx": ctx,
        "run": run,
        "bundle": bundle,
        "versions": audit_service.version_choices(session, ctx.project_id),
        "auditors": audit_service.auditors(session, ctx.project_id),
        "values": values,
        "assignees": assignees
        or [u.id or 0 for u in audit_service.default_assignees(session, ctx.project, ctx.user)],
        "extras": list(ExtraStratum),
        "error": error.message if error else None,
        "problems": error.details if error and isinstance(error.details, list) else [],
        "base": _run_url(ctx, run_id),
    }
    status = error.status_code if error else 200
    return render(request, "drift/audit_new.html", context, status_code=status)


@router.get(RUN + "/audits/new", include_in_schema=False)
def audit_new_page(
    request: Request, session: SessionDep, ctx: DriftAuditCreator, run_id: int
) -> Response:
    return _new_page(request, session, ctx, run_id, values=_form_values(None), assignees=[])


def _int(values: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = values.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"{name.replace('_', ' ').capitalize()} must be a whole number.",
            details=[{"field": name, "message": "a whole number"}],
        ) from None


@router.post(RUN + "/audits", include_in_schema=False)
async def audit_create_action(
    request: Request, session: SessionDep, ctx: DriftAuditCreator, run_id: int
) -> Response:
    form = await request.form()
    values = _form_values(form)
    assignees = [int(v) for v in form.getlist("assignee") if isinstance(v, str) and v.isdigit()]
    run = drift_service.get_training_run(session, ctx.project_id, run_id)
    try:
        extra_raw = values["extra"] or ExtraStratum.none.value
        if extra_raw not in {e.value for e in ExtraStratum}:
            raise InvalidInput("Choose none, length or criterion as the third stratifier.")
        design = AuditDesign(
            size=_int(values, "size") or 0,
            rubric_version_id=_int(values, "rubric_version_id"),
            assignee_ids=tuple(assignees),
            overlap=_int(values, "overlap", 1) or 1,
            seed=_int(values, "seed"),
            step_buckets=_int(values, "step_buckets", DEFAULT_STEP_BUCKETS) or 1,
            reward_quantiles=_int(values, "reward_quantiles", DEFAULT_REWARD_QUANTILES) or 1,
            extra=ExtraStratum(extra_raw),
            criterion=values["criterion"] or None,
            name=values["name"],
        )
        audit = audit_service.create_audit(session, ctx.project, run, actor=ctx.user, design=design)
    except InvalidInput as exc:
        session.rollback()
        return _new_page(
            request, session, ctx, run_id, values=values, assignees=assignees, error=exc
        )
    response = redirect(request, project_url(ctx.project_id, "queues", audit.queue_id))
    flash(
        request,
        response,
        f"Audit created: {audit.design.get('sampled', 0)} samples (seed {audit.seed}).",
    )
    return response


@router.post("/projects/{project_id}/exports/{bundle_id:int}/drift-checks", include_in_schema=False)
async def drift_check_start_action(
    request: Request, session: SessionDep, ctx: JudgeRunner, bundle_id: int
) -> Response:
    form = await request.form()
    bundle = export_service.get_bundle(session, ctx.project_id, bundle_id)
    raw = str(form.get("training_run_id", "")).strip()
    training_run_id = int(raw) if raw.isdigit() else None
    if training_run_id is not None:
        drift_service.get_training_run(session, ctx.project_id, training_run_id)
    check = check_service.start_check(
        session, ctx.project, bundle, actor=ctx.user, training_run_id=training_run_id
    )
    response = redirect(request, project_url(ctx.project_id, "drift-checks", check.id))
    flash(request, response, "Judge drift check started: the gold test split is being re-judged.")
    return response


@router.get("/projects/{project_id}/drift-checks/{check_id:int}", include_in_schema=False)
def drift_check_page(
    request: Request, session: SessionDep, ctx: ProjectReader, check: ProjectDriftCheck
) -> Response:
    report = check_service.report(session, check, ctx.user)
    response = render(
        request,
        "drift/check.html",
        {"ctx": ctx, "report": report},
        fragment="drift/_check.html",
    )
    if is_htmx(request) and report.finished:
        response.status_code = 286  # htmx: stop polling
    return response
