"""Suppressions: recipients that are never contacted on a channel (API.md section 7).

The send pipeline asks ``suppressed(channel, recipients)`` once per batch, and the delivery worker adds
bounces and complaints with ``add_suppressions(rows)``: both are set-based (one statement per 1,000
recipients), never a query per recipient.  The API and the dashboard use ``create_suppression`` and the
``delete_*`` functions.  Tenant scoping comes from app.tenancy, as everywhere.
"""
from __future__ import annotations

import re
import unicodedata

import email_validator
import phonenumbers
from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import NotFound, ValidationError
from ..extensions import db
from ..ids import new_id
from ..sqlhelpers import dialect_name
from ..tenancy import require_tenant
from ..timeutil import utcnow
from .models import SUPPRESSION_CHANNELS, SUPPRESSION_REASONS, Suppression

CHUNK = 1000  # recipients per statement: well under SQLite's and PostgreSQL's bound-parameter limits
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _check_channel(channel: str) -> None:
    if channel not in SUPPRESSION_CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(SUPPRESSION_CHANNELS)}.", param="channel")


def normalize_recipient(channel: str, recipient: str) -> str:
    """The stored form of ``recipient``: a lower-cased, syntax-checked email address, or an E.164 number.
    Raises ValidationError ``invalid_email`` / ``invalid_phone`` (param ``recipient``) when it is neither."""
    _check_channel(channel)
    value = (recipient or "").strip() if isinstance(recipient, str) else ""
    if channel == "email":
        if not value or len(value) > 320:
            raise ValidationError("'recipient' is not a valid email address.", code="invalid_email",
                                  param="recipient")
        try:
            # test_environment admits `*.test` (the simulator.test addresses of test mode), as the API does.
            info = email_validator.validate_email(value, check_deliverability=False, test_environment=True)
        except email_validator.EmailNotValidError as exc:
            raise ValidationError(f"'recipient' is not a valid email address: {exc}", code="invalid_email",
                                  param="recipient") from None
        return info.normalized.lower()
    if not value.startswith("+") or len(value) > 20:
        raise ValidationError("'recipient' must be an E.164 phone number such as +14155550123.",
                              code="invalid_phone", param="recipient")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
        raise ValidationError("'recipient' is not a valid phone number.", code="invalid_phone", param="recipient")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _key(channel: str, recipient: str) -> str:
    """The stored form for the bulk paths, without refusing anything: recipients reaching the send
    pipeline and the delivery worker were validated on the way in, so the common shapes take a fast path
    (no parser per address); anything else gets ``normalize_recipient``, and what that refuses is kept
    trimmed (and lower-cased for email) rather than failing a whole batch."""
    value = recipient.strip()
    if channel == "email":
        if value.isascii() and "xn--" not in value and '"' not in value:
            return value.lower()
        value = unicodedata.normalize("NFC", value)
    elif _E164.match(value):
        return value
    try:
        return normalize_recipient(channel, value)
    except ValidationError:
        return value.lower() if channel == "email" else value


def suppressed(channel: str, recipients: list[str]) -> dict[str, str]:
    """``{normalised recipient: reason}`` for those of ``recipients`` suppressed on ``channel`` in the tenant
    in scope.  One SELECT per 1,000 distinct recipients."""
    _check_channel(channel)
    keys = list(dict.fromkeys(_key(channel, r) for r in recipients if r))
    out: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        rows = db.session.execute(_SUPPRESSED, {"channel": channel, "recipients": keys[start:start + CHUNK]})
        out.update({recipient: reason for recipient, reason in rows})
    return out


# Built once (the tenant's criteria are added per execution by app.tenancy, as for every ORM statement).
_SUPPRESSED = (select(Suppression.recipient, Suppression.reason)
               .where(Suppression.channel == bindparam("channel"),
                      Suppression.recipient.in_(bindparam("recipients", expanding=True))))


def _insert(table):
    return (postgresql.insert(table) if dialect_name() == "postgresql" else sqlite.insert(table))


def add_suppressions(rows: list[dict]) -> int:
    """Suppress many recipients at once; rows already suppressed are left exactly as they are (the first
    reason wins).  Each row: ``channel``, ``recipient``, ``reason`` and optionally ``message_id``,
    ``detail``, ``organization_id`` and ``mode`` (default: the tenant in scope).  One
    ``INSERT … ON CONFLICT DO NOTHING`` per 1,000 rows; returns how many were new.  Flushes, never commits.
    Raises ValueError on an unknown channel or reason (a programming error, not a user's)."""
    if not rows:
        return 0
    tenant = None
    now = utcnow()
    values: dict[tuple, dict] = {}
    for row in rows:
        channel, reason = row["channel"], row["reason"]
        if channel not in SUPPRESSION_CHANNELS:
            raise ValueError(f"unknown suppression channel {channel!r}")
        if reason not in SUPPRESSION_REASONS:
            raise ValueError(f"unknown suppression reason {reason!r}")
        if not row.get("organization_id") or not row.get("mode"):
            tenant = tenant or require_tenant()
        org_id = row.get("organization_id") or tenant.organization_id
        mode = row.get("mode") or tenant.mode
        recipient = _key(channel, row["recipient"])[:320]
        unique = (org_id, mode, channel, recipient)
        if unique in values:  # duplicates within one call: the first one wins, as against the table
            continue
        detail = row.get("detail")
        values[unique] = {
            "id": new_id("sup"), "organization_id": org_id, "mode": mode, "channel": channel,
            "recipient": recipient, "reason": reason, "message_id": row.get("message_id"),
            "detail": detail[:500] if detail else None, "created_at": now,
        }
    table = Suppression.__table__
    batch = list(values.values())
    added = 0
    db.session.flush()  # ORM-pending suppressions first, so the conflict check sees them
    for start in range(0, len(batch), CHUNK):
        stmt = _insert(table).values(batch[start:start + CHUNK]).on_conflict_do_nothing(
            index_elements=["organization_id", "mode", "channel", "recipient"]).returning(table.c.id)
        added += len(db.session.execute(stmt).all())
    return added


def suppress(channel: str, recipient: str, reason: str, *, message_id: str | None = None,
             detail: str | None = None) -> None:
    """Suppress one recipient in the tenant in scope (a no-op when it already is)."""
    add_suppressions([{"channel": channel, "recipient": recipient, "reason": reason,
                       "message_id": message_id, "detail": detail}])


def _find(channel: str, recipient: str) -> Suppression | None:
    return db.session.execute(
        select(Suppression).where(Suppression.channel == channel, Suppression.recipient == recipient)
    ).scalar_one_or_none()


def create_suppression(data: dict) -> tuple[Suppression, bool]:
    """Suppress ``data["recipient"]`` on ``data["channel"]`` (reason default ``manual``).  Returns
    ``(suppression, created)``; an existing suppression is returned unchanged (idempotent, and safe when
    two requests race).  Raises ValidationError ``invalid_email`` / ``invalid_phone``."""
    channel = data["channel"]
    recipient = normalize_recipient(channel, data["recipient"])
    created = add_suppressions([{"channel": channel, "recipient": recipient,
                                 "reason": data.get("reason") or "manual", "detail": data.get("detail")}]) == 1
    return _find(channel, recipient), created


def get_suppression(suppression_id: str) -> Suppression:
    suppression = db.session.get(Suppression, suppression_id)
    if suppression is None:
        raise NotFound("No such suppression.", param="id")
    return suppression


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_suppressions_query(channel: str | None = None, recipient: str | None = None,
                            reason: str | None = None, search: str | None = None):
    """A ``select(Suppression)`` for the pager.  ``recipient`` is an exact address or number (normalised;
    without ``channel``, an ``@`` means email); ``search`` matches any part of the recipient."""
    stmt = select(Suppression)
    if channel:
        stmt = stmt.where(Suppression.channel == channel)
    if recipient:
        stmt = stmt.where(Suppression.recipient == normalize_recipient(
            channel or ("email" if "@" in recipient else "sms"), recipient))
    if reason:
        stmt = stmt.where(Suppression.reason == reason)
    if search and search.strip():
        pattern = f"%{_escape_like(search.strip().lower())}%"
        stmt = stmt.where(Suppression.recipient.like(pattern, escape="\\"))
    return stmt


def delete_suppression(suppression_id: str) -> Suppression:
    """Lift a suppression: the recipient may be contacted again.  NotFound when there is none."""
    suppression = get_suppression(suppression_id)
    db.session.execute(delete(Suppression).where(Suppression.id == suppression.id))
    return suppression


def delete_suppression_for(channel: str, recipient: str) -> Suppression:
    """Lift the suppression of ``recipient`` on ``channel``.  NotFound when there is none."""
    suppression = _find(channel, normalize_recipient(channel, recipient))
    if suppression is None:
        raise NotFound(f"This {'address' if channel == 'email' else 'number'} is not suppressed.",
                       param="recipient")
    db.session.execute(delete(Suppression).where(Suppression.id == suppression.id))
    return suppression
