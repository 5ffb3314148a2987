"""Queues, enqueue-after-commit, and the job wrapper (app context + tenant scope + logging).

Jobs take ids, are idempotent, and treat the database row as the truth: an enqueue is a nudge, never the
only record of work to do.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, current_app, has_app_context
from rq import Queue, get_current_job
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .extensions import db, redis
from .tenancy import Tenant, tenant_scope

log = logging.getLogger(__name__)

# Named queues, most urgent first: a worker started on all of them drains `high` before `default`.
QUEUES = ("high", "default", "bulk", "low")

_PENDING = "postline_after_commit"


def queue_name(name: str) -> str:
    """The Redis name of a queue: ``RQ_QUEUE_PREFIX`` lets several deployments share one Redis."""
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return current_app.config["RQ_QUEUE_PREFIX"] + name


def queue(name: str = "default") -> Queue:
    return Queue(queue_name(name), connection=redis.client)


# --- enqueue after commit ---------------------------------------------------------------------------------

@dataclass
class _Pending:
    queue_name: str
    func: Callable
    args: tuple
    kwargs: dict
    options: dict = field(default_factory=dict)
    # The innermost SAVEPOINT open when the job was requested (None: the outer transaction).  Rolling that
    # savepoint back drops the job; releasing it hands the job to the enclosing transaction.
    savepoint: SessionTransaction | None = None


def enqueue_after_commit(func, *args, queue_name: str = "default", job_options: dict | None = None,
                         **kwargs) -> None:
    """Enqueue ``func(*args, **kwargs)`` when the current transaction commits; drop it on rollback.

    A fast worker must never see a row that is not committed yet.  Only the outermost COMMIT enqueues:
    releasing a SAVEPOINT (``begin_nested``) does not, and rolling a savepoint back drops only the jobs
    requested inside it.  ``job_options`` go to RQ (``job_id``, ``timeout``, ``retry``, ``at_front`` …);
    pass ``tenant=(organization_id, mode)`` for a job that works on one tenant's rows.
    """
    if queue_name not in QUEUES:
        raise ValueError(f"unknown queue {queue_name!r}")
    session = db.session()
    session.info.setdefault(_PENDING, []).append(
        _Pending(queue_name, func, args, kwargs, dict(job_options or {}), session.get_nested_transaction()))


def nudge_after_commit(func, *, key: str, queue_name: str = "default", ttl: int = 30) -> None:
    """Enqueue ``func()`` after commit unless a nudge with ``key`` is already waiting in the queue.

    For dispatchers that claim *all* due work from the database: a thousand sends committed in a second
    need one job, not a thousand.  The job calls ``clear_nudge(key)`` as it starts, so work committed after
    it claimed gets a new nudge; ``ttl`` bounds the damage of a nudge lost with a dead worker (the cron
    sweeper re-nudges anything due)."""
    enqueue_after_commit(func, queue_name=queue_name, job_options={"_nudge": (key, ttl)})


def enqueue_at_after_commit(when, func, *args, queue_name: str = "default", **kwargs) -> None:
    """Like ``enqueue_after_commit``, but run by RQ's scheduler at ``when`` (naive UTC)."""
    enqueue_after_commit(func, *args, queue_name=queue_name, job_options={"_at": when}, **kwargs)


def clear_nudge(key: str) -> None:
    redis.client.delete(redis.key("nudge", key))


def _enqueue_now(pending: list[_Pending]) -> None:
    by_queue: dict[str, list] = {}
    for p in pending:
        options = dict(p.options)
        nudge = options.pop("_nudge", None)
        at = options.pop("_at", None)
        try:
            if nudge is not None:
                key, ttl = nudge
                if not redis.client.set(redis.key("nudge", key), "1", nx=True, ex=ttl):
                    continue  # one is already waiting
            if at is not None:
                from datetime import timezone
                queue(p.queue_name).enqueue_at(at.replace(tzinfo=timezone.utc), p.func, *p.args, **p.kwargs,
                                               **options)
                continue
        except Exception:
            log.exception("could not enqueue %s after commit", getattr(p.func, "__name__", p.func))
            continue
        by_queue.setdefault(p.queue_name, []).append(Queue.prepare_data(p.func, p.args, p.kwargs, **options))
    for name, datas in by_queue.items():
        try:
            queue(name).enqueue_many(datas)  # one pipelined round trip per queue
        except Exception:
            # The transaction is already committed: raising here would turn a success into an error the
            # client retries.  The rows are the truth and the sweepers re-enqueue what is stuck.
            log.exception("could not enqueue %d job(s) on %r after commit", len(datas), name)


def _within(savepoint: SessionTransaction | None, transaction: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is transaction:
            return True
        savepoint = savepoint.parent
    return False


def _after_commit(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    released = session.get_nested_transaction()
    if released is not None:
        # SQLAlchemy fires after_commit for a SAVEPOINT release too: the outer transaction can still roll
        # back, so the jobs now belong to whatever encloses the savepoint.
        enclosing = released.parent if released.parent is not None and released.parent.nested else None
        for p in pending:
            if p.savepoint is released:
                p.savepoint = enclosing
        return
    session.info.pop(_PENDING, None)
    _enqueue_now(pending)


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
    elif previous_transaction.nested:
        session.info[_PENDING] = [p for p in pending if not _within(p.savepoint, previous_transaction)]
    # else: an internal subtransaction (a failed flush); the savepoint or transaction around it is rolled
    # back next, and that rollback decides.


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        # Committed: already enqueued.  Closed without a commit: the work never happened.
        session.info.pop(_PENDING, None)


def init_app(app) -> None:
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)
        event.listen(Session, "after_transaction_end", _after_transaction_end)


# --- the job wrapper ----------------------------------------------------------------------------------------

_app: Flask | None = None
_app_pid: int | None = None


def set_job_app(app: Flask) -> None:
    """The worker builds its app once and hands it here, so jobs reuse it (and, with a forking worker,
    every work horse inherits it instead of building its own)."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()


def _job_app() -> Flask:
    """The app a job runs in: the current one, else one per worker process."""
    global _app_pid
    if has_app_context():
        return current_app._get_current_object()
    if _app is None:
        from . import create_app
        set_job_app(create_app())
    elif _app_pid != os.getpid():
        # A forked work horse: never share the parent's pooled database connections across processes
        # (SQLAlchemy's documented "dispose(close=False)" after fork).  Redis' pool checks the pid itself.
        with _app.app_context():
            db.engine.dispose(close=False)
        _app_pid = os.getpid()
    return _app


def _as_tenant(tenant) -> Tenant:
    return tenant if isinstance(tenant, Tenant) else Tenant(*tenant)


def job(fn: Callable) -> Callable:
    """Wrap an RQ job: run it inside an app context, tenant-scoped when called with
    ``tenant=(organization_id, mode)``, committing once at the end and rolling back on error.

    Log lines carry the RQ job id, so a failure can be matched with the worker's own traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, tenant: tuple[str, str] | Tenant | None = None, **kwargs) -> Any:
        app = _job_app()
        ctx = None if has_app_context() else app.app_context()
        if ctx is not None:
            ctx.push()
        current = get_current_job()
        job_id = current.id if current is not None else "-"
        started = time.perf_counter()
        try:
            if tenant is not None:
                t = _as_tenant(tenant)
                with tenant_scope(t.organization_id, t.mode):
                    result = fn(*args, **kwargs)
                    db.session.commit()  # inside the scope: the flush stamps and checks tenant ids
            else:
                result = fn(*args, **kwargs)
                db.session.commit()
            log.debug("job %s [%s] done in %.1f ms", fn.__name__, job_id, (time.perf_counter() - started) * 1e3)
            return result
        except Exception as exc:
            try:
                db.session.rollback()
            except Exception:  # the database itself is gone: the original error is the one to report
                log.warning("job %s [%s]: rollback failed too", fn.__name__, job_id, exc_info=True)
            log.error("job %s [%s] failed: %s: %s", fn.__name__, job_id, type(exc).__name__, exc)
            raise
        finally:
            if ctx is not None:
                db.session.remove()
                ctx.pop()

    return wrapper
