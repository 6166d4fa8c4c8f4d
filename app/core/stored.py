"""Derived figures kept in the database per data version, beside each process's own cache.

A page that summarises a whole judge run (agreement, the disagreement index, corrected estimates,
the leaderboard's per-run figures, drift signals) is computed from a key that names the data it
read (`app.core.memo`). Each web process keeps its recent results in memory; this module also
keeps them in the `stored_figure` table, so that a restart, another web process or the worker's
refresh (`FigureRefresh`: requested when a run finishes or a label changes) hands the result over
instead of computing it again: the first visit after a restart reads one row instead of scanning
a million verdicts.

- An entry is found by the SHA-256 digest of (the code's fingerprint, its kind, its key): a new
  label or verdict gives a new key, new code a new fingerprint (a result pickled by other code is
  never read back), so there is nothing to invalidate. The newest `KEEP_PER_OWNER` entries of a
  kind are kept per run; older ones are deleted as new ones are stored. Entries go with their run
  (foreign keys with ON DELETE CASCADE).
- Values are pickled, compressed, and signed with an HMAC under the app's secret key
  (`RS_SECRET_KEY`, from the environment); a value whose signature does not match is never
  unpickled (it is computed again), so rows written by anyone without the key cannot run code.
- Storing is best effort, on a connection of its own (never the request's transaction): a failure
  is logged and the value is still returned. Values over `MAX_BYTES` compressed are not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import pickle
import zlib
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Index, LargeBinary, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, col

from app.core.clock import utcnow
from app.core.config import get_settings
from app.core.memo import VersionedCache

log = logging.getLogger(__name__)

V = TypeVar("V")

KEEP_PER_OWNER = 8
MAX_BYTES = 32 * 1024 * 1024
_SIGNATURE = 32  # bytes of HMAC-SHA256 in front of the compressed pickle


class FigureKind(StrEnum):
    """What a stored entry holds (each is computed by the module named)."""

    RUN_AGREEMENT = "run-agreement"  # agreement.service.run_agreement
    CORRECTED = "corrected"  # agreement.service.corrected_estimates
    RUN_SUMS = "run-sums"  # agreement.service: whole-run verdict sums
    RUN_COUNTS = "run-counts"  # labels.run_subjects.run_summary: items judged, judge errors
    DISAGREEMENTS = "disagreements"  # labels.review.disagreement_index
    LEADERBOARD = "leaderboard"  # agreement.leaderboard: one run's row figures
    SLICES = "slices"  # agreement.slices.run_slices
    DRIFT_SIGNALS = "drift-signals"  # drift.service: a training run's signals


class StoredFigure(SQLModel, table=True):
    __tablename__ = "stored_figure"
    # The newest entries of a kind per run are kept: (kind, judge_run_id, id) and
    # (kind, training_run_id, id) find the older ones to delete.
    __table_args__ = (
        Index("ix_stored_figure_judge_run", "judge_run_id", "kind", "id"),
        Index("ix_stored_figure_training_run", "training_run_id", "kind", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # SHA-256 of (code fingerprint, kind, key): how an entry is found.
    digest: str = Field(max_length=64, unique=True, index=True)
    kind: str = Field(max_length=40)  # a FigureKind
    judge_run_id: int | None = Field(default=None, foreign_key="judge_run.id", ondelete="CASCADE")
    training_run_id: int | None = Field(
        default=None, foreign_key="training_run.id", ondelete="CASCADE"
    )
    payload: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow)


class FigureRefresh(SQLModel, table=True):
    """A judge run whose stored figures the worker should compute again (a label changed, the run
    finished, verdicts were imported). One row per run: requests made while one is waiting
    coalesce into it; the worker deletes the row when it has computed what it saw requested."""

    __tablename__ = "figure_refresh"

    judge_run_id: int = Field(foreign_key="judge_run.id", primary_key=True, ondelete="CASCADE")
    requested_at: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of the app's Python source: a result pickled by other code is never read back."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _database(session: Session) -> str:
    return str(session.get_bind().engine.url)


def entry_digest(kind: FigureKind, key: tuple[Any, ...], database: str = "") -> str:
    """The digest an entry is stored under. Elements of ``key`` equal to ``database`` (the data
    versions name their database, for the per-process cache) are left out: the web and the
    worker may reach one database under different URLs."""
    parts = tuple(part for part in key if not (database and part == database))
    text = repr((code_fingerprint(), str(kind), parts))
    return hashlib.sha256(text.encode()).hexdigest()


def _sign(blob: bytes) -> bytes:
    key = get_settings().secret_key.encode()
    return hmac.new(key, blob, hashlib.sha256).digest()


def encode(value: Any) -> bytes:
    blob = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
    return _sign(blob) + blob


MISSING = object()


def decode(payload: bytes) -> Any:
    """The value, or ``MISSING`` when the signature does not match or the value cannot be read."""
    signature, blob = payload[:_SIGNATURE], payload[_SIGNATURE:]
    if not hmac.compare_digest(signature, _sign(blob)):
        log.warning("a stored figure's signature does not match; computing it again")
        return MISSING
    try:
        return pickle.loads(zlib.decompress(blob))  # noqa: S301 - signed by this app (above)
    except Exception:  # pragma: no cover - same code fingerprint, so same classes
        log.exception("a stored figure could not be read; computing it again")
        return MISSING


def load(session: Session, kind: FigureKind, key: tuple[Any, ...]) -> Any:
    """The stored value under ``key``, or ``MISSING`` (one index lookup)."""
    digest = entry_digest(kind, key, _database(session))
    try:
        payload = session.execute(
            select(col(StoredFigure.payload)).where(col(StoredFigure.digest) == digest)
        ).scalar_one_or_none()
    except SQLAlchemyError:  # pragma: no cover - e.g. the table is not there yet
        log.exception("stored figures could not be read")
        return MISSING
    return MISSING if payload is None else decode(bytes(payload))


def save(
    session: Session,
    kind: FigureKind,
    key: tuple[Any, ...],
    value: Any,
    *,
    judge_run_id: int | None = None,
    training_run_id: int | None = None,
) -> bool:
    """Store ``value`` on a connection of its own; True when stored. Keeps the newest
    ``KEEP_PER_OWNER`` entries of this kind for the run."""
    if (judge_run_id is None) == (training_run_id is None):
        raise ValueError("a stored figure belongs to exactly one judge run or training run")
    payload = encode(value)
    if len(payload) > MAX_BYTES:
        log.info("stored figure %s not kept: %d bytes", kind, len(payload))
        return False
    owner = (
        col(StoredFigure.judge_run_id) == judge_run_id
        if judge_run_id is not None
        else col(StoredFigure.training_run_id) == training_run_id
    )
    engine = session.get_bind().engine
    sqlite_file = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        try:
            if sqlite_file:
                # SQLite has one writer: when the caller's own transaction holds the write lock,
                # give up at once (the value is then not stored) rather than wait for it.
                connection.exec_driver_sql("PRAGMA busy_timeout=50")
                connection.commit()
            with connection.begin():
                _store(connection, kind, key, payload, owner, judge_run_id, training_run_id)
            return True
        except IntegrityError:
            return True  # another process stored the same entry first
        except SQLAlchemyError:
            log.warning("stored figure %s could not be saved", kind, exc_info=True)
            return False
        finally:
            if sqlite_file:
                with contextlib.suppress(SQLAlchemyError):
                    connection.rollback()
                    connection.exec_driver_sql("PRAGMA busy_timeout=30000")
                    connection.commit()


def _store(
    connection: Connection,
    kind: FigureKind,
    key: tuple[Any, ...],
    payload: bytes,
    owner: Any,
    judge_run_id: int | None,
    training_run_id: int | None,
) -> None:
    connection.execute(
        StoredFigure.__table__.insert().values(  # type: ignore[attr-defined]
            digest=entry_digest(kind, key, str(connection.engine.url)),
            kind=str(kind),
            judge_run_id=judge_run_id,
            training_run_id=training_run_id,
            payload=payload,
            created_at=utcnow(),
        )
    )
    newest = (
        select(col(StoredFigure.id))
        .where(owner, col(StoredFigure.kind) == str(kind))
        .order_by(col(StoredFigure.id).desc())
        .limit(KEEP_PER_OWNER)
    )
    connection.execute(
        delete(StoredFigure).where(
            owner,
            col(StoredFigure.kind) == str(kind),
            col(StoredFigure.id).not_in(newest.scalar_subquery()),
        )
    )


def remembered(
    session: Session,
    cache: VersionedCache[V],
    kind: FigureKind,
    key: tuple[Hashable, ...],
    compute: Callable[[], V],
    *,
    judge_run_id: int | None = None,
    training_run_id: int | None = None,
) -> V:
    """``compute()`` under ``key``: from this process's cache, else from the database, else
    computed (once for concurrent callers) and stored in both."""

    def load_or_compute() -> V:
        found = load(session, kind, key)
        if found is not MISSING:
            return found
        value = compute()
        save(
            session,
            kind,
            key,
            value,
            judge_run_id=judge_run_id,
            training_run_id=training_run_id,
        )
        return value

    return cache.get_or_compute((str(kind), *key), load_or_compute)


# ---- refresh requests ---------------------------------------------------------------------------


def request_refresh(executor: Session | Connection, run_ids: Iterable[int]) -> None:
    """Ask the worker to compute the runs' figures again, in the caller's transaction (the
    request commits with the change that caused it). An upsert: a request already waiting for a
    run is moved to now, which makes the worker compute that run again after its current pass;
    concurrent requests for one run never conflict."""
    ids = sorted(set(run_ids))
    if not ids:
        return
    now = utcnow()
    table = FigureRefresh.__table__  # type: ignore[attr-defined]
    bind = executor if isinstance(executor, Connection) else executor.get_bind()
    dialect = bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values([{"judge_run_id": i, "requested_at": now} for i in ids])
    executor.execute(
        statement.on_conflict_do_update(
            index_elements=["judge_run_id"],
            set_={"requested_at": statement.excluded.requested_at},
        )
    )


def claim_refresh(
    session: Session, worker_id: str, lease_seconds: int
) -> tuple[int, datetime] | None:
    """The longest-waiting refresh request not leased to a live worker, leased to us: (run id,
    the time it was requested), committed."""
    now = utcnow()
    claimable = or_(
        col(FigureRefresh.lease_expires_at).is_(None), col(FigureRefresh.lease_expires_at) < now
    )
    found = session.execute(
        select(col(FigureRefresh.judge_run_id), col(FigureRefresh.requested_at))
        .where(claimable)
        .order_by(col(FigureRefresh.requested_at))
        .limit(1)
    ).first()
    if found is None:
        return None
    run_id, requested_at = found
    claimed = session.execute(
        update(FigureRefresh)
        .where(col(FigureRefresh.judge_run_id) == run_id, claimable)
        .values(lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    session.commit()
    return (int(run_id), requested_at) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def finish_refresh(session: Session, run_id: int, requested_at: datetime) -> None:
    """Done with what was requested at ``requested_at``: the request goes, unless it was made
    again meanwhile (then its lease is released for the next pass)."""
    session.execute(
        delete(FigureRefresh).where(
            col(FigureRefresh.judge_run_id) == run_id,
            col(FigureRefresh.requested_at) == requested_at,
        )
    )
    session.execute(
        update(FigureRefresh)
        .where(col(FigureRefresh.judge_run_id) == run_id)
        .values(lease_owner=None, lease_expires_at=None)
    )
    session.commit()
