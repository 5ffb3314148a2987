"""Row validation for imports: the contacts API's own input schema, plus a fast path for CSV rows.

``validate_row`` is ``ContactCreateSchema().load`` with its error turned into ``(code, message, param)``.
``fast_validate`` gives the same answers on the rows a CSV produces (strings, a list of tags, a consent
object, attributes) at a fraction of the cost: a row whose every field passes strict, obviously-valid checks
is built directly; anything else — and every row that would be refused — goes through the schema, so a
refusal always carries the schema's own message.  tests/api/test_imports.py checks they agree.

CSV columns (header row, case-insensitive, a UTF-8 BOM is ignored): ``email``, ``phone_number`` (or
``phone``), ``first_name``, ``last_name``, ``tags`` (separated by ``;``), ``consent_email`` and
``consent_sms`` (``subscribed | unsubscribed | unknown``, or ``true/false``, ``yes/no``, ``1/0``),
``timezone``, ``locale``, ``external_id``; ``attributes.<key>`` and any other column become attributes
(string values).  ``id``, ``created_at`` and ``updated_at`` (an export's own columns) are ignored.  An empty
cell means "not given": it never erases what an existing contact has.  A cell that an export protected
against formula injection (``'=…``, ``'+…``) is read back without the quote.
"""
from __future__ import annotations

import re

from marshmallow import ValidationError as SchemaError

from ..api.validation import describe
from ..contacts.schemas import MAX_ATTRIBUTES, MAX_TAGS, ContactCreateSchema, _check_timezone

_SCHEMA = None

KNOWN_COLUMNS = {
    "email": "email", "phone_number": "phone_number", "phone": "phone_number", "first_name": "first_name",
    "last_name": "last_name", "tags": "tags", "consent_email": "consent_email", "consent_sms": "consent_sms",
    "timezone": "timezone", "locale": "locale", "external_id": "external_id",
}
IGNORED_COLUMNS = {"id", "object", "created_at", "updated_at"}
TAG_SEPARATOR = ";"
_CONSENT_WORDS = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "unknown": "unknown",
                  "true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Dot-atom local part and LDH domain labels: every address of this shape is accepted by email_validator
# unchanged apart from its domain's case, provided the domain itself is accepted (checked once per domain).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = re.compile(rf"^({_ATOM}(?:\.{_ATOM})*)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
                    rf"[A-Za-z][A-Za-z0-9-]{{0,61}}[A-Za-z0-9])$")
_DOMAIN_OK: dict[str, bool] = {}
_LOCALE = re.compile(r"^[A-Za-z0-9_-]{1,35}$")


def schema() -> ContactCreateSchema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = ContactCreateSchema()
    return _SCHEMA


class RowError(Exception):
    def __init__(self, code: str, message: str, param: str | None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "param": self.param}


def validate_row(raw) -> dict:
    """The contacts API's answer for one row: the loaded data, or ``RowError``."""
    if not isinstance(raw, dict):
        raise RowError("invalid_request", "Each contact must be an object.", None)
    try:
        data = schema().load(raw)
    except SchemaError as err:
        param, code, message = describe(err.messages, schema())
        raise RowError(code, message, param) from None
    if not data.get("email") and not data.get("phone_number"):
        raise RowError("invalid_request", "A contact needs an email or a phone_number.", "email")
    return data


def _domain_ok(domain: str) -> bool:
    verdict = _DOMAIN_OK.get(domain)
    if verdict is None:
        if "--" in domain:  # punycode (xn--) and other oddities: leave them to the full validator
            verdict = False
        else:
            import email_validator
            try:
                email_validator.validate_email("a@" + domain, check_deliverability=False, test_environment=True)
                verdict = True
            except email_validator.EmailNotValidError:
                verdict = False
        if len(_DOMAIN_OK) > 100_000:
            _DOMAIN_OK.clear()
        _DOMAIN_OK[domain] = verdict
    return verdict


def _fast_email(value: str) -> str | None:
    if len(value) > 254:
        return None
    m = _EMAIL.match(value)
    if m is None or len(m.group(1)) > 64:
        return None
    domain = m.group(2).lower()
    return f"{m.group(1)}@{domain}" if _domain_ok(domain) else None


_SIMPLE_LIMITS = {"first_name": 100, "last_name": 100, "external_id": 200}


def fast_validate(raw: dict) -> dict:
    """Same answer as ``validate_row`` for CSV-shaped rows, without the schema when the row is plainly valid."""
    out: dict = {}
    for key, value in raw.items():
        if key == "email":
            email = _fast_email(value) if isinstance(value, str) else None
            if email is None:
                return validate_row(raw)
            out["email"] = email
        elif key in _SIMPLE_LIMITS:
            if not isinstance(value, str) or len(value) > _SIMPLE_LIMITS[key]:
                return validate_row(raw)
            out[key] = value
        elif key == "tags":
            if (not isinstance(value, list) or len(value) > MAX_TAGS
                    or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in value)):
                return validate_row(raw)
            out["tags"] = value
        elif key == "attributes":
            if (not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES
                    or not all(isinstance(k, str) and 0 < len(k) <= 100 and isinstance(v, str) and len(v) <= 1000
                               for k, v in value.items())):
                return validate_row(raw)
            out["attributes"] = dict(value)
        elif key == "consent":
            if not isinstance(value, dict) or not set(value) <= {"email", "sms"}:
                return validate_row(raw)
            consent = {}
            for channel, v in value.items():
                if v is True:
                    consent[channel] = "subscribed"
                elif v is False:
                    consent[channel] = "unsubscribed"
                elif v in ("subscribed", "unsubscribed", "unknown"):
                    consent[channel] = v
                else:
                    return validate_row(raw)
            out["consent"] = consent
        elif key == "timezone":
            try:
                _check_timezone(value)
            except SchemaError:
                return validate_row(raw)
            out["timezone"] = value
        elif key == "locale":
            if not isinstance(value, str) or not _LOCALE.match(value):
                return validate_row(raw)
            out["locale"] = value
        elif key == "phone_number":
            try:  # the schema's own field: the same parsing and E.164 formatting
                out["phone_number"] = schema().fields["phone_number"].deserialize(value)
            except SchemaError:
                return validate_row(raw)
        else:  # anything unexpected: the schema decides
            return validate_row(raw)
    if not out.get("email") and not out.get("phone_number"):
        return validate_row(raw)
    return out


def _cell(value: str) -> str:
    value = value.strip()
    if len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]  # written by an export's formula-injection guard
    return value


class HeaderError(ValueError):
    pass


def header_map(header: list[str]) -> list[tuple[str, str | None]]:
    """For each column: ``(kind, attribute key)``: kind is a field name, ``attr`` or ``skip``."""
    out = []
    for name in header:
        clean = (name or "").strip().lstrip("\ufeff").strip()
        lower = clean.lower()
        if not clean or lower in IGNORED_COLUMNS:
            out.append(("skip", None))
        elif lower in KNOWN_COLUMNS:
            out.append((KNOWN_COLUMNS[lower], None))
        elif lower.startswith("attributes.") and len(clean) > len("attributes."):
            out.append(("attr", clean[len("attributes."):][:100]))
        else:
            out.append(("attr", clean[:100]))
    kinds = {kind for kind, _ in out}
    if "email" not in kinds and "phone_number" not in kinds:
        raise HeaderError("The CSV header needs an `email` or a `phone_number` column.")
    return out


def csv_record_to_input(columns: list[tuple[str, str | None]], record: list[str]) -> dict:
    """One CSV record as the contacts API's JSON body (empty cells left out)."""
    raw: dict = {}
    attributes: dict = {}
    consent: dict = {}
    for (kind, key), value in zip(columns, record):
        if kind == "skip" or not value:
            continue
        value = _cell(value)
        if not value:
            continue
        if kind == "attr":
            attributes[key] = value
        elif kind == "tags":
            tags = [t.strip() for t in value.split(TAG_SEPARATOR) if t.strip()]
            if tags:
                raw["tags"] = list(dict.fromkeys(tags))
        elif kind == "consent_email" or kind == "consent_sms":
            consent[kind[8:]] = _CONSENT_WORDS.get(value.lower(), value)
        else:
            raw[kind] = value
    if attributes:
        raw["attributes"] = attributes
    if consent:
        raw["consent"] = consent
    return raw
