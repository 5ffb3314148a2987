"""Recording events: the one function every domain calls when something happens.

Events are rows first (the truth, read by timelines, analytics and signals); delivery to webhooks reads
them after commit.  ``record_events`` writes many in one INSERT, for the delivery worker's batches.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from ..extensions import db
from ..ids import new_id
from ..tenancy import require_tenant
from ..timeutil import utcnow
from .models import Event

# API.md section 12: the catalogue.
EVENT_TYPES = (
    "message.queued", "message.scheduled", "message.sent", "message.delivered", "message.deferred",
    "message.bounced", "message.complained", "message.opened", "message.clicked", "message.failed",
    "message.suppressed", "message.canceled", "message.replied",
    "contact.created", "contact.updated", "contact.deleted", "contact.unsubscribed",
    "broadcast.sent", "domain.verified", "job.completed", "signal.churn_risk",
)

_LISTENERS: list = []


def on_events(listener) -> None:
    """Register ``listener(rows)``, called with the inserted event dicts (inside the transaction), e.g. the
    webhook dispatcher that enqueues after commit."""
    _LISTENERS.append(listener)


def record_events(rows: list[dict]) -> list[dict]:
    """Insert events in one statement.  Each row: ``type`` and optionally ``organization_id``/``mode``
    (default: the tenant in scope), ``message_id``, ``contact_id``, ``recipient``, ``data``,
    ``occurred_at``.  Returns the rows as written (with ``id``)."""
    if not rows:
        return []
    tenant = None
    out = []
    now = utcnow()
    for row in rows:
        if row["type"] not in EVENT_TYPES:
            raise ValueError(f"unknown event type {row['type']!r}")
        if "organization_id" not in row or "mode" not in row:
            tenant = tenant or require_tenant()
        out.append({
            "id": new_id("evt"), "type": row["type"],
            "organization_id": row.get("organization_id") or tenant.organization_id,
            "mode": row.get("mode") or tenant.mode,
            "message_id": row.get("message_id"), "contact_id": row.get("contact_id"),
            "recipient": row.get("recipient"), "data": row.get("data") or {},
            "occurred_at": row.get("occurred_at") or now,
        })
    db.session.execute(insert(Event.__table__), out)
    for listener in _LISTENERS:
        listener(out)
    return out


def record_event(type_: str, *, message_id: str | None = None, contact_id: str | None = None,
                 recipient: str | None = None, data: dict | None = None,
                 occurred_at: datetime | None = None) -> dict:
    return record_events([{"type": type_, "message_id": message_id, "contact_id": contact_id,
                           "recipient": recipient, "data": data, "occurred_at": occurred_at}])[0]


def message_timeline(message_id: str) -> list[Event]:
    return list(db.session.execute(
        select(Event).where(Event.message_id == message_id).order_by(Event.occurred_at, Event.id)).scalars())
