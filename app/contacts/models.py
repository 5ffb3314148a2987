from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

CONSENT_VALUES = ("subscribed", "unsubscribed", "unknown")


class Contact(TenantScoped, db.Model):
    __tablename__ = "contacts"
    __table_args__ = (
        # Upsert key; also serves `?email=`.  NULLs are distinct, so phone-only contacts coexist.
        UniqueConstraint("organization_id", "mode", "email"),
        Index("ix_contacts_page", "organization_id", "mode", "created_at", "id"),
        Index("ix_contacts_phone", "organization_id", "mode", "phone_number"),
        Index("ix_contacts_external_id", "organization_id", "mode", "external_id"),
        # `?risk=` and segments on the churn band / score (written by retention signals).
        Index("ix_contacts_risk", "organization_id", "mode", "risk", "created_at", "id"),
        Index("ix_contacts_score", "organization_id", "mode", "score"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= 100)", name="score_range"),
    )

    # Served by the composite (organization_id, mode, …) indexes below: no single-column index to maintain on
    # every insert of this hot table.
    organization_id: Mapped[str] = mapped_column(String(32))
    id: Mapped[str] = id_column("con")
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    consent_email: Mapped[str] = mapped_column(String(12), default="unknown")
    consent_sms: Mapped[str] = mapped_column(String(12), default="unknown")
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(35), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    # Churn band (low|medium|high) and score (0–100), written by the retention-signals feature.
    risk: Mapped[str | None] = mapped_column(String(6), nullable=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    @property
    def consent(self) -> dict:
        return {"email": self.consent_email, "sms": self.consent_sms}
