"""Read the request log (written by app.api.machinery).  Tenant scoping comes from the session."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select

from ..api.models import RequestLog
from ..errors import NotFound, ValidationError
from ..extensions import db

_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_CODE = re.compile(r"^[1-5][0-9]{2}$")
MAX_PATH_FILTER = 500


def parse_status(value: str | None) -> tuple[int, int] | None:
    """``"4xx"`` → (400, 499), ``"404"`` → (404, 404), empty → None; anything else is a ValidationError."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if m := _STATUS_CLASS.match(value):
        low = int(m.group(1)) * 100
        return low, low + 99
    if _STATUS_CODE.match(value):
        return int(value), int(value)
    raise ValidationError("Status must be a class such as 2xx, 4xx, 5xx or a code such as 404.", param="status")


def list_requests_query(mode: str | None = None, status: str | None = None, path: str | None = None):
    """Requests of the organization in scope, optionally one mode, a status class or code, a path prefix."""
    stmt = select(RequestLog)
    if mode:
        stmt = stmt.where(RequestLog.mode == mode)
    bounds = parse_status(status)
    if bounds:
        stmt = stmt.where(RequestLog.status.between(*bounds))
    path = (path or "").strip()
    if path:
        if len(path) > MAX_PATH_FILTER:
            raise ValidationError(f"Path must be at most {MAX_PATH_FILTER} characters.", param="path")
        stmt = stmt.where(RequestLog.path.startswith(path, autoescape=True))
    return stmt


def get_request(request_id: str) -> RequestLog:
    row = db.session.execute(select(RequestLog).where(RequestLog.id == request_id)).scalar_one_or_none()
    if row is None:
        raise NotFound("No such request.", param="id")
    return row


def count_requests_since(since: datetime, mode: str | None = None) -> dict[str, int]:
    """``{"total": n, "errors": m}`` for requests at or after ``since``."""
    stmt = select(func.count(RequestLog.id), func.count(RequestLog.id).filter(RequestLog.status >= 400)
                  ).where(RequestLog.created_at >= since)
    if mode:
        stmt = stmt.where(RequestLog.mode == mode)
    total, errors = db.session.execute(stmt).one()
    return {"total": total, "errors": errors}
