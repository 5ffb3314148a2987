"""Events → webhook deliveries → signed HTTP requests.  Set-based from end to end.

``fan_out`` is an ``on_events`` listener: for a batch of events (one API call, or a delivery worker's
batch of thousands) it runs one query for the enabled endpoints of the batch's tenants, one for the
messages the ``message.*`` events are about, one INSERT of delivery rows, and asks for one coalesced
dispatcher nudge after commit — never a job per event.

The dispatcher (``app.webhooks.tasks.dispatch_webhooks``) claims due deliveries with one conditional UPDATE
(``pending → sending``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers take disjoint
batches), sends them concurrently over kept-alive connections through the SSRF guard, and writes attempts,
delivery states and endpoint health with one statement per table.  Delivery is at-least-once: receivers
de-duplicate on ``webhook-id`` (the event id, the same on every attempt).
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, update
from standardwebhooks import Webhook

from .. import epoch as config_epoch
from .. import ssrf
from ..crypto import decrypt
from ..extensions import db
from ..ids import new_id
from ..timeutil import rfc3339, utcnow
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

BATCH_SIZE = 200
STUCK_AFTER = timedelta(minutes=5)  # a batch takes at most ~BATCH_SIZE/threads × timeout; far less in practice
RESPONSE_LOG_BYTES = 1024
USER_AGENT = "Postline-Webhooks/1.0"
NUDGE_KEY = "dispatch-webhooks"
_ENDPOINTS_CACHE = "postline_webhook_endpoints"

config_epoch.watch(WebhookEndpoint)

# The message status an event implies at the time it happened (the row may have moved on since).
_EVENT_STATUS = {
    "message.queued": "queued", "message.scheduled": "scheduled", "message.sent": "sent",
    "message.delivered": "delivered", "message.deferred": "deferred", "message.bounced": "bounced",
    "message.complained": "complained", "message.failed": "failed", "message.suppressed": "suppressed",
    "message.canceled": "canceled",
}

_client = ssrf.Client()


def http_client() -> ssrf.Client:
    return _client


def event_matches(patterns: list[str], event_type: str) -> bool:
    for pattern in patterns or ("*",):
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def payload_body(event_id: str, event_type: str, created_at: datetime, data: dict) -> str:
    """The exact bytes sent (compact JSON): ``{id, type, created_at, data}``."""
    return json.dumps({"id": event_id, "type": event_type, "created_at": rfc3339(created_at), "data": data},
                      separators=(",", ":"), ensure_ascii=False, default=str)


# --- events → deliveries --------------------------------------------------------------------------------------

def fan_out(events: list[dict]) -> None:
    """The ``on_events`` listener: one delivery row per (event, subscribed endpoint of its tenant and mode)."""
    if not events:
        return
    endpoints = _enabled_endpoints({e["organization_id"] for e in events})
    if not endpoints:
        return
    by_tenant: dict[tuple[str, str], list] = {}
    for ep in endpoints:
        by_tenant.setdefault((ep.organization_id, ep.mode), []).append(ep)
    matches = []
    for event in events:
        for ep in by_tenant.get((event["organization_id"], event["mode"]), ()):
            if event_matches(ep.events, event["type"]):
                matches.append((event, ep))
    if not matches:
        return
    message_ids = {e["message_id"] for e, _ in matches if e.get("message_id") and e["type"].startswith("message.")}
    messages = {}
    if message_ids:
        from ..messages.models import Message
        m = Message.__table__
        messages = {row.id: row for row in db.session.execute(
            select(m.c.id, m.c.channel, m.c.status, m.c.tags, m.c.metadata, m.c.to)
            .where(m.c.id.in_(message_ids)))}
    now = utcnow()
    rows, bodies = [], {}
    for event, ep in matches:
        body = bodies.get(event["id"])
        if body is None:
            body = bodies[event["id"]] = payload_body(event["id"], event["type"], event["occurred_at"],
                                                      event_data(event, messages.get(event.get("message_id"))))
        rows.append({"id": new_id("whd"), "organization_id": ep.organization_id, "mode": ep.mode,
                     "endpoint_id": ep.id, "event_id": event["id"], "event_type": event["type"], "payload": body,
                     "status": "pending", "attempt_count": 0, "next_attempt_at": now, "created_at": now,
                     "updated_at": now})
    db.session.execute(insert(WebhookDelivery.__table__), rows)
    from ..jobs import nudge_after_commit
    from .tasks import dispatch_webhooks
    nudge_after_commit(dispatch_webhooks, key=NUDGE_KEY, queue_name="default")


def _enabled_endpoints(orgs: set[str]) -> list:
    """The enabled endpoints of these organizations, from a per-process cache kept under the configuration
    epoch (app.epoch: every endpoint change moves it), so a send does not query them every time."""
    cache = config_epoch.local_cache(_ENDPOINTS_CACHE)
    epoch = config_epoch.current()  # before the read: a change committed meanwhile shows as a newer epoch
    now = time.monotonic()
    found, missing = [], []
    for org in orgs:
        entry = cache.get(org)
        if entry is not None and entry[1] == epoch and now - entry[0] < config_epoch.MAX_AGE_SECONDS:
            found.extend(entry[2])
        else:
            missing.append(org)
    if missing:
        t = WebhookEndpoint.__table__
        rows = db.session.execute(select(t.c.id, t.c.organization_id, t.c.mode, t.c.events)
                                  .where(t.c.organization_id.in_(missing), t.c.status == "enabled")).all()
        if len(cache) > 10_000:
            cache.clear()
        for org in missing:
            mine = [row for row in rows if row.organization_id == org]
            cache[org] = (now, epoch, mine)
            found.extend(mine)
    return found


def _first_recipient(to) -> str | None:
    """A message-level event (queued, scheduled, canceled) names the message's first `to` address."""
    if not to:
        return None
    first = to[0]
    return first.get("email") if isinstance(first, dict) else str(first)


def event_data(event: dict, message) -> dict:
    """``data`` of the payload: for message events the message's summary (API.md 12) plus the event's own
    details; otherwise the event's details with the ids it is about."""
    details = dict(event.get("data") or {})
    if message is not None:
        core = {"message_id": message.id, "channel": message.channel,
                "recipient": event.get("recipient") or _first_recipient(message.to),
                "status": _EVENT_STATUS.get(event["type"], "queued" if message.status == "sending" else message.status),
                "tags": message.tags or [], "metadata": message.metadata or {}}
        if event.get("contact_id"):
            core["contact_id"] = event["contact_id"]
        return {**core, **{k: v for k, v in details.items() if k not in core}}
    for key in ("message_id", "contact_id", "recipient"):
        if event.get(key) and key not in details:
            details[key] = event[key]
    return details


# --- claiming -------------------------------------------------------------------------------------------------

def claim_due(limit: int = BATCH_SIZE, now: datetime | None = None) -> list[str]:
    """Move up to ``limit`` due deliveries of enabled endpoints from `pending` to `sending`; commit."""
    now = now or utcnow()
    d, e = WebhookDelivery.__table__, WebhookEndpoint.__table__
    due = (select(d.c.id).where(d.c.status == "pending", d.c.next_attempt_at <= now,
                                d.c.endpoint_id.in_(select(e.c.id).where(e.c.status == "enabled")))
           .order_by(d.c.next_attempt_at).limit(limit))
    if db.engine.dialect.name == "postgresql":
        # A MATERIALIZED CTE runs the locking SELECT exactly once: as a plain IN-subquery the planner may
        # rescan it, and a rescan under SKIP LOCKED can hand back more rows than LIMIT.
        due = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        due = select(due.c.id)
    ids = db.session.execute(
        update(d).where(d.c.id.in_(due), d.c.status == "pending")
        .values(status="sending", claimed_at=now).returning(d.c.id)).scalars().all()
    db.session.commit()
    return list(ids)


def requeue_stuck(now: datetime | None = None) -> int:
    """Deliveries a dead worker left `sending` go back to `pending` (they may then arrive twice)."""
    now = now or utcnow()
    d = WebhookDelivery.__table__
    return db.session.execute(update(d).where(d.c.status == "sending", d.c.claimed_at < now - STUCK_AFTER)
                              .values(status="pending", claimed_at=None)).rowcount


def due_count(now: datetime | None = None) -> int:
    now = now or utcnow()
    d, e = WebhookDelivery.__table__, WebhookEndpoint.__table__
    return db.session.execute(select(func.count()).select_from(d).where(
        d.c.status == "pending", d.c.next_attempt_at <= now,
        d.c.endpoint_id.in_(select(e.c.id).where(e.c.status == "enabled")))).scalar_one()


def disable_endpoints(endpoint_ids, reason: str, now: datetime | None = None,
                      failing_before: datetime | None = None) -> list[str]:
    """Disable enabled endpoints (all of ``endpoint_ids``, or those failing since before ``failing_before``)
    and fail their pending deliveries.  Returns the ids disabled."""
    now = now or utcnow()
    e, d = WebhookEndpoint.__table__, WebhookDelivery.__table__
    stmt = update(e).where(e.c.status != "disabled")
    if endpoint_ids is not None:
        ids = list(endpoint_ids)
        if not ids:
            return []
        stmt = stmt.where(e.c.id.in_(ids))
    if failing_before is not None:  # paused endpoints make no attempts, so they are not judged
        stmt = stmt.where(e.c.status == "enabled", e.c.failing_since.is_not(None),
                          e.c.failing_since < failing_before)
    disabled = db.session.execute(stmt.values(status="disabled", disabled_reason=reason, disabled_at=now,
                                              updated_at=now).returning(e.c.id)).scalars().all()
    if disabled:
        config_epoch.bump_after_commit()
        db.session.execute(update(d).where(d.c.endpoint_id.in_(disabled), d.c.status == "pending").values(
            status="failed", next_attempt_at=None, completed_at=now, updated_at=now,
            last_error="Endpoint disabled."))
        log.warning("webhook endpoints disabled (%s): %s", reason, ", ".join(disabled))
    return list(disabled)


# --- sending --------------------------------------------------------------------------------------------------

@dataclass
class Target:
    """What an attempt needs, read in bulk: the delivery, its endpoint's URL, mode and secret."""
    delivery_id: str
    organization_id: str
    mode: str
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    payload: str
    attempt_count: int
    status: str


@dataclass
class Outcome:
    target: Target
    headers: dict
    code: int | None
    body: str | None
    error: str | None
    duration_ms: int
    skipped: bool = False  # not attempted: its endpoint was unreachable earlier in this batch

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def load_targets(delivery_ids: list[str]) -> list[Target]:
    d, e = WebhookDelivery.__table__, WebhookEndpoint.__table__
    rows = db.session.execute(
        select(d.c.id, d.c.organization_id, d.c.mode, d.c.endpoint_id, d.c.event_id, d.c.payload,
               d.c.attempt_count, d.c.status, e.c.url, e.c.secret_encrypted)
        .join(e, e.c.id == d.c.endpoint_id).where(d.c.id.in_(delivery_ids))).all()
    secrets: dict[str, str] = {}
    out = []
    for r in rows:
        if r.endpoint_id not in secrets:
            secrets[r.endpoint_id] = decrypt(r.secret_encrypted)
        out.append(Target(r.id, r.organization_id, r.mode, r.endpoint_id, r.url, secrets[r.endpoint_id],
                          r.event_id, r.payload, r.attempt_count, r.status))
    return out


def signed_headers(webhook: Webhook, event_id: str, payload: str, now: float | None = None) -> dict:
    ts = int(now if now is not None else time.time())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": webhook.sign(event_id, datetime.fromtimestamp(ts, tz=timezone.utc), payload),
    }


def send_one(target: Target, webhook: Webhook, timeout: float, broken: set | None = None,
             allow_private: bool = False) -> Outcome:
    """One signed POST through the SSRF guard.  Never raises: failures are outcomes."""
    headers = signed_headers(webhook, target.event_id, target.payload)
    if broken is not None and target.endpoint_id in broken:
        return Outcome(target, headers, None, None, None, 0, skipped=True)
    started = time.monotonic()
    try:
        resp = _client.request("POST", target.url, headers=headers, body=target.payload.encode(),
                               timeout=timeout, live=target.mode == "live", allow_private=allow_private)
    except ssrf.RequestFailed as exc:
        if broken is not None and exc.kind == "timeout":
            # Only timeouts cost a batch time (10 s each); refusals and resets fail fast, so try them all.
            broken.add(target.endpoint_id)
        return Outcome(target, headers, None, None, exc.message, int((time.monotonic() - started) * 1000))
    except Exception as exc:  # a bug must not lose the batch's bookkeeping
        log.exception("webhook request to %s failed unexpectedly", target.url)
        return Outcome(target, headers, None, None, f"Internal error: {type(exc).__name__}",
                       int((time.monotonic() - started) * 1000))
    text = resp.body[:RESPONSE_LOG_BYTES].decode("utf-8", errors="replace")
    return Outcome(target, headers, resp.status, text, None, resp.elapsed_ms)


class Sender:
    """Sends a batch concurrently; holds the thread pool for one dispatcher run."""

    def __init__(self, threads: int | None = None):
        cfg = current_app.config
        self.timeout = float(cfg.get("WEBHOOK_TIMEOUT", 10))
        self.allow_private = bool(cfg.get("ALLOW_PRIVATE_URLS"))  # read here: the threads have no app context
        self.pool = ThreadPoolExecutor(max_workers=threads or int(cfg.get("WEBHOOK_CONCURRENCY", 32)),
                                       thread_name_prefix="webhook")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def send(self, targets: list[Target]) -> list[Outcome]:
        webhooks: dict[str, Webhook] = {}
        for t in targets:
            if t.endpoint_id not in webhooks:
                webhooks[t.endpoint_id] = Webhook(t.secret)
        broken: set[str] = set()
        futures = [self.pool.submit(send_one, t, webhooks[t.endpoint_id], self.timeout, broken,
                                   self.allow_private) for t in targets]
        return [f.result() for f in futures]


def record_outcomes(outcomes: list[Outcome], trigger: str = "auto", now: datetime | None = None) -> dict:
    """Write a batch's attempts, delivery states and endpoint health, one statement per table.

    ``trigger='auto'``: a failure schedules the next retry (``WEBHOOK_RETRY_SCHEDULE``) or, past its end,
    fails the delivery.  ``manual``/``test``: one extra attempt; a failure leaves a pending delivery on its
    schedule and a finished one `failed`.  A 410 disables the endpoint; an endpoint with no success for
    ``WEBHOOK_DISABLE_AFTER`` seconds is disabled too."""
    cfg = current_app.config
    now = now or utcnow()
    schedule = list(cfg.get("WEBHOOK_RETRY_SCHEDULE") or [5, 300, 1800, 7200, 18000, 36000, 36000])
    counts = {"succeeded": 0, "failed": 0, "retrying": 0, "skipped": 0}
    attempts, updates = [], []
    ok_endpoints, failed_endpoints, gone_endpoints = set(), set(), set()
    for o in outcomes:
        t = o.target
        if o.skipped:
            counts["skipped"] += 1
            updates.append({"b_id": t.delivery_id, "b_status": "pending", "b_attempts": t.attempt_count,
                            "b_next": now + timedelta(seconds=schedule[0]), "b_code": None,
                            "b_error": "Not attempted: the endpoint was unreachable earlier in this batch.",
                            "b_done": None, "b_now": now})
            continue
        number = t.attempt_count + 1
        attempts.append({"id": new_id("wha"), "organization_id": t.organization_id, "mode": t.mode,
                         "delivery_id": t.delivery_id, "endpoint_id": t.endpoint_id, "attempt": number,
                         "trigger": trigger, "url": t.url, "request_headers": o.headers,
                         "response_code": o.code, "response_body": o.body, "error": o.error,
                         "duration_ms": o.duration_ms, "created_at": now})
        error = o.error or (None if o.ok else f"HTTP {o.code}")
        if o.ok:
            ok_endpoints.add(t.endpoint_id)
            counts["succeeded"] += 1
            updates.append({"b_id": t.delivery_id, "b_status": "succeeded", "b_attempts": number, "b_next": None,
                            "b_code": o.code, "b_error": None, "b_done": now, "b_now": now})
            continue
        failed_endpoints.add(t.endpoint_id)
        if o.code == 410:
            gone_endpoints.add(t.endpoint_id)
        retry_in = None
        if trigger == "auto" and o.code != 410 and number <= len(schedule):
            retry_in = schedule[number - 1]
        if trigger == "manual" and t.status in ("pending", "sending") and o.code != 410:
            updates.append({"b_id": t.delivery_id, "b_status": "pending", "b_attempts": number, "b_next": None,
                            "b_code": o.code, "b_error": error, "b_done": None, "b_now": now, "keep_next": True})
            counts["retrying"] += 1
            continue
        if retry_in is not None:
            counts["retrying"] += 1
            updates.append({"b_id": t.delivery_id, "b_status": "pending", "b_attempts": number,
                            "b_next": now + timedelta(seconds=retry_in), "b_code": o.code, "b_error": error,
                            "b_done": None, "b_now": now})
        else:
            counts["failed"] += 1
            updates.append({"b_id": t.delivery_id, "b_status": "failed", "b_attempts": number, "b_next": None,
                            "b_code": o.code, "b_error": error, "b_done": now, "b_now": now})

    if attempts:
        db.session.execute(insert(WebhookAttempt.__table__), attempts)
    d = WebhookDelivery.__table__
    plain = [u for u in updates if not u.get("keep_next")]
    kept = [{k: v for k, v in u.items() if k != "keep_next"} for u in updates if u.get("keep_next")]
    if plain:
        db.session.execute(d.update().where(d.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), attempt_count=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next"), response_code=bindparam("b_code"),
            last_error=bindparam("b_error"), completed_at=bindparam("b_done"), updated_at=bindparam("b_now"),
            claimed_at=None), plain)
    if kept:  # a manual attempt on a delivery still retrying: its schedule stands
        db.session.execute(d.update().where(d.c.id == bindparam("b_id")).values(
            attempt_count=bindparam("b_attempts"), response_code=bindparam("b_code"),
            last_error=bindparam("b_error"), updated_at=bindparam("b_now")), kept)
    e = WebhookEndpoint.__table__
    if ok_endpoints:
        db.session.execute(update(e).where(e.c.id.in_(ok_endpoints)).values(failing_since=None,
                                                                             last_success_at=now))
    still_failing = failed_endpoints - ok_endpoints
    if still_failing:
        db.session.execute(update(e).where(e.c.id.in_(still_failing), e.c.failing_since.is_(None))
                           .values(failing_since=now))
        disable_endpoints(still_failing, "failing", now,
                          failing_before=now - timedelta(seconds=int(cfg.get("WEBHOOK_DISABLE_AFTER", 5 * 86400))))
    if gone_endpoints:
        disable_endpoints(gone_endpoints, "gone", now)
    retries = sorted({u["b_next"] for u in plain if u["b_status"] == "pending" and u["b_next"] is not None})
    if retries and trigger == "auto":
        _schedule_dispatch(retries[0])
    return counts


def _schedule_dispatch(when: datetime) -> None:
    """One scheduled dispatcher run per second of retry times (RQ replaces a job with the same id)."""
    from ..jobs import enqueue_after_commit
    from .tasks import dispatch_webhooks
    enqueue_after_commit(dispatch_webhooks, queue_name="default",
                         job_options={"_at": when, "job_id": f"webhooks-retry-{int(when.timestamp())}"})

