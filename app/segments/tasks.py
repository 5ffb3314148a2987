"""RQ job of the segments: the event-count rollup's refresh (cron, every ``REFRESH_INTERVAL`` seconds)."""
from __future__ import annotations

import logging

from ..jobs import job
from . import rollup

log = logging.getLogger(__name__)


@job
def refresh_event_windows() -> dict:
    """Bring the event-count windows saved dynamic lists use up to the last midnight (a no-op until then)."""
    result = rollup.refresh_windows()
    if result["refreshed"] or result["dropped"]:
        log.info("refresh_event_windows: %s", result)
    return result
