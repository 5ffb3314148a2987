"""Broadcasts: one piece of content sent to an audience (a list, or recipients given inline).

The content lives here once.  Fan-out writes one ``messages`` row per recipient with ``broadcast_id`` and
``contact_id`` set and no content of its own; the delivery worker renders each one from this row at send
time (``app.broadcasts.render``).  A partial unique index on ``messages (broadcast_id, contact_id)`` makes
"at most once per recipient" the database's promise, not the worker's.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

# draft → scheduled → sending → sent; draft | scheduled | sending → canceled.
BROADCAST_STATUSES = ("draft", "scheduled", "sending", "sent", "canceled")
BROADCAST_CHANNELS = ("email", "sms")


class Broadcast(TenantScoped, db.Model):
    __tablename__ = "broadcasts"
    __table_args__ = (
        Index("ix_broadcasts_page", "organization_id", "mode", "created_at", "id"),
        # The sweeper: due scheduled broadcasts and fan-outs whose worker stopped beating, across tenants.
        Index("ix_broadcasts_status", "status", "scheduled_at"),
    )

    id: Mapped[str] = id_column("bc")
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10), default="email")
    status: Mapped[str] = mapped_column(String(10), default="draft")
    message_type: Mapped[str] = mapped_column(String(14), default="marketing")
    from_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    from_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply_to: Mapped[list] = mapped_column(JSONType, default=list)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    template_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # frozen when sending starts
    audience_list_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    inline_recipients: Mapped[int] = mapped_column(Integer, default=0)  # > 0: the audience is given inline
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    domain_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # UTC
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)  # as the user scheduled it
    # Fan-out progress: the keyset cursor (last contact id written), the audience frozen at start
    # (contacts created later are not added), a heartbeat the sweeper watches, and running counts.
    fanout_cursor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fanout_frozen_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    fanout_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    suppressed_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class BroadcastRecipient(TenantScoped, db.Model):
    """An inline recipient: the contact it was upserted as, and its own template ``data``."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (PrimaryKeyConstraint("broadcast_id", "contact_id"),)

    broadcast_id: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
