"""Browsing rollouts: filters, keyset pagination, full-text search on both backends, groups, the
detail page (safe rendering, JSON view, paged long texts) and the JSON API."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select, text

from app.labels.models import GoldItem, Label
from app.rollouts import browse as rollout_browse
from app.rollouts import display, search
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout
from app.rollouts.search import RolloutFilter
from app.rubrics import demo as rubric_demo
from app.rubrics import service as rubric_service
from tests.integration.rollouts.conftest import ImportFile, World, jsonl, studio_row
from tests.support.db import backend
from tests.support.web import data_testids, find_all, login

XSS = (
    "Looks fine. <script>alert(1)</script> <img src=x onerror=alert(2)> "
    '<a href="javascript:alert(3)">click me</a> [more](javascript:alert(4)) '
    '<style>body{display:none}</style> "quotes" & ampersands'
)


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values += [value or "" for _, value in attrs]


def script_urls(html: str) -> list[str]:
    """Attribute values (of real tags, not escaped text) that would run script."""
    parser = _Attributes()
    parser.feed(html)
    return [v for v in parser.values if v.strip().lower().startswith(("javascript:", "data:text"))]


def ids(items: list) -> list[str]:
    return [item.external_id for item in items]


def by_external_id(session: Session, external_id: str) -> Rollout:
    return session.exec(select(Rollout).where(Rollout.external_id == external_id)).one()


# ---------------------------------------------------------------------------- filters and pages


def test_filters_select_by_model_checkpoint_step_and_group(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n) for n in range(12)]))

    def listed(**kwargs: object) -> list[str]:
        page = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(**kwargs))
        return ids(page.items)

    assert len(listed()) == 12
    assert listed(model="policy-a") == [f"r-{n}" for n in range(1, 12, 2)]
    assert listed(checkpoint="ckpt-2") == ["r-2", "r-5", "r-8", "r-11"]
    assert listed(step_min=100, step_max=100) == ["r-1", "r-4", "r-7", "r-10"]
    assert listed(step_min=200) == ["r-2", "r-5", "r-8", "r-11"]
    assert listed(group="g-1") == ["r-4", "r-5", "r-6", "r-7"]
    assert listed(model="policy-b", group="g-1") == ["r-4", "r-6"]
    assert listed(model="nobody") == []
    with pytest.raises(rollout_service.InvalidInput):
        listed(step_min=5, step_max=1)


def test_labeled_and_gold_filters_read_the_label_and_gold_tables(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n) for n in range(4)]))
    rubric = rubric_demo.ensure_demo_rubric(session, world.project, world.engineer)
    version = rubric_service.latest_version(session, rubric.id or 0)
    assert version is not None
    labeled = by_external_id(session, "r-1")
    draft = by_external_id(session, "r-2")
    for rollout, status in ((labeled, "submitted"), (draft, "draft")):
        session.add(
            Label(
                project_id=world.pid,
                rollout_id=rollout.id or 0,
                subject_key=f"r:{rollout.id}",
                rubric_version_id=version.id or 0,
                annotator_key="user:1",
                status=status,
            )
        )
    session.add(GoldItem(project_id=world.pid, rollout_id=by_external_id(session, "r-3").id or 0))
    session.commit()

    def listed(**kwargs: object) -> list[str]:
        return ids(rollout_browse.list_rollouts(session, world.pid, RolloutFilter(**kwargs)).items)

    assert listed(labeled=True) == ["r-1"]  # a draft is not a label yet
    assert listed(labeled=False) == ["r-0", "r-2", "r-3"]
    assert listed(gold=True) == ["r-3"]
    assert listed(gold=False) == ["r-0", "r-1", "r-2"]
    assert listed(disagreement=True) == []
    assert listed(disagreement=False) == ["r-0", "r-1", "r-2", "r-3"]


def test_keyset_pages_cover_every_rollout_once(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n) for n in range(120)]))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = rollout_browse.list_rollouts(
            session, world.pid, RolloutFilter(), cursor=cursor, limit=50
        )
        pages += 1
        seen += ids(page.items)
        assert page.total == 120
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == [f"r-{n}" for n in range(120)]
    with pytest.raises(rollout_service.InvalidInput) as bad:
        rollout_browse.list_rollouts(session, world.pid, RolloutFilter(), cursor="abc")
    assert bad.value.message == "'abc' is not a page cursor: send back the next_cursor of a list."
    # Cursors are opaque; the plain ids of earlier releases are still read.
    first = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(), limit=50)
    assert first.next_cursor and not first.next_cursor.isdigit()
    legacy = rollout_browse.list_rollouts(
        session, world.pid, RolloutFilter(), cursor=str(first.items[-1].id), limit=50
    )
    assert ids(legacy.items) == [f"r-{n}" for n in range(50, 100)]


def test_counts_stop_at_a_cap(
    session: Session, import_file: ImportFile, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_file(jsonl([studio_row(n) for n in range(8)]))
    monkeypatch.setattr(search, "COUNT_CAP", 5)
    page = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(), limit=2)
    assert (page.total, page.total_capped) == (5, True)


# ---------------------------------------------------------------------------- search


SEARCH_ROWS = [
    studio_row(1, response="The indemnification clause survives termination of the agreement."),
    studio_row(2, response="Liability is capped at twelve months of fees."),
    studio_row(
        3,
        response="No issues found.",
        input=[{"role": "user", "content": "Check the INDEMNIFICATION terms"}],
    ),
    studio_row(4, response="Payment terms: net 30 days; liability cap missing."),
]


def test_full_text_search_finds_words_in_responses_and_prompts(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(SEARCH_ROWS))

    def found(q: str) -> list[str]:
        return ids(rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q=q)).items)

    assert found("indemnification") == ["r-1", "r-3"]
    assert found("liability") == ["r-2", "r-4"]
    assert found("liability payment") == ["r-4"]  # every word must match
    assert found("r-2") == ["r-2"]  # an exact id
    assert found("zebra") == []
    assert found("100%_") == []  # LIKE wildcards are plain characters


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL full-text search")
def test_postgres_search_stems_words_and_reads_web_search_syntax(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(SEARCH_ROWS))

    def found(q: str) -> list[str]:
        return ids(rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q=q)).items)

    assert found("terminated") == ["r-1"]  # stems to the same word as "termination"
    assert found('"liability is capped"') == ["r-2"]
    assert found("liability -payment") == ["r-2"]
    assert found("indemnification or payment") == ["r-1", "r-3", "r-4"]


@pytest.mark.skipif(backend() != "postgres", reason="the GIN index is PostgreSQL only")
def test_postgres_search_fetches_matching_ids_from_the_gin_index_and_the_id_index(
    engine: Engine, world: World
) -> None:
    with engine.begin() as conn:
        # 20,000 short rollouts written by SQL (fast); one mentions Zanzibar.
        conn.execute(
            text(
                "INSERT INTO rollout (project_id, external_id, content_hash, input_messages, "
                "reference_documents, response, metadata, created_at) "
                "SELECT :pid, 'r-' || n, md5(n::text), "
                "jsonb_build_array(jsonb_build_object('role', 'user', 'content', "
                "'Review contract ' || n)), '[]'::jsonb, "
                "CASE WHEN n = 15000 THEN 'Governed by the laws of Zanzibar.' "
                "ELSE 'Answer ' || n || ': the liability clause is uncapped.' END, "
                "'{}'::jsonb, now() FROM generate_series(1, 20000) AS n"
            ),
            {"pid": world.pid},
        )
    with engine.connect() as conn:
        # VACUUM moves the GIN index's pending list (fast inserts) into the index proper.
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE rollout"
        )

    def plan_of(query) -> str:  # type: ignore[no-untyped-def]
        compiled = query.compile(dialect=engine.dialect)
        with engine.begin() as conn:
            # 20,000 short rows are cheapest to read whole; at a million rollouts of 2.4 KB a
            # scan costs a hundred times more, and the plan checked here is the one taken there
            # (as in the facet plan test below).
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
        return "\n".join(row[0] for row in plan)

    rare = RolloutFilter(q="zanzibar")
    plan = plan_of(search.text_ids_query(world.pid, rare, search.COUNT_CAP + 1))
    assert "ix_rollout_search_vector" in plan, plan  # a rare word: ids from the GIN index
    assert "to_tsvector" not in plan, plan  # the stored column, never recomputed per row
    plan = plan_of(search.exact_ids_query(world.pid, rare))
    assert "uq_rollout_project_id_external_id" in plan, plan  # the exact id: its own index
    with Session(engine) as session:
        page = rollout_browse.list_rollouts(session, world.pid, rare)
        assert (ids(page.items), page.total, page.total_capped) == (["r-15000"], 1, False)
        # A word in every row: the probe stops at the cap, the page walks ids in order.
        common = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q="liability"))
        assert ids(common.items) == [f"r-{n}" for n in range(1, 51)]
        assert common.total_capped and common.total_estimate is not None
    plan = plan_of(
        search.page_query("postgresql", world.pid, RolloutFilter(q="liability"), None, 50)
    )
    assert "to_tsvector" not in plan, plan


# ---------------------------------------------------------------------------- pages


def test_list_page_filters_with_htmx_and_keeps_them_in_page_links(
    client: TestClient, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n) for n in range(60)]))
    login(client, world.expert.email)
    page = client.get(f"/projects/{world.pid}/rollouts")
    assert page.status_code == 200
    assert {"rollout-filters", "rollout-list", "rollout-count", "next-page"} <= data_testids(
        page.text
    )
    assert len(find_all(page.text, "data-testid", "rollout-row")) == 50
    assert "60 rollouts" in page.text

    fragment = client.get(
        f"/projects/{world.pid}/rollouts?model=policy-a&step_min=&labeled=",
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert fragment.headers["vary"] == "HX-Request, HX-History-Restore-Request"
    assert len(find_all(fragment.text, "data-testid", "rollout-row")) == 30
    assert "30 rollouts match the filters" in fragment.text
    assert "next-page" not in data_testids(fragment.text)

    first = client.get(f"/projects/{world.pid}/rollouts?checkpoint=ckpt-0")
    assert len(find_all(first.text, "data-testid", "rollout-row")) == 20
    later = client.get(f"/projects/{world.pid}/rollouts")
    next_link = find_all(later.text, "data-testid", "next-page")[0]["href"]
    assert next_link and "cursor=" in next_link
    second = client.get(str(next_link))
    assert len(find_all(second.text, "data-testid", "rollout-row")) == 10
    assert "first-page" in data_testids(second.text)


def test_bad_filter_values_get_a_readable_422(
    client: TestClient, import_file: ImportFile, world: World
) -> None:
    login(client, world.expert.email)
    for query, message in (
        ("step_min=abc", "The first step must be a whole number, not &#39;abc&#39;"),
        ("gold=maybe", "Gold must be yes, no or any"),
        ("cursor=xyz", "&#39;xyz&#39; is not a page cursor"),
    ):
        response = client.get(f"/projects/{world.pid}/rollouts?{query}")
        assert response.status_code == 422, query
        assert message in response.text


def test_groups_and_a_group_page(client: TestClient, import_file: ImportFile, world: World) -> None:
    import_file(jsonl([studio_row(n) for n in range(10)]))
    login(client, world.expert.email)
    groups = client.get(f"/projects/{world.pid}/rollouts/groups")
    links = find_all(groups.text, "data-testid", "group-link")
    assert [link["href"] for link in links] == [
        f"/projects/{world.pid}/rollouts/group?key=g-{n}" for n in range(3)
    ]
    sizes = re.findall(r'data-testid="group-size">(\d+)<', groups.text)
    assert sizes == ["4", "4", "2"]
    group = client.get(f"/projects/{world.pid}/rollouts/group?key=g-1")
    assert group.status_code == 200
    assert len(find_all(group.text, "data-testid", "generation")) == 4
    assert client.get(f"/projects/{world.pid}/rollouts/group?key=nope").status_code == 404


def test_the_detail_page_renders_untrusted_text_inert(
    client: TestClient, session: Session, import_file: ImportFile, world: World
) -> None:
    row = studio_row(
        1,
        response=XSS,
        target_document="<iframe src=javascript:alert(5)></iframe>" + "x" * 5000,
        references=[{"title": "<b>Playbook</b>", "text": "<script>alert(6)</script>"}],
        metadata={"note": "<svg onload=alert(7)>"},
    )
    row["input"][1]["content"] = "<img src=x onerror=alert(8)>"
    import_file(jsonl([row]))
    rollout = by_external_id(session, "r-1")
    login(client, world.expert.email)
    page = client.get(f"/projects/{world.pid}/rollouts/{rollout.id}")
    assert page.status_code == 200
    html = page.text
    for raw in ("<script>alert", "<img src=x", "<iframe", "<svg", "<style>body", "<b>Playbook"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert not script_urls(html)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    response_block = html.split('data-testid="response-text"')[1][:2000]
    assert 'class="untrusted' in html.split('data-testid="response-text"')[0][-200:]
    assert "&lt;a href=&#34;javascript:alert(3)&#34;&gt;click me&lt;/a&gt;" in response_block


def test_a_json_response_is_shown_as_collapsible_items(
    client: TestClient, session: Session, import_file: ImportFile, world: World
) -> None:
    comments = [
        {"text_excerpt": "7.2 Liability is unlimited", "rule": "R1", "comment_type": "risk"},
        {"text_excerpt": "<b>bold</b>", "rule": "R2", "comment_type": "deviation"},
    ]
    import_file(
        jsonl(
            [
                studio_row(1, response=json.dumps(comments)),
                studio_row(2, response='[{"text_excerpt": "cut off'),
            ]
        )
    )
    login(client, world.expert.email)
    good = client.get(f"/projects/{world.pid}/rollouts/{by_external_id(session, 'r-1').id}")
    block = good.text.split('data-testid="response-json"')[1].split("</div>")[0]
    assert block.count('<details open class="jsonitem">') == 2
    assert "#1 · 7.2 Liability is unlimited" in block
    assert "&lt;b&gt;bold&lt;/b&gt;" in block
    assert "response-text" in data_testids(good.text)  # the raw text stays available
    bad = client.get(f"/projects/{world.pid}/rollouts/{by_external_id(session, 'r-2').id}")
    badge = bad.text.split('data-testid="response-json-invalid"')[1][:200]
    assert "not valid JSON at line 1, column 19: Unterminated string" in badge


def test_long_texts_are_paged(
    client: TestClient, session: Session, import_file: ImportFile, world: World
) -> None:
    size = display.PAGE_CHARS
    response = "a" * size + "b" * size + "c" * 5000
    import_file(jsonl([studio_row(1, response=response)]))
    rollout = by_external_id(session, "r-1")
    login(client, world.expert.email)
    page = client.get(f"/projects/{world.pid}/rollouts/{rollout.id}")
    assert "b" * 10 not in page.text
    button = find_all(page.text, "data-testid", "show-more")[0]
    url = f"/projects/{world.pid}/rollouts/{rollout.id}/text/response?page=1"
    assert button["hx-get"] == url
    second = client.get(url, headers={"HX-Request": "true"})
    assert second.text.count("b" * size) == 1 and "a" * 10 not in second.text
    assert find_all(second.text, "data-testid", "show-more")[0]["hx-get"].endswith("page=2")
    third = client.get(url.replace("page=1", "page=2"), headers={"HX-Request": "true"})
    assert "c" * 5000 in third.text and "show-more" not in data_testids(third.text)
    part = f"/projects/{world.pid}/rollouts/{rollout.id}/text/input-9?page=1"
    assert client.get(part).status_code == 404


def test_rollout_pages_of_other_projects_are_not_found(
    client: TestClient, session: Session, import_file: ImportFile, world: World
) -> None:
    from tests.support.factories import make_project

    other = make_project(session, world.engineer, "Other")
    import_file(jsonl([studio_row(1)]), project=other)
    rollout = by_external_id(session, "r-1")
    login(client, world.engineer.email)
    assert client.get(f"/projects/{world.pid}/rollouts/{rollout.id}").status_code == 404
    assert client.get(f"/projects/{other.id}/rollouts/{rollout.id}").status_code == 200


# ---------------------------------------------------------------------------- API


def test_api_lists_and_reads_rollouts(
    client: TestClient, session: Session, import_file: ImportFile, world: World
) -> None:
    from app.auth import service as auth_service

    rows = [studio_row(n) for n in range(7)]
    rows.append(
        {"id": "p", "input": [{"role": "user", "content": "q"}], "responses": ["one", "two"]}
    )
    import_file(jsonl(rows))
    token = auth_service.create_api_token(session, world.expert, "t").token
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/v1/projects/{world.pid}/rollouts"
    first = client.get(f"{base}?limit=5", headers=headers).json()
    assert [item["external_id"] for item in first["items"]] == [f"r-{n}" for n in range(5)]
    assert (first["total"], first["total_capped"]) == (9, False)
    second = client.get(f"{base}?limit=5&cursor={first['next_cursor']}", headers=headers).json()
    assert [item["external_id"] for item in second["items"]] == ["r-5", "r-6", "p:a", "p:b"]
    assert second["next_cursor"] is None
    filtered = client.get(f"{base}?model=policy-a&step_min=100", headers=headers).json()
    assert [item["external_id"] for item in filtered["items"]] == ["r-1", "r-5"]
    assert client.get(f"{base}?step_min=-1", headers=headers).status_code == 422

    pair_a = second["items"][2]
    detail = client.get(f"{base}/{pair_a['id']}", headers=headers).json()
    assert detail["response"] == "one"
    assert detail["pair_partners"] == [
        {"position": "B", "rollout_id": second["items"][3]["id"], "external_id": "p:b"}
    ]
    assert detail["input"] == [{"role": "user", "content": "q"}]
    groups = client.get(f"/api/v1/projects/{world.pid}/rollout-groups", headers=headers).json()
    sizes = {g["group"]: g["rollouts"] for g in groups["items"]}
    auto = [key for key in sizes if key.startswith("auto:")]
    assert len(auto) == 1  # the pair's two answers share their prompt, so their group
    assert sizes == {auto[0]: 2, "g-0": 4, "g-1": 3}
    assert client.get(f"{base}/999999", headers=headers).status_code == 404


def test_a_rollout_with_100000_messages_pages_them(
    client: TestClient, session: Session, world: World
) -> None:
    messages = [{"role": "user", "content": f"message {i} " + "x" * 100} for i in range(100_000)]
    rollout = Rollout(
        project_id=world.pid,
        external_id="long-chat",
        content_hash="c" * 64,
        input_messages=messages,
        response='[{"text_excerpt": "the laws of Texas", "rule": "R1"}]',
    )
    session.add(rollout)
    session.commit()
    login(client, world.expert.email)
    page = client.get(f"/projects/{world.pid}/rollouts/{rollout.id}")
    assert page.status_code == 200
    assert len(page.content) < 300_000, len(page.content)  # was 18.7 MB
    shown = find_all(page.text, "data-testid", "input-message")
    assert [m["data-index"] for m in shown] == [str(i) for i in range(display.MESSAGE_PAGE)]
    (more,) = find_all(page.text, "data-testid", "more-messages")
    assert "99,950 more messages of 100,000" in page.text
    nxt = client.get(str(more["hx-get"]), headers={"HX-Request": "true"})
    shown = find_all(nxt.text, "data-testid", "input-message")
    assert shown[0]["data-index"] == "50" and len(shown) == display.MESSAGE_PAGE
    last = client.get(
        f"/projects/{world.pid}/rollouts/{rollout.id}/messages",
        params={"start": 99_990},
        headers={"HX-Request": "true"},
    )
    assert len(find_all(last.text, "data-testid", "input-message")) == 10
    assert "more-messages" not in data_testids(last.text)
    # The JSON response reads as fields, not braces and quotes.
    fields = find_all(page.text, "data-testid", "json-fields")
    assert fields and '"text_excerpt"' not in page.text
    listing = client.get(f"/projects/{world.pid}/rollouts").text
    assert "text_excerpt: the laws of Texas · rule: R1" in listing


# ---------------------------------------------------------------------------- filter values


def test_filter_values_are_the_distinct_models_and_checkpoints_in_order(
    session: Session, import_file: ImportFile, world: World
) -> None:
    rows = [studio_row(n) for n in range(30)]
    rows[7]["checkpoint"] = None  # a rollout without a checkpoint offers no empty choice
    rows[8]["model"] = "policy-c"
    import_file(jsonl(rows))
    facets = rollout_browse.facets(session, world.pid)
    assert facets.models == ["policy-a", "policy-b", "policy-c"]
    assert facets.checkpoints == ["ckpt-0", "ckpt-1", "ckpt-2"]


def test_filter_values_stop_at_the_limit(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n, checkpoint=f"c-{n:03d}") for n in range(12)]))
    assert rollout_browse.distinct_values(session, world.pid, Rollout.checkpoint, 5) == [
        f"c-{n:03d}" for n in range(5)
    ]
    assert rollout_browse.distinct_values(session, world.pid + 1000, Rollout.checkpoint, 5) == []


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL query plans")
def test_filter_values_are_read_from_the_index_not_the_table(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(n) for n in range(200)]))
    session.exec(text("ANALYZE rollout"))  # type: ignore[call-overload]
    session.exec(text("SET LOCAL enable_seqscan = off"))  # type: ignore[call-overload]
    captured: list[str] = []
    original = session.scalars

    def explain(query, params=None):  # type: ignore[no-untyped-def]
        captured.extend(
            row[0] for row in session.execute(text("EXPLAIN " + str(query.text)), params)
        )
        return original(query, params)

    session.scalars = explain  # type: ignore[method-assign]
    rollout_browse.distinct_values(session, world.pid, Rollout.checkpoint, 10)
    plan = "\n".join(captured)
    assert "ix_rollout_project_checkpoint" in plan, plan
    assert "Seq Scan on rollout" not in plan, plan
