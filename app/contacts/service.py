"""Contacts: upsert, read, search, update, and delete as a GDPR erasure.

Tenant scoping of ORM reads comes from the session (app.tenancy).  The erasure is a handful of set-based
Core statements, each carrying the tenant conditions itself (Core statements are not scoped by the
listener), so erasing a contact with a long history is a few statements, not a loop.
"""
from __future__ import annotations

from datetime import timezone

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, ValidationError
from ..events.service import record_event
from ..extensions import db
from ..sqlhelpers import dialect_name, json_array_contains
from ..tenancy import require_tenant
from .models import Contact

_SIMPLE = ("phone_number", "first_name", "last_name", "timezone", "locale", "external_id")


def _normalise_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def _apply(contact: Contact, data: dict) -> None:
    if "email" in data:
        contact.email = _normalise_email(data["email"])
    for field in _SIMPLE:
        if field in data:
            setattr(contact, field, data[field])
    if "attributes" in data:
        merged = dict(contact.attributes or {})
        for key, value in data["attributes"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if len(merged) > 100:
            raise ValidationError("A contact may have at most 100 attributes.", param="attributes")
        contact.attributes = merged
    if "tags" in data:
        contact.tags = list(dict.fromkeys(data["tags"]))  # de-duplicated, order kept
    if "consent" in data:
        contact.consent_email = data["consent"].get("email", contact.consent_email or "unknown")
        contact.consent_sms = data["consent"].get("sms", contact.consent_sms or "unknown")
    if "metadata" in data:
        contact.metadata_ = data["metadata"]


def _record(type_: str, contact: Contact) -> None:
    """``contact.created|updated|deleted`` on the event backbone (webhooks, timelines), with the contact."""
    from .schemas import ContactSchema
    record_event(type_, contact_id=contact.id, recipient=contact.email or contact.phone_number,
                 data=ContactSchema().dump(contact))


def _find_for_upsert(email: str | None, phone: str | None) -> Contact | None:
    if email:
        return db.session.execute(select(Contact).where(Contact.email == email)).scalar_one_or_none()
    return db.session.execute(
        select(Contact).where(Contact.phone_number == phone, Contact.email.is_(None))
        .order_by(Contact.created_at.desc()).limit(1)).scalar_one_or_none()


def upsert_contact(data: dict) -> tuple[Contact, bool]:
    """Create the contact or update the one with the same email (or phone when there is no email).
    Returns ``(contact, created)``.  Safe under concurrency: a lost insert race becomes an update."""
    email = _normalise_email(data.get("email"))
    phone = data.get("phone_number")
    if not email and not phone:
        raise ValidationError("A contact needs an email or a phone_number.", param="email")
    existing = _find_for_upsert(email, phone)
    if existing is None:
        contact = Contact(attributes={}, tags=[], metadata_={}, consent_email="unknown", consent_sms="unknown")
        _apply(contact, data)
        try:
            with db.session.begin_nested():
                db.session.add(contact)
        except IntegrityError:
            existing = _find_for_upsert(email, phone)
            if existing is None:
                raise
        else:
            _record("contact.created", contact)
            return contact, True
    _apply(existing, data)
    db.session.flush()
    _record("contact.updated", existing)
    return existing, False


def get_contact(contact_id: str) -> Contact:
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("No such contact.", param="id")
    return contact


def _search_text():
    """The expression the ``q`` search matches; on PostgreSQL the trigram GIN index
    ``ix_contacts_search_trgm`` is built on exactly this expression, so ILIKE '%…%' can use it."""
    return (func.coalesce(Contact.email, "") + " " + func.coalesce(Contact.first_name, "") + " "
            + func.coalesce(Contact.last_name, ""))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_clause(q: str):
    """Case-insensitive substring of the email, first or last name (``q``)."""
    q = q.strip()
    if dialect_name() == "postgresql":
        return _search_text().ilike(_like(q), escape="\\")
    return func.lower(_search_text()).like(_like(q.lower()), escape="\\")


def list_contacts_query(args: dict | None = None, /, **kwargs):
    """``select(Contact)`` filtered by any of ``email tag list_id attributes consent_email consent_sms
    created_gte created_lte risk q`` (GET /contacts), for keyset paging.  An unknown ``list_id`` is a
    NotFound naming ``list_id``."""
    args = {**(args or {}), **kwargs}
    stmt = select(Contact)
    if args.get("email"):
        stmt = stmt.where(Contact.email == _normalise_email(args["email"]))
    if args.get("tag"):
        stmt = stmt.where(json_array_contains(Contact.tags, args["tag"]))
    if args.get("list_id"):
        from ..lists.service import membership_clause
        stmt = stmt.where(membership_clause(args["list_id"], param="list_id"))
    if args.get("attributes"):
        from ..segments.compiler import attribute_equals_text
        for key, value in args["attributes"].items():
            stmt = stmt.where(attribute_equals_text(key, value))
    if args.get("consent_email"):
        stmt = stmt.where(Contact.consent_email == args["consent_email"])
    if args.get("consent_sms"):
        stmt = stmt.where(Contact.consent_sms == args["consent_sms"])
    for key, op in (("created_gte", "__ge__"), ("created_lte", "__le__")):
        if args.get(key):
            try:
                bound = args[key].astimezone(timezone.utc).replace(tzinfo=None)
            except (OverflowError, ValueError):
                raise ValidationError("Out-of-range time.", param=key.replace("_", "[") + "]") from None
            stmt = stmt.where(getattr(Contact.created_at, op)(bound))
    if args.get("risk"):
        stmt = stmt.where(Contact.risk == args["risk"])
    if args.get("q") and args["q"].strip():
        stmt = stmt.where(search_clause(args["q"]))
    return stmt


def update_contact(contact_id: str, data: dict) -> Contact:
    contact = get_contact(contact_id)
    if "email" in data and data["email"] is None and not (data.get("phone_number") or contact.phone_number):
        raise ValidationError("A contact needs an email or a phone_number.", param="email")
    _apply(contact, data)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        from ..errors import Conflict
        raise Conflict("Another contact already has this email.", code="duplicate_contact", param="email") from None
    _record("contact.updated", contact)
    return contact


ERASED_ADDRESS = "[erased]"


def delete_contact(contact_id: str) -> str:
    """GDPR erasure (API.md section 4), set-based, in the caller's transaction:

    * the contact row and its list memberships are deleted;
    * its events are deleted (by ``contact_id`` and by recipient address), with the webhook deliveries
      that carried them (their payloads hold the contact's data);
    * every message sent to it (by ``contact_id`` or addressed to its email/phone) keeps its id, status
      and counts but loses its content: subject/html/text nulled, variables/metadata/headers/to emptied,
      attachments deleted; its recipient rows and delivery attempts for the address are anonymised;
    * the email and/or phone go on the suppression list with reason ``erased`` (ON CONFLICT DO NOTHING),
      so the address cannot be re-imported and mailed by accident;
    * a ``contact.deleted`` event still goes out (webhooks) carrying only the id.
    Raises NotFound (param ``id``)."""
    from ..events.models import Event
    from ..lists.models import ListMember
    from ..messages.models import DeliveryAttempt, Message, MessageAttachment, MessageRecipient
    from ..suppressions.service import add_suppressions
    from ..webhooks.models import WebhookDelivery

    contact = get_contact(contact_id)
    tenant = require_tenant()
    cid, email, phone = contact.id, contact.email, contact.phone_number
    addresses = [a for a in (email, phone) if a]

    def scoped(table):
        return [table.c.organization_id == tenant.organization_id, table.c.mode == tenant.mode]

    messages, recipients = Message.__table__, MessageRecipient.__table__
    attempts, attachments = DeliveryAttempt.__table__, MessageAttachment.__table__
    events, deliveries, members = Event.__table__, WebhookDelivery.__table__, ListMember.__table__

    # Messages sent to the contact: by contact id, or with a recipient row for one of its addresses.
    to_contact = [messages.c.contact_id == cid]
    if addresses:
        to_contact.append(messages.c.id.in_(
            select(recipients.c.message_id).where(*scoped(recipients), recipients.c.address.in_(addresses))))
    message_ids = select(messages.c.id).where(*scoped(messages), or_(*to_contact))

    # Content first, while the recipient rows still name the address the messages are found by.
    db.session.execute(delete(attachments).where(*scoped(attachments), attachments.c.message_id.in_(message_ids)))
    db.session.execute(update(messages).where(*scoped(messages), messages.c.id.in_(message_ids))
                       .values(subject=None, html=None, text=None, variables={}, metadata={}, headers={}, to=[],
                               reply_to=[]))
    if addresses:
        db.session.execute(update(recipients).where(*scoped(recipients), recipients.c.address.in_(addresses))
                           .values(address=ERASED_ADDRESS, name=None, smtp_response=None))
        db.session.execute(update(attempts).where(*scoped(attempts), attempts.c.recipient.in_(addresses))
                           .values(recipient=ERASED_ADDRESS, smtp_response=None))

    event_match = [events.c.contact_id == cid]
    if addresses:
        event_match.append(events.c.recipient.in_(addresses))
    erased_events = select(events.c.id).where(*scoped(events), or_(*event_match))
    db.session.execute(delete(deliveries).where(*scoped(deliveries), deliveries.c.event_id.in_(erased_events)))
    db.session.execute(delete(events).where(*scoped(events), or_(*event_match)))
    db.session.execute(delete(members).where(*scoped(members), members.c.contact_id == cid))
    db.session.execute(delete(Contact.__table__).where(*scoped(Contact.__table__), Contact.__table__.c.id == cid))
    db.session.expunge(contact)

    suppress = []
    if email:
        suppress.append({"channel": "email", "recipient": email, "reason": "erased"})
    if phone:
        suppress.append({"channel": "sms", "recipient": phone, "reason": "erased"})
    add_suppressions(suppress)
    record_event("contact.deleted", contact_id=cid, data={"id": cid, "object": "contact", "deleted": True})
    return cid


def contact_events(contact_id: str, limit: int = 50) -> list:
    """The contact's most recent events, newest first (the ``ix_events_contact`` index)."""
    from ..events.models import Event
    return list(db.session.execute(select(Event).where(Event.contact_id == contact_id)
                                   .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)).scalars())
