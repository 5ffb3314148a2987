"""`rq cron app/system/cron.py`: the periodic jobs.  The quickstart launcher runs it as its own process.

The cron process builds no app: it only enqueues.  Queue names carry ``RQ_QUEUE_PREFIX`` from the same
environment the worker reads, so both agree on where the jobs go.
"""
import os

from rq import cron

from app.delivery.tasks import sweep_email
from app.system.tasks import HEARTBEAT_INTERVAL, purge_expired, record_heartbeat

PREFIX = os.environ.get("RQ_QUEUE_PREFIX", "")

# Run at start, then every 30 s.  ttl: a beat nobody picked up within a minute is stale news; dropping it
# keeps a worker-less Redis from piling up heartbeats (and /healthz says the worker is missing anyway).
cron.register(record_heartbeat, queue_name=PREFIX + "high", interval=HEARTBEAT_INTERVAL,
              ttl=2 * HEARTBEAT_INTERVAL, result_ttl=600)
cron.register(purge_expired, queue_name=PREFIX + "low", interval=3600, job_timeout=1800)
# The delivery sweeper: retries whose time has come, scheduled sends, work a dead worker left behind.
cron.register(sweep_email, queue_name=PREFIX + "high", interval=30, ttl=60, result_ttl=600)
# The webhook sweeper: stuck deliveries, endpoints failing for days, due retries.
from app.webhooks.tasks import sweep_webhooks  # noqa: E402
cron.register(sweep_webhooks, queue_name=PREFIX + "default", interval=30, ttl=60, result_ttl=600)
# The broadcast sweeper: scheduled broadcasts the scheduler missed, fan-outs whose worker died.
from app.broadcasts.tasks import sweep_broadcasts  # noqa: E402
cron.register(sweep_broadcasts, queue_name=PREFIX + "default", interval=30, ttl=60, result_ttl=600)
# The segments' event-count rollup: windows of saved dynamic lists, as of the last midnight.
from app.segments.rollup import REFRESH_INTERVAL  # noqa: E402
from app.segments.tasks import refresh_event_windows  # noqa: E402
cron.register(refresh_event_windows, queue_name=PREFIX + "low", interval=REFRESH_INTERVAL, ttl=REFRESH_INTERVAL,
              job_timeout=1800, result_ttl=600)
