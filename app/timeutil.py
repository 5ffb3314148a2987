"""Time helpers: UTC everywhere, RFC 3339 on the wire."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Naive UTC, the form stored in the database (SQLite keeps no zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat() + "Z"
