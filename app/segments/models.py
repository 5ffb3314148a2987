"""The event-count rollup the segment compiler reads (see app.segments.rollup).

``EventWindow`` says which windows are maintained and as of when: for (tenant, event type, N days) the
rows of ``EventWindowCount`` hold each contact's number of events of that type in ``[as_of - N days,
as_of)``, ``as_of`` being a midnight (UTC).  Only contacts with at least one such event have a row.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..tenancy import TenantScoped


class EventWindow(TenantScoped, db.Model):
    __tablename__ = "event_windows"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "mode", "type", "days"),)

    organization_id: Mapped[str] = mapped_column(String(32))  # the primary key leads with it: no own index
    type: Mapped[str] = mapped_column(String(40))
    days: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # counts cover [as_of - days, as_of)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime)


class EventWindowCount(TenantScoped, db.Model):
    __tablename__ = "event_window_counts"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "mode", "type", "days", "contact_id"),)

    organization_id: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(40))
    days: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)
