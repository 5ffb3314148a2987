"""RQ jobs of webhook delivery.

``dispatch_webhooks`` is a nudge, like ``dispatch_email``: it claims whatever is due from the database,
batch by batch, until nothing is left or its time budget is spent (then it re-nudges itself).  A batch
that came back full nudges once more before it is sent, so a second worker joins in.  Events ask for one
coalesced nudge after commit; retries are scheduled with RQ's scheduler (one job per second of retry
times); ``sweep_webhooks`` (cron, every 30 s) re-queues what a dead worker left `sending`, disables
endpoints that have failed for ``WEBHOOK_DISABLE_AFTER`` and nudges if anything is due — the enqueue is
never the only record of work to do.

Timeouts: each request has ``WEBHOOK_TIMEOUT`` (10 s) for the whole exchange; the job stops claiming
after ``TIME_BUDGET`` and RQ kills it after ``JOB_TIMEOUT``, well above one batch's worst case.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app

from ..extensions import db
from ..jobs import clear_nudge, job, queue
from ..timeutil import utcnow
from . import dispatch

log = logging.getLogger(__name__)

TIME_BUDGET = 50.0
JOB_TIMEOUT = 300


def _nudge() -> None:
    from ..extensions import redis
    if redis.client.set(redis.key("nudge", dispatch.NUDGE_KEY), "1", nx=True, ex=30):
        queue("default").enqueue(dispatch_webhooks, job_timeout=JOB_TIMEOUT)


@job
def dispatch_webhooks(batch_size: int = dispatch.BATCH_SIZE) -> dict:
    """Send every due delivery, batch by batch.  Idempotent: the claim decides who sends what."""
    clear_nudge(dispatch.NUDGE_KEY)
    started = time.monotonic()
    sender = dispatch.Sender()
    totals: dict[str, int] = {}
    try:
        while True:
            ids = dispatch.claim_due(batch_size)
            if not ids:
                break
            if len(ids) == batch_size:
                _nudge()
            outcomes = sender.send(dispatch.load_targets(ids))
            counts = dispatch.record_outcomes(outcomes)
            db.session.commit()
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            if time.monotonic() - started > TIME_BUDGET:
                _nudge()
                break
    finally:
        sender.close()
    if any(totals.values()):
        log.info("dispatch_webhooks: %s", totals)
    return totals


@job
def sweep_webhooks() -> dict:
    """Cron: requeue stuck deliveries, disable endpoints failing too long, nudge if work is due."""
    now = utcnow()
    stuck = dispatch.requeue_stuck(now)
    after = timedelta(seconds=int(current_app.config.get("WEBHOOK_DISABLE_AFTER", 5 * 86400)))
    disabled = dispatch.disable_endpoints(None, "failing", now, failing_before=now - after)
    db.session.commit()
    due = dispatch.due_count(now)
    if due:
        _nudge()
    return {"requeued": stuck, "disabled": len(disabled), "due": due}
