"""The OpenAPI document: Bearer API-token auth (so /docs has an Authorize button), the error body
every failure answers with, and the 401/403/404/409 responses each JSON operation can give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

SCHEME = "BearerAuth"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "The body of every 4xx answer: a plain-words message, and what was wrong.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in plain words."},
        "problems": {
            "type": "array",
            "description": "One entry per problem (e.g. per invalid field), when there are any.",
            "items": {
                "type": "object",
                "properties": {
                    "field": {
                        "type": ["string", "null"],
                        "description": "The field, or null for a problem with the whole request.",
                    },
                    "message": {"type": "string"},
                    "line": {
                        "type": ["integer", "null"],
                        "description": "The line of an uploaded file, if any.",
                    },
                },
                "additionalProperties": True,
            },
        },
    },
    "required": ["detail"],
}
SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "API token (rst_…)",
    "description": (
        "An API token from your account page. Requests that "
        "carry it need no CSRF token: a Bearer token is never sent by a browser on its own, so "
        "it cannot be forged by another site."
    ),
}
ERRORS = {
    "401": "Not authenticated: no API token (or session), or it is invalid, expired or revoked.",
    "403": (
        "Not allowed: your role in the project may not do this (the message names the roles "
        "that may), or, for a browser session without a Bearer token, the CSRF check failed."
    ),
    "404": "Not found, or you are not a member of its project (the same answer, by design).",
    "409": "Conflicts with the current state (e.g. a name in use, a version already published).",
    "422": "The request is not valid: `problems` lists each field and what is wrong with it.",
}
STATE_CHANGING = {"post", "put", "patch", "delete"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _add_model_schemas(schema: dict[str, Any], models: dict[str, type[BaseModel]]) -> None:
    """Put each model's JSON Schema in the components under its name, and point every property
    marked {"x-schema": name} (a free-form object a route parses itself) at it."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in models.items():
        document = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in document.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas[name] = document
    for component in list(schemas.values()):
        for key, prop in (component.get("properties") or {}).items():
            target = prop.get("x-schema") if isinstance(prop, dict) else None
            if target in models:
                ref = {"$ref": f"#/components/schemas/{target}"}
                nullable = any(o.get("type") == "null" for o in prop.get("anyOf") or [])
                component["properties"][key] = {
                    **({"anyOf": [ref, {"type": "null"}]} if nullable else ref),
                    **({"description": prop["description"]} if prop.get("description") else {}),
                }


def _point_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _point_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _point_refs(value, old, new)


def build_openapi(app: FastAPI, models: dict[str, type[BaseModel]] | None = None) -> dict[str, Any]:
    """The app's OpenAPI document with auth and error responses declared, and the schemas of
    `models` for the free-form properties that name them (cached on the app)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _add_model_schemas(schema, models or {})
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = SECURITY_SCHEME
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    # Routes declare their error answers with the ErrorBody model (app/web/errors.py): the same
    # body, documented once, under one name.
    for name in ("ErrorBody", "Problem"):
        schemas.pop(name, None)
    _point_refs(schema, "#/components/schemas/ErrorBody", ERROR_REF["$ref"])
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # the app answers 422 with Error, not FastAPI's default body
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            operation["security"] = [{SCHEME: []}]
            responses = operation.setdefault("responses", {})
            wanted = ["401", "403"]
            if "{" in path:
                wanted.append("404")
            if method in STATE_CHANGING:
                wanted.append("409")
            if operation.get("parameters") or "requestBody" in operation:
                wanted.append("422")
            for code in wanted:
                # A route's own 409 says what conflicts; the generic text covers the rest.
                own = (responses.get(code) or {}).get("description") if code == "409" else None
                responses[code] = _error(own or ERRORS[code])
    app.openapi_schema = schema
    return schema
