"""Contacts: upsert, read, update, delete.  Tenant scoping comes from the session (app.tenancy)."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import NotFound, ValidationError
from ..events.service import record_event
from ..extensions import db
from ..sqlhelpers import json_array_contains
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


def list_contacts_query(email: str | None = None, tag: str | None = None):
    stmt = select(Contact)
    if email:
        stmt = stmt.where(Contact.email == _normalise_email(email))
    if tag:
        stmt = stmt.where(json_array_contains(Contact.tags, tag))
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


def delete_contact(contact_id: str) -> str:
    contact = get_contact(contact_id)
    _record("contact.deleted", contact)
    db.session.execute(delete(Contact).where(Contact.id == contact.id))
    return contact.id
