"""HTML routes for gold sets: the labeled rollouts the judge is calibrated and tested on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from app.auth.dependencies import (
    GoldManager,
    ProjectReader,
    SessionDep,
)
from app.auth.policies import Permission
from app.core.ids import Id, bounded
from app.labels import gold
from app.web.flash import flash
from app.web.forms import form_text
from app.web.htmx import redirect, render
from app.web.urls import project_url

router = APIRouter(tags=["pages: labeling"])


def _base(ctx: Any) -> str:
    return project_url(ctx.project_id)


@router.get("/projects/{project_id}/gold", include_in_schema=False)
def gold_page(request: Request, session: SessionDep, ctx: ProjectReader) -> Response:
    project_id = ctx.project_id
    context = {
        "ctx": ctx,
        "rows": gold.list_gold(session, project_id),
        "candidates": gold.gold_candidates(session, project_id)
        if ctx.can(Permission.gold_manage)
        else [],
        "can_manage": ctx.can(Permission.gold_manage),
    }
    return render(request, "labels/gold.html", context)


@router.post("/projects/{project_id}/gold", include_in_schema=False)
async def gold_add_action(request: Request, session: SessionDep, ctx: GoldManager) -> Response:
    form = await request.form()
    rollout_ids = [
        bounded(int(v), "A rollout", big=True)
        for v in form.getlist("rollout_id")
        if isinstance(v, str) and v.isdigit()
    ]
    added = gold.add_gold(
        session,
        ctx.project,
        actor=ctx.user,
        rollout_ids=rollout_ids,
        split=form_text(form, "split"),
        expectation=form_text(form, "expectation"),
        note=form_text(form, "note"),
    )
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, f"{len(added)} rollouts added to the gold set.")
    return response


@router.post("/projects/{project_id}/gold/{gold_id}/split", include_in_schema=False)
def gold_split_action(
    request: Request,
    session: SessionDep,
    ctx: GoldManager,
    gold_id: Id,
    split: Annotated[str, Form(max_length=20)],
) -> Response:
    item = gold.set_gold_split(session, ctx.project, gold_id, actor=ctx.user, split=split)
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, f"Rollout {item.rollout_id} is now in the {item.split} split.")
    return response


@router.post("/projects/{project_id}/gold/{gold_id}/remove", include_in_schema=False)
def gold_remove_action(
    request: Request, session: SessionDep, ctx: GoldManager, gold_id: Id
) -> Response:
    gold.remove_gold(session, ctx.project, gold_id, actor=ctx.user)
    response = redirect(request, f"{_base(ctx)}/gold")
    flash(request, response, "Removed from the gold set.")
    return response
