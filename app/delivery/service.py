"""The delivery worker's core: claim due messages in batches, deliver them, record the truth in bulk.

A dispatcher job (app.delivery.tasks) loops claim → send → write.  Claiming is one conditional UPDATE
(``status queued → sending``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers take disjoint
batches) that also RETURNs the columns delivery needs, so claiming *is* loading the batch; recipients,
attachments and domains follow in one SELECT each, as plain rows (no ORM objects, no tenancy criteria:
these are maintenance reads across tenants).  Delivery groups a batch's recipients per route, builds and
signs each message once per transaction, and hands the bytes to a sender thread (see ``_Lanes``) while the
next message is signed.  The outcome — attempts, recipient and message states, events (through
``record_events``, so webhooks fire), suppressions — is written with one statement per table, in the same
transaction as the claim of the next batch: one COMMIT per batch, asynchronous on PostgreSQL (see
``Deliverer.write`` for why losing it is harmless).  Test-mode messages never touch the
network: the simulator (API.md 3.4) decides their fate, through the same bookkeeping.

Delivery is at-least-once: a worker killed between an SMTP acceptance and the batch's write leaves those
messages `sending`; the sweeper re-queues them after ``STUCK_AFTER``, so they may be delivered twice.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, select, text, update

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

# Messages per claim.  Bigger batches spread the per-batch costs (a few statements and one COMMIT) over more
# messages; smaller ones share the tail of a queue better between workers (the last batch is one worker's).
BATCH_SIZE = 250
STUCK_AFTER = timedelta(minutes=10)
SIMULATOR_DOMAIN = "simulator.test"
# Sender threads per dispatcher (each with its own SMTP connections).  A route (relay, or an MX host) always
# goes to the same thread, so its connection is reused; different MX hosts are talked to concurrently.
SENDER_LANES = 8

# How far along a recipient is; a message shows its recipients' status when they agree, else the least
# advanced one (API.md 3.3).  Failures rank below delivered: one bounced copy is news.
_RANK = {"scheduled": 0, "queued": 1, "deferred": 1, "sending": 1, "sent": 2, "canceled": 3,
         "suppressed": 3, "failed": 3, "bounced": 3, "delivered": 4, "complained": 5}
_TIE = ["bounced", "failed", "suppressed", "canceled"]
TERMINAL = {"delivered", "bounced", "complained", "failed", "suppressed", "canceled", "sent"}

_M = Message.__table__
_R = MessageRecipient.__table__
_F = MessageAttachment.__table__
# What delivery reads of a message (not tags, metadata, variables …): RETURNed by the claim itself.
_MESSAGE_COLUMNS = (
    _M.c.id, _M.c.organization_id, _M.c.mode, _M.c.message_type, _M.c.from_email, _M.c.from_name,
    _M.c.reply_to, _M.c.to, _M.c.subject, _M.c.html, _M.c.text, _M.c.headers, _M.c.track_opens,
    _M.c.track_clicks, _M.c.domain_id, _M.c.contact_id, _M.c.broadcast_id, _M.c.message_id_header,
    _M.c.attempt_count, _M.c.queued_at, _M.c.created_at)
_RECIPIENT_COLUMNS = (_R.c.id, _R.c.message_id, _R.c.kind, _R.c.address, _R.c.name, _R.c.domain, _R.c.status,
                      _R.c.attempt_count)


def aggregate_status(statuses) -> str:
    statuses = list(statuses)
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

def _claim_statement(limit: int, now: datetime):
    due = (select(_M.c.id).where(_M.c.status == "queued", _M.c.channel == "email", _M.c.next_attempt_at <= now)
           .order_by(_M.c.next_attempt_at).limit(limit))
    if db.engine.dialect.name == "postgresql":
        # A MATERIALIZED CTE runs the locking SELECT exactly once (as a plain IN-subquery the planner may
        # rescan it, and a rescan under SKIP LOCKED can hand back more rows than LIMIT).
        due = select(due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED").c.id)
    return (update(_M).where(_M.c.id.in_(due), _M.c.status == "queued")
            .values(status="sending", claimed_at=now))


def _claim(limit: int, now: datetime, columns) -> list:
    """Run the claim, RETURNING ``columns``.  On PostgreSQL the due rows are read in ``ix_messages_due``
    order, stopping at ``limit``: with the planner's row estimate off (a burst of queued mail since the last
    ANALYZE, as in the benchmark: it guessed 1 row for 10,000) it otherwise chose a bitmap scan of every
    queued row and a sort, 12 ms a claim of 250 against 4 ms.  The ordered index scan is the right plan at
    any size (equality on status, a range on next_attempt_at, LIMIT), so the two settings only rule out the
    wrong ones, for this statement alone."""
    statement = _claim_statement(limit, now).returning(*columns)
    with unscoped():
        if db.engine.dialect.name != "postgresql":
            return db.session.execute(statement).all()
        db.session.execute(text("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"))
        rows = db.session.execute(statement).all()
        db.session.execute(text("RESET enable_bitmapscan; RESET enable_sort"))
        return rows


def claim_due(limit: int = BATCH_SIZE, now: datetime | None = None) -> list[str]:
    """Move up to ``limit`` due email messages from `queued` to `sending`, commit, and return their ids."""
    ids = [row.id for row in _claim(limit, now or utcnow(), (_M.c.id,))]
    db.session.commit()
    return ids


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

class Batch:
    """Claimed messages (rows with the ``_MESSAGE_COLUMNS`` as attributes) and what delivering them needs."""

    __slots__ = ("messages", "recipients", "files", "domains", "broadcasts")

    def __init__(self, messages, recipients, files, domains, broadcasts):
        self.messages = messages
        self.recipients = recipients  # message id → [recipient rows]
        self.files = files  # message id → [attachment dicts]
        self.domains = domains  # domain id → Domain
        self.broadcasts = broadcasts  # app.broadcasts.render.BatchRenderer | None

    def __len__(self) -> int:
        return len(self.messages)


class _Results:
    """The outcome of a batch, as the rows the bulk statements write (tuples in their column order)."""

    __slots__ = ("now", "attempts", "recipients", "events", "suppressions", "statuses", "deferred", "headers")

    def __init__(self, now: datetime):
        self.now = now
        self.attempts: list[tuple] = []  # _ATTEMPT_COLUMNS
        self.recipients: list[tuple] = []  # _RECIPIENT_UPDATE
        self.events: list[dict] = []  # record_events rows
        self.suppressions: list[dict] = []  # add_suppressions rows
        self.statuses: dict[str, dict[str, str]] = defaultdict(dict)  # message id → recipient id → status
        self.deferred: dict[str, list[dict]] = defaultdict(list)  # message id → its message.deferred data
        self.headers: dict[str, str] = {}  # message id → the Message-ID header minted for it


_ATTEMPT_COLUMNS = ("id", "organization_id", "mode", "message_id", "recipient_id", "recipient", "at", "status",
                    "mx_host", "smtp_code", "enhanced_code", "smtp_response")
_RECIPIENT_UPDATE = ("id", "status", "status_reason", "attempt_count", "smtp_code", "enhanced_code",
                     "smtp_response", "updated_at")
_MESSAGE_UPDATE = ("id", "status", "attempt_count", "next_attempt_at", "message_id_header", "completed_at",
                   "updated_at")


class _Lanes:
    """Sender threads: SMTP I/O overlaps with building and signing the next message (OpenSSL releases the
    GIL while it signs, sockets while they wait).  Each lane is one thread with its own ConnectionPool, and
    a route always maps to the same lane, so connections are reused exactly as with one thread; outcomes
    are collected in submission order, so the bookkeeping is the same as sending inline."""

    def __init__(self, helo: str, timeout: float, relay, lanes: int):
        self.inline = lanes < 1  # 0: send in the calling thread (profiling, debugging)
        self.pools = [ConnectionPool(helo, timeout, relay) for _ in range(max(1, lanes))]
        self.threads: list[ThreadPoolExecutor | None] = [None] * len(self.pools)

    def submit(self, route, envelope_from: str, recipients: list[str], data: bytes) -> Future:
        lane = hash(route.hosts[0][1:]) % len(self.pools) if route.hosts else 0
        if self.inline:
            future: Future = Future()
            try:
                future.set_result(send_transaction(self.pools[lane], route, envelope_from, recipients, data))
            except Exception as exc:
                future.set_exception(exc)
            return future
        executor = self.threads[lane]
        if executor is None:
            executor = self.threads[lane] = ThreadPoolExecutor(1, thread_name_prefix=f"postline-smtp{lane}")
        return executor.submit(send_transaction, self.pools[lane], route, envelope_from, recipients, data)

    def close(self, wait: bool = True) -> None:
        for lane, executor in enumerate(self.threads):
            if executor is None:
                self.pools[lane].close()
                continue
            if wait:
                executor.submit(self.pools[lane].close)  # QUIT from the thread that owns the connections
            executor.shutdown(wait=wait, cancel_futures=not wait)
            self.threads[lane] = None


class Deliverer:
    """Holds what lives across batches of one dispatcher run: SMTP connections, routes, DKIM signers."""

    def __init__(self):
        cfg = current_app.config
        self.router = Router(cfg.get("SMTP_RELAY_URL"), cfg.get("SMTP_PORT_OVERRIDE"), cfg.get("DNS_RESOLVER"))
        self.lanes = _Lanes(cfg.get("SMTP_HELO_NAME") or default_helo(), cfg.get("SMTP_TIMEOUT", 30.0),
                            self.router.relay, SENDER_LANES)
        self.retry_schedule = cfg["DELIVERY_RETRY_SCHEDULE"]
        self.max_age = timedelta(seconds=cfg["DELIVERY_MAX_AGE"])
        self._signers: dict[tuple[str, str], DkimSigner] = {}
        self._tracking_bases: dict[str | None, str] = {}
        self._postgres = db.engine.dialect.name == "postgresql"
        self._domains: dict[str, Domain] = {}
        self._broadcasts = None

    def close(self, wait: bool = True) -> None:
        self.lanes.close(wait)

    def _signer(self, domain: Domain) -> DkimSigner:
        from ..domains.service import dkim_key

        key = (domain.id, domain.dkim_selector)
        signer = self._signers.get(key)
        if signer is None:
            selector, name, pem = dkim_key(domain)
            signer = self._signers[key] = DkimSigner(selector, name, pem)
        return signer

    # --- the dispatcher's three steps ---

    def claim(self, limit: int = BATCH_SIZE, commit: bool = True) -> Batch:
        """Claim up to ``limit`` due messages and load what delivering them needs; then COMMIT, which also
        commits whatever ``write`` put in this transaction (the previous batch's outcome)."""
        now = utcnow()
        session = db.session()
        session.expire_all()  # domains, broadcasts and contacts are read afresh for every batch
        messages = _claim(limit, now, _MESSAGE_COLUMNS)
        with unscoped():
            batch = self._load(messages)
        if commit:
            # The rows just loaded stay usable after the COMMIT (no refresh query per object when the send
            # reads a domain, a broadcast or a contact); the next claim expires them before reading again.
            previous, session.expire_on_commit = session.expire_on_commit, False
            try:
                session.commit()
            finally:
                session.expire_on_commit = previous
        return batch

    def _load(self, messages) -> Batch:
        if not messages:
            return Batch([], {}, {}, {}, None)
        session = db.session()
        ids = [m.id for m in messages]
        recipients: dict[str, list] = defaultdict(list)
        for r in session.execute(select(*_RECIPIENT_COLUMNS).where(_R.c.message_id.in_(ids))):
            recipients[r.message_id].append(r)
        files: dict[str, list[dict]] = defaultdict(list)
        for a in session.execute(select(_F.c.message_id, _F.c.filename, _F.c.content_type, _F.c.content)
                                 .where(_F.c.message_id.in_(ids))):
            files[a.message_id].append({"filename": a.filename, "content_type": a.content_type,
                                        "content": a.content})
        domain_ids = {m.domain_id for m in messages if m.domain_id and m.mode == "live"}
        domains = {d.id: d for d in session.execute(
            select(Domain).where(Domain.id.in_(domain_ids))).scalars()} if domain_ids else {}
        from ..broadcasts.render import load_batch
        broadcasts = load_batch(messages)  # broadcasts, contacts, template versions: one query each
        return Batch(messages, recipients, files, domains, broadcasts)

    def send(self, batch: Batch) -> _Results:
        """Deliver a claimed batch (SMTP, or the simulator); no SQL.  Returns the outcome for ``write``."""
        results = _Results(utcnow())
        self._domains, self._broadcasts = batch.domains, batch.broadcasts
        self._senders: dict[str, tuple[DkimSigner, str]] = {}  # domain id → (signer, return-path host)
        headers = results.headers  # Message-ID headers minted now, written with the outcome
        inflight: list[tuple] = []  # (message, recipients, future, relay), in submission order
        for message in batch.messages:
            rcpts = batch.recipients.get(message.id, ())
            statuses = results.statuses[message.id]
            pending = []
            for r in rcpts:
                statuses[r.id] = r.status
                if r.status == "queued" or r.status == "deferred":
                    pending.append(r)
            if not pending:
                continue
            if message.mode == "test":
                self._simulate(message, pending, results)
                continue
            self._send_live(message, pending, rcpts, batch.files.get(message.id, ()),
                            batch.domains.get(message.domain_id), results, headers, inflight)
        for message, rcpts, future, relay in inflight:
            try:
                result = future.result()
            except Exception:
                log.exception("delivery of %s failed in SMTP", message.id)
                outcome = Outcome("failed", None, None, "Postline could not send this message.")
                for r in rcpts:
                    self._record(message, r, outcome, None, results)
                continue
            for r in rcpts:
                self._record(message, r, result.outcomes[r.address], result.host or None, results, relay=relay)
        return results

    def write(self, batch: Batch, results: _Results) -> dict:
        """Write a batch's outcome (no COMMIT: the next ``claim`` or the caller commits).  Returns counts by
        recipient status.

        On PostgreSQL this transaction commits with ``synchronous_commit = off`` (``SET LOCAL``: this
        transaction only).  Losing such a commit is harmless here: only a database crash loses one (the
        last ~0.6 s of them), and then its messages are back to `sending` (re-queued by the sweeper) or, if
        the claim in the same transaction went too, to `queued` — delivered again either way, which is the
        documented at-least-once contract (a crash with synchronous commits re-sends the batch in flight
        anyway; this widens that window by well under a second).  Events, suppressions and webhook rows go
        with the outcome they describe; a webhook already sent from a row the crash took back comes again,
        under a new event id, with the second delivery.  Nothing else reads these rows as a promise.  What
        it buys: the dispatcher never waits for the WAL flush before its next claim.  On a quiet disk that
        is nothing measurable, but on this shared box synchronous runs stalled 0.5–2 s on commits while
        others wrote to the disk (1,092–1,680 msg/s, cores idle) where asynchronous ones did not (1,965,
        1,967 msg/s).
        """
        if self._postgres:
            db.session.execute(text("SET LOCAL synchronous_commit = off"))
        self._write(batch.messages, results)
        counts: dict[str, int] = defaultdict(int)
        for r in results.recipients:
            counts[r[1]] += 1
        return dict(counts)

    def deliver(self, message_ids: list[str]) -> dict:
        """Deliver messages already claimed (status `sending`) and commit the outcome."""
        if not message_ids:
            return {}
        with unscoped():
            messages = db.session.execute(select(*_MESSAGE_COLUMNS).where(
                _M.c.id.in_(message_ids), _M.c.status == "sending")).all()
            batch = self._load(messages)
        counts = self.write(batch, self.send(batch))
        db.session.commit()
        return counts

    # --- live ---

    def _send_live(self, message, pending, all_rcpts, files, domain: Domain | None, results: _Results,
                   headers: dict, inflight: list):
        if domain is None:
            outcome = Outcome("failed", None, None, "The sending domain was removed before delivery.")
            for r in pending:
                self._record(message, r, outcome, None, results)
            return
        submitted = 0
        try:
            sender = self._senders.get(message.domain_id)
            if sender is None:
                from ..domains.service import return_path_host
                sender = self._senders[message.domain_id] = (self._signer(domain), return_path_host(domain))
            signer, rp_host = sender
            message_id_header = message.message_id_header
            if not message_id_header:
                message_id_header = headers[message.id] = new_message_id_header(domain.domain)
            marketing = message.message_type == "marketing"
            if marketing or len(pending) > 1:
                # Transactions: marketing mail is personal (its own List-Unsubscribe per recipient); other mail
                # goes once per route with every recipient of that route as an envelope RCPT.
                groups: dict[str, list] = defaultdict(list)
                for r in pending:
                    groups[r.id if marketing else (r.domain or "")].append(r)
                groups = list(groups.values())
            else:
                groups = [pending]
            cc = [{"email": r.address, "name": r.name} for r in all_rcpts if r.kind == "cc"]
            base: bytes | None = None
            for rcpts in groups:
                first = rcpts[0]
                if marketing or base is None:
                    extra = None
                    if marketing:
                        from ..tracking.tokens import list_unsubscribe_headers
                        extra = list_unsubscribe_headers(message.organization_id, message.mode, message.id,
                                                         first.address)
                    subject, html, text = self._content(message, first)
                    parts, body = build_parts(
                        from_email=message.from_email, from_name=message.from_name, to=message.to or [], cc=cc,
                        reply_to=message.reply_to or [], subject=subject, html=html, text=text,
                        headers=message.headers or {}, attachments=files, message_id_header=message_id_header,
                        extra_headers=extra)
                    data = signer.sign_parts(parts, body) + b"".join(n + b":" + v for n, v in parts) + b"\r\n" + body
                    if not marketing:
                        base = data
                else:
                    data = base
                token = first.id if len(rcpts) == 1 else message.id
                route = self.router.route(first.domain or "")
                future = self.lanes.submit(route, f"bounces+{token}@{rp_host}", [r.address for r in rcpts], data)
                inflight.append((message, rcpts, future, route.relay))
                submitted += len(rcpts)
        except Exception:
            # Building or signing failed (e.g. a DKIM key that no configured key decrypts): that will not
            # get better on a retry, and re-queuing would loop the whole batch forever.  This message
            # fails, visibly; the rest of the batch goes on.  (Transactions already handed to a sender
            # keep their own outcome.)
            log.exception("delivery of %s failed before SMTP", message.id)
            done = {r.id for m, rcpts, _, _ in inflight if m is message for r in rcpts} if submitted else ()
            outcome = Outcome("failed", None, None, "Postline could not build or sign this message.")
            for r in pending:
                if r.id not in done:
                    self._record(message, r, outcome, None, results)

    def _content(self, message, recipient) -> tuple[str | None, str | None, str | None]:
        """Subject, HTML and text as ``recipient`` receives them (for mail that is not personal, the first
        recipient of its route stands for all of them): the message's content rendered for the recipient
        (broadcasts), then instrumented for open and click tracking."""
        subject, html, text = self._render(message, recipient)
        html, text = self._instrument(message, html, text, recipient)
        return subject, html, text

    def _render(self, message, recipient) -> tuple[str | None, str | None, str | None]:
        """Per-recipient rendering (broadcast messages carry no content of their own)."""
        batch = self._broadcasts
        if message.broadcast_id and message.html is None and message.text is None and batch is not None:
            return batch.render(message, recipient)
        return message.subject, message.html, message.text

    def _instrument(self, message, html: str | None, text: str | None, recipient) -> tuple[str | None, str | None]:
        """Open pixel and click-tracking links, when the message asks for them (app.tracking.instrument).
        Marketing mail is built per recipient, so its tokens also name the recipient; other mail shares one
        body between its recipients, so its tokens name only the message.  The tracking base URL is worked
        out once per sending domain per dispatcher run."""
        if not (message.track_opens or message.track_clicks) or not (html or text):
            return html, text
        from ..tracking.instrument import instrument, own_prefixes, tracking_base

        base = self._tracking_bases.get(message.domain_id)
        if base is None:
            domain = self._domains.get(message.domain_id) if message.domain_id else None
            base = self._tracking_bases[message.domain_id] = tracking_base(domain)
        personal = message.message_type == "marketing"
        return instrument(message.id, html, text, base=base, opens=bool(message.track_opens),
                          clicks=bool(message.track_clicks), recipient_id=recipient.id if personal else None,
                          own_prefixes=own_prefixes())

    def _record(self, message, r, outcome: Outcome, host: str | None, results: _Results, relay: bool = False,
                simulated: bool = False):
        now = results.now
        status = outcome.status
        text = outcome.text or ""
        response = text[:2000]
        results.attempts.append((
            new_id("att"), message.organization_id, message.mode, message.id, r.id, r.address, now,
            status, host, outcome.code, outcome.enhanced, response))
        details = {"smtp_code": outcome.code, "enhanced_code": outcome.enhanced, "smtp_response": text[:500],
                   "mx_host": host}
        org, mode, mid, contact = message.organization_id, message.mode, message.id, message.contact_id
        reason = None
        events = results.events
        if status == "accepted":
            status = "sent" if relay else "delivered"
            events.append({"organization_id": org, "mode": mode, "message_id": mid, "contact_id": contact,
                           "recipient": r.address, "occurred_at": now, "type": "message.sent", "data": details})
            if not relay:  # a microsecond later, so the timeline orders them
                events.append({"organization_id": org, "mode": mode, "message_id": mid, "contact_id": contact,
                               "recipient": r.address, "occurred_at": now + timedelta(microseconds=1),
                               "type": "message.delivered", "data": details})
        else:
            event = {"organization_id": org, "mode": mode, "message_id": mid, "contact_id": contact,
                     "recipient": r.address, "occurred_at": now}
            if status == "deferred":
                first = message.queued_at or message.created_at
                if now - first >= self.max_age:
                    status, reason = "failed", "retries_exhausted"
                    events.append({**event, "type": "message.failed",
                                   "data": {**details, "reason": "retries_exhausted"}})
                else:
                    data = {**details, "next_attempt_at": None}  # known once the message's retry is scheduled
                    events.append({**event, "type": "message.deferred", "data": data})
                    results.deferred[mid].append(data)
            elif status == "bounced":
                reason = "hard_bounce"
                events.append({**event, "type": "message.bounced", "data": {**details, "bounce_type": "hard"}})
                results.suppressions.append({"organization_id": org, "mode": mode, "channel": "email",
                                             "recipient": r.address, "reason": "bounce", "message_id": mid,
                                             "detail": text[:500]})
            else:
                status, reason = "failed", "rejected"
                events.append({**event, "type": "message.failed", "data": {**details, "reason": "rejected"}})
        results.recipients.append((r.id, status, reason, r.attempt_count + 1, outcome.code, outcome.enhanced,
                                   response, now))
        results.statuses[mid][r.id] = status

    # --- test mode ---

    def _simulate(self, message, pending, results: _Results):
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
                results.recipients[-1] = (results.recipients[-1][0], "complained") + results.recipients[-1][2:]
                results.statuses[message.id][r.id] = "complained"

    # --- bookkeeping ---

    def _write(self, messages, results: _Results) -> None:
        from ..suppressions.service import add_suppressions

        now = results.now
        headers = results.headers
        message_rows = []
        retries = set()
        schedule = self.retry_schedule
        for message in messages:
            statuses = results.statuses.get(message.id)
            statuses = statuses.values() if statuses else ()
            status = aggregate_status(statuses)
            attempts = message.attempt_count + 1
            next_at = None
            if "deferred" in statuses:
                status = "queued"
                next_at = now + timedelta(seconds=schedule[min(attempts - 1, len(schedule) - 1)])
                retries.add(next_at)
                stamp = next_at.isoformat() + "Z"
                for data in results.deferred.get(message.id, ()):
                    data["next_attempt_at"] = stamp
            message_rows.append((message.id, status, attempts, next_at,
                                 headers.get(message.id) or message.message_id_header,
                                 now if status in TERMINAL else None, now))
        if results.attempts:
            self._insert(DeliveryAttempt.__table__, _ATTEMPT_COLUMNS, results.attempts,
                         "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::integer,%s,%s)")
        if results.recipients:
            self._update(_R, _RECIPIENT_UPDATE, results.recipients,
                         "(%s,%s,%s::text,%s::integer,%s::integer,%s::text,%s,%s::timestamp)")
        if message_rows:
            self._update(_M, _MESSAGE_UPDATE, message_rows,
                         "(%s,%s,%s::integer,%s::timestamp,%s::text,%s::timestamp,%s::timestamp)",
                         extra="claimed_at = NULL")
        record_events(results.events)
        if results.suppressions:
            add_suppressions(results.suppressions)
        if retries:
            from ..jobs import enqueue_at_after_commit
            from .tasks import dispatch_email
            enqueue_at_after_commit(min(retries), dispatch_email, queue_name="high")

    # One statement per table.  On PostgreSQL through psycopg2's execute_values (the rows become one VALUES
    # list, mogrified in C): ``INSERT … VALUES …`` and ``UPDATE … FROM (VALUES …)`` — one statement to parse
    # and plan, where an executemany of UPDATEs is one per row.  Elsewhere (SQLite) a plain executemany.

    def _cursor(self):
        return db.session.connection().connection.cursor()

    def _insert(self, table, columns: tuple, rows: list[tuple], template: str) -> None:
        if self._postgres:
            from psycopg2.extras import execute_values
            execute_values(self._cursor(), f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES %s", rows,
                           template=template, page_size=len(rows))
        else:
            db.session.execute(table.insert(), [dict(zip(columns, row)) for row in rows])

    def _update(self, table, columns: tuple, rows: list[tuple], template: str, extra: str = "") -> None:
        if self._postgres:
            from psycopg2.extras import execute_values
            sets = ", ".join(f"{c} = v.{c}" for c in columns[1:]) + (f", {extra}" if extra else "")
            execute_values(
                self._cursor(),
                f"UPDATE {table.name} AS t SET {sets} FROM (VALUES %s) AS v({', '.join(columns)}) WHERE t.id = v.id",
                rows, template=template, page_size=len(rows))
        else:
            keys = ["b_" + c for c in columns]
            values = {c: bindparam("b_" + c) for c in columns[1:]}
            if extra:
                values["claimed_at"] = None
            db.session.execute(table.update().where(table.c.id == bindparam("b_id")).values(**values),
                               [dict(zip(keys, row)) for row in rows])
