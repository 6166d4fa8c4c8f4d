"""The reward configuration page and API (revisions, conflicts, bad input, audit) and the reward
preview over stored verdicts (distribution, contributions, groups without spread)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import GoldItem
from app.rewards import service as reward_service
from app.rewards.config import RewardConfigModel
from app.rewards.models import RewardConfig
from app.rollouts.models import Rollout
from app.rubrics import publishing as rubric_publishing
from app.rubrics import service as rubric_service
from tests.support.factories import make_project, make_user
from tests.support.web import csrf_for, data_testids, find_all, login

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "quote": {"type": "string"}},
    "required": ["answer"],
}
DOCUMENT = "The supplier shall deliver the goods within thirty days."


@pytest.fixture
def team(session: Session):
    admin = make_user(session, "admin@example.com")
    engineer = make_user(session, "engineer@example.com")
    reviewer = make_user(session, "reviewer@example.com")
    project = make_project(
        session, admin, "Rewards", members=[(engineer, "engineer"), (reviewer, "reviewer")]
    )
    project.output_schema = SCHEMA
    session.add(project)
    session.commit()
    return project, admin, engineer, reviewer


def _form(token: str, revision: int, **overrides: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "revision": str(revision),
        "format.enabled": "1",
        "format.weight": "0.5",
        "format.gate": "1",
        "format.gate_reward": "0",
        "format.require_json": "1",
        "length.enabled": "1",
        "length.weight": "0",
        "length.gate_reward": "0",
        "length.unit": "chars",
        "length.min_length": "1",
        "length.max_length": "5000",
        "length.penalty": "1",
        "grounding.enabled": "1",
        "grounding.weight": "0.5",
        "grounding.gate_reward": "0",
        "grounding.excerpt_fields": "quote",
        "grounding.min_quote_chars": "20",
        "grounding.pass_threshold": "1",
        "grounding.case_sensitive": "1",
        "judge.enabled": "1",
        "judge.weight": "1",
        "judge.neutral_reward": "0.5",
        "judge.repair": "1",
        "export_gate.enabled": "1",
        "export_gate.min_items": "10",
        "export_gate.min_kappa": "0.4",
        "export_gate.min_tpr": "0.7",
        "export_gate.min_tnr": "0.7",
        "export_gate.pass_threshold": "0.5",
    }
    form.update(overrides)
    return form


def test_config_page_saves_with_revisions_and_audit(
    client: TestClient, session: Session, team
) -> None:
    project, _admin, engineer, _reviewer = team
    login(client, engineer.email)
    url = f"/projects/{project.id}/rewards"
    page = client.get(url)
    assert page.status_code == 200
    assert {"reward-form", "reward-save", "component-format", "no-runs"} <= data_testids(page.text)
    assert find_all(page.text, "data-testid", "reward-form-revision")[0]["value"] == "0"
    token = csrf_for(client, url)
    saved = client.post(url, data=_form(token, 0), follow_redirects=False)
    assert saved.status_code == 303
    row = session.exec(select(RewardConfig)).one()
    assert row.revision == 1 and row.config["grounding"]["excerpt_fields"] == ["quote"]
    assert row.config["safety"]["enabled"] is False
    # An htmx save answers with a redirect header, and the revision moves on.
    again = client.post(
        url,
        data=_form(token, 1, **{"judge.weight": "2"}),
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 204 and again.headers["HX-Redirect"] == url
    session.refresh(row)
    assert row.revision == 2 and row.config["judge"]["weight"] == 2.0
    events = session.exec(
        select(AuditEvent).where(AuditEvent.action == "reward.config.update")
    ).all()
    assert len(events) == 2 and events[1].details["changed"] == ["judge.weight"]
    page = client.get(url)
    assert find_all(page.text, "data-testid", "reward-form-revision")[0]["value"] == "2"
    assert find_all(page.text, "data-testid", "field-judge.weight")[0]["value"] == "2.0"


def test_a_stale_revision_is_refused_and_nothing_is_overwritten(
    client: TestClient, session: Session, team
) -> None:
    project, _admin, engineer, _reviewer = team
    login(client, engineer.email)
    url = f"/projects/{project.id}/rewards"
    token = csrf_for(client, url)
    assert client.post(url, data=_form(token, 0), follow_redirects=False).status_code == 303
    stale = client.post(url, data=_form(token, 0, **{"judge.weight": "9"}), follow_redirects=False)
    assert stale.status_code == 409
    assert "Someone else saved" in stale.text
    also_stale = client.post(url, data=_form(token, 5), follow_redirects=False)
    assert also_stale.status_code == 409
    row = session.exec(select(RewardConfig)).one()
    assert row.revision == 1 and row.config["judge"]["weight"] == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"safety.enabled": "1", "safety.patterns": "(unclosed"}, "regular expression"),
        ({"format.weight": "-1"}, "format.weight"),
        ({"length.min_length": "10", "length.max_length": "5"}, "max_length"),
        ({"judge.weight": "abc"}, "judge.weight"),
        ({"judge.weight": "0", "format.weight": "0", "grounding.weight": "0"}, "weight above 0"),
        ({"revision": "x"}, "revision"),
    ],
)
def test_bad_settings_answer_422_with_a_readable_message(
    client: TestClient, session: Session, team, overrides: dict, message: str
) -> None:
    project, _admin, engineer, _reviewer = team
    login(client, engineer.email)
    url = f"/projects/{project.id}/rewards"
    token = csrf_for(client, url)
    data = _form(token, 0) | overrides
    response = client.post(url, data=data, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert message in response.text
    assert session.exec(select(RewardConfig)).first() is None


def test_reviewers_see_the_page_read_only(client: TestClient, team) -> None:
    project, _admin, _engineer, reviewer = team
    login(client, reviewer.email)
    page = client.get(f"/projects/{project.id}/rewards")
    assert page.status_code == 200 and "reward-save" not in data_testids(page.text)
    token = csrf_for(client, f"/projects/{project.id}/rewards")
    refused = client.post(f"/projects/{project.id}/rewards", data=_form(token, 0))
    assert refused.status_code == 403


def test_api_reads_and_writes_the_config(client: TestClient, session: Session, team) -> None:
    project, _admin, engineer, reviewer = team
    headers = {
        "Authorization": f"Bearer {auth_service.create_api_token(session, engineer, 't').token}"
    }
    url = f"/api/v1/projects/{project.id}/reward-config"
    first = client.get(url, headers=headers).json()
    assert first["revision"] == 0 and first["config"] == RewardConfigModel().as_dict()
    config = first["config"] | {"judge": first["config"]["judge"] | {"neutral_reward": 0.3}}
    saved = client.put(url, json={"config": config, "revision": 0}, headers=headers)
    assert saved.status_code == 200 and saved.json()["revision"] == 1
    assert saved.json()["config"]["judge"]["neutral_reward"] == 0.3
    conflict = client.put(url, json={"config": config, "revision": 0}, headers=headers)
    assert conflict.status_code == 409
    bad = client.put(url, json={"config": {"judge": {"colour": 1}}, "revision": 1}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"] == "judge.colour"
    reviewer_headers = {
        "Authorization": f"Bearer {auth_service.create_api_token(session, reviewer, 't').token}"
    }
    assert (
        client.put(
            url, json={"config": config, "revision": 1}, headers=reviewer_headers
        ).status_code
        == 403
    )


# ---- preview -----------------------------------------------------------------------------------


def _rollout(project_id: int, key: str, group: str, step: int, response: str) -> Rollout:
    return Rollout(
        project_id=project_id,
        external_id=key,
        content_hash=hashlib.sha256(key.encode()).hexdigest(),
        input_messages=[{"role": "user", "content": "When is delivery due?"}],
        target_document=DOCUMENT,
        response=response,
        step=step,
        group_key=group,
    )


def _answer(quote: str) -> str:
    return json.dumps({"answer": "within thirty days", "quote": quote})


@pytest.fixture
def judged(session: Session, team):
    """Three groups of three generations; one group's rewards are all equal, one rollout is
    prose (gated), one verdict is a judge error and one rollout has no verdict."""
    project, admin, engineer, _reviewer = team
    rubric = rubric_service.create_rubric(
        session, project, actor=admin, name="Generic", template="generic_pass_fail"
    )
    version = rubric_publishing.publish_version(session, rubric, actor=admin, change_note="v1")
    good, bad = _answer("deliver the goods within thirty days"), _answer("ships in a week")
    plan = [
        # (key, group, step, response, verdict normalized or "error" or None for no verdict)
        ("a1", "A", 0, good, 0.8),
        ("a2", "A", 0, good, 0.8),
        ("a3", "A", 0, good, 0.8),
        ("b1", "B", 100, good, 1.0),
        ("b2", "B", 100, bad, 1.0),
        ("b3", "B", 100, "I think it is thirty days.", 0.2),
        ("c1", "C", 100, good, "error"),
        ("c2", "C", 100, good, 0.0),
        ("c3", "C", 100, good, None),
    ]
    run = JudgeRun(
        project_id=project.id or 0, rubric_version_id=version.id or 0, status="completed"
    )
    session.add(run)
    session.flush()
    rollouts = {}
    for key, group, step, response, verdict in plan:
        rollout = _rollout(project.id or 0, key, group, step, response)
        session.add(rollout)
        session.flush()
        rollouts[key] = rollout
        session.add(
            JudgeWorkItem(
                run_id=run.id or 0,
                rollout_id=rollout.id or 0,
                subject_key=f"r:{rollout.id}",
                status="pending" if verdict is None else "done",
            )
        )
        if verdict is None:
            continue  # still waiting for its verdict
        failed = verdict == "error"
        session.add(
            Verdict(
                run_id=run.id or 0,
                rollout_id=rollout.id or 0,
                scores={} if failed else {"criteria": {"correct": verdict}},
                normalized=0.5 if failed else verdict,
                parse_status="error" if failed else "ok",
                error="timeout" if failed else None,
            )
        )
    session.add(
        GoldItem(project_id=project.id or 0, rollout_id=rollouts["a1"].id or 0, split="test")
    )
    session.commit()
    return project, engineer, run, rollouts


def _expected_rewards() -> dict[str, float]:
    # Defaults: format (0.2, gate to 0), length (weight 0), grounding (0.2), judge (1.0); the
    # project's schema has no "text_excerpt", so grounding reads the default field and does
    # not apply: reward = (0.2 * format + 1.0 * judge) / 1.2.
    def reward(judge: float) -> float:
        return (0.2 * 1.0 + 1.0 * judge) / 1.2

    return {
        "a1": reward(0.8),
        "a2": reward(0.8),
        "a3": reward(0.8),
        "b1": reward(1.0),
        "b2": reward(1.0),
        "b3": 0.0,  # prose: the format gate
        "c1": 0.5,  # judge error: neutral
        "c2": reward(0.0),
    }


def test_preview_from_stored_verdicts(client: TestClient, session: Session, judged) -> None:
    project, engineer, run, rollouts = judged
    login(client, engineer.email)
    url = f"/projects/{project.id}/rewards/preview"
    page = client.get(url, params={"run_id": run.id})
    assert page.status_code == 200 and "reward-preview" in data_testids(page.text)
    rows = {
        r["data-rollout"]: float(r["data-reward"] or 0)
        for r in find_all(page.text, "data-testid", "reward-row")
    }
    expected = _expected_rewards()
    by_id = {str(rollouts[k].id): v for k, v in expected.items()}
    assert rows == pytest.approx(by_id)
    bins = find_all(page.text, "data-testid", "hist-bin")
    assert len(bins) == 10 and sum(int(b["data-count"] or 0) for b in bins) == len(expected)
    assert find_all(page.text, "data-testid", "preview-missing")  # c3 has no verdict
    # Groups whose rewards are all equal, computed independently.
    groups: dict[str, list[float]] = defaultdict(list)
    for key, value in expected.items():
        groups[key[0].upper()].append(value)
    flat = sorted(g for g, values in groups.items() if max(values) - min(values) < 1e-9)
    assert flat == ["A"]
    zero = find_all(page.text, "data-testid", "preview-zero-spread")
    assert zero and "A" in page.text
    components = {c["data-component"] for c in find_all(page.text, "data-testid", "component-row")}
    assert components == {"format", "length", "grounding", "judge"}
    assert 'style="' not in page.text  # widths come from CSS classes (CSP)

    fragment = client.get(url, params={"run_id": run.id}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "reward-preview" in data_testids(fragment.text)
    assert fragment.headers["vary"] == "HX-Request, HX-History-Restore-Request"

    gold = client.get(url, params={"run_id": run.id, "gold_split": "test"})
    assert len(find_all(gold.text, "data-testid", "reward-row")) == 1

    api = client.get(
        f"/api/v1/projects/{project.id}/reward-preview",
        params={"run_id": run.id},
        headers={
            "Authorization": f"Bearer {auth_service.create_api_token(session, engineer, 't').token}"
        },
    ).json()
    assert api["missing_verdicts"] == 1 and api["zero_spread_groups"] == ["A"]
    assert api["judge_errors"] == 1 and api["gated"] == 1 and api["groups"] == 3
    assert {r["external_id"]: r["reward"] for r in api["rows"]} == pytest.approx(expected)
    judge = next(c for c in api["components"] if c["name"] == "judge")
    assert judge["applicable"] == 6 and judge["evaluated"] == 7
    ok = [expected[k] for k in ("a1", "a2", "a3", "b1", "b2", "c2")]
    judge_shares = [v for v in (0.8, 0.8, 0.8, 1.0, 1.0, 0.0)]
    assert judge["mean_contribution"] == pytest.approx(sum(judge_shares) / 1.2 / len(ok))


def test_preview_bad_input_and_other_projects(client: TestClient, session: Session, judged) -> None:
    project, engineer, run, _rollouts = judged
    login(client, engineer.email)
    url = f"/projects/{project.id}/rewards/preview"
    assert client.get(url, params={"run_id": 999999}).status_code == 404
    assert client.get(url, params={"run_id": run.id, "step": "x"}).status_code == 422
    assert client.get(url, params={"run_id": run.id, "sample": "0"}).status_code == 422
    assert client.get(url, params={"run_id": "abc"}).status_code == 422
    sampled = client.get(url, params={"run_id": run.id, "sample": "3"})
    assert len(find_all(sampled.text, "data-testid", "reward-row")) <= 3
    stepped = client.get(url, params={"run_id": run.id, "step": "0"})
    assert len(find_all(stepped.text, "data-testid", "reward-row")) == 3
    other_admin = make_user(session, "other@example.com")
    other = make_project(session, other_admin, "Other")
    login(client, other_admin.email)
    leak = client.get(f"/projects/{other.id}/rewards/preview", params={"run_id": run.id})
    assert leak.status_code == 404  # a run of another project is not found


def test_preview_uses_the_saved_configuration(session: Session, judged) -> None:
    project, engineer, run, rollouts = judged
    config = RewardConfigModel.model_validate(
        {"format": {"gate": False}, "judge": {"neutral_reward": 0.1}}
    )
    reward_service.save_config(session, project, actor=engineer, config=config, expected_revision=0)
    result = reward_service.preview(
        session, project, reward_service.PreviewSelection(run_id=run.id or 0)
    )
    rewards = {row.external_id: row.reward for row in result.rows}
    assert rewards["c1"] == 0.1  # the new neutral value
    assert rewards["b3"] == pytest.approx((0.2 * 0.0 + 1.0 * 0.2) / 1.2)  # no gate: judged
    assert result.gated == 0


def test_preview_warns_when_grounding_applies_to_no_rollout_until_the_document_is_found(
    client: TestClient, session: Session, judged
) -> None:
    """Rows without a target_document field: grounding silently never applies. The preview says
    so, and once the project says where the document is (a metadata key), grounding applies."""
    from sqlmodel import select

    from app.projects import service as project_service
    from app.projects.schemas import DocumentLocation

    project, engineer, run, _rollouts = judged
    for rollout in session.exec(select(Rollout).where(Rollout.project_id == project.id)):
        rollout.metadata_ = {"contract": rollout.target_document}
        rollout.target_document = None
        session.add(rollout)
    session.commit()
    token = auth_service.create_api_token(session, engineer, "t").token
    url = f"/api/v1/projects/{project.id}/reward-preview"
    headers = {"Authorization": f"Bearer {token}"}
    before = client.get(url, params={"run_id": run.id}, headers=headers).json()
    assert before["warnings"] == [
        "Grounding applies to 0 of 8 rollouts: set where the document is in project settings."
    ]
    login(client, engineer.email)
    page = client.get(f"/projects/{project.id}/rewards/preview", params={"run_id": run.id})
    assert "Grounding applies to 0 of 8 rollouts" in page.text

    project_service.update_project(
        session,
        project,
        actor=engineer,
        expected_revision=project.revision,
        name=project.name,
        description=project.description,
        policy_system_prompt=project.policy_system_prompt,
        output_schema=project.output_schema,
        document_location=DocumentLocation(source="metadata", metadata_key="contract"),
    )
    after = client.get(url, params={"run_id": run.id}, headers=headers).json()
    # The document is found now; these answers quote under "quote", not "text_excerpt".
    assert after["warnings"] == [
        "Grounding applies to 0 of 8 rollouts (no excerpts to check): check its settings "
        "against the rollouts."
    ]
    state = reward_service.current_config(session, project.id or 0)
    data = state.model.as_dict()
    data["grounding"]["excerpt_fields"] = ["quote"]
    reward_service.save_config(
        session,
        project,
        actor=engineer,
        config=reward_service.parse_config(data),
        expected_revision=state.revision,
    )
    after = client.get(url, params={"run_id": run.id}, headers=headers).json()
    assert after["warnings"] == []
    grounding = next(c for c in after["components"] if c["name"] == "grounding")
    assert grounding["applicable"] > 0


def test_a_cached_preview_follows_new_verdicts_and_configurations(session: Session, judged) -> None:
    """Previews are cached per project revision, configuration, selection and the run's latest
    verdict: asking again reads the cache; a new verdict or a saved configuration recomputes."""
    project, engineer, run, rollouts = judged
    selection = reward_service.PreviewSelection(run_id=run.id or 0)
    first = reward_service.preview(session, project, selection)
    assert first.missing_verdicts == 1
    assert reward_service.preview(session, project, selection).rows == first.rows
    session.add(
        Verdict(
            run_id=run.id or 0,
            rollout_id=rollouts["c3"].id or 0,
            scores={"criteria": {"correct": 1.0}},
            normalized=1.0,
            parse_status="ok",
        )
    )
    session.commit()
    judged_now = reward_service.preview(session, project, selection)
    assert judged_now.missing_verdicts == 0
    config = RewardConfigModel.model_validate(
        {"format": {"gate": False}, "judge": {"neutral_reward": 0.1}}
    )
    reward_service.save_config(session, project, actor=engineer, config=config, expected_revision=0)
    rewards = {
        r.external_id: r.reward for r in reward_service.preview(session, project, selection).rows
    }
    assert rewards["c1"] == 0.1  # the new configuration's neutral value
