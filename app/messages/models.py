from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

CHANNELS = ("email", "sms", "push", "voice", "webhook")
MESSAGE_TYPES = ("transactional", "marketing")
# scheduled → queued → sending → sent → delivered; terminal: bounced complained failed suppressed canceled.
# `sending` is internal (claimed by a worker); the API shows it as `queued`.
MESSAGE_STATUSES = ("scheduled", "queued", "sending", "sent", "delivered", "bounced", "complained", "failed",
                    "suppressed", "canceled")
RECIPIENT_STATUSES = ("queued", "deferred", "sent", "delivered", "bounced", "complained", "failed",
                      "suppressed", "canceled")
ATTEMPT_STATUSES = ("accepted", "deferred", "bounced", "failed")
RECIPIENT_KINDS = ("to", "cc", "bcc")


class Message(TenantScoped, db.Model):
    """One message as accepted by the API.  Content lives here once; each address it goes to is a
    ``MessageRecipient`` with its own outcome, and each SMTP try a ``DeliveryAttempt``."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_page", "organization_id", "mode", "created_at", "id"),
        # The dispatcher's claim: due work, oldest first, across tenants.
        Index("ix_messages_due", "status", "next_attempt_at"),
        Index("ux_messages_broadcast_contact", "broadcast_id", "contact_id", unique=True, postgresql_where=text("broadcast_id IS NOT NULL"), sqlite_where=text("broadcast_id IS NOT NULL")),  # noqa: E501  one message per recipient of a broadcast
    )

    # Served by the composite (organization_id, mode, …) indexes below: no single-column index to maintain on
    # every insert of this hot table.
    organization_id: Mapped[str] = mapped_column(String(32))
    id: Mapped[str] = id_column("msg")
    channel: Mapped[str] = mapped_column(String(10), default="email")
    status: Mapped[str] = mapped_column(String(12), default="queued")
    status_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)  # e.g. no_consent
    message_type: Mapped[str] = mapped_column(String(14), default="transactional")
    from_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    from_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply_to: Mapped[list] = mapped_column(JSONType, default=list)  # [{email, name}]
    to: Mapped[list] = mapped_column(JSONType, default=list)  # as given: [{email, name}] (email) or [number]
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    headers: Mapped[dict] = mapped_column(JSONType, default=dict)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    template_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    variables: Mapped[dict] = mapped_column(JSONType, default=dict)
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False)
    send_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    domain_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    broadcast_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message_id_header: Mapped[str | None] = mapped_column(String(255), nullable=True)  # RFC 5322 Message-ID
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    queued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MessageRecipient(TenantScoped, db.Model):
    __tablename__ = "message_recipients"
    __table_args__ = (
        Index("ix_message_recipients_message", "message_id"),
        # `GET /messages?to=` and erasure find a tenant's messages by recipient address.
        Index("ix_message_recipients_address", "organization_id", "mode", "address"),
    )

    # Served by ix_message_recipients_address: no single-column index to maintain on every recipient.
    organization_id: Mapped[str] = mapped_column(String(32))
    id: Mapped[str] = id_column("rcp")
    message_id: Mapped[str] = mapped_column(String(32), ForeignKey("messages.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(3), default="to")
    address: Mapped[str] = mapped_column(String(320))  # normalised email, or E.164
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)  # for grouping by MX
    status: Mapped[str] = mapped_column(String(12), default="queued")
    status_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    smtp_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enhanced_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    smtp_response: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = updated_at_column()


class DeliveryAttempt(TenantScoped, db.Model):
    """One SMTP try for one recipient: what the receiving server said, verbatim."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_message", "message_id", "at"),)

    id: Mapped[str] = id_column("att")
    message_id: Mapped[str] = mapped_column(String(32), ForeignKey("messages.id", ondelete="CASCADE"))
    recipient_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recipient: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = created_at_column()
    status: Mapped[str] = mapped_column(String(10))
    mx_host: Mapped[str | None] = mapped_column(String(253), nullable=True)
    smtp_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enhanced_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    smtp_response: Mapped[str | None] = mapped_column(Text, nullable=True)


class MessageAttachment(TenantScoped, db.Model):
    __tablename__ = "message_attachments"
    __table_args__ = (Index("ix_message_attachments_message", "message_id"),)

    id: Mapped[str] = id_column("file")
    message_id: Mapped[str] = mapped_column(String(32), ForeignKey("messages.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
