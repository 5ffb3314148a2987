from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

ENDPOINT_STATUSES = ("enabled", "paused", "disabled")
# `sending` is internal (claimed by a dispatcher); the API shows it as `pending`.
DELIVERY_STATUSES = ("pending", "sending", "succeeded", "failed")


class WebhookEndpoint(TenantScoped, db.Model):
    """A URL that receives the organization's events of one mode, signed with its own secret.

    ``events`` holds the subscribed types and patterns (``message.*``; ``*`` = everything).  The signing
    secret is stored encrypted (it must be usable to sign, so it cannot be a hash)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_page", "organization_id", "mode", "created_at", "id"),
    )

    id: Mapped[str] = id_column("wh")
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    events: Mapped[list] = mapped_column(JSONType, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)  # gone | failing
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Set by the first failure after a success, cleared by any success: "failing for 5 days" reads it.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class WebhookDelivery(TenantScoped, db.Model):
    """One event for one endpoint.  ``payload`` is the exact body, signed afresh (new timestamp, current
    secret) on every attempt; ``event_id`` is the ``webhook-id`` header, the same on every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatcher's claim: due work, oldest first, across tenants.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at", "id"),
    )

    id: Mapped[str] = id_column("whd")
    endpoint_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def public_status(self) -> str:
        return "pending" if self.status == "sending" else self.status


class WebhookAttempt(TenantScoped, db.Model):
    """One HTTP request of a delivery, as sent and as answered (the body sent is the delivery's payload)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "created_at"),)

    id: Mapped[str] = id_column("wha")
    delivery_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(10), default="auto")  # auto | manual | test
    url: Mapped[str] = mapped_column(String(2048))
    request_headers: Mapped[dict] = mapped_column(JSONType, default=dict)
    response_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # first 1 KiB
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = created_at_column()
