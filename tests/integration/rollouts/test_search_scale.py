"""Search at scale: the exact external id as its own branch, ranked results with a keyset over
(rank, id), and a count that is exact up to the cap and an estimate past it, said as such."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, text

from app.core.errors import InvalidInput
from app.rollouts import browse as rollout_browse
from app.rollouts import search
from app.rollouts.search import RolloutFilter, RolloutSort
from tests.integration.rollouts.conftest import ImportFile, World, jsonl, studio_row
from tests.support.db import backend
from tests.support.web import find_all, login

postgres_only = pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL full-text search")


def _rows() -> list[dict]:
    rows = [studio_row(n) for n in range(12)]
    rows[2]["response"] = "Termination clause. Termination notice. Termination fee."
    rows[5]["response"] = "One mention of termination, among many other words about payment."
    rows[9]["response"] = "Termination and termination again."
    rows[7]["id"] = "termination"  # an external id equal to the search
    rows[7]["response"] = "Nothing relevant here."
    return rows


def _ids(page: rollout_browse.RolloutPage) -> list[str]:
    return [row.external_id for row in page.items]


def test_an_exact_external_id_is_found_whatever_its_text(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(_rows()))
    page = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q="r-4"))
    assert "r-4" in _ids(page)
    found = _ids(rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q="termination")))
    assert "termination" in found and {"r-2", "r-5", "r-9"} <= set(found)


def test_search_pages_walk_every_match_once_with_the_exact_id_among_them(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(_rows()))
    seen: list[str] = []
    cursor = None
    while True:
        page = rollout_browse.list_rollouts(
            session, world.pid, RolloutFilter(q="termination"), cursor=cursor, limit=1
        )
        seen += _ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["r-2", "r-5", "termination", "r-9"]


@postgres_only
def test_ranked_results_come_best_first_and_page_by_rank_then_id(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(_rows()))
    flt = RolloutFilter(q="termination", sort=RolloutSort.RANK)
    whole = rollout_browse.list_rollouts(session, world.pid, flt)
    assert whole.ranked
    # The exact id first, then by how densely the word occurs; the one passing mention last.
    assert _ids(whole) == ["termination", "r-2", "r-9", "r-5"]
    ranks = [row.rank for row in whole.items]
    assert ranks == sorted(ranks, reverse=True)
    walked: list[str] = []
    cursor = None
    while True:
        page = rollout_browse.list_rollouts(session, world.pid, flt, cursor=cursor, limit=1)
        walked += _ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert walked == _ids(whole)
    with pytest.raises(InvalidInput):
        rollout_browse.list_rollouts(session, world.pid, flt, cursor="17")


@postgres_only
def test_ranking_stops_at_its_candidate_cap_and_says_so(
    session: Session, import_file: ImportFile, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_file(jsonl(_rows()))
    monkeypatch.setattr(search, "RANK_CANDIDATES", 2)
    page = rollout_browse.list_rollouts(
        session, world.pid, RolloutFilter(q="termination", sort=RolloutSort.RANK)
    )
    # The first two text matches in id order are ranked, plus the exact id.
    assert _ids(page) == ["termination", "r-2", "r-5"]
    assert page.rank_cut


def test_ranking_on_sqlite_falls_back_to_import_order(
    session: Session, import_file: ImportFile, world: World
) -> None:
    if backend() == "postgres":
        pytest.skip("SQLite fallback")
    import_file(jsonl(_rows()))
    page = rollout_browse.list_rollouts(
        session, world.pid, RolloutFilter(q="termination", sort=RolloutSort.RANK)
    )
    assert not page.ranked
    assert _ids(page) == ["r-2", "r-5", "termination", "r-9"]


def test_a_count_past_the_cap_is_an_estimate_said_as_such(
    client: TestClient,
    session: Session,
    import_file: ImportFile,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_file(jsonl([studio_row(n) for n in range(40)]))
    monkeypatch.setattr(search, "COUNT_CAP", 5)
    page = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(), limit=2)
    assert (page.total, page.total_capped) == (5, True)
    login(client, world.expert.email)
    if backend() == "postgres":
        session.exec(text("ANALYZE rollout"))  # type: ignore[call-overload]
        session.commit()
        page = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(), limit=2)
        assert page.total_estimate is not None and page.total_estimate > 5
        html = client.get(f"/projects/{world.pid}/rollouts").text
        assert find_all(html, "data-testid", "rollout-count")[0]["data-estimate"] == "yes"
        assert f"About {page.total_estimate}" in html and "(an estimate: more than 5)" in html
    else:
        assert page.total_estimate is None
        html = client.get(f"/projects/{world.pid}/rollouts").text
        assert find_all(html, "data-testid", "rollout-count")[0]["data-estimate"] == "no"
        assert "More than 5 rollouts" in html


def test_about_rounds_to_two_significant_figures() -> None:
    assert rollout_browse.about(42) == 42
    assert rollout_browse.about(12_345) == 12_000
    assert rollout_browse.about(1_000_048) == 1_000_000
    assert rollout_browse.about(15_500) == 16_000


def test_the_sort_parameter_is_checked_and_kept_in_links(
    client: TestClient, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl(_rows()))
    login(client, world.expert.email)
    base = f"/projects/{world.pid}/rollouts"
    assert client.get(f"{base}?sort=sideways").status_code == 422
    page = client.get(f"{base}?q=termination&sort=rank")
    assert page.status_code == 200
    marker = "rollout-ranked" if backend() == "postgres" else "rollout-unranked"
    assert find_all(page.text, "data-testid", marker)
    api = client.get(f"/api/v1/projects/{world.pid}/rollouts?q=termination&sort=rank&limit=1")
    assert api.status_code == 200
    assert api.json()["ranked"] is (backend() == "postgres")
    assert api.json()["next_cursor"]
    follow = client.get(
        f"/api/v1/projects/{world.pid}/rollouts?q=termination&sort=rank&limit=1"
        f"&cursor={api.json()['next_cursor']}"
    )
    assert follow.status_code == 200 and len(follow.json()["items"]) == 1


@postgres_only
def test_a_search_the_planner_expects_everywhere_is_not_probed(
    session: Session, import_file: ImportFile, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [studio_row(n, response=f"The liability clause number {n}.") for n in range(60)]
    rows[3]["response"] = "A zanzibar clause."
    import_file(jsonl(rows))
    session.exec(text("ANALYZE rollout"))  # type: ignore[call-overload]
    session.commit()
    monkeypatch.setattr(search, "COUNT_CAP", 5)
    monkeypatch.setattr(search, "PROBE_SKIP_FACTOR", 2)
    probes: list[int] = []
    probe = search.text_ids_query
    monkeypatch.setattr(
        search, "text_ids_query", lambda *a, **k: probes.append(1) or probe(*a, **k)
    )
    common = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q="liability"), limit=4)
    assert probes == []  # expected in ~60 rollouts > 2 x 5: no probe
    assert _ids(common) == ["r-0", "r-1", "r-2", "r-4"]  # r-3 does not say it
    assert common.total_capped and common.total_estimate is not None
    rare = rollout_browse.list_rollouts(session, world.pid, RolloutFilter(q="zanzibar"))
    assert probes == [1]  # a rare word is probed: its count is exact
    assert (_ids(rare), rare.total, rare.total_capped) == (["r-3"], 1, False)
