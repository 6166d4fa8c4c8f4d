import json, random
import pytest
from sqlmodel import Session
from app.labels import service, gold
from app.labels.service import QueueSelection, LabelInput
from tests.integration.labels.builders import make_legal_rollouts, make_version, make_run, comments_answer, add_label
from tests.integration.labels.test_disagreements import _judge_scores
from tests.support.factories import make_project, make_user
from tests.e2e.test_labeling_keyboard import _sign_in_with_the_keyboard

pytestmark = pytest.mark.e2e

def test_screens(page, session: Session):
    owner = make_user(session, "owner@example.com")
    lawyer = make_user(session, "lawyer@example.com")
    bob = make_user(session, "bob@example.com")
    project = make_project(session, owner, "Supply contracts", members=[(lawyer, "expert"), (bob, "expert")])
    version = make_version(session, project, "legal_contract_review")
    rollouts = make_legal_rollouts(session, project, limit=10)
    run = make_run(session, project, version, {r.id: (comments_answer(s) if (s := _judge_scores(r)) is not None else None) for r in rollouts})
    rng = random.Random(1)
    for r in rollouts[2:8]:
        add_label(session, project, version, r, bob, {k: rng.randint(1,5) for k in ("TargetDocument_Grounding","Reference_Consistency","Actionability")}, critiques={"Actionability": "Too vague: no escalation."})
    queue = service.create_queue(session, project, actor=owner, name="This week", rubric_version_id=version.id, assignee_ids=[lawyer.id, bob.id], overlap=1, selection=QueueSelection())
    gold.add_gold(session, project, actor=bob, rollout_ids=[rollouts[2].id, rollouts[3].id], split="test")
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.on("response", lambda r: r.status >= 400 and print("BAD", r.status, r.request.method, r.url))
    _sign_in_with_the_keyboard(page, "bob@example.com")
    page.goto(f"/projects/{project.id}/queues/{queue.id}/next")
    page.keyboard.press("4"); page.keyboard.press("c"); page.keyboard.type("ok")
    page.screenshot(path="/tmp/shot_annotate.png")
    page.keyboard.press("?")
    page.screenshot(path="/tmp/shot_help.png")
    page.goto(f"/projects/{project.id}/labeling"); page.screenshot(path="/tmp/shot_hub.png", full_page=True)
    page.goto(f"/projects/{project.id}/disagreements/{run.id}"); page.screenshot(path="/tmp/shot_dis.png")
    page.goto(f"/projects/{project.id}/disagreements/{run.id}/rollouts/{rollouts[3].id}"); page.screenshot(path="/tmp/shot_dis_detail.png")
    page.goto(f"/projects/{project.id}/agreement/runs/{run.id}"); page.screenshot(path="/tmp/shot_agree.png", full_page=True)
    page.goto(f"/projects/{project.id}/gold"); page.screenshot(path="/tmp/shot_gold.png", full_page=True)
    page.goto(f"/projects/{project.id}/queues/{queue.id}"); page.screenshot(path="/tmp/shot_queue.png")
    page.goto(f"/projects/{project.id}/labels"); page.screenshot(path="/tmp/shot_labels.png")
    page.goto(f"/projects/{project.id}/queues/new"); page.screenshot(path="/tmp/shot_new.png", full_page=True)
    pass
