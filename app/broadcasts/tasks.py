"""RQ jobs of broadcasts: the fan-out, scheduled starts, and the sweeper (cron, every 30 s).

``fan_out_broadcast`` is safe to run any number of times, in parallel or after a crash: it claims the
broadcast through its heartbeat, resumes from the stored cursor, and the unique index on
``messages (broadcast_id, contact_id)`` is the final guard.  The enqueue is a nudge; the broadcast row is
the truth, and ``sweep_broadcasts`` re-enqueues a fan-out whose heartbeat went stale (its worker died).
"""
from __future__ import annotations

import logging

from ..jobs import job
from . import service

log = logging.getLogger(__name__)


@job
def fan_out_broadcast(broadcast_id: str) -> dict:
    """Write the broadcast's messages chunk by chunk (one transaction each); `sent` when done."""
    totals = service.run_fan_out(broadcast_id)
    log.info("fan_out_broadcast %s: %s", broadcast_id, totals)
    return totals


@job
def start_scheduled_broadcast(broadcast_id: str) -> bool:
    """Run by RQ's scheduler at the broadcast's time: start it (if it is still scheduled for now)."""
    return service.start_scheduled(broadcast_id)


@job
def sweep_broadcasts() -> dict:
    """Cron: due scheduled broadcasts the scheduler missed; fan-outs whose worker died."""
    return service.sweep()
