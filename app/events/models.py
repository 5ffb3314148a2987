from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, id_column
from ..timeutil import utcnow
from ..tenancy import TenantScoped


class Event(TenantScoped, db.Model):
    """Something that happened: the backbone every later feature reads (message timelines, webhooks,
    analytics, retention signals).  ``type`` is from the catalogue of API.md section 12
    (``message.delivered``, ``contact.created`` …); ``data`` holds the event's own details."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_page", "organization_id", "mode", "occurred_at", "id"),
        Index("ix_events_message", "message_id", "occurred_at"),
        Index("ix_events_contact", "contact_id", "occurred_at"),
    )

    # Served by the composite (organization_id, mode, …) indexes below: no single-column index to maintain on
    # every insert of this hot table.
    organization_id: Mapped[str] = mapped_column(String(32))
    id: Mapped[str] = id_column("evt")
    type: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
