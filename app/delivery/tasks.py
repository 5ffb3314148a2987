"""RQ jobs of the email pipeline.

``dispatch_email`` is a nudge: it claims whatever is due from the database, in batches, until nothing is
left or its time budget is spent (then it re-nudges itself, so long queues are shared fairly with other
jobs).  A batch that came back full nudges once more before it is delivered, so a second worker joins in.
Accepting messages nudges after commit (coalesced: one waiting nudge at a time); ``sweep_email`` (cron,
every 30 s) re-queues work a dead worker left behind and nudges if anything is due — the enqueue is
never the only record of work to do.
"""
from __future__ import annotations

import logging
import time

from ..extensions import db
from ..jobs import clear_nudge, job, queue
from . import service

log = logging.getLogger(__name__)

DISPATCH_NUDGE = "dispatch-email"
TIME_BUDGET = 20.0  # seconds per job: well under RQ's 180 s timeout, and fair to other queued jobs
JOB_TIMEOUT = 180


def _nudge(queue_name: str = "high", batch_size: int | None = None) -> None:
    from ..extensions import redis
    if redis.client.set(redis.key("nudge", DISPATCH_NUDGE), "1", nx=True, ex=30):
        args = (batch_size,) if batch_size and batch_size != service.BATCH_SIZE else ()
        queue(queue_name).enqueue(dispatch_email, *args, job_timeout=JOB_TIMEOUT)


@job
def dispatch_email(batch_size: int = service.BATCH_SIZE) -> dict:
    """Deliver every due email, batch by batch.  Idempotent: the claim decides who sends what.

    Each transaction writes one batch's outcome and claims the next (one COMMIT per batch); sending a
    batch runs outside any transaction."""
    clear_nudge(DISPATCH_NUDGE)
    started = time.monotonic()
    deliverer = service.Deliverer()
    totals: dict[str, int] = {}
    clean = False
    try:
        batch = deliverer.claim(batch_size)
        while batch:
            if len(batch) == batch_size:
                _nudge(batch_size=batch_size)  # more is waiting: let another worker help
            results = deliverer.send(batch)
            counts = deliverer.write(batch, results)
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            if time.monotonic() - started > TIME_BUDGET:
                db.session.commit()
                # Continue on `default`, behind what is already waiting there (webhooks): a long send must
                # not keep a worker on `high` forever, which RQ drains before anything else.
                _nudge("default", batch_size)
                break
            batch = deliverer.claim(batch_size)  # commits the write above with this claim
        clean = True
    finally:
        deliverer.close(wait=clean)
    if totals:
        log.info("dispatch_email: %s", totals)
    return totals


@job
def promote_scheduled() -> int:
    """Scheduled sends whose time has come → queued; then deliver them."""
    count = service.promote_scheduled()
    db.session.commit()
    if count:
        _nudge()
    return count


@job
def sweep_email() -> dict:
    """Cron: requeue what dead workers left `sending`, promote due scheduled sends, nudge if work is due."""
    stuck = service.requeue_stuck()
    promoted = service.promote_scheduled()
    db.session.commit()
    due = service.due_count()
    if due:
        _nudge()
    return {"requeued": stuck, "promoted": promoted, "due": due}
