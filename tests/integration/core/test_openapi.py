"""The OpenAPI document an engineer's "Try it out" relies on: Bearer auth (the Authorize button),
the error body and the 401/403/404/409 responses on every JSON operation, content types on
downloads; and the requests /docs then sends, with a token and no CSRF token, succeed."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlmodel import Session

from app.auth import service as auth_service
from app.rewards.config import RewardConfigModel
from tests.support.factories import make_user
from tests.support.web import find_all, login

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method, operation in operations.items()
    ]


def test_the_schema_declares_bearer_auth_errors_and_download_types(app: FastAPI) -> None:
    schema = app.openapi()
    scheme = schema["components"]["securitySchemes"]["BearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "CSRF" in schema["info"]["description"] and "Authorize" in schema["info"]["description"]
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"] and "problems" in error["properties"]
    assert "HTTPValidationError" not in str(schema)  # 422 answers with Error, as the app does
    operations = _operations(schema)
    assert len(operations) > 40
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation["security"] == [{"BearerAuth": []}], where
        responses = operation["responses"]
        expected = {"401", "403"}
        if "{" in path:
            expected.add("404")
        if method in {"post", "put", "patch", "delete"}:
            expected.add("409")
        assert expected <= set(responses), where
        for code in expected | ({"422"} & set(responses)):
            content = responses[code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (where, code)
    download = schema["paths"]["/api/v1/projects/{project_id}/exports/{bundle_id}/targets/{target}"]
    content = download["get"]["responses"]["200"]["content"]
    assert {"application/zip", "text/x-python", "application/json", "application/yaml"} <= set(
        content
    )


def test_try_it_out_with_a_token_posts_without_a_csrf_token(
    app: FastAPI, client: TestClient, session: Session
) -> None:
    user = make_user(session, "engineer@example.com")
    secret = auth_service.create_api_token(session, user, "swagger").token
    session.commit()
    error = Draft202012Validator(app.openapi()["components"]["schemas"]["Error"])
    # Signed in in the browser as well: Swagger UI sends the cookie along with the token.
    login(client, "engineer@example.com")
    docs = client.get("/docs")
    assert docs.status_code == 200
    [meta] = find_all(docs.text, "name", "csrf-token")
    bearer = {"Authorization": f"Bearer {secret}"}

    created = client.post("/api/v1/projects", json={"name": "Tried out"}, headers=bearer)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Tried out"

    # The session alone needs the CSRF token (api-docs.js sends the page's) ...
    refused = client.post("/api/v1/projects", json={"name": "No token"})
    assert refused.status_code == 403
    error.validate(refused.json())
    assert "CSRF" in refused.json()["detail"]
    with_csrf = client.post(
        "/api/v1/projects", json={"name": "Session"}, headers={"X-CSRF-Token": meta["content"]}
    )
    assert with_csrf.status_code == 201, with_csrf.text

    # ... and failures answer with the documented body.
    anonymous = TestClient(app)
    unauthenticated = anonymous.post("/api/v1/projects", json={"name": "x"})
    assert unauthenticated.status_code == 401
    error.validate(unauthenticated.json())
    invalid = anonymous.post("/api/v1/projects", json={"name": ""}, headers=bearer)
    assert invalid.status_code == 422
    error.validate(invalid.json())
    missing = anonymous.get("/api/v1/projects/999999", headers=bearer)
    assert missing.status_code == 404
    error.validate(missing.json())


def test_the_reward_configuration_shape_is_served_and_documented(app: FastAPI) -> None:
    schema = app.openapi()
    components = schema["components"]["schemas"]
    for model in ("RewardConfigUpdate", "RewardConfigPublic"):
        config = components[model]["properties"]["config"]
        assert config["$ref"] == "#/components/schemas/RewardConfig", model
    served = components["RewardConfig"]
    assert {"format", "length", "judge", "export_gate"} <= set(served["properties"])
    doc = DOCS.joinpath("formats", "reward-config.md").read_text()
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    # Refs point at #/components/schemas/...: resolve them inside the served document.
    Draft202012Validator({**served, "components": schema["components"]}).validate(example)
    assert RewardConfigModel.model_validate(example).as_dict() == example
    wrong = example | {"format": example["format"] | {"weight": "heavy"}}
    errors = list(
        Draft202012Validator({**served, "components": schema["components"]}).iter_errors(wrong)
    )
    assert errors


def test_built_bundles_match_the_served_export_bundle_schema(app: FastAPI) -> None:
    from app.exports.bundle_format import ExportBundleSpec
    from app.exports.targets import TargetOptions
    from app.exports.targets.common import runtime_bundle
    from tests.unit.exports.builders import legal_content

    schema = app.openapi()
    served = schema["components"]["schemas"]["ExportBundleSpec"]
    validator = Draft202012Validator({**served, "components": schema["components"]})
    content = legal_content()
    overridden = runtime_bundle(
        content,
        TargetOptions(provider="bedrock", model_id="amazon.nova-pro-v1:0", region="eu-west-1"),
    )
    for spec in (content["spec"], overridden["spec"]):
        validator.validate(json.loads(json.dumps(spec)))
        ExportBundleSpec.model_validate(spec)
    assert list(validator.iter_errors(content["spec"] | {"extra": 1}))
    doc = DOCS.joinpath("formats", "export-bundle.md").read_text()
    assert "ExportBundleSpec" in doc and content["format"] in doc
