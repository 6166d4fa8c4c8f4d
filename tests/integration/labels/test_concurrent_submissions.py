"""30 experts submit 20 labels each at the same time over HTTP, against a live server: exactly 600
labels are stored, none lost or duplicated, and every queue item counts all 30 of them.

Runs on SQLite and on PostgreSQL (RS_TEST_DB=postgres), where writes really run in parallel.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session, func, select

from app.audit.models import AuditEvent
from app.auth import service as auth_service
from app.labels import queues
from app.labels.models import Label, QueueItem
from app.labels.queues import QueueSelection
from tests.support.factories import make_project, make_rollouts, make_user, make_version

EXPERTS = 30
ITEMS = 20
CRITERIA = ("Follows_Instructions", "Factually_Accurate", "Complete", "Clear", "Safe")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def _label_for(expert: int, position: int) -> dict[str, object]:
    # Distinct but deterministic answers, so a label stored under the wrong expert shows up.
    values = {key: (expert + position + i) % 2 == 0 for i, key in enumerate(CRITERIA)}
    return {
        "values": values,
        "critiques": {"Clear": f"expert {expert} on item {position}"},
        "overall_critique": f"#{expert}/{position}",
    }


def test_thirty_experts_submit_twenty_labels_each_at_once(session: Session, server: str) -> None:
    owner = make_user(session, "owner@example.com")
    experts = [make_user(session, f"expert{i:02d}@example.com") for i in range(EXPERTS)]
    project = make_project(session, owner, "Busy", members=[(u, "expert") for u in experts])
    version = make_version(session, project, "generic_pass_fail")
    make_rollouts(session, project, ITEMS)
    queue = queues.create_queue(
        session,
        project,
        actor=owner,
        name="Everyone labels everything",
        rubric_version_id=version.id,
        assignee_ids=[u.id for u in experts],
        overlap=EXPERTS,
        selection=QueueSelection(),
    )
    tokens = [auth_service.create_api_token(session, u, "load").token for u in experts]
    base = f"{server}/api/v1/projects/{project.id}/queues/{queue.id}"
    start = threading.Barrier(EXPERTS)

    def expert_session(index: int) -> list[int]:
        statuses: list[int] = []
        headers = {"Authorization": f"Bearer {tokens[index]}"}
        with httpx.Client(headers=headers, timeout=120) as http:
            start.wait()  # everyone starts together
            while True:
                offered = http.get(f"{base}/next")
                if offered.status_code == 204:
                    return statuses
                assert offered.status_code == 200, offered.text
                item = offered.json()
                body = _label_for(index, item["position"])
                url = f"{base}/items/{item['id']}/submit"
                response = http.post(url, json=body)
                statuses.append(response.status_code)
                assert response.status_code == 200, response.text
                if item["position"] % 5 == index % 5:
                    # A double click: the same submission again stores nothing new.
                    again = http.post(url, json=body)
                    assert again.status_code == 200, again.text
                    assert again.json()["outcome"] == "unchanged"

    with ThreadPoolExecutor(max_workers=EXPERTS) as pool:
        results = list(pool.map(expert_session, range(EXPERTS)))

    assert [len(r) for r in results] == [ITEMS] * EXPERTS
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Label)).one() == EXPERTS * ITEMS
    pairs = session.exec(select(Label.subject_key, Label.annotator_key)).all()
    assert len(set(pairs)) == EXPERTS * ITEMS
    items = session.exec(select(QueueItem).where(QueueItem.queue_id == queue.id)).all()
    assert [item.labels_done for item in items] == [EXPERTS] * ITEMS
    for label in session.exec(select(Label)).all():
        expert = int(label.annotator_name.removeprefix("expert"))
        position = next(i.position for i in items if i.subject_key == label.subject_key)
        expected = _label_for(expert, position)
        assert label.values == expected["values"]
        assert label.status == "submitted" and label.revision == 1
    submits = session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "label.submit")
    ).one()
    assert submits == EXPERTS * ITEMS
