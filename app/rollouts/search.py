"""Rollout filters and full-text search as SQL: PostgreSQL full-text search on the stored
`search_vector` column and its GIN index, a LIKE fallback on SQLite, keyset pagination on the
rollout id (or on rank then id for ranked results), and counts that stay cheap.

PostgreSQL search plan (app/rollouts/browse.py `list_rollouts`): the matching ids come first,
unless the planner expects the words in more than PROBE_SKIP_FACTOR x COUNT_CAP rollouts (a
common search: straight to the page walk and the estimate, below). A probe reads up to
COUNT_CAP + 1 ids of text matches, with no order, so the planner reads them from the GIN index
(a rare or middling word) or stops a scan early (a word in most rows); the exact `external_id`
is its own lookup on its unique index (an `OR external_id = q` inside one WHERE made the planner
give up the GIN index). Under the cap, the probe is the whole answer: the exact count, and the
page's ids, whose rows are then read by primary key. At the cap the word is common, so matches
are dense: the page walks ids in order (`page_query`, the text and exact-id branches UNIONed),
stopping after one page, and the count is an estimate.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union,
)

from app.labels.models import DisagreementResolution, GoldItem, Label
from app.labels.values import LabelStatus
from app.rollouts.models import SEARCH_VECTOR_COLUMN, Rollout

_r = Rollout.__table__.c  # type: ignore[attr-defined]
_labels = Label.__table__.c  # type: ignore[attr-defined]
_gold = GoldItem.__table__.c  # type: ignore[attr-defined]
_resolutions = DisagreementResolution.__table__.c  # type: ignore[attr-defined]

FTS_CONFIG = "english"  # the text search configuration FTS_VECTOR is built with
SEARCH_VECTOR: ColumnElement[Any] = literal_column(
    f"rollout.{SEARCH_VECTOR_COLUMN}"
)  # PostgreSQL only

MAX_QUERY_CHARS = 500
# Counted exactly up to here; past it the count is the planner's estimate, said as such.
COUNT_CAP = 10_000
# A search the planner expects to match more than this many times COUNT_CAP is not probed.
PROBE_SKIP_FACTOR = 10
# Ranked results rank at most this many matches (in id order); the page says so when cut.
# ts_rank_cd reads each candidate's positions: about 0.1-0.2 ms a rollout of 2.4 KB.
RANK_CANDIDATES = 1_000
# An exact external id ranks above every text match (ts_rank_cd stays far below this).
EXACT_ID_RANK = 1e9


class RolloutSort(StrEnum):
    """The order of the rollout list: import order (id), or best match first (rank, with q)."""

    ID = "id"
    RANK = "rank"


@dataclass(frozen=True)
class RolloutFilter:
    """What the rollout list shows; None means "any"."""

    model: str | None = None
    checkpoint: str | None = None
    step_min: int | None = None
    step_max: int | None = None
    group: str | None = None
    labeled: bool | None = None
    gold: bool | None = None
    disagreement: bool | None = None
    q: str | None = None
    import_id: int | None = None
    sort: RolloutSort = RolloutSort.ID

    def params(self) -> dict[str, str]:
        """The filter as query-string parameters (for links that keep it)."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None or value == "" or value is RolloutSort.ID:
                continue
            out[key] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        return out

    @property
    def active(self) -> bool:
        return bool({k: v for k, v in self.params().items() if k != "sort"})

    @property
    def ranked(self) -> bool:
        """Best match first: asked for, and there is a search to rank by."""
        return self.sort is RolloutSort.RANK and bool(self.q and self.q.strip())


def _flag(clause: ColumnElement[bool], wanted: bool | None) -> ColumnElement[bool] | None:
    if wanted is None:
        return None
    return clause if wanted else ~clause


def search_terms(q: str) -> list[str]:
    """Words and "quoted phrases" of a search, for the SQLite fallback."""
    terms = [a or b for a, b in re.findall(r'"([^"]+)"|(\S+)', q)]
    return [term for term in (t.strip() for t in terms) if term and term.lower() != "or"]


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tsquery(q: str) -> ColumnElement[Any]:
    return func.websearch_to_tsquery(
        literal_column(f"'{FTS_CONFIG}'::regconfig"), literal(q[:MAX_QUERY_CHARS])
    )


def fts_match(q: str) -> ColumnElement[bool]:
    """PostgreSQL: the stored search vector matches the web-search-syntax query."""
    return SEARCH_VECTOR.bool_op("@@")(_tsquery(q))


def exact_id(q: str) -> ColumnElement[bool]:
    """An exact external id also finds the rollout, whatever its text."""
    return _r.external_id == q[:MAX_QUERY_CHARS].strip()


def text_match(dialect: str, q: str) -> ColumnElement[bool]:
    """The search condition in one clause: every term LIKE-matched, or the exact id (SQLite).

    On PostgreSQL the text match and the exact id are two branches of a UNION (`page_query`);
    this single clause is only the text match there. Text matches only rollouts that are not made
    from drift samples (models.FTS_INDEXED: their stored vector is NULL on PostgreSQL), on both
    databases alike; an exact id finds any rollout."""
    q = q[:MAX_QUERY_CHARS]
    if dialect == "postgresql":
        return fts_match(q)
    clauses = []
    for term in search_terms(q):
        pattern = f"%{_like_escape(term)}%"
        clauses.append(
            or_(
                _r.response.like(pattern, escape="\\"),
                cast(_r.input_messages, String).like(pattern, escape="\\"),
            )
        )
    if not clauses:
        return true()
    return or_(and_(_r.from_drift.is_(False), *clauses), _r.external_id == q.strip())


def conditions(dialect: str, project_id: int, flt: RolloutFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [_r.project_id == project_id]
    if flt.model:
        where.append(_r.model == flt.model)
    if flt.checkpoint:
        where.append(_r.checkpoint == flt.checkpoint)
    if flt.step_min is not None:
        where.append(_r.step >= flt.step_min)
    if flt.step_max is not None:
        where.append(_r.step <= flt.step_max)
    if flt.group:
        where.append(_r.group_key == flt.group)
    if flt.import_id is not None:
        where.append(_r.import_id == flt.import_id)
    labeled = exists().where(_labels.rollout_id == _r.id, _labels.status == LabelStatus.submitted)
    gold = exists().where(_gold.rollout_id == _r.id)
    # Until judge-vs-expert comparison lands, a disagreement is one an expert has recorded.
    disagreement = exists().where(_resolutions.rollout_id == _r.id)
    for clause in (
        _flag(labeled, flt.labeled),
        _flag(gold, flt.gold),
        _flag(disagreement, flt.disagreement),
    ):
        if clause is not None:
            where.append(clause)
    if flt.q and flt.q.strip() and dialect != "postgresql":
        where.append(text_match(dialect, flt.q))
    return where


def _searching(dialect: str, flt: RolloutFilter) -> bool:
    return dialect == "postgresql" and bool(flt.q and flt.q.strip())


def matching_ids(
    dialect: str,
    project_id: int,
    flt: RolloutFilter,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> Select[Any]:
    """Ids of the matching rollouts (the first `limit` after `after`, in id order).

    PostgreSQL with a search: the text branch and the exact-id branch, each indexed, UNIONed."""
    where = conditions(dialect, project_id, flt)
    if after is not None:
        where.append(_r.id > after)
    if not _searching(dialect, flt):
        query = select(_r.id).where(*where).order_by(_r.id)
        return query.limit(limit) if limit is not None else query
    q = flt.q or ""
    text_branch = select(_r.id).where(*where, fts_match(q)).order_by(_r.id)
    if limit is not None:
        text_branch = text_branch.limit(limit)
    exact_branch = select(_r.id).where(*where, exact_id(q))
    both = union(text_branch, exact_branch).subquery("hit")
    query = select(both.c.id).order_by(both.c.id)
    return query.limit(limit) if limit is not None else query


SUMMARY_COLUMNS = (
    _r.id,
    _r.external_id,
    _r.model,
    _r.checkpoint,
    _r.step,
    _r.group_key,
    _r.import_id,
    _r.source_line,
    _r.created_at,
    func.substr(_r.response, 1, 280).label("response_preview"),
    func.length(_r.response).label("response_chars"),
)


def text_ids_query(project_id: int, flt: RolloutFilter, cap: int) -> Select[Any]:
    """PostgreSQL: up to `cap` ids of rollouts whose text matches, in no particular order (the
    planner may read them from the GIN index, which returns them in storage order)."""
    where = conditions("postgresql", project_id, flt)
    return select(_r.id).where(*where, fts_match(flt.q or "")).limit(cap)


def exact_ids_query(project_id: int, flt: RolloutFilter) -> Select[Any]:
    """PostgreSQL: the rollout whose external id is the search, by its unique index."""
    return select(_r.id).where(*conditions("postgresql", project_id, flt), exact_id(flt.q or ""))


def rows_by_id(ids: list[int]) -> Select[Any]:
    """The summary rows of these rollouts (a page's worth), by primary key, in id order."""
    return select(*SUMMARY_COLUMNS).where(_r.id.in_(ids)).order_by(_r.id)


def page_query(
    dialect: str, project_id: int, flt: RolloutFilter, after: int | None, limit: int
) -> Select[Any]:
    """One page in id order, one row more than asked so the caller knows if there is a next."""
    if not _searching(dialect, flt):
        where = conditions(dialect, project_id, flt)
        if after is not None:
            where.append(_r.id > after)
        return select(*SUMMARY_COLUMNS).where(*where).order_by(_r.id).limit(limit + 1)
    ids = matching_ids(dialect, project_id, flt, after=after, limit=limit + 1).subquery("page")
    return (
        select(*SUMMARY_COLUMNS).where(_r.id.in_(select(ids.c.id))).order_by(_r.id).limit(limit + 1)
    )


def ranked_query(
    project_id: int, flt: RolloutFilter, after: tuple[float, int] | None, limit: int
) -> Select[Any]:
    """PostgreSQL: one page best match first (ts_rank_cd, then id), among the first
    RANK_CANDIDATES matches in id order; an exact external id comes first of all."""
    q = flt.q or ""
    where = conditions("postgresql", project_id, flt)
    rank = func.ts_rank_cd(SEARCH_VECTOR, _tsquery(q)).cast(Float)
    text_branch = (
        select(_r.id, rank.label("rank"))
        .where(*where, fts_match(q))
        .order_by(_r.id)
        .limit(RANK_CANDIDATES)
    )
    exact_branch = select(_r.id, literal(EXACT_ID_RANK, Float).label("rank")).where(
        *where, exact_id(q)
    )
    hits = union(text_branch, exact_branch).subquery("hit")
    best = (
        select(hits.c.id, func.max(hits.c.rank).label("rank")).group_by(hits.c.id).subquery("best")
    )
    # The page's ids first (ranks and ids only), then their summaries: joining every candidate
    # to its row before the limit read 1,000 responses for a page of 50 (25 of its 30 ms).
    page = select(best.c.id, best.c.rank)
    if after is not None:
        after_rank, after_id = after
        page = page.where(
            or_(best.c.rank < after_rank, and_(best.c.rank == after_rank, best.c.id > after_id))
        )
    chosen = page.order_by(best.c.rank.desc(), best.c.id).limit(limit + 1).subquery("page")
    return (
        select(*SUMMARY_COLUMNS, chosen.c.rank)
        .join(chosen, chosen.c.id == _r.id)
        .order_by(chosen.c.rank.desc(), _r.id)
    )


def count_query(dialect: str, project_id: int, flt: RolloutFilter) -> Select[Any]:
    """How many match, counted up to COUNT_CAP + 1 so a count never scans a huge project."""
    inner = matching_ids(dialect, project_id, flt, limit=COUNT_CAP + 1).subquery()
    return select(func.count()).select_from(inner)


def estimate_query(project_id: int, flt: RolloutFilter) -> Select[Any]:
    """PostgreSQL: the query whose planner row estimate stands for a count past COUNT_CAP (the
    text branch alone; the exact id adds at most one)."""
    where = conditions("postgresql", project_id, flt)
    if flt.q and flt.q.strip():
        where.append(fts_match(flt.q))
    return select(_r.id).where(*where)


def groups_query(
    dialect: str, project_id: int, flt: RolloutFilter, after: str | None, limit: int
) -> Select[Any]:
    where = conditions(dialect, project_id, flt)
    where.append(_r.group_key.is_not(None))
    if after is not None:
        where.append(_r.group_key > after)
    return (
        select(
            _r.group_key,
            func.count().label("rollouts"),
            func.min(_r.step).label("step_min"),
            func.max(_r.step).label("step_max"),
            func.count(func.distinct(_r.checkpoint)).label("checkpoints"),
            func.min(_r.id).label("first_id"),
        )
        .where(*where)
        .group_by(_r.group_key)
        .order_by(_r.group_key)
        .limit(limit + 1)
    )
