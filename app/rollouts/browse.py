"""Browsing rollouts: pages of rollouts (filters, search, keyset cursors), groups and facets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlmodel import Session, col

from app.core.cursor import decode_cursor, encode_cursor
from app.core.errors import InvalidInput, NotFound
from app.rollouts import search
from app.rollouts.models import Rollout
from app.rollouts.search import RolloutFilter

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass
class RolloutPage:
    items: list[Any]
    next_cursor: str | None
    total: int
    total_capped: bool
    # Past COUNT_CAP: the planner's estimate of how many match (PostgreSQL), said as "about".
    total_estimate: int | None = None
    ranked: bool = False
    # Ranked results rank the first RANK_CANDIDATES matches only; True when that cut applied.
    rank_cut: bool = False


def parse_cursor(cursor: str | None) -> int | None:
    """The id after which a page starts (app/core/cursor.py: one convention for every list)."""
    return decode_cursor(cursor)


def parse_rank_cursor(cursor: str | None) -> tuple[float, int] | None:
    """A ranked list's cursor: "<rank>~<id>" of the last row shown."""
    if cursor is None or not cursor.strip():
        return None
    rank_text, _, id_text = cursor.partition("~")
    try:
        rank = float(rank_text)
    except ValueError:
        rank = math.nan
    if not id_text or not math.isfinite(rank):
        raise InvalidInput(
            f"'{cursor[:40]}' is not a page cursor of a ranked list (use next_cursor from it)"
        )
    parsed = parse_cursor(id_text)
    return rank, parsed or 0


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def about(count: int) -> int:
    """A count rounded to two significant figures, for an estimate ("about 12,000")."""
    if count < 100:
        return count
    magnitude = 10 ** (len(str(count)) - 2)
    return int(round(count / magnitude) * magnitude)


def _planned_rows(session: Session, project_id: int, flt: RolloutFilter) -> int:
    """The planner's estimate of how many rollouts match (PostgreSQL), read from EXPLAIN: no
    row is counted, so it costs the same for ten thousand matches as for a million."""
    query = search.estimate_query(project_id, flt)
    compiled = query.compile(dialect=session.get_bind().dialect)
    plan = session.connection().exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params
    )
    document = plan.scalar_one()
    if isinstance(document, str):
        document = json.loads(document)
    return int(document[0]["Plan"]["Plan Rows"])


def _estimated_matches(
    session: Session, project_id: int, flt: RolloutFilter, planned: int | None = None
) -> int | None:
    """The planner's estimate past COUNT_CAP, rounded ("about 12,000"); None under it."""
    rows = planned if planned is not None else _planned_rows(session, project_id, flt)
    return about(rows) if rows > search.COUNT_CAP else None


def list_rollouts(
    session: Session,
    project_id: int,
    flt: RolloutFilter,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    with_total: bool = True,
) -> RolloutPage:
    """A page of rollout summaries in import order (or best match first), after the cursor.

    The count is exact up to COUNT_CAP; past it, PostgreSQL gives an estimate, said as such.
    A PostgreSQL search reads matching ids first (app/rollouts/search.py says how)."""
    limit = min(max(limit, 1), MAX_PAGE_SIZE)
    if flt.step_min is not None and flt.step_max is not None and flt.step_min > flt.step_max:
        raise InvalidInput("the step range is empty: 'from' is larger than 'to'")
    dialect = _dialect(session)
    searching = dialect == "postgresql" and bool(flt.q and flt.q.strip())
    ranked = searching and flt.ranked
    after_rank = parse_rank_cursor(cursor) if ranked else None
    after = None if ranked else parse_cursor(cursor)
    matched: list[int] | None = None  # every matching id, when a search has fewer than the cap
    planned: int | None = None
    if searching:
        # A word the planner expects in far more rollouts than the cap (its statistics keep the
        # most common words' frequencies) skips the probe: it would read COUNT_CAP + 1 matches
        # (90 ms for a word in every rollout of a million) only to learn that it is common.
        planned = _planned_rows(session, project_id, flt)
        if planned <= search.PROBE_SKIP_FACTOR * search.COUNT_CAP:
            text_ids = list(
                session.scalars(search.text_ids_query(project_id, flt, search.COUNT_CAP + 1))
            )
            if len(text_ids) <= search.COUNT_CAP:
                exact = list(session.scalars(search.exact_ids_query(project_id, flt)))
                matched = sorted(set(text_ids) | set(exact))
    if ranked:
        rows = list(session.execute(search.ranked_query(project_id, flt, after_rank, limit)))
    elif matched is not None:
        wanted = [i for i in matched if after is None or i > after][: limit + 1]
        rows = list(session.execute(search.rows_by_id(wanted))) if wanted else []
    else:
        rows = list(session.execute(search.page_query(dialect, project_id, flt, after, limit)))
    more = len(rows) > limit
    rows = rows[:limit]
    total = 0
    if matched is not None:
        total = len(matched)
    elif searching:
        total = search.COUNT_CAP + 1
    elif with_total:
        total = int(session.execute(search.count_query(dialect, project_id, flt)).scalar_one())
    capped = total > search.COUNT_CAP
    estimate = None
    if capped and with_total and dialect == "postgresql":
        estimate = _estimated_matches(session, project_id, flt, planned)
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = (
            f"{last.rank!r}~{encode_cursor(last.id)}" if ranked else encode_cursor(last.id)
        )
    return RolloutPage(
        items=rows,
        next_cursor=next_cursor,
        total=min(total, search.COUNT_CAP),
        total_capped=capped,
        total_estimate=estimate,
        ranked=ranked,
        rank_cut=ranked and total > search.RANK_CANDIDATES,
    )


@dataclass
class GroupPage:
    items: list[Any]
    next_cursor: str | None


def list_groups(
    session: Session,
    project_id: int,
    flt: RolloutFilter,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> GroupPage:
    """Groups of generations (same prompt), with their sizes, in group-key order."""
    limit = min(max(limit, 1), MAX_PAGE_SIZE)
    query = search.groups_query(_dialect(session), project_id, flt, cursor or None, limit)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return GroupPage(items=rows, next_cursor=rows[-1].group_key if more and rows else None)


def group_rollouts(
    session: Session, project_id: int, group_key: str, limit: int = 100
) -> list[Rollout]:
    query = (
        select(Rollout)
        .where(col(Rollout.project_id) == project_id, col(Rollout.group_key) == group_key)
        .order_by(col(Rollout.step), col(Rollout.id))
        .limit(limit)
    )
    rows = list(session.scalars(query))
    if not rows:
        raise NotFound("No such group of rollouts in this project.")
    return rows


@dataclass
class Facets:
    models: list[str]
    checkpoints: list[str]


FACET_LIMIT = 200


def distinct_values(session: Session, project_id: int, column: Any, limit: int) -> list[str]:
    """The first `limit` distinct non-null values of `column` in a project, in order.

    A skip scan: each step asks the (project_id, column) index for the next value above the last
    one, so a project of a million rollouts with five models costs five index probes, not a scan
    of the table (PostgreSQL has no loose index scan of its own; SQLite runs the same CTE).
    """
    name = column.key
    table = Rollout.__tablename__
    query = text(
        f"""
        WITH RECURSIVE walk(value, n) AS (
            SELECT (SELECT min({name}) FROM {table} WHERE project_id = :project), 1
            UNION ALL
            SELECT (SELECT min({name}) FROM {table} WHERE project_id = :project AND {name} > value),
                   n + 1
            FROM walk WHERE value IS NOT NULL AND n < :limit
        )
        SELECT value FROM walk WHERE value IS NOT NULL ORDER BY n
        """
    )
    return [str(v) for v in session.scalars(query, {"project": project_id, "limit": limit})]


def facets(session: Session, project_id: int) -> Facets:
    """Values offered in the list filters, read from the indexes (no table scan per request)."""
    return Facets(
        models=distinct_values(session, project_id, col(Rollout.model), FACET_LIMIT),
        checkpoints=distinct_values(session, project_id, col(Rollout.checkpoint), FACET_LIMIT),
    )
