"""The delivery worker's core: claim due messages in batches, deliver them, record the truth in bulk.

A dispatcher job (app.delivery.tasks) loops ``claim_due`` → ``deliver_claimed``.  Claiming is one
conditional UPDATE (``status queued → sending``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several
workers take disjoint batches).  Delivery groups a batch's recipients per route, reuses SMTP connections,
builds and signs each message once per transaction, and writes attempts, recipient and message states,
events and suppressions with one statement per table.  Test-mode messages never touch the network: the
simulator (API.md 3.4) decides their fate, through the same bookkeeping.

Delivery is at-least-once: a worker killed between an SMTP acceptance and the batch's write leaves those
messages `sending`; the sweeper re-queues them after ``STUCK_AFTER``, so they may be delivered twice.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, or_, select, text, update

from ..domains.models import Domain
from ..extensions import db
from ..ids import new_id
from ..tenancy import unscoped
from ..timeutil import utcnow
from ..messages.models import DeliveryAttempt, Message, MessageAttachment, MessageRecipient
from ..events.service import record_events
from .classify import Outcome
from .mime import DkimSigner, build_parts, new_message_id_header
from .smtp import ConnectionPool, Router, default_helo, send_transaction

log = logging.getLogger(__name__)

BATCH_SIZE = 200
STUCK_AFTER = timedelta(minutes=10)
SIMULATOR_DOMAIN = "simulator.test"

# How far along a recipient is; a message shows its recipients' status when they agree, else the least
# advanced one (API.md 3.3).  Failures rank below delivered: one bounced copy is news.
_RANK = {"scheduled": 0, "queued": 1, "deferred": 1, "sending": 1, "sent": 2, "canceled": 3,
         "suppressed": 3, "failed": 3, "bounced": 3, "delivered": 4, "complained": 5}
_TIE = ["bounced", "failed", "suppressed", "canceled"]
TERMINAL = {"delivered", "bounced", "complained", "failed", "suppressed", "canceled", "sent"}


def aggregate_status(statuses: list[str]) -> str:
    if not statuses:
        return "failed"
    if len(set(statuses)) == 1:
        return "queued" if statuses[0] == "deferred" else statuses[0]
    low = min(_RANK[s] for s in statuses)
    candidates = [s for s in statuses if _RANK[s] == low]
    for status in _TIE:
        if status in candidates:
            return status
    return "queued" if candidates[0] == "deferred" else candidates[0]


# --- claiming -----------------------------------------------------------------------------------------------

def claim_due(limit: int = BATCH_SIZE, now: datetime | None = None) -> list[str]:
    """Move up to ``limit`` due email messages from `queued` to `sending` and return their ids."""
    now = now or utcnow()
    due = (select(Message.id).where(Message.status == "queued", Message.channel == "email",
                                    Message.next_attempt_at <= now)
           .order_by(Message.next_attempt_at).limit(limit))
    if db.engine.dialect.name == "postgresql":
        # A MATERIALIZED CTE runs the locking SELECT exactly once (as a plain IN-subquery the planner may
        # rescan it, and a rescan under SKIP LOCKED can hand back more rows than LIMIT).
        due = select(due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED").c.id)
    with unscoped():
        ids = db.session.execute(
            update(Message).where(Message.id.in_(due), Message.status == "queued")
            .values(status="sending", claimed_at=now).returning(Message.id)
            .execution_options(synchronize_session=False)).scalars().all()
    db.session.commit()
    return list(ids)


def requeue_stuck(now: datetime | None = None) -> int:
    """Messages a dead worker left `sending` go back to `queued` (their delivered recipients stay so)."""
    now = now or utcnow()
    with unscoped():
        count = db.session.execute(
            update(Message).where(Message.status == "sending", Message.claimed_at < now - STUCK_AFTER)
            .values(status="queued", claimed_at=None).execution_options(synchronize_session=False)).rowcount
    return count


def promote_scheduled(now: datetime | None = None) -> int:
    """Scheduled messages whose time has come become `queued` (one UPDATE, all tenants)."""
    now = now or utcnow()
    with unscoped():
        rows = db.session.execute(
            update(Message).where(Message.status == "scheduled", Message.send_at <= now)
            .values(status="queued", queued_at=now, next_attempt_at=now, updated_at=now)
            .returning(Message.id, Message.organization_id, Message.mode, Message.contact_id)
            .execution_options(synchronize_session=False)).all()
    if rows:
        record_events([{"type": "message.queued", "message_id": r.id, "organization_id": r.organization_id,
                        "mode": r.mode, "contact_id": r.contact_id, "occurred_at": now} for r in rows])
    return len(rows)


def due_count(now: datetime | None = None) -> int:
    from sqlalchemy import func
    now = now or utcnow()
    with unscoped():
        return db.session.execute(select(func.count()).select_from(Message).where(
            Message.status == "queued", Message.channel == "email", Message.next_attempt_at <= now)).scalar_one()


# --- delivering ---------------------------------------------------------------------------------------------

@dataclass
class _Results:
    now: datetime
    attempts: list[dict] = field(default_factory=list)
    recipients: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    suppressions: list[dict] = field(default_factory=list)
    statuses: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))


class Deliverer:
    """Holds what lives across batches of one dispatcher run: SMTP connections, routes, DKIM signers."""

    def __init__(self):
        cfg = current_app.config
        self.router = Router(cfg.get("SMTP_RELAY_URL"), cfg.get("SMTP_PORT_OVERRIDE"), cfg.get("DNS_RESOLVER"))
        self.pool = ConnectionPool(cfg.get("SMTP_HELO_NAME") or default_helo(), cfg.get("SMTP_TIMEOUT", 30.0),
                                   self.router.relay)
        self.retry_schedule = cfg["DELIVERY_RETRY_SCHEDULE"]
        self.max_age = timedelta(seconds=cfg["DELIVERY_MAX_AGE"])
        self._signers: dict[tuple[str, str], DkimSigner] = {}

    def close(self) -> None:
        self.pool.close()

    def _signer(self, domain: Domain) -> DkimSigner:
        from ..domains.service import dkim_key

        key = (domain.id, domain.dkim_selector)
        signer = self._signers.get(key)
        if signer is None:
            selector, name, pem = dkim_key(domain)
            signer = self._signers[key] = DkimSigner(selector, name, pem)
        return signer

    def deliver(self, message_ids: list[str]) -> dict:
        """Deliver the claimed messages; commit the outcome.  Returns counts by recipient status."""
        if not message_ids:
            return {}
        now = utcnow()
        with unscoped():
            messages = db.session.execute(select(Message).where(Message.id.in_(message_ids),
                                                                Message.status == "sending")).scalars().all()
            ids = [m.id for m in messages]
            recipients = db.session.execute(select(MessageRecipient).where(
                MessageRecipient.message_id.in_(ids))).scalars().all() if ids else []
            attachments = db.session.execute(select(MessageAttachment).where(
                MessageAttachment.message_id.in_(ids))).scalars().all() if ids else []
            domain_ids = {m.domain_id for m in messages if m.domain_id}
            domains = {d.id: d for d in db.session.execute(
                select(Domain).where(Domain.id.in_(domain_ids))).scalars()} if domain_ids else {}
        from ..broadcasts.render import load_batch
        self._broadcasts = load_batch(messages)  # broadcasts, contacts, template versions: one query each
        by_message: dict[str, list[MessageRecipient]] = defaultdict(list)
        for r in recipients:
            by_message[r.message_id].append(r)
        files: dict[str, list[dict]] = defaultdict(list)
        for a in attachments:
            files[a.message_id].append({"filename": a.filename, "content_type": a.content_type,
                                        "content": a.content})
        results = _Results(now)
        for message in messages:
            rcpts = by_message[message.id]
            for r in rcpts:
                results.statuses[message.id][r.id] = r.status
            pending = [r for r in rcpts if r.status in ("queued", "deferred")]
            if not pending:
                continue
            if message.mode == "test":
                self._simulate(message, pending, results)
                continue
            try:
                self._send_live(message, pending, rcpts, files[message.id], domains.get(message.domain_id),
                                results)
            except Exception:
                # Building or signing failed (e.g. a DKIM key that no configured key decrypts): that will not
                # get better on a retry, and re-queuing would loop the whole batch forever.  This message
                # fails, visibly; the rest of the batch goes on.
                log.exception("delivery of %s failed before SMTP", message.id)
                done = {a["recipient_id"] for a in results.attempts if a["message_id"] == message.id}
                outcome = Outcome("failed", None, None, "Postline could not build or sign this message.")
                for r in pending:
                    if r.id not in done:
                        self._record(message, r, outcome, None, results)
        self._write(messages, results)
        db.session.commit()
        counts: dict[str, int] = defaultdict(int)
        for r in results.recipients:
            counts[r["b_status"]] += 1
        return dict(counts)

    # --- live ---

    def _send_live(self, message: Message, pending, all_rcpts, files, domain: Domain | None, results: _Results):
        if domain is None:
            outcome = Outcome("failed", None, None, "The sending domain was removed before delivery.")
            for r in pending:
                self._record(message, r, outcome, None, results)
            return
        signer = self._signer(domain)
        from ..domains.service import return_path_host
        rp_host = return_path_host(domain)
        if not message.message_id_header:
            message.message_id_header = new_message_id_header(domain.domain)
        to = message.to or []
        cc = [{"email": r.address, "name": r.name} for r in all_rcpts if r.kind == "cc"]
        marketing = message.message_type == "marketing"
        # Transactions: marketing mail is personal (its own List-Unsubscribe per recipient); other mail goes
        # once per route with every recipient of that route as an envelope RCPT.
        groups: dict[str, list[MessageRecipient]] = defaultdict(list)
        for r in pending:
            groups[r.id if marketing else (r.domain or "")].append(r)
        base: bytes | None = None
        for _, rcpts in groups.items():
            extra = {}
            if marketing:
                from ..tracking.tokens import list_unsubscribe_headers
                extra = list_unsubscribe_headers(message.organization_id, message.mode, message.id,
                                                 rcpts[0].address)
            if marketing or base is None:
                subject, html, text = self._content(message, rcpts[0])
                headers, body = build_parts(
                    from_email=message.from_email, from_name=message.from_name, to=to, cc=cc,
                    reply_to=message.reply_to or [], subject=subject, html=html,
                    text=text, headers=message.headers or {}, attachments=files,
                    message_id_header=message.message_id_header, extra_headers=extra)
                data = (signer.sign_parts(headers, body)
                        + b"".join(name + b":" + value for name, value in headers) + b"\r\n" + body)
                if not marketing:
                    base = data
            else:
                data = base
            token = rcpts[0].id if len(rcpts) == 1 else message.id
            envelope_from = f"bounces+{token}@{rp_host}"
            route = self.router.route(rcpts[0].domain or "")
            result = send_transaction(self.pool, route, envelope_from, [r.address for r in rcpts], data)
            for r in rcpts:
                self._record(message, r, result.outcomes[r.address], result.host or None, results,
                             relay=route.relay)

    def _content(self, message: Message, recipient: MessageRecipient) -> tuple[str | None, str | None, str | None]:
        """Subject, HTML and text as ``recipient`` receives them (for mail that is not personal, the first
        recipient of its route stands for all of them): the message's content rendered for the recipient
        (broadcasts), then instrumented for open and click tracking."""
        subject, html, text = self._render(message, recipient)
        html, text = self._instrument(message, html, text, recipient)
        return subject, html, text

    def _render(self, message: Message, recipient: MessageRecipient) -> tuple[str | None, str | None, str | None]:
        """Per-recipient rendering (broadcast messages carry no content of their own)."""
        batch = getattr(self, "_broadcasts", None)
        if message.broadcast_id and message.html is None and message.text is None and batch is not None:
            return batch.render(message, recipient)
        return message.subject, message.html, message.text

    def _instrument(self, message: Message, html: str | None, text: str | None,
                    recipient: MessageRecipient) -> tuple[str | None, str | None]:
        """Open pixel and click-tracking links, when the message asks for them (app.tracking.instrument).
        Marketing mail is built per recipient, so its tokens also name the recipient; other mail shares one
        body between its recipients, so its tokens name only the message.  The tracking base URL is worked
        out once per sending domain per dispatcher run."""
        if not (message.track_opens or message.track_clicks) or not (html or text):
            return html, text
        from ..tracking.instrument import instrument, own_prefixes, tracking_base

        bases = self.__dict__.setdefault("_tracking_bases", {})
        base = bases.get(message.domain_id)
        if base is None:
            with unscoped():  # the batch's domains are in the session's identity map: no query
                domain = db.session.get(Domain, message.domain_id) if message.domain_id else None
            base = bases[message.domain_id] = tracking_base(domain)
        personal = message.message_type == "marketing"
        return instrument(message.id, html, text, base=base, opens=bool(message.track_opens),
                          clicks=bool(message.track_clicks), recipient_id=recipient.id if personal else None,
                          own_prefixes=own_prefixes())

    def _record(self, message: Message, r: MessageRecipient, outcome: Outcome, host: str | None,
                results: _Results, relay: bool = False, simulated: bool = False):
        now = results.now
        attempt_status = "accepted" if outcome.status == "accepted" else outcome.status
        results.attempts.append({
            "id": new_id("att"), "organization_id": message.organization_id, "mode": message.mode,
            "message_id": message.id, "recipient_id": r.id, "recipient": r.address, "at": now,
            "status": attempt_status, "mx_host": host, "smtp_code": outcome.code,
            "enhanced_code": outcome.enhanced, "smtp_response": (outcome.text or "")[:2000]})
        details = {"smtp_code": outcome.code, "enhanced_code": outcome.enhanced,
                   "smtp_response": (outcome.text or "")[:500], "mx_host": host}
        event = {"organization_id": message.organization_id, "mode": message.mode, "message_id": message.id,
                 "contact_id": message.contact_id, "recipient": r.address, "occurred_at": now}
        reason = None
        if outcome.status == "accepted":
            status = "sent" if relay else "delivered"
            results.events.append({**event, "type": "message.sent", "data": details})
            if not relay:  # a microsecond later, so the timeline orders them
                results.events.append({**event, "type": "message.delivered", "data": details,
                                       "occurred_at": now + timedelta(microseconds=1)})
        elif outcome.status == "deferred":
            first = message.queued_at or message.created_at
            if now - first >= self.max_age:
                status, reason = "failed", "retries_exhausted"
                results.events.append({**event, "type": "message.failed",
                                       "data": {**details, "reason": "retries_exhausted"}})
            else:
                status = "deferred"
                results.events.append({**event, "type": "message.deferred",
                                       "data": {**details, "next_attempt_at": None}})
        elif outcome.status == "bounced":
            status, reason = "bounced", "hard_bounce"
            results.events.append({**event, "type": "message.bounced", "data": {**details, "bounce_type": "hard"}})
            results.suppressions.append({"organization_id": message.organization_id, "mode": message.mode,
                                         "channel": "email", "recipient": r.address, "reason": "bounce",
                                         "message_id": message.id, "detail": (outcome.text or "")[:500]})
        else:
            status, reason = "failed", "rejected"
            results.events.append({**event, "type": "message.failed", "data": {**details, "reason": "rejected"}})
        results.recipients.append({"b_id": r.id, "b_status": status, "b_reason": reason,
                                   "b_attempts": r.attempt_count + 1, "b_code": outcome.code,
                                   "b_enhanced": outcome.enhanced, "b_response": (outcome.text or "")[:2000],
                                   "b_now": now})
        results.statuses[message.id][r.id] = status

    # --- test mode ---

    def _simulate(self, message: Message, pending, results: _Results):
        """API.md 3.4: the local part at simulator.test decides; anything else is delivered."""
        now = results.now
        for r in pending:
            local, _, domain = r.address.partition("@")
            scenario = local.split("+")[0] if domain == SIMULATOR_DOMAIN else "delivered"
            if scenario == "bounce":
                outcome = Outcome("bounced", 550, "5.1.1", "5.1.1 simulated: the mailbox does not exist")
            else:
                outcome = Outcome("accepted", 250, "2.0.0", "2.0.0 simulated: accepted for delivery")
            self._record(message, r, outcome, "simulator", results, simulated=True)
            base = {"organization_id": message.organization_id, "mode": message.mode, "message_id": message.id,
                    "contact_id": message.contact_id, "recipient": r.address, "data": {"simulated": True}}
            step = timedelta(microseconds=10)
            if scenario in ("opened", "clicked"):
                results.events.append({**base, "type": "message.opened", "occurred_at": now + step,
                                       "data": {"simulated": True, "user_agent": None, "ip": None,
                                                "machine": False, "first": True}})
            if scenario == "clicked":  # the same data as a real click (app.tracking.service.record_hit)
                results.events.append({**base, "type": "message.clicked", "occurred_at": now + 2 * step,
                                       "data": {"simulated": True, "url": "https://example.com/", "user_agent": None,
                                                "ip": None, "machine": False, "first": True}})
            if scenario == "complaint":
                results.events.append({**base, "type": "message.complained", "occurred_at": now + step,
                                       "data": {"simulated": True, "feedback_type": "abuse"}})
                results.suppressions.append({"organization_id": message.organization_id, "mode": message.mode,
                                             "channel": "email", "recipient": r.address, "reason": "complaint",
                                             "message_id": message.id, "detail": "simulated complaint"})
                results.recipients[-1]["b_status"] = "complained"
                results.statuses[message.id][r.id] = "complained"

    # --- bookkeeping ---

    def _write(self, messages: list[Message], results: _Results) -> None:
        from ..suppressions.service import add_suppressions

        now = results.now
        if results.attempts:
            db.session.execute(DeliveryAttempt.__table__.insert(), results.attempts)
        if results.recipients:
            t = MessageRecipient.__table__
            db.session.execute(
                t.update().where(t.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), status_reason=bindparam("b_reason"),
                    attempt_count=bindparam("b_attempts"), smtp_code=bindparam("b_code"),
                    enhanced_code=bindparam("b_enhanced"), smtp_response=bindparam("b_response"),
                    updated_at=bindparam("b_now")),
                results.recipients)
        message_rows = []
        for message in messages:
            statuses = list(results.statuses[message.id].values())
            status = aggregate_status(statuses)
            attempts = message.attempt_count + 1
            next_at = None
            if "deferred" in statuses:
                status = "queued"
                delay = self.retry_schedule[min(attempts - 1, len(self.retry_schedule) - 1)]
                next_at = now + timedelta(seconds=delay)
            message_rows.append({"b_id": message.id, "b_status": status, "b_attempts": attempts,
                                 "b_next": next_at, "b_header": message.message_id_header,
                                 "b_done": now if status in TERMINAL else None, "b_now": now})
        for event in results.events:
            if event["type"] == "message.deferred":
                row = next(m for m in message_rows if m["b_id"] == event["message_id"])
                event["data"]["next_attempt_at"] = row["b_next"].isoformat() + "Z" if row["b_next"] else None
        if message_rows:
            t = Message.__table__
            db.session.execute(
                t.update().where(t.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), attempt_count=bindparam("b_attempts"),
                    next_attempt_at=bindparam("b_next"), message_id_header=bindparam("b_header"),
                    completed_at=bindparam("b_done"), updated_at=bindparam("b_now"), claimed_at=None),
                message_rows)
        record_events(results.events)
        if results.suppressions:
            add_suppressions(results.suppressions)
        retries = sorted({m["b_next"] for m in message_rows if m["b_next"] is not None})
        if retries:
            from ..jobs import enqueue_at_after_commit
            from .tasks import dispatch_email
            enqueue_at_after_commit(retries[0], dispatch_email, queue_name="high")
