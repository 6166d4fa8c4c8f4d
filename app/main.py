"""The ASGI application: `create_app(settings)` wires routers, middleware and error handlers."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app.agreement import api as agreement_api
from app.agreement import views as agreement_views
from app.audit import views as audit_views
from app.auth import api as auth_api
from app.auth import views as auth_views
from app.core import health
from app.core.config import Settings, get_settings
from app.core.db import get_engine
from app.core.security import CookieSigner
from app.drift import api as drift_api
from app.drift import audit_api as drift_audit_api
from app.drift import audit_views as drift_audit_views
from app.drift import views as drift_views
from app.exports import api as export_api
from app.exports import views as export_views
from app.exports.bundle_format import ExportBundleSpec
from app.formats import api as format_api
from app.judging import api as judge_api
from app.judging import views as judge_views
from app.labels import api as label_api
from app.labels import gold_views as label_gold_views
from app.labels import review_views as label_review_views
from app.labels import transfer_views as label_transfer_views
from app.labels import views as label_views
from app.probes import api as probe_api
from app.probes import views as probe_views
from app.projects import api as project_api
from app.projects import views as project_views
from app.rewards import api as reward_api
from app.rewards import views as reward_views
from app.rewards.config import RewardConfigModel
from app.rollouts import api as rollout_api
from app.rollouts import views as rollout_views
from app.rubrics import api as rubric_api
from app.rubrics import version_views as rubric_version_views
from app.rubrics import views as rubric_views
from app.web import docs as api_docs
from app.web.bounds import HeavyRequestBounds
from app.web.csrf import csrf_protect
from app.web.errors import ERROR_RESPONSES, install_error_handlers
from app.web.input_guard import reject_unstorable_text
from app.web.middleware import install_middleware
from app.web.openapi import build_openapi
from app.web.templating import STATIC_DIR, build_templates

API_DESCRIPTION = """
The JSON API of Rubric Studio. Authenticate with an API token (create one on your account page)
sent as `Authorization: Bearer rst_…`: in this page, press **Authorize** and paste the token, then
"Try it out" works for every operation your role allows.

Requests with a Bearer token are exempt from CSRF checks by design (a browser never attaches the
token by itself, so another site cannot forge such a request). Requests that rely on the browser
session cookie instead must send the page's CSRF token in `X-CSRF-Token`.

Errors answer `{"detail": "...", "problems": [...]}` (schema `Error`): 401 without a valid token,
403 when your role may not do it, 404 for a missing object or a project you are not a member of
(the same answer), 409 on a conflict with the current state, 422 for invalid input.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Rubric Studio",
        version="0.1.0",
        description=API_DESCRIPTION,
        docs_url=None,  # Swagger UI needs inline script; the schema is at /openapi.json
        redoc_url=None,
        dependencies=[Depends(csrf_protect), Depends(reject_unstorable_text)],
    )
    app.openapi = partial(  # type: ignore[method-assign]
        build_openapi,
        app,
        {"RewardConfig": RewardConfigModel, "ExportBundleSpec": ExportBundleSpec},
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings.resolved_database_url)
    app.state.templates = build_templates()
    app.state.cookie_signer = CookieSigner(settings.secret_key, settings.session_max_age_s)

    # Inside the session/headers middleware: its answers get the security headers too.
    app.add_middleware(HeavyRequestBounds, settings=settings)
    install_middleware(app)
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for router in all_routers():
        # Every operation documents the error body it really answers with.
        app.include_router(router, responses=ERROR_RESPONSES)
    return app


def all_routers() -> list[APIRouter]:
    """Every router the app mounts; the route-table security test walks this same list."""
    return [
        health.router,
        api_docs.router,
        auth_views.router,
        auth_api.router,
        project_views.router,
        project_api.router,
        rollout_views.router,
        rollout_api.router,
        audit_views.router,
        audit_views.api_router,
        rubric_views.router,
        rubric_version_views.router,
        rubric_api.router,
        reward_views.router,
        reward_api.router,
        export_views.router,
        export_api.router,
        label_views.router,
        label_review_views.router,
        label_gold_views.router,
        label_transfer_views.router,
        label_api.router,
        agreement_views.router,
        agreement_api.router,
        judge_views.router,
        judge_api.router,
        probe_views.router,
        probe_api.router,
        drift_views.router,
        drift_api.router,
        drift_audit_views.router,
        drift_audit_api.router,
        format_api.router,
    ]


def app_factory() -> FastAPI:
    """For `uvicorn --factory app.main:app_factory` (the served process): the app, with the
    collector tuned as the worker's is. Heavy pages (agreement over 20,000 labels) allocate
    hundreds of thousands of short-lived objects; with CPython's default young threshold each
    of its collections also walks every long-lived object of the imports, which doubled the
    time of those pages (docs/benchmarks.md, issue #13)."""
    from app.core.gc_tuning import tune_gc

    application = create_app()
    tune_gc()
    return application


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` builds the app on first use, not at import: tests import this module
    # with their own settings.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
