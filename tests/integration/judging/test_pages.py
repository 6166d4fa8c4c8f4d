"""The judging pages: judge configurations, starting runs (selections, estimate, cross-judge),
live progress that stops polling at the end, the verdict table, cancel and resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.judging import engine as judge_engine
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import GoldItem
from app.projects.models import Project
from tests.support.factories import (
    fast_options,
    insert_pairs,
    insert_rollouts,
    make_judge_config,
    make_project,
    make_user,
    make_version,
)
from tests.support.judge_server import JudgeServer
from tests.support.web import csrf_for, data_testids, find_all, login

HTMX = {"HX-Request": "true"}


@pytest.fixture
def engineer(session: Session) -> User:
    return make_user(session, "engineer@example.com")


@pytest.fixture
def project(session: Session, engineer: User) -> Project:
    owner = make_user(session, "owner@example.com")
    return make_project(session, owner, "Judging pages", members=[(engineer, "engineer")])


@pytest.fixture
def web(client: TestClient, engineer: User, project: Project) -> TestClient:
    login(client, engineer.email)
    return client


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer() as srv:
        yield srv


def _post(client: TestClient, url: str, data: Any, *, htmx: bool = True, **kw: Any):
    token = csrf_for(client, "/")
    headers = {"X-CSRF-Token": token, **(HTMX if htmx else {})}
    return client.post(url, data=data, headers=headers, follow_redirects=False, **kw)


CONFIG_FORM = {
    "name": "Local vLLM",
    "provider": "openai_compat",
    "model_id": "qwen2.5-7b-instruct",
    "base_url": "http://127.0.0.1:8000/v1",
    "api_key_env": "RS_JUDGE_KEY_VLLM",
    "temperature": "0",
    "max_tokens": "800",
    "concurrency": "16",
    "timeout_s": "30",
    "max_attempts": "6",
    "base_delay_s": "0.5",
    "max_delay_s": "20",
    "structured_output": "auto",
    "price_input_per_1k": "0.0002",
    "price_output_per_1k": "0.0006",
}


def test_an_engineer_creates_edits_and_deletes_a_judge_configuration(
    web: TestClient, session: Session, project: Project
) -> None:
    base = f"/projects/{project.id}/judges"
    response = _post(web, f"{base}/configs", CONFIG_FORM)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == base
    config = session.exec(select(JudgeConfig)).one()
    assert config.params["max_tokens"] == 800 and config.params["base_delay_s"] == 0.5
    assert config.api_key_env == "RS_JUDGE_KEY_VLLM" and config.concurrency == 16

    page = web.get(base)
    assert "judge-configs" in data_testids(page.text)
    rows = find_all(page.text, "data-testid", "judge-config")
    assert [r["data-config-id"] for r in rows] == [str(config.id)]

    edit = web.get(f"{base}/configs/{config.id}")
    assert 'value="RS_JUDGE_KEY_VLLM"' in edit.text
    changed = {**CONFIG_FORM, "concurrency": "32", "revision": str(config.revision)}
    assert _post(web, f"{base}/configs/{config.id}", changed).status_code == 204
    session.refresh(config)
    assert config.concurrency == 32 and config.revision == 2
    # A second save from the same (now stale) form is refused, not silently applied.
    stale = _post(web, f"{base}/configs/{config.id}", {**changed, "concurrency": "4"})
    assert stale.status_code == 409
    session.refresh(config)
    assert config.concurrency == 32

    actions = session.exec(
        select(AuditEvent.action).where(col(AuditEvent.action).startswith("judge_config."))
    ).all()
    assert sorted(actions) == ["judge_config.create", "judge_config.update"]
    update = session.exec(
        select(AuditEvent).where(AuditEvent.action == "judge_config.update")
    ).one()
    assert update.details["before"]["concurrency"] == 16
    assert update.details["after"]["concurrency"] == 32

    assert _post(web, f"{base}/configs/{config.id}/delete", {}).status_code == 204
    assert session.exec(select(JudgeConfig)).first() is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"api_key_env": "sk-proj-abc123def456"}, "NAME of an environment variable"),
        ({"base_url": ""}, "base_url is required"),
        ({"base_url": "ftp://example.com"}, "must start with http"),
        ({"concurrency": "0"}, "concurrency"),
        ({"concurrency": "many"}, "concurrency"),
        ({"provider": "carrier-pigeon"}, "provider"),
        ({"name": "  "}, "name"),
        ({"provider": "bedrock", "temperature": "1.5"}, "temperature between 0 and 1"),
        ({"provider": "bedrock", "batch_s3_uri": "bucket/prefix"}, "s3://"),
        # The app's own secrets and cloud credentials can never be a judge's key variable.
        ({"api_key_env": "RS_SECRET_KEY"}, "Rubric Studio&#39;s own settings"),
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "never a judge key"),
        ({"api_key_env": "OPENAI_API_KEY"}, "use a name starting with RS_JUDGE_KEY_"),
        ({"base_url": "http://169.254.169.254/latest"}, "never allowed"),
        ({"base_url": "http://metadata.google.internal/v1"}, "cloud metadata"),
        ({"base_url": "http://10.0.0.5:8000/v1"}, "RS_OUTBOUND_ALLOW_PRIVATE"),
    ],
)
def test_bad_judge_configurations_get_a_readable_422(
    web: TestClient, session: Session, project: Project, change: dict[str, str], expected: str
) -> None:
    response = _post(web, f"/projects/{project.id}/judges/configs", {**CONFIG_FORM, **change})
    assert response.status_code == 422
    assert expected in response.text
    assert "error-message" in data_testids(response.text)
    assert session.exec(select(JudgeConfig)).first() is None


def test_a_key_pasted_as_the_env_var_name_is_never_stored(
    web: TestClient, session: Session, project: Project
) -> None:
    secret = "sk-live-0123456789abcdef"
    _post(web, f"/projects/{project.id}/judges/configs", {**CONFIG_FORM, "api_key_env": secret})
    stored = session.exec(select(AuditEvent)).all()
    assert all(secret not in str(e.details) for e in stored)
    assert session.exec(select(JudgeConfig)).first() is None


def test_a_configuration_used_by_a_run_cannot_be_deleted(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    config = make_judge_config(session, project)
    _start(web, project, version.id, [config.id])
    response = _post(web, f"/projects/{project.id}/judges/configs/{config.id}/delete", {})
    assert response.status_code == 409
    assert "used by 1 judge run" in response.text


def _start(web: TestClient, project: Project, version_id: Any, config_ids: list[Any], **extra):
    data: dict[str, Any] = {
        "rubric_version_id": str(version_id),
        "judge_config_ids": [str(c) for c in config_ids],
        **extra,
    }
    return _post(web, f"/projects/{project.id}/judges/runs", data)


def test_the_new_run_page_estimates_tokens_and_cost(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 30)
    config = make_judge_config(session, project, price_input_per_1k=1.0, price_output_per_1k=2.0)
    page = web.get(f"/projects/{project.id}/judges/runs/new")
    assert {"run-form", "estimate-button", "run-start"} <= data_testids(page.text)

    estimate = web.get(
        f"/projects/{project.id}/judges/runs/estimate",
        params={
            "rubric_version_id": version.id,
            "judge_config_ids": [config.id],
            "repeats": "2",
            "sample": "10",
        },
        headers=HTMX,
    )
    assert estimate.status_code == 200
    assert "10</strong> subjects" in estimate.text and "20</strong> judge calls" in estimate.text
    tokens = find_all(estimate.text, "data-testid", "estimate-input-tokens")
    assert tokens
    # Nothing was created by estimating.
    assert session.exec(select(JudgeRun)).first() is None


def test_starting_a_run_creates_its_work_items_and_the_page_polls_until_the_end(
    web: TestClient, session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 6)
    config = make_judge_config(session, project, base_url=server.base_url)
    response = _start(web, project, version.id, [config.id], repeats="2", neutral_score="0.4")
    run = session.exec(select(JudgeRun)).one()
    assert response.headers["HX-Redirect"] == f"/projects/{project.id}/judges/runs/{run.id}"
    assert run.items_total == 12 and run.status == "queued"
    assert run.settings["neutral_score"] == 0.4
    assert run.judge_snapshot["name"] == config.name
    items = session.exec(select(JudgeWorkItem).where(JudgeWorkItem.run_id == run.id)).all()
    assert len(items) == 12 and {i.repeat for i in items} == {0, 1}
    assert all(i.subject_key == f"r:{i.rollout_id}" for i in items)

    page = web.get(f"/projects/{project.id}/judges/runs/{run.id}")
    (progress,) = find_all(page.text, "data-testid", "run-progress")
    assert progress["hx-trigger"] == "every 1s" and progress["data-status"] == "queued"
    fragment = web.get(f"/projects/{project.id}/judges/runs/{run.id}/progress", headers=HTMX)
    assert fragment.status_code == 200 and "run-cancel" in data_testids(fragment.text)

    judge_engine.work_on_run(engine, run.id or 0, fast_options())

    done = web.get(f"/projects/{project.id}/judges/runs/{run.id}/progress", headers=HTMX)
    assert done.status_code == 286  # htmx stops polling
    # ... and the verdict table, listening for this event, loads what the run produced.
    assert done.headers["HX-Trigger"] == "run-finished"
    (listener,) = find_all(page.text, "data-testid", "verdict-filter")
    assert "run-finished from:body" in str(listener["hx-trigger"])
    (final,) = find_all(done.text, "data-testid", "run-progress")
    assert final["data-status"] == "completed" and "hx-trigger" not in final
    assert "run-error-banner" not in data_testids(done.text)
    assert ">12</strong> of <strong" in done.text
    runs_table = web.get(f"/projects/{project.id}/judges/runs-table", headers=HTMX)
    assert runs_table.status_code == 286

    page = web.get(f"/projects/{project.id}/judges/runs/{run.id}")
    rows = find_all(page.text, "data-testid", "verdict-row")
    assert len(rows) == 12 and {r["data-parse-status"] for r in rows} == {"ok"}
    links = find_all(page.text, "data-testid", "verdict-rollout")
    assert links[0]["href"].startswith(f"/projects/{project.id}/rollouts/")


def test_a_run_whose_every_call_failed_says_so_with_its_first_error(
    web: TestClient, session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    from tests.support.judge_server import FaultSequence

    version = make_version(session, project)
    insert_rollouts(session, project, 3)
    config = make_judge_config(session, project, base_url=server.base_url)
    _start(web, project, version.id, [config.id])
    run = session.exec(select(JudgeRun)).one()
    server.set_faults(FaultSequence(["bad_request"] * 20))
    judge_engine.work_on_run(engine, run.id or 0, fast_options())

    base = f"/projects/{project.id}/judges"
    for html in (
        web.get(f"{base}/runs/{run.id}").text,
        web.get(f"{base}/runs/{run.id}/progress", headers=HTMX).text,
    ):
        (status,) = find_all(html, "data-testid", "progress-status")
        (progress,) = find_all(html, "data-testid", "run-progress")
        assert progress["data-status"] == "failed"
        assert "run-error-banner" in data_testids(html)
        assert "This run failed." in html and "The first error:" in html
        assert "bad_request" in html
    (badge,) = find_all(web.get(base).text, "data-testid", "run-status")
    assert badge["data-status"] == "failed"
    # The run's selection reads as words, not JSON.
    run_page = web.get(f"{base}/runs/{run.id}").text
    assert find_all(run_page, "data-testid", "run-selection")
    facts = run_page[run_page.index('data-testid="run-facts"') :]
    facts = facts[: facts.index("</dl>")]
    assert "&#34;" not in facts and "{" not in facts
    api = web.get(f"/api/v1/projects/{project.id}/judge-runs/{run.id}").json()
    assert api["status"] == "failed" and api["status_label"] == "failed"
    assert "The first error:" in api["message"]


def test_the_verdict_table_pages_and_filters(
    web: TestClient, session: Session, engine: Engine, project: Project, server: JudgeServer
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 60)
    config = make_judge_config(session, project, base_url=server.base_url)
    _start(web, project, version.id, [config.id])
    run = session.exec(select(JudgeRun)).one()
    judge_engine.work_on_run(engine, run.id or 0, fast_options())
    # Mark a few as invalid so the filter has something to find.
    invalid_ids = session.exec(
        select(Verdict.id).where(Verdict.run_id == run.id).order_by(col(Verdict.id)).limit(3)
    ).all()
    for verdict in session.exec(select(Verdict).where(col(Verdict.id).in_(invalid_ids))):
        verdict.parse_status = "invalid"
        session.add(verdict)
    session.commit()

    base = f"/projects/{project.id}/judges/runs/{run.id}"
    page = web.get(base)
    assert len(find_all(page.text, "data-testid", "verdict-row")) == 50
    (more,) = find_all(page.text, "data-testid", "verdicts-more")
    rest = web.get(str(more["hx-get"]), headers=HTMX)
    assert len(find_all(rest.text, "data-testid", "verdict-row")) == 10
    assert "verdicts-more" not in data_testids(rest.text)

    filtered = web.get(f"{base}/verdicts", params={"parse_status": "invalid"}, headers=HTMX)
    rows = find_all(filtered.text, "data-testid", "verdict-row")
    assert len(rows) == 3 and {r["data-parse-status"] for r in rows} == {"invalid"}


def test_a_random_sample_is_reproducible_from_its_recorded_seed(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 40)
    config = make_judge_config(session, project)
    _start(web, project, version.id, [config.id], sample="7")
    first = session.exec(select(JudgeRun)).one()
    seed = first.selection["seed"]
    assert isinstance(seed, int) and first.selection["matched"] == 40

    _start(web, project, version.id, [config.id], sample="7", seed=str(seed))
    second = session.exec(select(JudgeRun).where(JudgeRun.id != first.id)).one()

    def subjects(run: JudgeRun) -> list[int]:
        query = select(JudgeWorkItem.rollout_id).where(JudgeWorkItem.run_id == run.id)
        return sorted(session.exec(query).all())

    assert len(subjects(first)) == 7
    assert subjects(first) == subjects(second)


def test_filters_and_the_gold_set_narrow_the_selection(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    early = insert_rollouts(session, project, 5, prefix="early", step=0, model="m1", group="g1")
    late = insert_rollouts(session, project, 5, prefix="late", step=100, model="m2", group="g2")
    config = make_judge_config(session, project)
    for rollout_id in early[:2] + late[:1]:
        session.add(GoldItem(project_id=project.id or 0, rollout_id=rollout_id, split="test"))
    session.commit()

    def run_subjects(**extra: str) -> set[int]:
        _start(web, project, version.id, [config.id], **extra)
        run = session.exec(select(JudgeRun).order_by(col(JudgeRun.id).desc())).first()
        assert run is not None
        query = select(JudgeWorkItem.rollout_id).where(JudgeWorkItem.run_id == run.id)
        return set(session.exec(query).all())

    assert run_subjects(steps="100") == set(late)
    assert run_subjects(models="m1", groups="g1, g2") == set(early)
    assert run_subjects(source="gold") == set(early[:2] + late[:1])
    assert run_subjects(source="gold", steps="100") == {late[0]}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"steps": "1x"}, "Steps: “1x” is not a whole number"),
        ({"repeats": "0"}, "repeats"),
        ({"neutral_score": "2"}, "neutral_score"),
        ({"sample": "-3"}, "sample"),
        ({"judge_config_ids": []}, "at least one judge"),
        ({"rubric_version_id": "999999"}, "No such published rubric version"),
        ({"steps": "12345"}, "matches no rollouts"),
    ],
)
def test_bad_run_requests_get_a_readable_4xx(
    web: TestClient,
    session: Session,
    project: Project,
    extra: dict[str, Any],
    expected: str,
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 3)
    config = make_judge_config(session, project)
    data: dict[str, Any] = {
        "rubric_version_id": str(version.id),
        "judge_config_ids": [str(config.id)],
        **extra,
    }
    response = _post(web, f"/projects/{project.id}/judges/runs", data)
    assert 400 <= response.status_code < 500
    assert expected in response.text
    assert session.exec(select(JudgeRun)).first() is None


def test_cross_judge_runs_share_a_comparison_key_and_the_same_rollouts(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 20)
    first = make_judge_config(session, project, name="judge one")
    second = make_judge_config(session, project, name="judge two", model_id="other-model")
    response = _start(web, project, version.id, [first.id, second.id], sample="5")
    runs = session.exec(select(JudgeRun).order_by(col(JudgeRun.id))).all()
    assert len(runs) == 2
    key = runs[0].comparison_key
    assert key and runs[1].comparison_key == key
    assert response.headers["HX-Redirect"].endswith(f"?comparison={key}")
    assert {r.judge_snapshot["name"] for r in runs} == {"judge one", "judge two"}

    def subjects(run: JudgeRun) -> list[int]:
        query = select(JudgeWorkItem.rollout_id).where(JudgeWorkItem.run_id == run.id)
        return sorted(session.exec(query).all())

    assert subjects(runs[0]) == subjects(runs[1]) and len(subjects(runs[0])) == 5
    listing = web.get(f"/projects/{project.id}/judges", params={"comparison": key})
    assert len(find_all(listing.text, "data-testid", "judge-run-row")) == 2


def test_a_preference_rubric_makes_a_pairwise_run_in_both_orders(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project, "pairwise_preference")
    rollouts = insert_rollouts(session, project, 8)
    pairs = insert_pairs(session, project, rollouts)
    config = make_judge_config(session, project)
    _start(web, project, version.id, [config.id], repeats="2")
    run = session.exec(select(JudgeRun)).one()
    assert run.kind == "pairwise" and run.items_total == 4 * 2 * 2
    items = session.exec(select(JudgeWorkItem).where(JudgeWorkItem.run_id == run.id)).all()
    assert {(i.pair_id, i.repeat, i.order_shown) for i in items} == {
        (p, r, o) for p in pairs for r in (0, 1) for o in ("AB", "BA")
    }
    assert all(i.subject_key == f"p:{i.pair_id}" for i in items)
    page = web.get(f"/projects/{project.id}/judges/runs/{run.id}")
    assert page.status_code == 200 and "both orders" in page.text


def test_cancel_and_resume_from_the_run_page(
    web: TestClient, session: Session, project: Project
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 3)
    config = make_judge_config(session, project)
    _start(web, project, version.id, [config.id])
    run = session.exec(select(JudgeRun)).one()
    base = f"/projects/{project.id}/judges/runs/{run.id}"

    assert _post(web, f"{base}/cancel", {}).status_code == 204
    session.refresh(run)
    assert run.status == "cancelled"
    page = web.get(base)
    assert "run-resume" in data_testids(page.text) and "run-cancel" not in data_testids(page.text)
    again = _post(web, f"{base}/cancel", {})
    assert again.status_code == 409 and "only a queued or running run" in again.text

    assert _post(web, f"{base}/resume", {}).status_code == 204
    session.refresh(run)
    assert run.status == "queued"
    actions = session.exec(
        select(AuditEvent.action).where(col(AuditEvent.action).startswith("judge_run."))
    ).all()
    assert sorted(actions) == ["judge_run.cancel", "judge_run.create", "judge_run.resume"]


def test_pages_of_another_project_are_not_found(
    web: TestClient, session: Session, project: Project
) -> None:
    stranger = make_user(session)
    other = make_project(session, stranger, "Someone else's")
    version = make_version(session, other)
    insert_rollouts(session, other, 1)
    config = make_judge_config(session, other)
    from tests.support.factories import start_runs

    (run,) = start_runs(session, other, version, [config])
    # Ids from another project, under this project's URL: 404, not someone else's data.
    assert web.get(f"/projects/{project.id}/judges/runs/{run.id}").status_code == 404
    assert web.get(f"/projects/{project.id}/judges/configs/{config.id}").status_code == 404
    response = _start(web, project, version.id, [config.id])
    assert response.status_code == 404


@pytest.mark.parametrize("htmx", [True, False])
def test_fragment_routes_answer_with_their_fragment_with_or_without_htmx(
    web: TestClient, session: Session, project: Project, htmx: bool
) -> None:
    version = make_version(session, project)
    insert_rollouts(session, project, 2)
    config = make_judge_config(session, project)
    _start(web, project, version.id, [config.id])
    run = session.exec(select(JudgeRun)).one()
    headers = HTMX if htmx else {}
    base = f"/projects/{project.id}/judges"
    progress = web.get(f"{base}/runs/{run.id}/progress", headers=headers)
    assert progress.status_code == 200 and "<html" not in progress.text
    assert "run-progress" in data_testids(progress.text)
    table = web.get(f"{base}/runs-table", headers=headers)
    assert table.status_code == 200 and "judge-runs" in data_testids(table.text)
    verdicts = web.get(f"{base}/runs/{run.id}/verdicts", headers=headers)
    assert "no-verdicts" in data_testids(verdicts.text) and "<html" not in verdicts.text
    assert progress.headers["Vary"] == "HX-Request, HX-History-Restore-Request"


def test_untrusted_names_and_errors_are_shown_as_text(
    web: TestClient, session: Session, project: Project
) -> None:
    import io

    from app.judging import external

    version = make_version(session, project)
    insert_rollouts(session, project, 1, prefix="<img src=x onerror=alert(1)>")
    scores = {c["key"]: True for c in version.definition["criteria"]}
    line = {
        "rollout_id": "<img src=x onerror=alert(1)>-0",
        "judge": "<script>alert('judge')</script>",
        "scores": scores,
    }
    summary = external.import_verdicts(
        session,
        project,
        actor=None,
        rubric_version_id=version.id or 0,
        stream=io.BytesIO(json.dumps(line).encode()),
    )
    run_id = summary.runs[0].id
    page = web.get(f"/projects/{project.id}/judges/runs/{run_id}")
    assert "<script>alert('judge')</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "<img src=x" not in page.text
    listing = web.get(f"/projects/{project.id}/judges")
    assert "<script>alert('judge')</script>" not in listing.text


def test_test_connection_shows_the_answer_or_the_error(
    web: TestClient, session: Session, project: Project, server: JudgeServer
) -> None:
    """One tiny request through the real provider code (a local OpenAI-compatible server)."""
    from tests.support.judge_server import FaultSequence

    config = make_judge_config(session, project, base_url=server.base_url)
    base = f"/projects/{project.id}/judges/configs/{config.id}"
    edit = web.get(base).text
    (button,) = find_all(edit, "data-testid", "connection-test-button")
    assert button["hx-post"] == f"{base}/test-connection"

    ok = _post(web, f"{base}/test-connection", {})
    assert ok.status_code == 200 and "<html" not in ok.text
    (result,) = find_all(ok.text, "data-testid", "connection-result")
    assert result["data-ok"] == "true" and "Connected." in ok.text
    assert server.requests == 1  # one request, nothing else

    server.set_faults(FaultSequence(["server_error"] * 5))
    failed = _post(web, f"{base}/test-connection", {})
    (result,) = find_all(failed.text, "data-testid", "connection-result")
    assert result["data-ok"] == "false"
    assert "could not be reached or refused" in failed.text and "500" in failed.text
    assert server.requests == 2  # no retries for a connection test

    api = web.post(
        f"/api/v1/projects/{project.id}/judge-configs/{config.id}/test-connection",
        headers={"X-CSRF-Token": csrf_for(web, "/")},
    )
    assert api.status_code == 200
    body = api.json()
    assert body["ok"] is False and "500" in body["error"] and "\n" not in body["error"]
    assert len(body["error"]) <= 300
    assert session.exec(select(JudgeRun)).first() is None  # nothing is stored


def test_test_connection_to_a_closed_port_says_so(
    web: TestClient, session: Session, project: Project
) -> None:
    config = make_judge_config(session, project, base_url="http://127.0.0.1:9/v1")
    response = _post(web, f"/projects/{project.id}/judges/configs/{config.id}/test-connection", {})
    (result,) = find_all(response.text, "data-testid", "connection-result")
    assert result["data-ok"] == "false" and "connection-error" in data_testids(response.text)
