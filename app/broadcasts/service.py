"""Broadcasts: drafts, actions (send, schedule, cancel, proof), the fan-out, and stats.

Fan-out is set-based and resumable.  A chunk (``CHUNK`` contacts of the audience in contact-id order,
after the broadcast's ``fanout_cursor``) is one transaction: the broadcast row is locked and checked to be
still `sending`, then ``INSERT … SELECT`` writes the chunk's messages (``ON CONFLICT DO NOTHING`` on the
partial unique index ``messages (broadcast_id, contact_id)``), their recipients and their events (on
PostgreSQL one statement with data-modifying CTEs fed by the messages' ``RETURNING``; on SQLite three),
and the cursor moves — all or nothing.  A worker killed mid-chunk leaves nothing of it; a
re-run (the sweeper re-enqueues a fan-out whose heartbeat went stale) starts from the cursor; and even two
runs at once could not give a recipient two messages.  Each chunk nudges the delivery dispatcher, so
delivery starts with the first chunk rather than after the last.  On PostgreSQL ``BROADCAST_FANOUT_WRITERS``
(default 2) chunks are written at once, the others in their own connections while the first holds the row
lock; the cursor moves past them all when the first commits (``fan_out_chunks``), and ``finish_fan_out``
recounts the totals from the messages.

Inline recipients (``recipients: [{email, data}]``) are upserted as contacts (set-based, never changing an
existing contact) and listed in ``broadcast_recipients`` with their ``data``; the fan-out then reads them
exactly as it reads a list, and consent rules apply to them as to anyone (API.md 3.2).

Message rows carry no content (subject/html/text NULL): the delivery worker renders each from the broadcast
with the contact's fields (``app.broadcasts.render``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import and_, case, cast, delete, exists, func, insert, literal, null, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import Boolean, DateTime, Integer, String

from ..contacts.models import Contact
from ..errors import Conflict, DomainError, NotFound, ValidationError
from ..events.models import Event
from ..events.service import _LISTENERS, record_events
from ..extensions import db, redis
from ..ids import new_id
from ..messages.models import Message, MessageRecipient
from ..suppressions.models import Suppression
from ..tenancy import require_tenant, tenant_scope, unscoped
from ..timeutil import utcnow
from .models import Broadcast, BroadcastRecipient

log = logging.getLogger(__name__)

CHUNK = 10_000
MAX_INLINE = 10_000
MAX_TEST_RECIPIENTS = 5
# A fan-out whose heartbeat is older than this is presumed dead and is re-enqueued by the sweeper.
STALE_AFTER = timedelta(seconds=90)
TIME_BUDGET = 120.0  # seconds per fan-out job before it hands over to a fresh job (fair to other work)
STATS_TTL = 5  # seconds: the stats of a broadcast are cached this long
CONTENT_FIELDS = ("subject", "html", "text", "template_id", "template_version")


def _dialect() -> str:
    return db.engine.dialect.name


def _setting(name: str, default):
    """``BROADCAST_FANOUT_CHUNK`` (contacts per chunk) and ``BROADCAST_FANOUT_PAUSE`` (seconds between
    chunks, to spread a huge fan-out's write load): app config, else the environment, else the default."""
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get(name)
    return type(default)(value) if value not in (None, "") else default


def _chunk_size() -> int:
    return max(1, _setting("BROADCAST_FANOUT_CHUNK", CHUNK))


# --- reading ------------------------------------------------------------------------------------------------

def get_broadcast(broadcast_id: str, *, for_update: bool = False) -> Broadcast:
    """The broadcast of the tenant in scope; NotFound (param ``id``) otherwise."""
    stmt = select(Broadcast).where(Broadcast.id == broadcast_id)
    if for_update:
        stmt = stmt.with_for_update()
    broadcast = db.session.execute(stmt).scalar_one_or_none()
    if broadcast is None:
        raise NotFound("No such broadcast.", param="id")
    return broadcast


def list_broadcasts_query(status: str | None = None):
    stmt = select(Broadcast)
    if status:
        stmt = stmt.where(Broadcast.status == status)
    return stmt


# --- drafts -------------------------------------------------------------------------------------------------

def _check_channel(channel: str) -> None:
    if channel != "email":
        raise ValidationError(f"The {channel} channel is not available on this server yet; use channel 'email'.",
                              code="unsupported_channel", param="channel")


def _check_sender(from_email: str | None):
    from ..domains.service import require_verified_sender

    if not from_email:
        return None
    return require_verified_sender(from_email, require_tenant().mode)


def _check_template(template_id: str, version: int | None):
    """The template must exist, be active and be an email template; a given version must exist."""
    from ..templates.models import TemplateVersion
    from ..templates.service import get_template

    template = get_template(template_id)
    if not template.is_active:
        raise ValidationError(f"Template {template.id} is inactive.", code="invalid_template", param="template_id")
    if template.channel != "email":
        raise ValidationError(f"Template {template.id} is an {template.channel} template, not email.",
                              code="invalid_template", param="template_id")
    if version is not None and version != template.version:
        found = db.session.execute(select(TemplateVersion.id).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == version)).first()
        if found is None:
            raise NotFound(f"Template {template.id} has no version {version}.", param="template_version")
    return template


def _check_list(list_id: str) -> None:
    from ..lists.models import ContactList

    if db.session.get(ContactList, list_id) is None:
        raise NotFound("No such list.", param="audience_list_id")


def _check_content(b: Broadcast) -> None:
    """Content that parses (``invalid_template`` naming the part); a subject from somewhere."""
    from ..templates import render

    if b.template_id:
        template = _check_template(b.template_id, b.template_version)
        if not (b.subject or template.subject):
            raise ValidationError("The template has no subject; give one.", param="subject")
        if b.subject:
            render.compile_parts(b.subject, None, None)
        return
    if not (b.html or b.text):
        raise ValidationError("Content is required: give html, text, or a template_id.", param="html")
    if not b.subject:
        raise ValidationError("A subject is required: give one (or a template with a subject).", param="subject")
    render.compile_parts(b.subject, b.html, b.text)


def _apply(b: Broadcast, data: dict) -> list | None:
    """Copy the schema-checked fields onto ``b``; returns inline recipients to store (None: unchanged)."""
    if "channel" in data:
        _check_channel(data["channel"])
        b.channel = data["channel"]
    for field in ("name", "message_type", "track_opens", "track_clicks", "subject", "html", "text", "template_id",
                  "template_version"):
        if field in data:
            setattr(b, field, data[field])
    if "from_" in data:
        sender = data["from_"]
        b.from_email, b.from_name = (sender["email"], sender.get("name")) if sender else (None, None)
        _check_sender(b.from_email)
    if "reply_to" in data:
        b.reply_to = data["reply_to"] or []
    if "tags" in data:
        b.tags = list(dict.fromkeys(data["tags"] or []))
    if "metadata" in data:
        b.metadata_ = data["metadata"] or {}
    # Content is either inline (html/text) or a template: giving one form replaces the other.
    if (data.get("html") or data.get("text")) and "template_id" not in data:
        b.template_id = b.template_version = None
    if data.get("template_id"):
        if "html" not in data:
            b.html = None
        if "text" not in data:
            b.text = None
        if "template_version" not in data:
            b.template_version = None
    if b.template_id and (b.html or b.text):
        raise ValidationError("cannot be combined with html or text: give one or the other.", param="template_id")
    recipients = None
    if data.get("audience_list_id"):
        _check_list(data["audience_list_id"])
        b.audience_list_id = data["audience_list_id"]
        recipients = []
    if data.get("recipients") is not None:
        if data.get("audience_list_id"):
            raise ValidationError("Give either audience_list_id or recipients, not both.", param="recipients")
        b.audience_list_id = None
        recipients = data["recipients"]
    _check_content(b)
    return recipients


def create_broadcast(data: dict) -> Broadcast:
    """A draft.  Raises 400 ``unsupported_channel`` (sms), 422 ``from_not_verified`` (live mode),
    404 for an unknown template or list, 400 ``invalid_template`` for content that does not parse."""
    _check_channel(data.get("channel", "email"))
    b = Broadcast(name=data.get("name") or "Untitled broadcast", channel="email", status="draft",
                  message_type="marketing", reply_to=[], tags=[], metadata_={}, inline_recipients=0,
                  track_opens=False, track_clicks=False, total_recipients=0, queued_count=0, suppressed_count=0)
    recipients = _apply(b, data)
    db.session.add(b)
    db.session.flush()
    if recipients is not None:
        _store_inline(b, recipients)
    return b


def _editable(b: Broadcast, verb: str) -> None:
    if b.status != "draft":
        raise Conflict(f"Only a draft can be {verb}; this broadcast is {b.status}.", code="broadcast_not_editable",
                       param="id")


def update_broadcast(broadcast_id: str, data: dict) -> Broadcast:
    b = get_broadcast(broadcast_id, for_update=True)
    _editable(b, "changed")
    recipients = _apply(b, data)
    if recipients is not None:
        _store_inline(b, recipients)
    db.session.flush()
    return b


def delete_broadcast(broadcast_id: str) -> str:
    b = get_broadcast(broadcast_id, for_update=True)
    _editable(b, "deleted")
    db.session.execute(delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == b.id))
    db.session.execute(delete(Broadcast).where(Broadcast.id == b.id))
    return b.id


def _insert_ignore(table, index_elements: list[str]):
    stmt = (postgresql.insert(table) if _dialect() == "postgresql" else sqlite.insert(table))
    return stmt.on_conflict_do_nothing(index_elements=index_elements)


def _store_inline(b: Broadcast, recipients: list[dict]) -> None:
    """Replace the broadcast's inline recipients: upsert their addresses as contacts (an existing contact is
    never changed: consent stays what the contact gave) and keep each recipient's ``data``."""
    tenant = require_tenant()
    db.session.execute(delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == b.id))
    by_email: dict[str, dict] = {}
    for index, r in enumerate(recipients):
        if not r.get("email"):
            raise ValidationError("An email broadcast needs an email address for every recipient.",
                                  param=f"recipients[{index}].email")
        by_email[r["email"]] = r.get("data") or {}
    b.inline_recipients = len(by_email)
    if not by_email:
        return
    now = utcnow()
    emails = list(by_email)
    created = []
    t = Contact.__table__
    for i in range(0, len(emails), 1000):
        part = emails[i:i + 1000]
        rows = [{"id": new_id("con"), "organization_id": tenant.organization_id, "mode": tenant.mode, "email": e,
                 "attributes": {}, "tags": [], "consent_email": "unknown", "consent_sms": "unknown", "metadata": {},
                 "created_at": now, "updated_at": now} for e in part]
        created += db.session.execute(_insert_ignore(t, ["organization_id", "mode", "email"])
                                      .returning(t.c.id, t.c.email), rows).all()
    if created:
        record_events([{"type": "contact.created", "contact_id": row.id, "data": {"source": "broadcast"}}
                       for row in created])
    ids: dict[str, str] = {}
    for i in range(0, len(emails), 1000):
        part = emails[i:i + 1000]
        ids.update(db.session.execute(select(t.c.email, t.c.id).where(
            t.c.organization_id == tenant.organization_id, t.c.mode == tenant.mode, t.c.email.in_(part))).all())
    db.session.execute(insert(BroadcastRecipient.__table__), [
        {"broadcast_id": b.id, "contact_id": ids[e], "data": data, "organization_id": tenant.organization_id,
         "mode": tenant.mode} for e, data in by_email.items()])


# --- actions ------------------------------------------------------------------------------------------------

def _ready(b: Broadcast) -> None:
    """What sending needs beyond a valid draft: an audience and a (still) verified sender."""
    if not b.from_email:
        raise ValidationError("A from address is required.", param="from")
    if not b.audience_list_id and not b.inline_recipients:
        raise ValidationError("Give the broadcast an audience: audience_list_id or recipients.",
                              param="audience_list_id")
    if b.audience_list_id:
        _check_list(b.audience_list_id)
    _check_content(b)
    domain = _check_sender(b.from_email)
    b.domain_id = getattr(domain, "id", None)
    if b.template_id and b.template_version is None:
        from ..templates.service import get_template
        b.template_version = get_template(b.template_id).version  # frozen: later edits do not change it


def _start(b: Broadcast, now: datetime) -> None:
    b.status, b.started_at, b.fanout_frozen_at, b.fanout_heartbeat_at = "sending", now, now, None
    b.fanout_cursor, b.total_recipients, b.queued_count, b.suppressed_count = None, 0, 0, 0
    db.session.flush()
    enqueue_fan_out(b)


def enqueue_fan_out(b: Broadcast) -> None:
    from ..jobs import enqueue_after_commit
    from .tasks import fan_out_broadcast

    enqueue_after_commit(fan_out_broadcast, b.id, queue_name="bulk", tenant=(b.organization_id, b.mode),
                         job_options={"timeout": int(TIME_BUDGET) + 600})


def send_broadcast(broadcast_id: str) -> Broadcast:
    """Start sending now (a draft, or a scheduled broadcast ahead of its time).  409 otherwise."""
    b = get_broadcast(broadcast_id, for_update=True)
    if b.status not in ("draft", "scheduled"):
        raise Conflict(f"This broadcast is {b.status}; only a draft or a scheduled broadcast can be sent.",
                       code="broadcast_not_sendable", param="id")
    _ready(b)
    _start(b, utcnow())
    return b


def local_to_utc(when: datetime, tz_name: str) -> datetime:
    """``when`` (wall-clock time in ``tz_name`` when naive; an offset given wins) as naive UTC."""
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"{tz_name!r} is not an IANA time zone such as Europe/Paris.",
                              param="timezone") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def schedule_broadcast(broadcast_id: str, scheduled_at: datetime, tz_name: str = "UTC") -> Broadcast:
    """Send at a time in an IANA time zone.  A draft or scheduled broadcast only (409); in the past → 400."""
    from ..jobs import enqueue_at_after_commit
    from .tasks import start_scheduled_broadcast

    b = get_broadcast(broadcast_id, for_update=True)
    if b.status not in ("draft", "scheduled"):
        raise Conflict(f"This broadcast is {b.status}; only a draft or a scheduled broadcast can be scheduled.",
                       code="broadcast_not_schedulable", param="id")
    try:
        when = local_to_utc(scheduled_at, tz_name)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError("scheduled_at is out of range.", param="scheduled_at") from None
    now = utcnow()
    if when <= now:
        raise ValidationError("scheduled_at is in the past.", param="scheduled_at")
    if when - now > timedelta(days=366):
        raise ValidationError("scheduled_at may be at most a year ahead.", param="scheduled_at")
    _ready(b)
    b.status, b.scheduled_at, b.timezone = "scheduled", when, tz_name
    db.session.flush()
    enqueue_at_after_commit(when, start_scheduled_broadcast, b.id, queue_name="bulk",
                            tenant=(b.organization_id, b.mode))
    return b


def start_scheduled(broadcast_id: str, now: datetime | None = None) -> bool:
    """A scheduled broadcast whose time has come starts sending (conditional: a canceled or rescheduled one
    does not).  Returns whether it started."""
    now = now or utcnow()
    b = db.session.execute(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()).scalar_one_or_none()
    if b is None or b.status != "scheduled" or b.scheduled_at is None or b.scheduled_at > now:
        return False
    try:
        _ready(b)
    except DomainError as exc:
        # The world changed since scheduling (sender domain removed, list deleted …): cancel, visibly.
        log.warning("scheduled broadcast %s could not start: %s", b.id, exc.message)
        b.status, b.canceled_at = "canceled", now
        b.metadata_ = {**(b.metadata_ or {}), "canceled_reason": exc.message[:500]}
        return False
    _start(b, now)
    return True


def cancel_broadcast(broadcast_id: str) -> Broadcast:
    """scheduled → canceled; sending → canceled: the fan-out stops at its next chunk (it re-checks the status
    under the row lock) and messages not yet claimed by the delivery worker are canceled."""
    b = get_broadcast(broadcast_id, for_update=True)
    if b.status not in ("scheduled", "sending"):
        raise Conflict(f"This broadcast is {b.status}; only a scheduled or sending broadcast can be canceled.",
                       code="broadcast_not_cancelable", param="id")
    now = utcnow()
    was_sending = b.status == "sending"
    b.status, b.canceled_at = "canceled", now
    db.session.flush()
    if was_sending:
        _cancel_queued_messages(b, now)
    _forget_stats(b.id)
    return b


def _cancel_queued_messages(b: Broadcast, now: datetime) -> int:
    """The broadcast's messages the delivery worker has not claimed yet (`queued`) become `canceled`, with
    their recipients and a ``message.canceled`` event each — set-based, whatever the audience size."""
    m, r, e = Message.__table__, MessageRecipient.__table__, Event.__table__
    event_columns = ["id", "type", "organization_id", "mode", "message_id", "contact_id", "data", "occurred_at"]
    returning = (e.c.id, e.c.type, e.c.organization_id, e.c.mode, e.c.message_id, e.c.contact_id, e.c.recipient,
                 e.c.data, e.c.occurred_at)
    at = literal(now, DateTime)

    def events_from(rows):
        return insert(e).from_select(event_columns, select(
            _new_ids("evt"), literal("message.canceled"), rows.c.organization_id, rows.c.mode, rows.c.id,
            rows.c.contact_id, _json_object("broadcast_id", literal(b.id)), at)).returning(*returning)

    if _dialect() == "postgresql":
        # One statement: exactly the rows this UPDATE took from `queued` get their recipients and events
        # (a row the dispatcher claimed meanwhile is locked and skipped by it, or already `sending`).
        canceled = (update(m).where(m.c.broadcast_id == b.id, m.c.status == "queued")
                    .values(status="canceled", completed_at=now, updated_at=now)
                    .returning(m.c.id, m.c.organization_id, m.c.mode, m.c.contact_id).cte("canceled"))
        recipients = (update(r).where(r.c.message_id.in_(select(canceled.c.id)),
                                      r.c.status.in_(("queued", "deferred")))
                      .values(status="canceled", updated_at=now).cte("canceled_recipients"))
        rows = db.session.execute(events_from(canceled).add_cte(recipients)).mappings().all()
    else:
        # SQLite holds the database's write lock from the first write to the commit: nothing interleaves.
        queued = select(m.c.id).where(m.c.broadcast_id == b.id, m.c.status == "queued")
        db.session.execute(update(r).where(r.c.message_id.in_(queued), r.c.status.in_(("queued", "deferred")))
                           .values(status="canceled", updated_at=now))
        fresh = select(m.c.id, m.c.organization_id, m.c.mode, m.c.contact_id).where(
            m.c.broadcast_id == b.id, m.c.status == "queued").subquery("fresh")
        rows = db.session.execute(events_from(fresh)).mappings().all()
        db.session.execute(update(m).where(m.c.broadcast_id == b.id, m.c.status == "queued")
                           .values(status="canceled", completed_at=now, updated_at=now))
    events = [dict(row) for row in rows]
    for listener in _LISTENERS:
        listener(events)
    return len(events)


def send_test(broadcast_id: str, recipients: list[str]) -> list:
    """A proof: the content rendered with sample data (the recipient's own contact fields when they are a
    contact), sent to ≤ 5 addresses through the normal pipeline as transactional messages (suppressions
    still apply) that are not part of the broadcast (not in its stats).  Returns the messages."""
    from ..messages.service import SendContext, _persist, prepare_email
    from .render import render_proof

    b = get_broadcast(broadcast_id)
    recipients = list(dict.fromkeys(a.lower() for a in recipients))
    if not 1 <= len(recipients) <= MAX_TEST_RECIPIENTS:
        raise ValidationError(f"Send a proof to 1–{MAX_TEST_RECIPIENTS} addresses.", param="recipients")
    if not b.from_email:
        raise ValidationError("A from address is required.", param="from")
    _check_content(b)
    ctx = SendContext(set(recipients))
    prepared = []
    for address in recipients:
        rendered = render_proof(b, ctx.contacts.get(address))
        prepared.append(prepare_email({
            "to": [{"email": address, "name": None}], "from_": {"email": b.from_email, "name": b.from_name},
            "reply_to": b.reply_to or [], "subject": f"[Test] {rendered['subject'] or ''}".strip(),
            "html": rendered["html"], "text": rendered["text"], "message_type": "transactional",
            "tags": ["broadcast_test"], "metadata": {"broadcast_id": b.id, "broadcast_test": "true"},
            "track_opens": b.track_opens, "track_clicks": b.track_clicks}, ctx))
    return _persist(prepared)


def bulk_send(data: dict) -> Broadcast:
    """`POST /send/bulk`: create the broadcast and start sending it, in one call."""
    b = create_broadcast({**data, "name": data.get("name") or "Bulk send"})
    _ready(b)
    _start(b, utcnow())
    return b


# --- fan-out ------------------------------------------------------------------------------------------------

def _audience(b: Broadcast):
    """A Core SELECT of the audience's contact ids, labelled ``contact_id``, tenant conditions included."""
    if b.inline_recipients:
        t = BroadcastRecipient.__table__
        return select(t.c.contact_id.label("contact_id")).where(
            t.c.broadcast_id == b.id, t.c.organization_id == b.organization_id, t.c.mode == b.mode)
    try:
        from ..lists.service import audience_select
    except ImportError:
        audience_select = None
    if audience_select is not None:
        return audience_select(b.audience_list_id)
    from ..lists.models import ListMember
    t = ListMember.__table__
    return select(t.c.contact_id.label("contact_id")).where(
        t.c.list_id == b.audience_list_id, t.c.organization_id == b.organization_id, t.c.mode == b.mode)


def _new_ids(prefix: str, ordered: bool = False):
    """A fresh random id per row, made by the database (``prefix_`` + 24 hex digits, ~94 random bits).

    ``ordered`` (PostgreSQL): ``prefix_`` + the row's ``clock_timestamp()`` in microseconds (13 hex digits)
    + 15 hex digits of a v4 UUID (56 random bits: its 13th digit is the version) — 32 characters, unique and
    unguessable, but increasing, so the rows of a fan-out chunk land at the right edge of every B-tree keyed
    by them (the primary keys, and ``message_id`` on recipients and events) instead of on random leaf pages
    all over 1M-row indexes: far fewer pages dirtied, and far less WAL (full-page images after each
    checkpoint)."""
    if _dialect() == "postgresql":
        uuid_hex = func.replace(cast(func.gen_random_uuid(), String), "-", "")
        if ordered:
            micros = cast(func.extract("epoch", func.clock_timestamp()) * 1_000_000, postgresql.BIGINT)
            return literal(prefix + "_") + func.lpad(func.to_hex(micros), 13, "0") + func.substr(uuid_hex, 1, 15)
        return literal(prefix + "_") + func.substr(uuid_hex, 1, 24)
    return literal(prefix + "_") + func.lower(func.hex(func.randomblob(12)))


def _json_literal(value):
    text = json.dumps(value)
    if _dialect() == "postgresql":
        return cast(literal(text, String), postgresql.JSONB)
    return literal(text, String)


def _json_object(*pairs):
    return (func.jsonb_build_object if _dialect() == "postgresql" else func.json_object)(*pairs)


def _json_array(*items):
    return (func.jsonb_build_array if _dialect() == "postgresql" else func.json_array)(*items)


def _email_domain(column):
    if _dialect() == "postgresql":
        return func.split_part(column, "@", 2)
    return func.substr(column, func.instr(column, "@") + 1)


def _lock_sending(broadcast_id: str) -> Broadcast | None:
    """The broadcast, row-locked, if it is still `sending`.  The lock serialises chunks with cancel: a cancel
    waits for the chunk (and for every parallel chunk written under this lock), then cancels its messages."""
    b = db.session.execute(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()
    return b if b is not None and b.status == "sending" else None


def _audience_or_stop(b: Broadcast, now: datetime):
    try:
        return _audience(b).subquery("aud")
    except NotFound:  # the list was deleted after the broadcast started: stop, visibly
        b.status, b.canceled_at = "canceled", now
        b.metadata_ = {**(b.metadata_ or {}), "canceled_reason": "The audience list was deleted."}
        return None


def _counts(events: list[dict]) -> dict:
    n_suppressed = sum(1 for ev in events if ev["type"] == "message.suppressed")
    return {"written": len(events), "queued": len(events) - n_suppressed, "suppressed": n_suppressed}


def _nudge_delivery() -> None:
    from ..delivery.tasks import DISPATCH_NUDGE, dispatch_email
    from ..jobs import nudge_after_commit
    nudge_after_commit(dispatch_email, key=DISPATCH_NUDGE, queue_name="high")


def _write_window(b: Broadcast, aud, lo: str | None, limit: int, now: datetime,
                  hi_given: str | None = None) -> tuple[list[dict], str | None]:
    """Write the messages, recipients and events of the audience ids in ``(lo, hi]``, in the session's
    transaction, and hand the events to the listeners.  ``hi`` is ``hi_given``, else the ``limit``-th id
    after ``lo``.  Returns ``(events, hi)``; ``hi`` is None when there is nothing after ``lo`` (done)."""
    org, mode = b.organization_id, b.mode
    window = select(aud.c.contact_id)
    if lo:
        window = window.where(aud.c.contact_id > lo)
    window = (window.where(aud.c.contact_id <= hi_given) if hi_given is not None
              else window.order_by(aud.c.contact_id).limit(limit))
    pg = _dialect() == "postgresql"
    if pg:
        # The chunk's COMMIT does not wait for its WAL to reach disk.  Safe because a chunk is all or
        # nothing with the cursor: its messages, recipients, events (and webhook deliveries) and the
        # ``fanout_cursor``/counters UPDATE below are one transaction, so a crash of the database server
        # within the ~0.6 s window loses the whole chunk *and* the cursor move, never one without the
        # other.  The broadcast row then still says `sending` at the old cursor; the worker's job fails on
        # its lost connection, its heartbeat goes stale and ``sweep`` re-enqueues the fan-out, which
        # resumes from that cursor and writes the chunk again (new ids; the unique index would refuse a
        # second message for a recipient anyway).  Nothing of a lost chunk can have been delivered: the
        # dispatcher claims messages with a synchronous COMMIT of its own, and WAL is flushed in order,
        # so a durable claim implies the (earlier) chunk is durable too.
        db.session.execute(text("SET LOCAL synchronous_commit = off"))
        # The window is a CTE of the write statement itself, read once; its upper bound comes back with the
        # written rows.
        win = window.cte("win").prefix_with("MATERIALIZED")
        hi = (literal(hi_given, String) if hi_given is not None
              else select(func.max(win.c.contact_id)).scalar_subquery())
        members = select(win.c.contact_id)
    else:
        hi = hi_given if hi_given is not None else db.session.execute(
            select(func.max(window.subquery().c.contact_id))).scalar()
        if hi is None:
            return [], None
        members = select(aud.c.contact_id).where(aud.c.contact_id <= hi, *([aud.c.contact_id > lo] if lo else []))

    c, s, m = Contact.__table__, Suppression.__table__, Message.__table__
    r, e = MessageRecipient.__table__, Event.__table__
    at = literal(now, DateTime)
    # The range goes into the audience too, so a list is read by its (list_id, contact_id) key range and
    # contacts by their primary key range: a chunk costs the same at the end of 1M contacts as at the start.
    in_range = [c.c.id <= hi] + ([c.c.id > lo] if lo else [])
    suppressed = s.c.id.isnot(None)
    no_consent = and_(literal(b.message_type == "marketing"), func.coalesce(c.c.consent_email, "") != "subscribed")
    status = case((suppressed, "suppressed"), (no_consent, "suppressed"), else_="queued")
    reason = case((suppressed, s.c.reason), (no_consent, "no_consent"), else_=null())
    source = (
        select(
            _new_ids("msg", ordered=True), literal(org), literal(mode), literal("email"), status, reason,
            literal(b.message_type),
            literal(b.from_email), literal(b.from_name, String), _json_literal(b.reply_to or []),
            _json_array(_json_object("email", c.c.email, "name", null())),
            _json_literal({}), _json_literal(b.tags or []), _json_literal(b.metadata_ or {}),
            literal(b.template_id, String), literal(b.template_version, Integer), _json_literal({}),
            literal(bool(b.track_opens), Boolean), literal(bool(b.track_clicks), Boolean),
            literal(b.domain_id, String), c.c.id, literal(b.id, String), literal(0, Integer), at, at, at,
            case((status == "queued", at), else_=null()), case((status == "suppressed", at), else_=null()))
        .select_from(c.outerjoin(s, and_(s.c.organization_id == org, s.c.mode == mode, s.c.channel == "email",
                                         s.c.recipient == c.c.email)))
        .where(c.c.organization_id == org, c.c.mode == mode, c.c.email.isnot(None),
               c.c.created_at <= (b.fanout_frozen_at or now),
               c.c.id.in_(members), *in_range))
    columns = ["id", "organization_id", "mode", "channel", "status", "status_reason", "message_type", "from_email",
               "from_name", "reply_to", "to", "headers", "tags", "metadata", "template_id", "template_version",
               "variables", "track_opens", "track_clicks", "domain_id", "contact_id", "broadcast_id",
               "attempt_count", "next_attempt_at", "created_at", "updated_at", "queued_at", "completed_at"]
    event_columns = ["id", "type", "organization_id", "mode", "message_id", "contact_id", "recipient", "data",
                     "occurred_at"]
    recipient_columns = ["id", "organization_id", "mode", "message_id", "kind", "address", "domain", "status",
                         "status_reason", "attempt_count", "updated_at"]
    # What the listeners get is rebuilt from these few text columns: organization, mode and time are the
    # chunk's, and ``data`` is known but for a suppression's reason (no JSON decoded per row).
    returning = (e.c.id, e.c.type, e.c.message_id, e.c.contact_id, e.c.recipient, e.c.data["reason"].as_string())

    def sibling_ids(rows, prefix: str):
        """The ids of a message's recipient and event.  PostgreSQL: the message's own (ordered, unique) id
        under another prefix — one random draw per message instead of three; SQLite: fresh random ids."""
        if _dialect() == "postgresql":
            return literal(prefix + "_") + func.substr(rows.c.id, 5)
        return _new_ids(prefix)

    def event_select(rows, email):
        """message.queued / message.suppressed for ``rows`` (message columns) with ``email``."""
        is_suppressed = rows.c.status == "suppressed"
        return select(
            sibling_ids(rows, "evt"), case((is_suppressed, "message.suppressed"), else_="message.queued"),
            rows.c.organization_id, rows.c.mode, rows.c.id, rows.c.contact_id, case((is_suppressed, email), else_=null()),
            case((is_suppressed, _json_object("reason", rows.c.status_reason, "broadcast_id", literal(b.id))),
                 else_=_json_literal({"broadcast_id": b.id})), at)

    def recipient_select(rows, email):
        return select(sibling_ids(rows, "rcp"), rows.c.organization_id, rows.c.mode, rows.c.id, literal("to"), email,
                      _email_domain(email), rows.c.status, rows.c.status_reason, literal(0, Integer), at)

    if _dialect() == "postgresql":
        # One statement: the messages INSERT returns exactly the rows it wrote (ON CONFLICT skips are not
        # returned), and its recipients and events are written from that, without reading messages back.
        inserted = (postgresql.insert(m).from_select(columns, source)
                    .on_conflict_do_nothing(index_elements=["broadcast_id", "contact_id"],
                                            index_where=m.c.broadcast_id.isnot(None))
                    .returning(m.c.id, m.c.organization_id, m.c.mode, m.c.contact_id, m.c.status,
                               m.c.status_reason, m.c.to).cte("inserted"))
        email = func.jsonb_extract_path_text(inserted.c.to, "0", "email")
        recipients_cte = insert(r).from_select(recipient_columns, recipient_select(inserted, email)).cte("rcpts")
        stmt = (insert(e).from_select(event_columns, event_select(inserted, email))
                .returning(*returning, hi.label("hi")).add_cte(recipients_cte))
        event_rows = db.session.execute(stmt).all()
        if hi_given is not None:
            hi = hi_given
        elif event_rows:
            hi = event_rows[0][-1]
        else:  # nothing written: the window was empty (done), or held no one to write (move past it)
            hi = db.session.execute(select(func.max(window.subquery().c.contact_id))).scalar()
            if hi is None:
                return [], None
    else:
        db.session.execute(sqlite.insert(m).from_select(columns, source).on_conflict_do_nothing(
            index_elements=["broadcast_id", "contact_id"], index_where=m.c.broadcast_id.isnot(None)))
        # Messages of this chunk that have no recipient row yet are exactly the ones just written (a chunk
        # is one transaction): their events first, then their recipients.
        fresh = (select(m.c.id, m.c.organization_id, m.c.mode, m.c.contact_id, m.c.status, m.c.status_reason,
                        c.c.email)
                 .select_from(m.join(c, c.c.id == m.c.contact_id))
                 .where(m.c.broadcast_id == b.id, m.c.contact_id <= hi,
                        *([m.c.contact_id > lo] if lo else []),
                        ~exists().where(r.c.message_id == m.c.id))).subquery("fresh")
        event_rows = db.session.execute(insert(e).from_select(event_columns, event_select(fresh, fresh.c.email))
                                        .returning(*returning)).all()
        db.session.execute(insert(r).from_select(recipient_columns, recipient_select(fresh, fresh.c.email)))

    events = [{"id": id_, "type": type_, "organization_id": org, "mode": mode, "message_id": message_id,
               "contact_id": contact_id, "recipient": recipient, "occurred_at": now,
               "data": ({"reason": reason, "broadcast_id": b.id} if type_ == "message.suppressed"
                        else {"broadcast_id": b.id})}
              for id_, type_, message_id, contact_id, recipient, reason, *_ in event_rows]
    for listener in _LISTENERS:  # webhooks read the events backbone (one query when nobody listens)
        listener(events)
    return events, hi


def _move_cursor(b: Broadcast, hi: str, counts: dict) -> None:
    t = Broadcast.__table__
    db.session.execute(update(t).where(t.c.id == b.id).values(
        fanout_cursor=hi, fanout_heartbeat_at=utcnow(), updated_at=utcnow(),
        total_recipients=t.c.total_recipients + counts["written"], queued_count=t.c.queued_count + counts["queued"],
        suppressed_count=t.c.suppressed_count + counts["suppressed"]))


def fan_out_chunk(broadcast_id: str, limit: int | None = None) -> dict | None:
    """Write the next chunk of the broadcast's messages, in the caller's transaction (commit after it).

    Returns ``{"written", "queued", "suppressed"}``, ``{"done": True, …}`` when the audience is exhausted, or
    None when the broadcast is no longer `sending` (canceled) — nothing is written then."""
    limit = limit or _chunk_size()
    now = utcnow()
    b = _lock_sending(broadcast_id)
    if b is None:
        return None
    aud = _audience_or_stop(b, now)
    if aud is None:
        return None
    events, hi = _write_window(b, aud, b.fanout_cursor, limit, now)
    if hi is None:
        return {"done": True, "written": 0, "queued": 0, "suppressed": 0}
    counts = _counts(events)
    _move_cursor(b, hi, counts)
    if counts["queued"]:
        _nudge_delivery()
    return counts


def _writers() -> int:
    """Chunks written at once (``BROADCAST_FANOUT_WRITERS``, default 2) — PostgreSQL only: one chunk's
    statement keeps one backend busy, so two keep two cores busy.  SQLite has a single writer."""
    if _dialect() != "postgresql":
        return 1
    return max(1, _setting("BROADCAST_FANOUT_WRITERS", 2))


def _window_bounds(aud, lo: str | None, limit: int, n: int) -> list[str]:
    """The upper bounds of the next ``n`` windows of ``limit`` audience ids after ``lo`` (fewer at the end)."""
    window = select(aud.c.contact_id)
    if lo:
        window = window.where(aud.c.contact_id > lo)
    ranked = select(window.subquery().c.contact_id.label("contact_id")).subquery()
    ranked = (select(ranked.c.contact_id, ((func.row_number().over(order_by=ranked.c.contact_id) - 1) // limit)
                     .label("g"))
              .order_by(ranked.c.contact_id).limit(limit * n).subquery())
    return list(db.session.execute(select(func.max(ranked.c.contact_id)).group_by(ranked.c.g)
                                   .order_by(ranked.c.g)).scalars())


def _side_chunk(app, org: str, mode: str, broadcast_id: str, lo: str, hi_given: str | None, limit: int,
                now: datetime) -> tuple[dict, str | None]:
    """One of the parallel chunks, in its own session and transaction (committed here).  No row lock of
    its own: the session that started it holds the broadcast's and commits only after this one."""
    with app.app_context(), tenant_scope(org, mode):
        try:
            b = db.session.get(Broadcast, broadcast_id)
            events, hi = _write_window(b, _audience(b).subquery("aud"), lo, limit, now, hi_given)
            counts = _counts(events)
            if counts["queued"]:
                _nudge_delivery()
            db.session.commit()
            return counts, hi
        except BaseException:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def fan_out_chunks(broadcast_id: str, writers: int, limit: int | None = None) -> dict | None:
    """Like :func:`fan_out_chunk`, for ``writers`` consecutive chunks written at once (PostgreSQL).

    This session locks the broadcast, reads the chunks' bounds (one statement), starts the other chunks in
    threads (a session, a connection and a transaction each, committed on their own), writes the first
    chunk, waits for the others, and only then moves the cursor past all of them and commits (the caller
    does).  A cancel waits for all of them (the row lock).  If the first chunk is lost (a crash after the
    others committed), the cursor has not moved: the next run writes it again and finds the others' rows
    already there (the unique index: nobody gets two), and ``finish_fan_out`` recounts the totals."""
    from concurrent.futures import ThreadPoolExecutor

    limit = limit or _chunk_size()
    now = utcnow()
    b = _lock_sending(broadcast_id)
    if b is None:
        return None
    aud = _audience_or_stop(b, now)
    if aud is None:
        return None
    bounds = _window_bounds(aud, b.fanout_cursor, limit, writers - 1)
    if not bounds:
        return {"done": True, "written": 0, "queued": 0, "suppressed": 0}
    # Chunk 0 is (cursor, bounds[0]], chunk i (bounds[i-1], bounds[i]]; the last one, after the last bound,
    # finds its own end (or nothing, at the end of the audience).
    side = [(bounds[i - 1], bounds[i]) for i in range(1, len(bounds))]
    if len(bounds) == writers - 1:
        side.append((bounds[-1], None))
    app = current_app._get_current_object()
    with ThreadPoolExecutor(max_workers=len(side) or 1) as pool:
        futures = [pool.submit(_side_chunk, app, b.organization_id, b.mode, b.id, lo, hi, limit, now)
                   for lo, hi in side]
        try:
            events, _ = _write_window(b, aud, b.fanout_cursor, limit, now, bounds[0])
        finally:
            results = [f.result() for f in futures]  # wait for all; a side chunk's error is raised here
    totals = _counts(events)
    if totals["queued"]:
        _nudge_delivery()
    hi = bounds[0]
    for counts, side_hi in results:
        for key in totals:
            totals[key] += counts[key]
        hi = side_hi or hi
    _move_cursor(b, hi, totals)
    return totals


def finish_fan_out(broadcast_id: str) -> bool:
    """The audience is exhausted: `sending` → `sent` and ``broadcast.sent`` (once: conditional).

    The counts are recounted from the messages (one pass over the broadcast's index range): parallel chunks
    lost after their siblings committed leave the running counts short (see :func:`fan_out_chunks`).  A
    message written as suppressed is the one without ``queued_at``."""
    t, m = Broadcast.__table__, Message.__table__
    now = utcnow()
    total, suppressed = db.session.execute(select(func.count(), func.count().filter(m.c.queued_at.is_(None)))
                                           .where(m.c.broadcast_id == broadcast_id)).one()
    row = db.session.execute(update(t).where(t.c.id == broadcast_id, t.c.status == "sending")
                             .values(status="sent", completed_at=now, fanout_heartbeat_at=now, updated_at=now,
                                     total_recipients=total, queued_count=total - suppressed,
                                     suppressed_count=suppressed)
                             .returning(t.c.organization_id, t.c.mode, t.c.name, t.c.total_recipients,
                                        t.c.queued_count, t.c.suppressed_count)).first()
    if row is None:
        return False
    record_events([{"type": "broadcast.sent", "organization_id": row.organization_id, "mode": row.mode,
                    "data": {"broadcast_id": broadcast_id, "name": row.name, "total_recipients": row.total_recipients,
                             "queued": row.queued_count, "suppressed": row.suppressed_count},
                    "occurred_at": now}])
    _forget_stats(broadcast_id)
    return True


def claim_fan_out(broadcast_id: str, now: datetime | None = None) -> bool:
    """Take the fan-out (its heartbeat is unset or stale): one worker at a time works on a broadcast."""
    now = now or utcnow()
    t = Broadcast.__table__
    claimed = db.session.execute(update(t).where(
        t.c.id == broadcast_id, t.c.status == "sending",
        (t.c.fanout_heartbeat_at.is_(None)) | (t.c.fanout_heartbeat_at < now - STALE_AFTER))
        .values(fanout_heartbeat_at=now)).rowcount
    db.session.commit()
    return claimed == 1


def release_fan_out(broadcast_id: str) -> None:
    t = Broadcast.__table__
    db.session.execute(update(t).where(t.c.id == broadcast_id, t.c.status == "sending")
                       .values(fanout_heartbeat_at=None))


def run_fan_out(broadcast_id: str, *, budget: float = TIME_BUDGET, pause: float | None = None) -> dict:
    """Chunk after chunk, committing each, until done, canceled or out of time (then hand over to a new
    job).  Safe to run again at any point."""
    if not claim_fan_out(broadcast_id):
        return {"claimed": False}
    pause = _setting("BROADCAST_FANOUT_PAUSE", 0.0) if pause is None else pause
    writers = _writers()
    started = time.monotonic()
    totals = {"written": 0, "queued": 0, "suppressed": 0, "chunks": 0}
    while True:
        result = fan_out_chunks(broadcast_id, writers) if writers > 1 else fan_out_chunk(broadcast_id)
        if result is None:  # canceled (or gone)
            db.session.commit()
            totals["stopped"] = True
            return totals
        if result.get("done"):
            finish_fan_out(broadcast_id)
            db.session.commit()
            totals["done"] = True
            return totals
        db.session.commit()
        totals["chunks"] += 1
        for key in ("written", "queued", "suppressed"):
            totals[key] += result[key]
        if time.monotonic() - started > budget:
            release_fan_out(broadcast_id)
            b = db.session.get(Broadcast, broadcast_id)
            enqueue_fan_out(b)
            db.session.commit()
            totals["continued"] = True
            return totals
        if pause:
            time.sleep(pause)  # spreads a huge fan-out's write load (and lets tests stop it mid-way)


def sweep(now: datetime | None = None) -> dict:
    """Cron: start due scheduled broadcasts the scheduler missed, and re-enqueue fan-outs whose worker died
    (heartbeat older than ``STALE_AFTER``).  All tenants."""
    now = now or utcnow()
    t = Broadcast.__table__
    with unscoped():
        due = db.session.execute(select(t.c.id, t.c.organization_id, t.c.mode).where(
            t.c.status == "scheduled", t.c.scheduled_at <= now)).all()
        stale = db.session.execute(select(t.c.id, t.c.organization_id, t.c.mode).where(
            t.c.status == "sending",
            (t.c.fanout_heartbeat_at.is_(None) & (t.c.started_at < now - STALE_AFTER))
            | (t.c.fanout_heartbeat_at < now - STALE_AFTER))).all()
    started = 0
    for row in due:
        with tenant_scope(row.organization_id, row.mode):
            started += start_scheduled(row.id, now)
            db.session.commit()
    for row in stale:
        with tenant_scope(row.organization_id, row.mode):
            enqueue_fan_out(db.session.get(Broadcast, row.id))
    db.session.commit()
    return {"started": started, "resumed": len(stale)}


# --- stats --------------------------------------------------------------------------------------------------

STAT_KEYS = ("total", "queued", "sent", "delivered", "opened", "clicked", "bounced", "complained",
             "unsubscribed", "failed", "suppressed", "canceled")


def _stats_key(broadcast_id: str) -> str:
    return redis.key("broadcast-stats", broadcast_id)


def _forget_stats(broadcast_id: str) -> None:
    try:
        redis.client.delete(_stats_key(broadcast_id))
    except Exception:  # a cache: never worth failing a request over
        log.warning("could not drop cached stats of %s", broadcast_id, exc_info=True)


def compute_stats(broadcast_id: str) -> dict:
    """One grouped count over the broadcast's messages (the unique index's range), and one over the events
    of those messages: distinct messages opened and clicked (machine opens and scanner clicks excluded), and
    unsubscribed from.

    ``sent`` counts messages handed over (sent, delivered or complained about); ``delivered`` those the
    receiver accepted (complaints included: a complaint comes from a delivered message)."""
    m, e = Message.__table__, Event.__table__
    by_status = dict(db.session.execute(
        select(m.c.status, func.count()).where(m.c.broadcast_id == broadcast_id).group_by(m.c.status)).all())
    machine = func.coalesce(e.c.data["machine"].as_boolean(), False)
    engaged = dict(db.session.execute(
        select(e.c.type, func.count(func.distinct(e.c.message_id)))
        .select_from(e.join(m, m.c.id == e.c.message_id))
        .where(m.c.broadcast_id == broadcast_id,
               e.c.type.in_(("message.opened", "message.clicked", "contact.unsubscribed")),
               (e.c.type == "contact.unsubscribed") | (machine == False))  # noqa: E712
        .group_by(e.c.type)).all())
    get = by_status.get
    return {
        "total": sum(by_status.values()),
        "queued": get("queued", 0) + get("sending", 0) + get("scheduled", 0),
        "sent": get("sent", 0) + get("delivered", 0) + get("complained", 0),
        "delivered": get("delivered", 0) + get("complained", 0),
        "opened": engaged.get("message.opened", 0), "clicked": engaged.get("message.clicked", 0),
        "bounced": get("bounced", 0), "complained": get("complained", 0),
        "unsubscribed": engaged.get("contact.unsubscribed", 0), "failed": get("failed", 0),
        "suppressed": get("suppressed", 0), "canceled": get("canceled", 0),
    }


def broadcast_stats(b: Broadcast) -> dict:
    """``compute_stats``, cached for ``STATS_TTL`` seconds (a dashboard polling a 1M-recipient send asks
    every few seconds; the grouped count is the costly part)."""
    if b.status == "draft":
        return {k: 0 for k in STAT_KEYS}
    key = _stats_key(b.id)
    try:
        cached = redis.client.get(key)
        if cached:
            return json.loads(cached)
    except Exception:
        log.warning("stats cache unavailable", exc_info=True)
    stats = compute_stats(b.id)
    try:
        redis.client.set(key, json.dumps(stats), ex=STATS_TTL)
    except Exception:
        log.warning("stats cache unavailable", exc_info=True)
    return stats


def with_stats(b: Broadcast) -> Broadcast:
    b.stats = broadcast_stats(b)
    return b
