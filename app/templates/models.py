from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

TEMPLATE_CHANNELS = ("email", "sms")


class Template(TenantScoped, db.Model):
    """A reusable message template (mustache: logic-less, HTML-escaped).  The row holds the current
    version; every version, the current one included, is also kept in ``template_versions``."""

    __tablename__ = "templates"
    __table_args__ = (Index("ix_templates_page", "organization_id", "mode", "created_at", "id"),)

    id: Mapped[str] = id_column("tmpl")
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10), default="email")
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_json: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    variables: Mapped[list] = mapped_column(JSONType, default=list)  # [{name, sample, default, required}]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class TemplateVersion(TenantScoped, db.Model):
    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[str] = id_column("tmplv")
    template_id: Mapped[str] = mapped_column(String(32), ForeignKey("templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_json: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    variables: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = created_at_column()
