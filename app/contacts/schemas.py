from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, validate

from ..api.fields import Email, Metadata, Phone, Timestamp
from ..api.pagination import PaginationArgs
from .models import CONSENT_VALUES

MAX_ATTRIBUTES = 100
MAX_TAGS = 100
_TIMEZONES = None


class ConsentValue(fields.Field):
    """``subscribed | unsubscribed | unknown``; booleans accepted (true = subscribed)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {
            "oneOf": [{"type": "string", "enum": list(CONSENT_VALUES)}, {"type": "boolean"}],
            "description": "`subscribed`, `unsubscribed` or `unknown` (in requests, `true` = subscribed, "
                           "`false` = unsubscribed)."})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True:
            return "subscribed"
        if value is False:
            return "unsubscribed"
        if isinstance(value, str) and value in CONSENT_VALUES:
            return value
        raise ValidationError(f"must be one of {', '.join(CONSENT_VALUES)} (or a boolean).")

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class ConsentSchema(Schema):
    email = ConsentValue()
    sms = ConsentValue()


class Attributes(fields.Dict):
    """Custom fields: ≤ 100 keys, values are strings (≤ 1,000 chars), numbers, booleans or null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {
            "maxProperties": MAX_ATTRIBUTES,
            "additionalProperties": {"oneOf": [
                {"type": "string", "maxLength": 1000, "nullable": True}, {"type": "number"}, {"type": "boolean"}]},
            "description": f"Custom fields: up to {MAX_ATTRIBUTES} keys (1–100 characters); values are "
                           "strings (≤ 1,000 characters), numbers, booleans or null."})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be an object.")
        if len(value) > MAX_ATTRIBUTES:
            raise ValidationError(f"may have at most {MAX_ATTRIBUTES} keys.")
        for key, item in value.items():
            if not isinstance(key, str) or not key or len(key) > 100:
                raise ValidationError("keys must be 1–100 characters.")
            if isinstance(item, (dict, list)):
                raise ValidationError(f"value of '{key}' must be a string, number, boolean or null.")
            if isinstance(item, str) and len(item) > 1000:
                raise ValidationError(f"value of '{key}' must be at most 1000 characters.")
            if isinstance(item, float) and item != item:
                raise ValidationError(f"value of '{key}' must be a finite number.")
        return dict(value)


def _check_timezone(value):
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = available_timezones()
    if value not in _TIMEZONES:
        raise ValidationError("must be an IANA time zone such as Europe/Paris.")


class ContactSchema(Schema):
    id = fields.String()
    object = fields.Constant("contact")
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    attributes = fields.Dict()
    tags = fields.List(fields.String())
    consent = fields.Nested(ConsentSchema)
    timezone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    metadata = fields.Dict(attribute="metadata_")
    created_at = Timestamp()
    updated_at = Timestamp()


class _ContactInput(Schema):
    email = Email(allow_none=True)
    phone_number = Phone(allow_none=True)
    first_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    attributes = Attributes()
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), validate=validate.Length(max=MAX_TAGS))
    consent = fields.Nested(ConsentSchema)
    timezone = fields.String(allow_none=True, validate=_check_timezone)
    locale = fields.String(allow_none=True, validate=validate.Length(max=35))
    external_id = fields.String(allow_none=True, validate=validate.Length(max=200))
    metadata = Metadata()


class ContactCreateSchema(_ContactInput):
    """Upsert by email (or by phone number when there is no email)."""


class ContactUpdateSchema(_ContactInput):
    """Partial update: omitted fields are kept; `attributes` merge (null removes a key); `tags` replace."""


class ContactQueryArgs(PaginationArgs):
    email = Email(metadata={"description": "Exact address (case-insensitive)."})
    tag = fields.String(validate=validate.Length(min=1, max=100))


class DeletedSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()
