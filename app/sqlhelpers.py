"""The small dialect switch: PostgreSQL fast paths, a correct portable path for SQLite."""
from __future__ import annotations

from sqlalchemy import exists, func, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB

from .extensions import db


def dialect_name() -> str:
    return db.engine.dialect.name


def json_array_contains(column, value: str):
    """``column`` (a JSON array of strings) contains ``value``: JSONB ``@>`` (GIN-indexable) on
    PostgreSQL, ``json_each`` on SQLite."""
    if dialect_name() == "postgresql":
        return column.op("@>")(func.cast(literal(f'["{_json_escape(value)}"]'), JSONB))
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


def _json_escape(value: str) -> str:
    import json
    return json.dumps(value)[1:-1]
