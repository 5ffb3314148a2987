"""Housekeeping jobs, run by the worker (cron schedules them, see app/system/cron.py)."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import delete

from ..api import idempotency
from ..api.models import RequestLog
from ..extensions import db
from ..jobs import job
from ..tenancy import unscoped
from ..timeutil import utcnow
from .models import WorkerHeartbeat

REQUEST_LOG_RETENTION = timedelta(days=30)
# cron enqueues a heartbeat this often; /healthz calls the worker missing after HEARTBEAT_STALE_AFTER.
HEARTBEAT_INTERVAL = 30
HEARTBEAT_STALE_AFTER = timedelta(seconds=3 * HEARTBEAT_INTERVAL)


@job
def record_heartbeat(name: str = "worker") -> str:
    """Prove the queue is worked: /healthz reports the newest beat."""
    now = utcnow()
    beat = db.session.get(WorkerHeartbeat, name)
    detail = f"{socket.gethostname()} pid {os.getpid()}"
    if beat is None:
        db.session.add(WorkerHeartbeat(name=name, beat_at=now, detail=detail))
    else:
        beat.beat_at, beat.detail = now, detail
    return now.isoformat()


@job
def purge_expired() -> dict:
    """Drop idempotency keys past 24 h, request-log rows past the retention window, and the files of jobs
    that ended more than JOB_FILE_RETENTION_DAYS ago."""
    from ..bgjobs.service import purge_job_files

    keys = idempotency.purge_expired()
    with unscoped():
        logs = db.session.execute(
            delete(RequestLog).where(RequestLog.created_at < utcnow() - REQUEST_LOG_RETENTION)).rowcount
    db.session.commit()
    job_files = 0
    while True:  # a thousand jobs a transaction
        purged = purge_job_files()
        job_files += purged
        if purged < 1000:
            break
    return {"idempotency_keys": keys, "request_logs": logs, "job_files": job_files}
