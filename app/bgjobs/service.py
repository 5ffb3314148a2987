"""Jobs: create, claim, report progress, finish, cancel.  Framework-free; tenant from the scope.

Progress is one UPDATE per batch, conditional on ``status = 'processing'``: when it matches no row the job
was canceled (or taken over), so the same statement is the worker's cancel check.  Every terminal status
records ``job.completed`` on the events backbone (webhooks fire from it) with the job's final state."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update

from ..errors import Conflict, NotFound
from ..events.service import record_event
from ..extensions import db
from ..timeutil import rfc3339, utcnow
from .models import FINISHED, JOB_STATUSES, Job

# A `processing` job whose row has not moved for this long was left by a dead worker: it may be claimed
# again and resumes from its checkpoint.
STALE_AFTER = timedelta(minutes=5)


def create_job(type_: str, total: int | None = None, params: dict | None = None) -> Job:
    """A queued job of this tenant (flushed, so it has its id).  The caller enqueues its worker after
    commit."""
    job = Job(type=type_, status="queued", total=total, processed=0, counts={}, params=dict(params or {}))
    db.session.add(job)
    db.session.flush()
    return job


def get_job(job_id: str) -> Job:
    job = db.session.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 64 else None
    if job is None:
        raise NotFound("No such job.", param="id")
    return job


def list_jobs_query(type_: str | None = None, status: str | None = None):
    stmt = select(Job)
    if type_:
        stmt = stmt.where(Job.type == type_)
    if status:
        stmt = stmt.where(Job.status == status)
    return stmt


def _update(job_id: str, *where, **values) -> int:
    values.setdefault("updated_at", utcnow())
    result = db.session.execute(update(Job).where(Job.id == job_id, *where).values(**values)
                                .execution_options(synchronize_session=False))
    return result.rowcount


def claim_job(job_id: str) -> Job | None:
    """Take a queued job (or one a dead worker left ``processing`` past ``STALE_AFTER``) for this worker.
    Returns the job, or None when there is nothing to do (finished, canceled, or another worker has it)."""
    now = utcnow()
    claimed = _update(job_id, or_(Job.status == "queued",
                                  (Job.status == "processing") & (Job.updated_at < now - STALE_AFTER)),
                      status="processing", started_at=now, updated_at=now)
    if not claimed:
        return None
    job = get_job(job_id)
    db.session.refresh(job)
    return job


def progress(job_id: str, processed: int, counts: dict | None = None, total: int | None = None) -> bool:
    """Record a checkpoint.  False: the job is no longer ``processing`` (canceled): stop."""
    values = {"processed": processed}
    if counts is not None:
        values["counts"] = dict(counts)
    if total is not None:
        values["total"] = total
    return _update(job_id, Job.status == "processing", **values) == 1


def is_canceled(job_id: str) -> bool:
    status = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    return status == "canceled"


def _completed_event(job_id: str) -> None:
    job = get_job(job_id)
    db.session.refresh(job)
    record_event("job.completed", data={
        "job_id": job.id, "type": job.type, "status": job.status, "total": job.total,
        "processed": job.processed, "counts": job.counts or {}, "error": job.error,
        "has_result": bool(job.result_key),
        "completed_at": rfc3339(job.completed_at) if job.completed_at else None})


def complete_job(job_id: str, counts: dict | None = None, *, processed: int | None = None,
                 result: tuple[str, str, int | None] | None = None) -> bool:
    """``processing`` → ``completed`` with the final counts and result ``(storage key, file name, rows)``.
    False if the job was canceled meanwhile (the result, if any, is attached anyway)."""
    values: dict = {"status": "completed", "completed_at": utcnow()}
    if counts is not None:
        values["counts"] = dict(counts)
    if processed is not None:
        values["processed"] = processed
    if result is not None:
        values.update(result_key=result[0], result_name=result[1], result_rows=result[2])
    done = _update(job_id, Job.status == "processing", **values) == 1
    if not done and result is not None:
        attach_result(job_id, *result)
    if done:
        _completed_event(job_id)
    return done


def attach_result(job_id: str, key: str, name: str, rows: int | None = None) -> None:
    _update(job_id, result_key=key, result_name=name, result_rows=rows)


def fail_job(job_id: str, error: str, counts: dict | None = None) -> bool:
    values: dict = {"status": "failed", "error": (error or "failed")[:1000], "completed_at": utcnow()}
    if counts is not None:
        values["counts"] = dict(counts)
    done = _update(job_id, Job.status.in_(("queued", "processing")), **values) == 1
    if done:
        _completed_event(job_id)
    return done


def cancel_job(job_id: str) -> Job:
    """Cancel a queued or running job (a running one stops at its next batch).  409 if it has finished."""
    job = get_job(job_id)
    if job.status in FINISHED:
        raise Conflict(f"The job has already finished ({job.status}).", param="id")
    if not _update(job_id, Job.status.in_(("queued", "processing")), status="canceled", completed_at=utcnow()):
        raise Conflict("The job has already finished.", param="id")
    _completed_event(job_id)
    db.session.refresh(job)
    return job


def result_of(job_id: str) -> Job:
    """The job, if its result file can be downloaded; 409 ``job_not_ready`` before it finishes."""
    job = get_job(job_id)
    if job.status not in FINISHED:
        raise Conflict("The job has not finished yet; poll GET /jobs/{id} until it has.", code="job_not_ready",
                       param="id")
    if job.files_deleted_at is not None:
        raise NotFound("This job's result file was deleted: job files are kept for "
                       f"{_retention_days():g} days after the job ends.", code="result_expired", param="id",
                       status=410)
    if not job.result_key:
        raise NotFound("This job has no result file.", param="id")
    return job


def _retention_days() -> float:
    from flask import current_app

    return float(current_app.config["JOB_FILE_RETENTION_DAYS"])


def purge_job_files(now=None, limit: int = 1000) -> int:
    """Delete the files of jobs that ended more than ``JOB_FILE_RETENTION_DAYS`` ago, across tenants: the
    job's storage folder (an import's input and error report, an export's CSV).  The job row stays, with
    ``files_deleted_at`` set, so its download answers 410 ``result_expired``.  At most ``limit`` jobs a call,
    oldest first, a commit per call; returns how many were purged."""
    from ..tenancy import unscoped
    from .storage import storage

    now = now or utcnow()
    cutoff = now - timedelta(days=_retention_days())
    with unscoped():
        rows = db.session.execute(
            select(Job.id, Job.organization_id, Job.mode)
            .where(Job.status.in_(FINISHED), Job.completed_at < cutoff, Job.files_deleted_at.is_(None))
            .order_by(Job.completed_at).limit(limit)).all()
        store = storage()
        for row in rows:
            # The folder of keys `<org>/<mode>/<job>/…` every job file is written under.
            store.delete_prefix(f"{row.organization_id}/{row.mode}/{row.id}")
        if rows:
            db.session.execute(update(Job).where(Job.id.in_([r.id for r in rows]))
                               .values(files_deleted_at=now).execution_options(synchronize_session=False))
    db.session.commit()
    return len(rows)


__all__ = ["JOB_STATUSES", "create_job", "get_job", "list_jobs_query", "claim_job", "progress", "is_canceled",
           "complete_job", "fail_job", "cancel_job", "result_of", "attach_result", "purge_job_files"]
