"""Forgetting computed figures, as a restart of the web process does (and, for a cold start,
as an empty `stored_figure` table does)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session

from app.agreement import leaderboard, slices
from app.agreement import service as agreement_service
from app.core.stored import StoredFigure
from app.labels import review, run_subjects
from app.rewards import service as reward_service


def restart() -> None:
    """What a new web process starts with: no figure in memory (the database keeps its own)."""
    for cache in (
        run_subjects._SUMMARIES,
        run_subjects._LABELLED,
        agreement_service._FIGURES,
        agreement_service._CORRECTED,
        agreement_service._RUN_SUMS,
        review._INDEXES,
        leaderboard._RUN_FIGURES,
        leaderboard._BOARDS,
        slices._BREAKDOWNS,
        reward_service._PREVIEWS,
    ):
        cache.clear()


def cold_start(session: Session) -> None:
    """No figure anywhere: a restart, with nothing stored in the database either."""
    session.execute(delete(StoredFigure))
    session.commit()
    restart()
