"""Export bundles through the browser, the API and the CLI: freezing, hashing, the gate and its
admin override, downloads of every target, and refusals of bad input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.cli import cli
from app.core.config import get_settings
from app.exports import service as export_service
from app.exports.models import ExportBundle, FrozenBundleError
from app.exports.service import ExportGateBlocked
from app.rewards import service as reward_service
from app.rewards.config import RewardConfigModel
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from tests.integration.exports.world import (
    World,
    build_world,
    label_gold,
    probe_world,
    run_judge,
)
from tests.support.judge_server import JudgeServer
from tests.support.web import csrf_for, data_testids, find_all, login


@pytest.fixture(scope="module")
def judge_server():
    with JudgeServer() as server:
        yield server


@pytest.fixture
def world(session: Session, engine, judge_server: JudgeServer) -> tuple[World, int]:
    world = build_world(session, judge_server.base_url)
    run = run_judge(session, engine, world)
    return world, run.id or 0


@pytest.fixture
def probed(client: TestClient, session: Session, engine, settings, world) -> tuple[World, int]:
    """The world whose configuration was probed (through the API): an unprobed one is blocked."""
    probe_world(client, session, engine, settings, world[0])
    return world


def _api_headers(session: Session, user) -> dict[str, str]:
    created = auth_service.create_api_token(session, user, name="tests")
    return {"Authorization": f"Bearer {created.token}"}


def _body(world: World, run_id: int, **extra) -> dict:
    return {
        "rubric_version_id": world.version.id,
        "judge_config_id": world.judge.id,
        "run_id": run_id,
        **extra,
    }


def test_export_in_the_browser_with_a_passing_gate(
    client: TestClient, session: Session, probed
) -> None:
    world, run_id = probed
    passed = label_gold(session, world, run_id, agree=True)
    assert 0 < passed < len(world.rollouts)  # both classes, so kappa is defined
    login(client, world.engineer.email)
    page = client.get(f"/projects/{world.project.id}/exports")
    assert {"export-form", "no-exports"} <= data_testids(page.text)
    assert not find_all(page.text, "data-testid", "export-override")  # engineers cannot override
    token = csrf_for(client, f"/projects/{world.project.id}/exports")
    response = client.post(
        f"/projects/{world.project.id}/exports",
        data={
            "csrf_token": token,
            "rubric_version_id": str(world.version.id),
            "judge_config_id": str(world.judge.id),
            "run_id": str(run_id),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    detail = client.get(response.headers["location"])
    checks = find_all(detail.text, "data-testid", "gate-check")
    assert {c["data-check"]: c["data-passed"] for c in checks} == {
        "items": "true",
        "kappa": "true",
        "true_positive_rate": "true",
        "true_negative_rate": "true",
        "probes": "true",  # never probed: not required, the card says hackability is unmeasured
    }
    assert "passed" in detail.text and world.expert.email in detail.text  # who signed off
    bundle = session.exec(select(ExportBundle)).one()
    manifest = bundle.content["manifest"]
    assert manifest["agreement"]["overall"]["kappa"] == 1.0
    assert manifest["agreement"]["n"] == len(world.rollouts)
    assert manifest["rubric"]["approvals"][0]["by"] == world.expert.email
    # The demo rubric's expert published and signed off alone: the manifest says so.
    assert manifest["rubric"]["approvals"][0]["is_publisher"] is True
    assert manifest["rubric"]["single_approver_allowed"] is True
    assert manifest["override"] is None and bundle.gate_passed
    assert bundle.content["files"]["rubric"]["text"].startswith("format_version: 1")
    for name in (
        "nova-lambda",
        "nova-recipe",
        "nova-iam",
        "trl",
        "verl",
        "openai-grader",
        "bundle",
    ):
        download = client.get(f"/projects/{world.project.id}/exports/{bundle.id}/download/{name}")
        assert download.status_code == 200, name
        assert "attachment" in download.headers["content-disposition"]
    lambda_zip = client.get(
        f"/projects/{world.project.id}/exports/{bundle.id}/download/nova-lambda",
        params={"provider": "bedrock", "model_id": "", "region": "", "function_name": ""},
    )
    with zipfile.ZipFile(io.BytesIO(lambda_zip.content)) as archive:
        runtime = json.loads(archive.read("bundle.json"))["runtime"]["judge"]
    assert runtime["provider"] == "bedrock"
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "export.create")).one()
    assert audit.details["content_hash"] == bundle.content_hash


def test_same_inputs_same_hash_and_a_config_change_changes_it(
    client: TestClient, session: Session, engine, settings, probed
) -> None:
    world, run_id = probed
    label_gold(session, world, run_id, agree=True)
    create = {
        "actor": world.engineer,
        "can_override": False,
        "rubric_version_id": world.version.id or 0,
        "judge_config_id": world.judge.id or 0,
        "run_id": run_id,
    }
    first = export_service.create_bundle(session, world.project, **create)
    second = export_service.create_bundle(session, world.project, **create)
    assert (first.number, second.number) == (1, 2)
    assert first.content_hash == second.content_hash
    assert export_service.same_content(session, second) == [1]
    changed = RewardConfigModel.model_validate({"judge": {"weight": 2}})
    reward_service.save_config(
        session, world.project, actor=world.engineer, config=changed, expected_revision=0
    )
    # The probe results describe the old reward: out of date, so the export is blocked ...
    with pytest.raises(ExportGateBlocked) as blocked:
        export_service.create_bundle(session, world.project, **create)
    [problem] = [p for p in blocked.value.details or [] if p["field"] == "probes"]
    assert "out of date" in problem["message"] and "rubric-studio probes run" in problem["message"]
    # ... until the probes run again for what is exported.
    probe_world(client, session, engine, settings, world)
    third = export_service.create_bundle(session, world.project, **create)
    assert third.content_hash != first.content_hash
    assert third.content["manifest"]["reward_config"]["revision"] == 1
    # A new rubric version (a prompt change) also changes it.
    rubric = rubric_service.get_rubric(session, world.project.id or 0, world.version.rubric_id)
    draft = rubric_service.current_draft(session, rubric)
    draft["user_template"] = draft["user_template"] + "\nBe strict.\n"
    version = rubric_publishing.publish_version(
        session,
        rubric,
        actor=world.expert,
        change_note="stricter",
        expected_revision=rubric.draft_revision,
        draft=draft,
    )
    spec = export_service.build_spec(
        export_service.BundleInputs(
            project_output_schema=world.project.output_schema,
            rubric_name=rubric.name,
            rubric_version=version.number,
            rubric_version_hash=version.content_hash,
            definition=version.definition,
            answer_schema=version.output_schema,
            judge=export_service.judge_settings(world.judge),
            reward=changed.as_dict(),
        )
    )
    assert export_service.build_content(spec, {})["content_hash"] != third.content_hash


def test_gate_blocks_and_only_an_admin_overrides_with_a_recorded_reason(
    client: TestClient, session: Session, world
) -> None:
    world, run_id = world
    label_gold(session, world, run_id, agree=False)  # experts disagree with every verdict
    url = f"/api/v1/projects/{world.project.id}/exports"
    engineer = _api_headers(session, world.engineer)
    admin = _api_headers(session, world.admin)

    blocked = client.post(url, json=_body(world, run_id), headers=engineer)
    assert blocked.status_code == 409
    assert "gate blocks" in blocked.json()["detail"]
    problems = {p["field"]: p["message"] for p in blocked.json()["problems"]}
    assert set(problems) >= {"kappa", "true_positive_rate", "probes"}
    # Never probed: the gate says what to do, and blocks like a failed probe.
    assert "not probed" in problems["probes"] and "rubric-studio probes run" in problems["probes"]
    not_admin = client.post(
        url, json=_body(world, run_id, override_reason="We need it for the demo"), headers=engineer
    )
    assert not_admin.status_code == 403
    no_reason = client.post(url, json=_body(world, run_id), headers=admin)
    assert no_reason.status_code == 409
    too_short = client.post(url, json=_body(world, run_id, override_reason="ok"), headers=admin)
    assert too_short.status_code == 422
    assert session.exec(select(ExportBundle)).first() is None

    reason = "Labels are from an outdated playbook; re-labelling is scheduled for next week."
    created = client.post(url, json=_body(world, run_id, override_reason=reason), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["gate_passed"] is False and body["override_reason"] == reason
    assert body["manifest"]["override"]["reason"] == reason
    assert body["manifest"]["override"]["by"] == world.admin.email
    assert body["manifest"]["probes"]["check"]["state"] == "missing"
    assert body["manifest"]["agreement"]["overall"]["agreement"] == 0.0  # every label disagrees
    assert body["manifest"]["agreement"]["overall"]["kappa"] < 0
    events = session.exec(
        select(AuditEvent)
        .where(col(AuditEvent.action).startswith("export."))
        .order_by(col(AuditEvent.id))
    ).all()
    assert [e.action for e in events] == ["export.create", "export.gate_override"]
    assert events[1].details["reason"] == reason and reason[:50] in events[1].summary
    assert events[0].details["override_reason"] == reason

    page = client.get(f"/projects/{world.project.id}/exports/{body['id']}", headers=admin)
    assert find_all(page.text, "data-testid", "export-override-reason")
    listing = client.get(url, headers=engineer).json()
    assert [b["number"] for b in listing] == [1] and listing[0]["spec"] is None


def test_gate_check_api_and_bad_input(client: TestClient, session: Session, probed) -> None:
    world, run_id = probed
    label_gold(session, world, run_id, agree=True)
    headers = _api_headers(session, world.engineer)
    base = f"/api/v1/projects/{world.project.id}/exports"
    check = client.get(
        f"{base}/gate-check",
        params={
            "rubric_version_id": world.version.id,
            "judge_config_id": world.judge.id,
            "run_id": run_id,
        },
        headers=headers,
    )
    assert check.status_code == 200 and check.json()["gate"]["passed"] is True
    no_run = client.get(
        f"{base}/gate-check",
        params={"rubric_version_id": world.version.id, "judge_config_id": world.judge.id},
        headers=headers,
    )
    assert no_run.json()["gate"]["passed"] is False  # no figures: the gate cannot pass

    cases = [
        (_body(world, run_id, rubric_version_id=999999), 404),
        (_body(world, run_id, judge_config_id=999999), 404),
        (_body(world, 999999), 404),
        (_body(world, run_id, unknown_field=1), 422),
        ({"rubric_version_id": "x"}, 422),
    ]
    for body, status in cases:
        response = client.post(base, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    created = client.post(base, json=_body(world, run_id), headers=headers).json()
    bad_target = client.get(f"{base}/{created['id']}/targets/pytorch", headers=headers)
    assert bad_target.status_code == 422
    bad_option = client.get(
        f"{base}/{created['id']}/targets/nova-lambda",
        params={"number_generation": 0},
        headers=headers,
    )
    assert bad_option.status_code == 422
    good = client.get(
        f"{base}/{created['id']}/targets/openai-grader",
        params={"grader_model": "gpt-4.1-mini-2025-04-14"},
        headers=headers,
    )
    assert good.status_code == 200 and good.json()["legacy"] is True
    missing = client.get(f"{base}/999999", headers=headers)
    assert missing.status_code == 404


def test_bundles_are_immutable(session: Session, probed) -> None:
    world, run_id = probed
    label_gold(session, world, run_id, agree=True)
    bundle = export_service.create_bundle(
        session,
        world.project,
        actor=world.engineer,
        can_override=False,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=run_id,
    )
    bundle.override_reason = "sneaky edit"
    session.add(bundle)
    with pytest.raises(FrozenBundleError):
        session.commit()
    session.rollback()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings):
    monkeypatch.setenv("RS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("RS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RS_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_export_writes_each_target(cli_env, session: Session, probed, tmp_path: Path) -> None:
    world, run_id = probed
    label_gold(session, world, run_id, agree=True)
    bundle = export_service.create_bundle(
        session,
        world.project,
        actor=world.engineer,
        can_override=False,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=run_id,
    )
    runner = CliRunner()
    out = tmp_path / "reward.py"
    result = runner.invoke(cli, ["export", str(bundle.id), "--target", "trl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert bundle.content_hash in result.output
    compile(out.read_text(), str(out), "exec")
    zipped = tmp_path / "lambda" / "reward.zip"
    result = runner.invoke(
        cli,
        [
            "export",
            str(bundle.id),
            "--target",
            "nova-lambda",
            "--out",
            str(zipped),
            "--provider",
            "bedrock",
            "--model-id",
            "us.amazon.nova-2-lite-v1:0",
            "--region",
            "us-west-2",
        ],
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(zipped) as archive:
        judge = json.loads(archive.read("bundle.json"))["runtime"]["judge"]
    assert (judge["provider"], judge["region"]) == ("bedrock", "us-west-2")
    bad = runner.invoke(cli, ["export", str(bundle.id), "--target", "pytorch", "--out", str(out)])
    assert bad.exit_code == 2
    missing = runner.invoke(cli, ["export", "999999", "--target", "trl", "--out", str(out)])
    assert missing.exit_code == 1 and "No export bundle" in missing.output
    bad_region = runner.invoke(
        cli, ["export", str(bundle.id), "--target", "trl", "--out", str(out), "--region", "mars"]
    )
    assert bad_region.exit_code == 2
