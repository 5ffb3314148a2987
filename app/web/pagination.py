"""Keyset pages for dashboard tables: the API's pager (``app.api.pagination.paginate``) plus the two
cursors a table footer needs ("← Newer" / "Older →")."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import request

from ..api.pagination import paginate
from ..errors import ValidationError

PAGE_SIZE = 25


@dataclass
class Page:
    items: list
    newer: str | None = None  # ending_before cursor for "← Newer"
    older: str | None = None  # starting_after cursor for "Older →"
    filters: dict = field(default_factory=dict)

    def url_args(self, **cursor) -> dict:
        """Query args for a link to a neighbouring page: the filters in force plus one cursor."""
        args = {k: v for k, v in self.filters.items() if v}
        args.update({k: v for k, v in cursor.items() if v})
        return args


def keyset_page(stmt, model, filters: dict | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of ``stmt`` (newest first), positioned by ``starting_after`` / ``ending_before`` in the
    query string.  An unknown cursor is a ValidationError, as in the API."""
    after = request.args.get("starting_after") or None
    before = request.args.get("ending_before") or None
    if after and before:
        raise ValidationError("Use either starting_after or ending_before, not both.", param="ending_before")
    result = paginate(stmt, model, {"limit": size, "starting_after": after, "ending_before": before},
                      request.path)
    items = result["data"]
    page = Page(items=items, filters=dict(filters or {}))
    if not items:
        return page
    if before:
        page.older = items[-1].id  # we came from there
        page.newer = items[0].id if result["has_more"] else None
    else:
        page.older = items[-1].id if result["has_more"] else None
        page.newer = items[0].id if after else None
    return page
