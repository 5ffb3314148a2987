"""What the public links do.  Framework-free: the caller puts the token's tenant in scope."""
from __future__ import annotations

from sqlalchemy import select, update

from ..contacts.models import Contact
from ..events.service import record_event
from ..extensions import db
from ..suppressions import service as suppressions
from ..timeutil import utcnow

UNSUBSCRIBE_SOURCES = ("one_click", "page", "mailto")


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
