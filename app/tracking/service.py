"""What the public links do.  Framework-free: the caller passes what it read from the request.

Unsubscribe and the preference center run with the token's tenant in scope (the caller's ``tenant_scope``).
Opens and clicks need no scope: a tracking token names the message, and ``record_hit`` reads the message's
tenant from its row (one indexed lookup) and writes the event with it (one insert).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, exists, select, update

from ..contacts.models import Contact
from ..errors import ValidationError
from ..events.models import Event
from ..events.service import record_event, record_events
from ..extensions import db
from ..messages.models import Message, MessageRecipient
from ..suppressions import service as suppressions
from ..suppressions.models import Suppression
from ..tenancy import require_tenant, unscoped
from ..timeutil import utcnow
from . import machine

UNSUBSCRIBE_SOURCES = ("one_click", "page", "mailto", "preferences")
PREFERENCE_CHANNELS = ("email", "sms")
CONSENT_CHOICES = ("subscribed", "unsubscribed")
MAX_USER_AGENT = 500


def is_unsubscribed(channel: str, recipient: str) -> bool:
    """Whether ``recipient`` is already suppressed on ``channel`` (for the page; reads only)."""
    return bool(suppressions.suppressed(channel, [recipient]))


def unsubscribe(channel: str, recipient: str, *, message_id: str | None = None, source: str = "page") -> bool:
    """Unsubscribe ``recipient`` in the tenant in scope: the contact with that address (if any) gets its
    consent for ``channel`` set to ``unsubscribed``, the recipient is suppressed with reason
    ``unsubscribe``, and ``contact.unsubscribed`` is recorded.  Idempotent: a repeat changes nothing and
    records nothing.  Returns whether anything changed.  Flushes, never commits."""
    if source not in UNSUBSCRIBE_SOURCES:
        raise ValueError(f"unknown unsubscribe source {source!r}")
    key = suppressions.normalize_recipient(channel, recipient)
    column = Contact.email if channel == "email" else Contact.phone_number
    consent = Contact.consent_email if channel == "email" else Contact.consent_sms
    # Phone-only contacts can share a number (no unique key): every one of them is unsubscribed.
    contact_ids = list(db.session.execute(select(Contact.id).where(column == key)).scalars())
    flipped = 0
    if contact_ids:
        flipped = db.session.execute(
            update(Contact).where(Contact.id.in_(contact_ids), consent != "unsubscribed")
            .values({consent: "unsubscribed", Contact.updated_at: utcnow()})
            .execution_options(synchronize_session=False)).rowcount
    added = suppressions.add_suppressions([{"channel": channel, "recipient": key, "reason": "unsubscribe",
                                            "message_id": message_id, "detail": f"Unsubscribed ({source})."}])
    if not (flipped or added):
        return False
    record_event("contact.unsubscribed", message_id=message_id,
                 contact_id=contact_ids[0] if contact_ids else None, recipient=key,
                 data={"message_id": message_id, "source": source, "channel": channel})
    return True


# --- opens and clicks ---------------------------------------------------------------------------------------

def record_hit(event_type: str, message_id: str, recipient_id: str | None = None, *, url: str | None = None,
               user_agent: str | None = None, ip: str | None = None, method: str = "GET",
               now: datetime | None = None) -> dict | None:
    """Record ``message.opened`` or ``message.clicked`` for a verified token: on the message, its contact
    and (for mail built per recipient) its recipient.  ``data``: ``{user_agent, ip, machine, first}`` (+
    ``url`` for a click, ``machine_reason`` for a machine's fetch; see app.tracking.machine).  ``first`` is
    whether no event of this type was recorded for the message before (machine or not).

    One SELECT (the message by primary key, its recipient by primary key, and an EXISTS on the events'
    message index) and one INSERT.  Returns the event row, or None when the message no longer exists (it
    was erased): then nothing is recorded.  Flushes, never commits."""
    if event_type not in ("message.opened", "message.clicked"):
        raise ValueError(f"not a tracking event: {event_type!r}")
    now = now or utcnow()
    m, r, e = Message.__table__, MessageRecipient.__table__, Event.__table__
    seen = exists().where(e.c.message_id == m.c.id, e.c.type == event_type)
    columns = [m.c.organization_id, m.c.mode, m.c.contact_id, m.c.completed_at, m.c.updated_at,
               seen.label("seen")]
    source = m
    if recipient_id:
        columns.append(r.c.address)
        source = m.outerjoin(r, and_(r.c.id == recipient_id, r.c.message_id == m.c.id))
    with unscoped():
        row = db.session.execute(select(*columns).select_from(source).where(m.c.id == message_id)).first()
    if row is None:
        return None
    reason = machine.machine_reason(user_agent=user_agent, method=method,
                                    delivered_at=row.completed_at or row.updated_at, now=now,
                                    window=machine.window_seconds())
    data = {}
    if url is not None:
        data["url"] = url
    data.update({"user_agent": (user_agent or "")[:MAX_USER_AGENT] or None, "ip": (ip or "")[:64] or None,
                 "machine": reason is not None, "first": not row.seen})
    if reason is not None:
        data["machine_reason"] = reason
    return record_events([{
        "type": event_type, "organization_id": row.organization_id, "mode": row.mode, "message_id": message_id,
        "contact_id": row.contact_id, "recipient": row.address if recipient_id else None, "data": data,
        "occurred_at": now}])[0]


# --- preference center --------------------------------------------------------------------------------------

def _normal(channel: str, address: str) -> str:
    try:
        return suppressions.normalize_recipient(channel, address)
    except ValidationError:  # stored addresses were validated on the way in; never fail the page over one
        return address.strip().lower() if channel == "email" else address.strip()


def _related_contacts(channel: str, recipient: str) -> list[Contact]:
    """The contact the token's address belongs to (the email's one contact, or every contact sharing the
    number, oldest first)."""
    key = _normal(channel, recipient)
    column = Contact.email if channel == "email" else Contact.phone_number
    return list(db.session.execute(select(Contact).where(column == key).order_by(Contact.created_at, Contact.id)
                                   .execution_options(populate_existing=True)).scalars())


def preference_state(channel: str, recipient: str) -> dict:
    """What the preference center shows for the token's recipient, in the tenant in scope:
    ``{"contact": Contact | None, "channels": [{channel, address, consent, blocked}]}`` where ``consent``
    is ``subscribed | unsubscribed | unknown`` and ``blocked`` the reason of a suppression that the
    recipient cannot lift here (``bounce``, ``complaint``, ``manual``, ``stop_keyword``, ``erased``), else
    None.  Without a contact, only the token's own channel is shown, its consent read from an
    ``unsubscribe`` suppression.  Reads only."""
    contacts = _related_contacts(channel, recipient)
    contact = contacts[0] if contacts else None
    addresses = {channel: _normal(channel, recipient)}
    if contact is not None:
        other = "sms" if channel == "email" else "email"
        other_address = contact.phone_number if other == "sms" else contact.email
        if other_address:
            addresses[other] = other_address
    rows = []
    for ch in PREFERENCE_CHANNELS:
        address = addresses.get(ch)
        if not address:
            continue
        reason = suppressions.suppressed(ch, [address]).get(address)
        if contact is not None:
            consent = contact.consent_email if ch == "email" else contact.consent_sms
        else:
            consent = "unsubscribed" if reason == "unsubscribe" else "unknown"
        rows.append({"channel": ch, "address": address, "consent": consent,
                     "blocked": reason if reason and reason != "unsubscribe" else None})
    return {"contact": contact, "channels": rows}


def _consents(contact_ids: list[str]) -> dict[str, tuple[str, str]]:
    if not contact_ids:
        return {}
    return {row.id: (row.consent_email, row.consent_sms) for row in db.session.execute(
        select(Contact.id, Contact.consent_email, Contact.consent_sms).where(Contact.id.in_(contact_ids)))}


def resubscribe(channel: str, address: str) -> bool:
    """Consent ``subscribed`` for the contacts with ``address`` on ``channel``, and the ``unsubscribe``
    suppression (only that reason: a bounce, complaint, STOP, manual or erasure suppression stays) lifted.
    Returns whether anything changed.  Flushes, never commits."""
    key = _normal(channel, address)
    column = Contact.email if channel == "email" else Contact.phone_number
    consent = Contact.consent_email if channel == "email" else Contact.consent_sms
    flipped = db.session.execute(
        update(Contact).where(column == key, consent != "subscribed")
        .values({consent: "subscribed", Contact.updated_at: utcnow()})
        .execution_options(synchronize_session=False)).rowcount
    tenant = require_tenant()
    lifted = db.session.execute(
        delete(Suppression).where(Suppression.organization_id == tenant.organization_id,
                                  Suppression.mode == tenant.mode, Suppression.channel == channel,
                                  Suppression.recipient == key, Suppression.reason == "unsubscribe")
        .execution_options(synchronize_session=False)).rowcount
    return bool(flipped or lifted)


def save_preferences(channel: str, recipient: str, choices: dict, *, message_id: str | None = None) -> bool:
    """Apply the preference center's choices ``{"email" | "sms": "subscribed" | "unsubscribed"}`` (a
    channel left out, or not offered to this recipient, is left as it is).  Unsubscribing is exactly the
    one-click path (consent, ``unsubscribe`` suppression, ``contact.unsubscribed`` with the message id);
    resubscribing is ``resubscribe``.  Every contact whose consent changed gets ``contact.updated``.
    Returns whether anything changed.  Flushes, never commits."""
    state = preference_state(channel, recipient)
    related: set[str] = set()
    for row in state["channels"]:
        if row["channel"] in choices:
            related.update(c.id for c in _related_contacts(row["channel"], row["address"]))
    before = _consents(sorted(related))
    changed = False
    for row in state["channels"]:
        want = choices.get(row["channel"])
        if want == "unsubscribed":
            changed |= unsubscribe(row["channel"], row["address"], message_id=message_id, source="preferences")
        elif want == "subscribed":
            changed |= resubscribe(row["channel"], row["address"])
    after = _consents(sorted(related))
    moved = [cid for cid in sorted(related) if before.get(cid) != after.get(cid)]
    if moved:
        from ..contacts.schemas import ContactSchema
        schema = ContactSchema()
        contacts = db.session.execute(select(Contact).where(Contact.id.in_(moved))
                                      .execution_options(populate_existing=True)).scalars().all()
        record_events([{"type": "contact.updated", "contact_id": c.id, "recipient": c.email or c.phone_number,
                        "data": schema.dump(c)} for c in contacts])
    return changed
