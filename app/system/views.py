"""/healthz: is this deployment able to serve, and is its queue being worked?

Public (no login, no tenant): it reveals reachability and timings, never data.

HTTP status answers "can this web process serve requests": 200 when the database and Redis both answer,
503 otherwise — what a load balancer or uptime check should act on.  The worker is reported but does not
fail the check: with no fresh heartbeat (none yet, or older than ``HEARTBEAT_STALE_AFTER``) the answer is
still 200, with ``"status": "degraded"`` and ``"worker": {"ok": false}`` — pages still render and the
API still accepts work, which waits in Redis until a worker returns.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from ..extensions import db, redis
from ..timeutil import rfc3339, utcnow
from .models import WorkerHeartbeat
from .tasks import HEARTBEAT_STALE_AFTER

bp = Blueprint("system", __name__)
log = logging.getLogger(__name__)


def _timed(name: str, check) -> tuple[bool, float, object]:
    started = time.perf_counter()
    try:
        value, ok = check(), True
    except Exception:
        log.warning("healthz: %s check failed", name, exc_info=True)
        value, ok = None, False
    return ok, round((time.perf_counter() - started) * 1000, 2), value


def _database():
    try:
        return db.session.execute(select(func.max(WorkerHeartbeat.beat_at))).scalar()
    finally:
        db.session.rollback()  # never hold a transaction (SQLite: a read lock) past the check


@bp.get("/healthz")
def healthz():
    db_ok, db_ms, last_beat = _timed("database", _database)  # one round trip: proves the database and reads the beat
    redis_ok, redis_ms, _ = _timed("redis", lambda: redis.client.ping())
    worker_ok = last_beat is not None and utcnow() - last_beat <= HEARTBEAT_STALE_AFTER
    serving = db_ok and redis_ok
    body = {
        "status": "ok" if serving and worker_ok else "degraded",
        "database": {"ok": db_ok, "latency_ms": db_ms},
        "redis": {"ok": redis_ok, "latency_ms": redis_ms},
        "worker": {"last_heartbeat_at": rfc3339(last_beat), "ok": worker_ok},
    }
    resp = jsonify(body)
    resp.status_code = 200 if serving else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp
