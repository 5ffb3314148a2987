"""Marshmallow fields shared by every API schema.  A field's ``error_code`` becomes the error's ``code``."""
from __future__ import annotations

import functools

import email_validator
import phonenumbers
from marshmallow import ValidationError, fields

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LEN = 40
METADATA_MAX_VALUE_LEN = 500


class Email(fields.String):
    """An email address, syntax-checked and returned normalised (domain lower-cased)."""

    error_code = "invalid_email"

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > 320:
            raise ValidationError("is not a valid email address (too long).")
        normalized, error = _check_email(value)
        if error is not None:
            raise ValidationError(f"is not a valid email address: {error}")
        return normalized


@functools.lru_cache(maxsize=8192)
def _check_email(value: str) -> tuple[str | None, str | None]:
    """``(normalized, None)`` or ``(None, reason)``.  Cached: a batch names its sender a thousand times,
    and email_validator's IDNA checks cost ~0.1 ms an address."""
    try:
        # test_environment admits `*.test` (the simulator.test addresses of test mode).
        info = email_validator.validate_email(value, check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as exc:
        return None, str(exc)
    return info.normalized, None


class Phone(fields.String):
    """A phone number in E.164 form (``+14155550123``)."""

    error_code = "invalid_phone"

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not value.startswith("+") or len(value) > 20:
            raise ValidationError("must be an E.164 phone number such as +14155550123.")
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            raise ValidationError("must be an E.164 phone number such as +14155550123.") from None
        if not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
            raise ValidationError("is not a valid phone number.")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class Metadata(fields.Dict):
    """Opaque key/value pairs: ≤ 50 keys, key ≤ 40 chars, string values ≤ 500 chars; never interpreted."""

    def __init__(self, **kwargs):
        kwargs.setdefault("keys", fields.String())
        kwargs.setdefault("values", fields.String(allow_none=False))
        kwargs.setdefault("metadata", {"description": "Up to 50 string pairs; keys ≤ 40, values ≤ 500 chars."})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be an object of string keys and string values.")
        if len(value) > METADATA_MAX_KEYS:
            raise ValidationError(f"may have at most {METADATA_MAX_KEYS} keys.")
        for key, item in value.items():
            if not isinstance(key, str) or not key or len(key) > METADATA_MAX_KEY_LEN:
                raise ValidationError(f"keys must be 1–{METADATA_MAX_KEY_LEN} characters.")
            if not isinstance(item, str):
                raise ValidationError(f"value of '{key}' must be a string.")
            if len(item) > METADATA_MAX_VALUE_LEN:
                raise ValidationError(f"value of '{key}' must be at most {METADATA_MAX_VALUE_LEN} characters.")
        return dict(value)


class Timestamp(fields.DateTime):
    """RFC 3339 UTC on output (``2026-06-12T09:24:11Z``)."""

    def _serialize(self, value, attr, obj, **kwargs):
        from ..timeutil import rfc3339
        return rfc3339(value)


class StrictBoolean(fields.Boolean):
    """A JSON ``true``/``false`` only: marshmallow's Boolean also takes ``0``, ``1``, ``"yes"``, ``"on"`` …,
    which the document (``type: boolean``) and the contract ("wrong type → 400") refuse.  For JSON bodies;
    query strings keep ``fields.Boolean``, since everything in a query string is text."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
