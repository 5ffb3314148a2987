"""Lists: static (explicit members) or dynamic (``segment_rules`` compiled to SQL by ``app.segments``)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

LIST_TYPES = ("static", "dynamic")


class ContactList(TenantScoped, db.Model):
    __tablename__ = "lists"
    __table_args__ = (Index("ix_lists_page", "organization_id", "mode", "created_at", "id"),)

    id: Mapped[str] = id_column("list")
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    list_type: Mapped[str] = mapped_column(String(10), default="static")
    segment_rules: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ListMember(TenantScoped, db.Model):
    """A contact in a static list.  The primary key makes membership unique (409 ``duplicate_member``)."""

    __tablename__ = "list_members"
    __table_args__ = (
        PrimaryKeyConstraint("list_id", "contact_id"),
        # Keyset paging of members (newest first) and "which lists is this contact in".
        Index("ix_list_members_page", "list_id", "created_at", "contact_id"),
        Index("ix_list_members_contact", "contact_id"),
    )

    list_id: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at_column()
