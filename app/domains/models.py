from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import OrgScoped

DOMAIN_STATUSES = ("pending", "verified", "failed")


class Domain(OrgScoped, db.Model):
    """A sending domain.  Shared by both modes (DNS is not live or test); test-mode sends need none.

    ``records`` is the list the user publishes: ``[{type, name, value, purpose, status}]`` with purposes
    dkim | spf | dmarc | return_path | tracking.  The DKIM private key is encrypted at rest (app.crypto)."""

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("organization_id", "domain"),
        Index("ix_domains_page", "organization_id", "created_at", "id"),
    )

    id: Mapped[str] = id_column("dom")
    domain: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    dkim_selector: Mapped[str] = mapped_column(String(63))
    dkim_private_key: Mapped[str] = mapped_column(Text)  # encrypted PEM (app.crypto.encrypt)
    dkim_public_key: Mapped[str] = mapped_column(Text)  # base64 DER SubjectPublicKeyInfo: the p= value
    records: Mapped[list] = mapped_column(JSONType, default=list)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
