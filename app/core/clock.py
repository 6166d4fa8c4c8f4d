"""One place to ask for the current time, so tests and code agree on UTC."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware UTC: SQLModel's datetime columns store and return aware UTC values."""
    return datetime.now(UTC)
