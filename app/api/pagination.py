"""Keyset pagination (API.md section 1): ``limit``, ``starting_after``, ``ending_before``; newest first.

Order is ``(created_at DESC, id DESC)`` and a cursor is an object id: the page after it is a range scan
on the ``(organization_id, [mode,] created_at, id)`` index, as fast on page 5,000 as on page 1.
"""
from __future__ import annotations

from marshmallow import Schema, ValidationError as MmValidationError, fields, validate, validates_schema
from sqlalchemy import select, tuple_

from ..errors import ValidationError
from ..extensions import db


class PaginationArgs(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100),
                           metadata={"description": "1–100, default 20."})
    starting_after = fields.String(validate=validate.Length(max=64),
                                   metadata={"description": "An object id: return the page after it."})
    ending_before = fields.String(validate=validate.Length(max=64),
                                  metadata={"description": "An object id: return the page before it."})

    @validates_schema
    def _one_cursor(self, data, **kwargs):
        if data.get("starting_after") and data.get("ending_before"):
            raise MmValidationError("Use either starting_after or ending_before, not both.", "ending_before")


def list_schema(item_schema: type[Schema], name: str | None = None) -> type[Schema]:
    """The list envelope ``{object, url, has_more, data}`` around ``item_schema``."""
    return Schema.from_dict({
        "object": fields.Constant("list"),
        "url": fields.String(),
        "has_more": fields.Boolean(),
        "data": fields.List(fields.Nested(item_schema)),
    }, name=name or item_schema.__name__.replace("Schema", "") + "ListSchema")


def paginate(stmt, model, args: dict, url: str) -> dict:
    """Run ``stmt`` (a ``select(model)`` with filters, already tenant-scoped) one keyset page at a time."""
    limit = args.get("limit", 20)
    after, before = args.get("starting_after"), args.get("ending_before")
    key = tuple_(model.created_at, model.id)
    cursor_id = after or before
    if cursor_id:
        cursor = db.session.execute(select(model.created_at, model.id).where(model.id == cursor_id)).first()
        if cursor is None:
            param = "starting_after" if after else "ending_before"
            raise ValidationError(f"No such object for cursor '{param}': {cursor_id!r}.", param=param)
        bound = tuple_(cursor.created_at, cursor.id)
        stmt = stmt.where(key < bound) if after else stmt.where(key > bound)
    if before:
        rows = db.session.execute(
            stmt.order_by(model.created_at.asc(), model.id.asc()).limit(limit + 1)).scalars().all()
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        rows = db.session.execute(
            stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).scalars().all()
        has_more = len(rows) > limit
        rows = rows[:limit]
    return {"object": "list", "url": url, "has_more": has_more, "data": rows}
