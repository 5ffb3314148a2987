from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models_base import JSONType, created_at_column, id_column, updated_at_column
from ..tenancy import TenantScoped

JOB_STATUSES = ("queued", "processing", "completed", "failed", "canceled")
FINISHED = ("completed", "failed", "canceled")


class Job(TenantScoped, db.Model):
    """Long-running work of one tenant.  ``type`` is open-ended (``import``, ``export``, …); ``params``
    holds what the worker needs (never shown raw), ``counts`` what it did, ``result_key`` the storage key
    of its result file.  ``updated_at`` doubles as the heartbeat: a ``processing`` job whose row has not
    moved for a while was left by a dead worker and may be claimed again (and resumes at ``processed``)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_page", "organization_id", "mode", "created_at", "id"),)

    id: Mapped[str] = id_column("job")
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict] = mapped_column(JSONType, default=dict)
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    result_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    result_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Set when the job's files were deleted, JOB_FILE_RETENTION_DAYS after it ended (the row stays).
    files_deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        if self.status == "completed":
            return 100
        if not self.total:
            return 0
        return max(0, min(100, int(self.processed * 100 / self.total)))
