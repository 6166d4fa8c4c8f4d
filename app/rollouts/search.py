"""Rollout filters and full-text search as SQL: PostgreSQL full-text search backed by a GIN
expression index, a LIKE fallback on SQLite, and keyset pagination on the rollout id."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
    text,
    true,
)

from app.labels.models import DisagreementResolution, GoldItem, Label
from app.labels.values import LabelStatus
from app.rollouts.models import FTS_VECTOR, Rollout

_r = Rollout.__table__.c  # type: ignore[attr-defined]
_labels = Label.__table__.c  # type: ignore[attr-defined]
_gold = GoldItem.__table__.c  # type: ignore[attr-defined]
_resolutions = DisagreementResolution.__table__.c  # type: ignore[attr-defined]

FTS_CONFIG = "english"  # the text search configuration FTS_VECTOR is built with

MAX_QUERY_CHARS = 500
COUNT_CAP = 10_000


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

    def params(self) -> dict[str, str]:
        """The filter as query-string parameters (for links that keep it)."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None or value == "":
                continue
            out[key] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        return out

    @property
    def active(self) -> bool:
        return bool(self.params())


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


def text_match(dialect: str, q: str) -> ColumnElement[bool]:
    """The search condition: full-text search on PostgreSQL, every term LIKE-matched elsewhere."""
    q = q[:MAX_QUERY_CHARS]
    if dialect == "postgresql":
        condition = text(
            f"{FTS_VECTOR} @@ websearch_to_tsquery('{FTS_CONFIG}'::regconfig, :fts_query)"
        ).bindparams(fts_query=q)
        # An exact id also finds the rollout, whatever its text.
        return or_(condition, _r.external_id == q.strip())
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
    return or_(and_(*clauses), _r.external_id == q.strip())


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
    if flt.q and flt.q.strip():
        where.append(text_match(dialect, flt.q))
    return where


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


def page_query(
    dialect: str, project_id: int, flt: RolloutFilter, after: int | None, limit: int
) -> Select[Any]:
    """One page in id order, one row more than asked so the caller knows if there is a next."""
    where = conditions(dialect, project_id, flt)
    if after is not None:
        where.append(_r.id > after)
    return select(*SUMMARY_COLUMNS).where(*where).order_by(_r.id).limit(limit + 1)


def count_query(dialect: str, project_id: int, flt: RolloutFilter) -> Select[Any]:
    """How many match, counted up to COUNT_CAP + 1 so a count never scans a huge project."""
    inner = (
        select(_r.id).where(*conditions(dialect, project_id, flt)).limit(COUNT_CAP + 1).subquery()
    )
    return select(func.count()).select_from(inner)


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
