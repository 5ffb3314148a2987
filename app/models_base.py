"""Column helpers shared by every model."""
from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .ids import new_id
from .timeutil import utcnow

# JSONB on PostgreSQL (indexable, containment operators), JSON1 text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def id_column(prefix: str) -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=partial(new_id, prefix))


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime, default=utcnow, nullable=False)


def updated_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)
