"""Property-based fuzzing of the JSON API from its own OpenAPI schema (Schemathesis).

Runs in-process through the ASGI app with a site admin's Bearer token, on whichever database the
suite runs on. Every operation gets a few generated requests; any 5xx, or a response that does not
match what the schema documents, fails the test with the operation and the request that broke it.
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from sqlmodel import Session

from app.auth import service as auth_service
from tests.support.factories import make_project, make_rollouts, make_user, make_version

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("RS_FUZZ_EXAMPLES", "12"))
# What the API promises; business-rule refusals of schema-valid data (a 422 for an unknown
# template name, say) are fine, so "positive data acceptance" is not among them.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_api_answers_every_generated_request_without_server_errors(
    app: FastAPI, session: Session
) -> None:
    admin = make_user(session, "fuzz-admin@example.com", is_admin=True)
    project = make_project(session, admin, "Fuzzed project")
    # Real objects, so that half the generated requests reach past the "no such ..." checks.
    version = make_version(session, project, "generic_pass_fail")
    rollouts = make_rollouts(session, project, 3)
    real_ids = {
        "project_id": project.id,
        "rubric_id": version.rubric_id,
        "number": version.number,
        "rollout_id": rollouts[0].id,
        "rubric_version_id": version.id,
    }
    new_token = auth_service.create_api_token(session, admin, "fuzz")
    token = new_token.token
    headers = {"Authorization": f"Bearer {token}"}
    # Built from the app's own schema object: no HTTP round trip (and no timeout) to load it.
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    failures: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:

        @given(case=operation.as_strategy(), real_project=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case, real_project: bool) -> None:
            if real_project:
                for where in (case.path_parameters, case.query):
                    for name in set(real_ids) & set(where or {}):
                        where[name] = real_ids[name]
            if (case.path_parameters or {}).get("token_id") == new_token.record.id:
                case.path_parameters["token_id"] = 0  # keep the fuzzer's own token alive
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure is collected
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} operations failed in {elapsed:.0f} s:\n\n" + "\n\n".join(
        failures
    )


def test_every_api_path_answers_405_with_allow_for_other_methods(
    app: FastAPI, client, session: Session
) -> None:
    admin = make_user(session, "allow-admin@example.com", is_admin=True)
    token = auth_service.create_api_token(session, admin, "allow").token
    headers = {"Authorization": f"Bearer {token}"}
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        documented = {method.upper() for method in operations}
        unused = sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented)
        if not unused:
            continue
        url = path.replace("{", "").replace("}", "")  # any text: routing fails on the method
        url = "/".join(
            "1" if part.endswith("_id") or part == "number" else part for part in url.split("/")
        )
        response = client.request(unused[0], url, headers=headers)
        if response.status_code == 404:
            continue  # a typed path segment ({rollout_id:int}) did not match
        assert response.status_code == 405, (path, response.status_code)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert documented <= allowed | {"HEAD"}, (path, allowed)
        if path.startswith("/api/"):
            assert response.json()["detail"]
        checked += 1
    assert checked > 20


def test_openapi_documents_the_real_error_body(app: FastAPI) -> None:
    spec = app.openapi()
    body = spec["components"]["schemas"]["Error"]
    assert set(body["properties"]) == {"detail", "problems"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status in ("401", "403", "404", "422"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
