"""The ASGI application: `create_app(settings)` wires routers, middleware and error handlers."""

from __future__ import annotations

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
from app.judging import api as judge_api
from app.judging import views as judge_views
from app.labels import api as label_api
from app.labels import views as label_views
from app.projects import api as project_api
from app.projects import views as project_views
from app.rewards import api as reward_api
from app.rewards import views as reward_views
from app.rollouts import api as rollout_api
from app.rollouts import views as rollout_views
from app.rubrics import api as rubric_api
from app.rubrics import views as rubric_views
from app.web import docs as api_docs
from app.web.csrf import csrf_protect
from app.web.errors import install_error_handlers
from app.web.middleware import install_middleware
from app.web.templating import STATIC_DIR, build_templates

API_DESCRIPTION = """
The JSON API of Rubric Studio. Authenticate with an API token (create one on your account page)
sent as `Authorization: Bearer rst_…`. Errors answer `{"detail": "...", "problems": [...]}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Rubric Studio",
        version="0.1.0",
        description=API_DESCRIPTION,
        docs_url=None,  # Swagger UI needs inline script; the schema is at /openapi.json
        redoc_url=None,
        dependencies=[Depends(csrf_protect)],
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings.resolved_database_url)
    app.state.templates = build_templates()
    app.state.cookie_signer = CookieSigner(settings.secret_key, settings.session_max_age_s)

    install_middleware(app)
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for router in all_routers():
        app.include_router(router)
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
        rubric_api.router,
        reward_views.router,
        reward_api.router,
        export_views.router,
        export_api.router,
        label_views.router,
        label_api.router,
        agreement_views.router,
        agreement_api.router,
        judge_views.router,
        judge_api.router,
        drift_views.router,
        drift_api.router,
        drift_audit_views.router,
        drift_audit_api.router,
    ]


def app_factory() -> FastAPI:
    """For `uvicorn --factory app.main:app_factory`."""
    return create_app()


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` builds the app on first use, not at import: tests import this module
    # with their own settings.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
