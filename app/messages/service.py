"""Accepting messages: validate the rules of API.md 3.2, render, and record them — set-based.

A single send and a 1,000-item batch go through the same pipeline: ``prepare_email`` turns one request
into rows (raising the contract's errors), with lookups (suppressions, contacts, sender domains) done once
for the whole batch; ``_persist`` writes every message, recipient, attachment and event in one INSERT per
table.  Delivery is the worker's (app.delivery): accepting only nudges it after commit.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import insert, select, update

from ..contacts.models import Contact
from ..errors import Conflict, DomainError, NotFound, PayloadTooLarge, ValidationError
from ..events.service import message_timeline, record_events
from ..extensions import db
from ..ids import new_id
from ..jobs import enqueue_at_after_commit, nudge_after_commit
from ..sqlhelpers import json_array_contains
from ..tenancy import require_tenant
from ..timeutil import utcnow
from .models import DeliveryAttempt, Message, MessageAttachment, MessageRecipient
from .schemas import MAX_ATTACHMENTS_BYTES

MAX_SCHEDULE_AHEAD = timedelta(days=30)
# A send_at this close to now is sent now: scheduling it would only add the scheduler's latency.
SCHEDULE_THRESHOLD = timedelta(seconds=2)

_MESSAGE_COLUMNS = {c.key for c in Message.__table__.columns}


@dataclass
class Prepared:
    message: dict
    recipients: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class SendContext:
    """Per-request caches, so a batch looks each thing up once: suppressed addresses, contacts by email,
    sender domains."""

    def __init__(self, addresses: set[str] | None = None):
        self.tenant = require_tenant()
        self.now = utcnow()
        self._domains: dict[str, object] = {}
        self.suppressed: dict[str, str] = {}
        self.contacts: dict[str, Contact] = {}
        self._looked_up: set[str] = set()
        if addresses:
            self.load(addresses)

    def load(self, addresses: set[str]) -> None:
        """Look up suppressions and contacts for the addresses not looked up yet (a batch preloads all of
        its addresses in one go, so the per-item calls find nothing left to do)."""
        from ..suppressions.service import suppressed

        addresses = addresses - self._looked_up
        if not addresses:
            return
        self._looked_up |= addresses
        self.suppressed.update(suppressed("email", sorted(addresses)))
        chunk = sorted(addresses)
        for i in range(0, len(chunk), 1000):
            for contact in db.session.execute(select(Contact).where(Contact.email.in_(chunk[i:i + 1000]))).scalars():
                self.contacts[contact.email] = contact

    def sender_domain(self, from_email: str):
        """The verified domain a live send signs with; test mode needs none (nothing leaves)."""
        from ..domains.service import require_verified_sender

        if self.tenant.mode == "test":
            return None

        domain_name = from_email.rpartition("@")[2].lower()
        if domain_name not in self._domains:
            try:
                self._domains[domain_name] = require_verified_sender(from_email, self.tenant.mode)
            except DomainError as exc:
                self._domains[domain_name] = exc
        found = self._domains[domain_name]
        if isinstance(found, DomainError):
            raise found
        return found


def _addresses(data: dict) -> set[str]:
    return {a["email"] for key in ("to", "cc", "bcc") for a in data.get(key) or []}


def _contact_context(contact: Contact | None) -> dict | None:
    if contact is None:
        return None
    return {"id": contact.id, "email": contact.email, "phone_number": contact.phone_number,
            "first_name": contact.first_name, "last_name": contact.last_name,
            "attributes": contact.attributes or {}, "timezone": contact.timezone, "locale": contact.locale,
            "external_id": contact.external_id}


def _decode_attachments(items: list[dict]) -> list[dict]:
    out, total = [], 0
    for index, item in enumerate(items):
        try:
            content = base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Attachment content must be base64.", param=f"attachments[{index}].content") \
                from None
        total += len(content)
        if total > MAX_ATTACHMENTS_BYTES:
            raise PayloadTooLarge("Attachments may total at most 10 MiB.", param="attachments")
        out.append({"filename": item["filename"], "content_type": item["content_type"], "content": content,
                    "size": len(content)})
    return out


def _schedule(send_at: datetime | None, now: datetime) -> datetime | None:
    if send_at is None:
        return None
    when = send_at.astimezone(timezone.utc).replace(tzinfo=None)
    if when - now > MAX_SCHEDULE_AHEAD:
        raise ValidationError("send_at may be at most 30 days ahead.", param="send_at")
    return when if when - now > SCHEDULE_THRESHOLD else None


def prepare_email(data: dict, ctx: SendContext, *, batch_id: str | None = None) -> Prepared:
    """One `POST /messages/email` body (already schema-checked) → the rows to write.  Raises the
    contract's errors: 422 from_not_verified, 400 invalid_template / missing_variable, 413, 400 send_at."""
    tenant, now = ctx.tenant, ctx.now
    message_id = new_id("msg")
    sender = data["from_"]
    domain = ctx.sender_domain(sender["email"])
    ctx.load(_addresses(data))
    send_at = _schedule(data.get("send_at"), now)
    attachments = _decode_attachments(data.get("attachments") or [])

    first_to = data["to"][0]["email"]
    subject, html, text = data.get("subject"), data.get("html"), data.get("text")
    template_version = None
    if data.get("template_id"):
        from ..templates.service import render_for_send
        from ..tracking.tokens import unsubscribe_url

        rendered = render_for_send(
            data["template_id"], data.get("variables") or {}, version=data.get("template_version"),
            contact=_contact_context(ctx.contacts.get(first_to)),
            unsubscribe_url=unsubscribe_url(tenant.organization_id, tenant.mode, message_id, first_to),
            channel="email")
        subject = rendered["subject"] if subject is None else subject
        html, text, template_version = rendered["html"], rendered["text"], rendered["version"]
        if not subject:
            raise ValidationError("The template has no subject; give one.", param="subject")
        if "\r" in subject or "\n" in subject:
            raise ValidationError("The rendered subject contains a line break.", code="invalid_template",
                                  param="template_id")

    marketing = data["message_type"] == "marketing"
    recipients, events = [], []
    seen: set[tuple[str, str]] = set()
    for kind in ("to", "cc", "bcc"):
        for addr in data.get(kind) or []:
            email = addr["email"]
            if (kind, email) in seen:
                continue
            seen.add((kind, email))
            status, reason = "queued", None
            if email in ctx.suppressed:
                status, reason = "suppressed", ctx.suppressed[email]
            elif marketing:
                contact = ctx.contacts.get(email)
                if contact is None or contact.consent_email != "subscribed":
                    status, reason = "suppressed", "no_consent"
            recipients.append({
                "id": new_id("rcp"), "organization_id": tenant.organization_id, "mode": tenant.mode,
                "message_id": message_id, "kind": kind, "address": email, "name": addr.get("name"),
                "domain": email.rpartition("@")[2], "status": status, "status_reason": reason,
                "attempt_count": 0, "updated_at": now})
            if status == "suppressed":
                events.append({"type": "message.suppressed", "message_id": message_id, "recipient": email,
                               "data": {"reason": reason}, "occurred_at": now})

    live = [r for r in recipients if r["status"] != "suppressed"]
    if not live:
        status, reason = "suppressed", recipients[0]["status_reason"] if recipients else None
    elif send_at is not None:
        status, reason = "scheduled", None
    else:
        status, reason = "queued", None
    first_contact = ctx.contacts.get(first_to)
    message = {
        "id": message_id, "organization_id": tenant.organization_id, "mode": tenant.mode, "channel": "email",
        "status": status, "status_reason": reason, "message_type": data["message_type"],
        "from_email": sender["email"], "from_name": sender.get("name"),
        "reply_to": data.get("reply_to") or [],
        "to": [{"email": a["email"], "name": a.get("name")} for a in data["to"]],
        "subject": subject, "html": html, "text": text, "headers": data.get("headers") or {},
        "tags": list(dict.fromkeys(data.get("tags") or [])), "metadata": data.get("metadata") or {},
        "template_id": data.get("template_id"), "template_version": template_version,
        "variables": data.get("variables") or {},
        "track_opens": data.get("track_opens", False), "track_clicks": data.get("track_clicks", False),
        "send_at": send_at, "domain_id": getattr(domain, "id", None),
        "contact_id": first_contact.id if first_contact is not None else None,
        "batch_id": batch_id, "idempotency_key": data.get("idempotency_key"),
        "attempt_count": 0, "next_attempt_at": send_at or now, "created_at": now, "updated_at": now,
        "queued_at": now if status == "queued" else None,
        "completed_at": now if status == "suppressed" else None,
    }
    if status != "suppressed":
        events.insert(0, {"type": "message.scheduled" if status == "scheduled" else "message.queued",
                          "message_id": message_id, "data": {"send_at": send_at.isoformat() + "Z"}
                          if send_at else {}, "occurred_at": now})
    for event in events:
        event.setdefault("contact_id", message["contact_id"])
    return Prepared(message, recipients,
                    [{"id": new_id("file"), "organization_id": tenant.organization_id, "mode": tenant.mode,
                      "message_id": message_id, **a} for a in attachments], events)


def _persist(prepared: list[Prepared]) -> list[SimpleNamespace]:
    """Write everything in one INSERT per table, and nudge the delivery worker after commit."""
    if not prepared:
        return []
    db.session.execute(insert(Message.__table__), [p.message for p in prepared])
    recipients = [r for p in prepared for r in p.recipients]
    if recipients:
        db.session.execute(insert(MessageRecipient.__table__), recipients)
    attachments = [a for p in prepared for a in p.attachments]
    if attachments:
        db.session.execute(insert(MessageAttachment.__table__), attachments)
    record_events([e for p in prepared for e in p.events])

    from ..delivery.tasks import DISPATCH_NUDGE, dispatch_email, promote_scheduled

    if any(p.message["status"] == "queued" for p in prepared):
        nudge_after_commit(dispatch_email, key=DISPATCH_NUDGE, queue_name="high")
    for when in sorted({p.message["send_at"] for p in prepared if p.message["status"] == "scheduled"}):
        enqueue_at_after_commit(when, promote_scheduled, queue_name="high")
    return [as_object(p.message) for p in prepared]


def as_object(row: dict) -> SimpleNamespace:
    values = {k: row.get(k) for k in _MESSAGE_COLUMNS}
    values["metadata_"] = row.get("metadata") or {}
    return SimpleNamespace(**values)


def send_email(data: dict) -> SimpleNamespace:
    """Accept one email.  Returns the message as written (status queued | scheduled | suppressed)."""
    ctx = SendContext()
    return _persist([prepare_email(data, ctx)])[0]


def send_email_batch(items: list[dict]) -> dict:
    """Accept up to 1,000 emails; each item is validated and queued on its own (a bad one never blocks
    the rest) and the answer keeps request order.  ``items`` are raw bodies, checked here."""
    from marshmallow import ValidationError as SchemaError

    from ..api.validation import describe
    from .schemas import EmailSendSchema

    schema = EmailSendSchema()
    batch_id = new_id("batch")
    loaded: list[dict | DomainError] = []
    for index, raw in enumerate(items):
        try:
            if not isinstance(raw, dict):
                raise ValidationError("Each item must be an object.", param=f"items[{index}]")
            loaded.append(schema.load(raw))
        except SchemaError as exc:
            param, code, message = describe(exc.messages, schema)
            loaded.append(ValidationError(message, code=code, param=param))
        except DomainError as exc:
            loaded.append(exc)
    addresses = set()
    for item in loaded:
        if isinstance(item, dict):
            addresses |= _addresses(item)
    ctx = SendContext(addresses)
    prepared: list[Prepared | DomainError] = []
    for item in loaded:
        if isinstance(item, DomainError):
            prepared.append(item)
            continue
        try:
            prepared.append(prepare_email(item, ctx, batch_id=batch_id))
        except DomainError as exc:
            prepared.append(exc)
    written = iter(_persist([p for p in prepared if isinstance(p, Prepared)]))
    data, queued, failed = [], 0, 0
    for p in prepared:
        if isinstance(p, Prepared):
            data.append({"success": True, "response": next(written), "error": None})
            queued += 1
        else:
            data.append({"success": False, "response": None,
                         "error": {"code": p.code, "message": p.message, "param": p.param, "status": p.status}})
            failed += 1
    return {"batch_id": batch_id, "queued": queued, "failed": failed, "data": data}


def shared_batch_items(data: dict) -> list[dict]:
    """The shared form (`template_id`/`from`/`subject` + `messages: [{to, variables}]`) → full items."""
    sender = data.get("from_")
    if sender is not None:  # back to the wire form, so each item is checked by the one schema
        sender = {"email": sender["email"], "name": sender["name"]} if sender.get("name") else sender["email"]
    shared = {k: v for k, v in (("template_id", data.get("template_id")), ("from", sender),
                                ("subject", data.get("subject")), ("message_type", data.get("message_type")),
                                ("tags", data.get("tags")), ("metadata", data.get("metadata")))
              if v is not None}
    return [{**shared, **item} if isinstance(item, dict) else item for item in data["messages"]]


# --- reading ------------------------------------------------------------------------------------------------

def get_message(message_id: str) -> Message:
    message = db.session.get(Message, message_id)
    if message is None:
        raise NotFound("No such message.", param="id")
    return message


def message_detail(message_id: str) -> dict:
    """The message with its recipients, `events` timeline and SMTP `attempts`, for `GET /messages/{id}`."""
    message = get_message(message_id)
    recipients = db.session.execute(select(MessageRecipient).where(MessageRecipient.message_id == message.id)
                                    .order_by(MessageRecipient.kind.desc(), MessageRecipient.address)).scalars().all()
    attempts = db.session.execute(select(DeliveryAttempt).where(DeliveryAttempt.message_id == message.id)
                                  .order_by(DeliveryAttempt.at, DeliveryAttempt.id)).scalars().all()
    attachments = db.session.execute(
        select(MessageAttachment.filename, MessageAttachment.content_type, MessageAttachment.size)
        .where(MessageAttachment.message_id == message.id)).all()
    detail = {c: getattr(message, c) for c in _MESSAGE_COLUMNS if c != "metadata"}
    detail["metadata_"] = message.metadata_
    detail.update(recipients=recipients, attempts=attempts, events=message_timeline(message.id),
                  attachments=[{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                               for a in attachments])
    return SimpleNamespace(**detail)


def list_messages_query(args: dict):
    stmt = select(Message)
    if args.get("channel"):
        stmt = stmt.where(Message.channel == args["channel"])
    if args.get("status"):
        wanted = ["queued", "sending"] if args["status"] == "queued" else [args["status"]]
        stmt = stmt.where(Message.status.in_(wanted))
    if args.get("tag"):
        stmt = stmt.where(json_array_contains(Message.tags, args["tag"]))
    if args.get("to"):
        address = args["to"].strip().lower()
        stmt = stmt.where(Message.id.in_(select(MessageRecipient.message_id)
                                         .where(MessageRecipient.address == address)))
    if args.get("broadcast_id"):
        stmt = stmt.where(Message.broadcast_id == args["broadcast_id"])
    for key, op in (("created_gte", "__ge__"), ("created_lte", "__le__")):
        if args.get(key):
            bound = args[key].astimezone(timezone.utc).replace(tzinfo=None)
            stmt = stmt.where(getattr(Message.created_at, op)(bound))
    return stmt


def cancel_message(message_id: str) -> Message:
    """A `scheduled` message becomes `canceled`; anything else is already on its way: 409."""
    message = get_message(message_id)
    result = db.session.execute(
        update(Message).where(Message.id == message.id, Message.status == "scheduled")
        .values(status="canceled", completed_at=utcnow(), updated_at=utcnow())
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict(f"Only a scheduled message can be canceled; this one is {message.status}.",
                       code="message_not_cancelable", param="id")
    db.session.execute(update(MessageRecipient).where(MessageRecipient.message_id == message.id,
                                                      MessageRecipient.status == "queued")
                       .values(status="canceled", updated_at=utcnow()).execution_options(synchronize_session=False))
    record_events([{"type": "message.canceled", "message_id": message.id, "contact_id": message.contact_id}])
    db.session.refresh(message)
    return message
