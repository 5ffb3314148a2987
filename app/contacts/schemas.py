import re
from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, pre_load, validate

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


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class E164Phone(Phone):
    """Strict E.164 (``+14155550123``): no spaces, punctuation or extensions, and a number that exists in
    the numbering plan (``phonenumbers``).  Lenient parsing would quietly turn ``+1 (415) 555-0123x`` into
    another contact's number."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not _E164.match(value):
            raise ValidationError("must be an E.164 phone number such as +14155550123 (no spaces or punctuation).")
        return super()._deserialize(value, attr, data, **kwargs)


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
    risk = fields.String(allow_none=True, metadata={
        "enum": ["low", "medium", "high", None],
        "description": "Churn risk band from retention signals (null until the contact is scored)."})
    score = fields.Integer(allow_none=True, metadata={"minimum": 0, "maximum": 100,
                                                      "description": "Churn risk score 0–100 (null until scored)."})
    created_at = Timestamp()
    updated_at = Timestamp()


class _ContactInput(Schema):
    email = Email(allow_none=True)
    phone_number = E164Phone(allow_none=True)
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


_DEEP = re.compile(r"^attributes\[(?P<key>.*)\]$", re.S)
MAX_ATTRIBUTE_FILTERS = 10


class QueryConsent(fields.String):
    """``subscribed | unsubscribed | unknown``, or ``true`` / ``false`` (= subscribed / unsubscribed)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"enum": [*CONSENT_VALUES, "true", "false"]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        value = {"true": "subscribed", "false": "unsubscribed"}.get(value, value)
        if value not in CONSENT_VALUES:
            raise ValidationError(f"must be one of {', '.join(CONSENT_VALUES)} (or true / false).")
        return value


class DeepObject(fields.Dict):
    """A query parameter object sent as ``name[KEY]=VALUE`` (OpenAPI ``style: deepObject``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > MAX_ATTRIBUTE_FILTERS:
            raise ValidationError(f"At most {MAX_ATTRIBUTE_FILTERS} attribute filters.")
        return value


class ContactQueryArgs(PaginationArgs):
    email = Email(metadata={"description": "Exact address (case-insensitive)."})
    tag = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Has this tag."})
    list_id = fields.String(validate=validate.Length(min=1, max=64),
                            metadata={"description": "On this list (static or dynamic)."})
    attributes = DeepObject(
        keys=fields.String(),
        values=fields.String(validate=validate.Length(max=1000)),
        metadata={"maxProperties": MAX_ATTRIBUTE_FILTERS,
                  "additionalProperties": {"type": "string", "maxLength": 1000}, "description": "`attributes[KEY]=VALUE` (deepObject; up to 10): the attribute equals VALUE. "
                                 "A VALUE that spells a number or `true`/`false` also matches that number or "
                                 "boolean (`attributes[mrr]=799` matches 799 and \"799\")."})
    consent_email = QueryConsent(data_key="consent[email]", metadata={
        "enum": [*CONSENT_VALUES, "true", "false"], "description": "Email consent (`true` = subscribed)."})
    consent_sms = QueryConsent(data_key="consent[sms]", metadata={
        "enum": [*CONSENT_VALUES, "true", "false"], "description": "SMS consent (`true` = subscribed)."})
    created_gte = fields.AwareDateTime(data_key="created[gte]", default_timezone=None,
                                       metadata={"description": "Created at or after (RFC 3339)."})
    created_lte = fields.AwareDateTime(data_key="created[lte]", default_timezone=None,
                                       metadata={"description": "Created at or before (RFC 3339)."})
    risk = fields.String(validate=validate.OneOf(("low", "medium", "high")),
                         metadata={"description": "Churn risk band."})
    q = fields.String(validate=validate.Length(min=1, max=200),
                      metadata={"description": "Search: a case-insensitive substring of the email, first or last "
                                               "name."})

    @pre_load
    def _deep_objects(self, data, **kwargs):
        """Gather ``attributes[KEY]=VALUE`` query parameters into ``attributes`` (OpenAPI deepObject)."""
        if not hasattr(data, "keys"):
            return data
        out, attributes = {}, {}
        for key in list(data.keys()):
            match = _DEEP.match(key) if isinstance(key, str) else None
            if match:
                attributes[match.group("key")] = data[key]
            elif key == "attributes":
                raise ValidationError("Filter attributes as attributes[KEY]=VALUE.", "attributes")
            else:
                out[key] = data[key]
        if attributes:
            out["attributes"] = attributes
        return out


class DeletedSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()
