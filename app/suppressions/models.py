from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import created_at_column, id_column
from ..tenancy import TenantScoped

SUPPRESSION_REASONS = ("manual", "bounce", "complaint", "unsubscribe", "stop_keyword", "erased")
SUPPRESSION_CHANNELS = ("email", "sms")


class Suppression(TenantScoped, db.Model):
    """A recipient that is never contacted on ``channel``.  ``recipient`` is normalised (lower-cased
    email, E.164 phone), so the unique key catches every spelling."""

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("organization_id", "mode", "channel", "recipient"),
        Index("ix_suppressions_page", "organization_id", "mode", "created_at", "id"),
    )

    id: Mapped[str] = id_column("sup")
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the send that caused it
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)  # e.g. the SMTP response
    created_at: Mapped[datetime] = created_at_column()
