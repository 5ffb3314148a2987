"""Message schemas: what `POST /messages/email`, `/messages`, `/messages/batch` accept and what they return.

Shape only (types, lengths, enums, unknown fields); the rules (verified sender, suppressions, consent,
template rendering) are the service's."""
from __future__ import annotations

import re
from email.utils import parseaddr

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from ..api.fields import Email, Metadata, StrictBoolean, Timestamp
from ..api.pagination import PaginationArgs
from .models import CHANNELS, MESSAGE_TYPES

MAX_RECIPIENTS = 50
MAX_BATCH = 1000
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024
HEADER_NAME_RE = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field name: printable ASCII except ':'
# Headers Postline writes (and DKIM signs) itself: a custom header may not set them.
RESERVED_HEADERS = {
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "sender", "return-path",
    "mime-version", "content-type", "content-transfer-encoding", "content-disposition", "dkim-signature",
    "list-unsubscribe", "list-unsubscribe-post", "received", "in-reply-to-postline", "x-postline-id",
}


def no_newlines(value) -> None:
    if isinstance(value, str) and ("\r" in value or "\n" in value):
        raise ValidationError("must not contain CR or LF (header injection).")


class Address(fields.Field):
    """An email address as ``"ada@example.com"``, ``"Ada <ada@example.com>"`` or ``{email, name}``;
    deserialised to ``{"email": …, "name": …}``."""

    error_code = "invalid_email"

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {
            "oneOf": [{"type": "string", "example": "Ada Lovelace <ada@example.com>"},
                      {"type": "object", "required": ["email"], "additionalProperties": False,
                       "properties": {"email": {"type": "string", "format": "email"},
                                      "name": {"type": "string", "maxLength": 200}}}]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            unknown = set(value) - {"email", "name"}
            if unknown:
                raise ValidationError(f"unknown field '{sorted(unknown)[0]}' (use email and name).")
            email, name = value.get("email"), value.get("name")
            if name is not None and not isinstance(name, str):
                raise ValidationError("name must be a string.")
        elif isinstance(value, str):
            no_newlines(value)
            if "<" in value:
                name, email = parseaddr(value)
                if not email:
                    raise ValidationError("is not a valid email address.")
            else:
                name, email = None, value
        else:
            raise ValidationError("must be an email address or an object {email, name}.")
        if not isinstance(email, str) or not email:
            raise ValidationError("needs an email address.")
        no_newlines(email)
        if name:
            no_newlines(name)
            if len(name) > 200:
                raise ValidationError("name must be at most 200 characters.")
        # Lower-cased whole, as contacts and suppressions store addresses, so every lookup agrees.
        normalised = _EMAIL._deserialize(email.strip(), attr, data).lower()
        return {"email": normalised, "name": (name or "").strip() or None}


class AddressList(fields.Field):
    """One address or a list of 1–50."""

    error_code = "invalid_email"

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"description": f"One address or a list of up to {MAX_RECIPIENTS}.",
                                       "oneOf": [{"type": "string"}, {"type": "object"},
                                                 {"type": "array", "maxItems": MAX_RECIPIENTS,
                                                  "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}}]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError("must name at least one address.")
        if len(items) > MAX_RECIPIENTS:
            raise ValidationError(f"may have at most {MAX_RECIPIENTS} addresses.")
        out, errors = [], {}
        for index, item in enumerate(items):
            try:
                out.append(_ADDRESS._deserialize(item, attr, data))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors if isinstance(value, list) else errors[0])
        return out


# Shared, stateless field objects (a Field built per address costs more than checking it).
_EMAIL = Email()
_ADDRESS = Address()


class AttachmentSchema(Schema):
    filename = fields.String(required=True, validate=[validate.Length(min=1, max=255), no_newlines])
    content = fields.String(required=True, metadata={"description": "Base64-encoded bytes."})
    content_type = fields.String(load_default="application/octet-stream",
                                 validate=[validate.Regexp(r"^[\w.+-]+/[\w.+-]+$",
                                                           error="must be a MIME type such as application/pdf."),
                                           validate.Length(max=127)])


class _Tags(fields.List):
    def __init__(self, **kwargs):
        super().__init__(fields.String(validate=validate.Length(min=1, max=100)),
                         validate=validate.Length(max=20), **kwargs)


class EmailSendSchema(Schema):
    """`POST /messages/email`."""

    to = AddressList(required=True)
    cc = AddressList()
    bcc = AddressList()
    from_ = Address(data_key="from", required=True)
    reply_to = AddressList()
    subject = fields.String(validate=[validate.Length(max=998), no_newlines])
    html = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    text = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    template_id = fields.String(validate=validate.Length(max=32))
    template_version = fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000))
    variables = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))
    headers = fields.Dict(keys=fields.String(), values=fields.String(validate=[validate.Length(max=998),
                                                                               no_newlines]),
                          metadata={"description": "Custom headers (`X-…`); structural headers are refused."})
    attachments = fields.List(fields.Nested(AttachmentSchema), validate=validate.Length(max=50))
    tags = _Tags()
    metadata = Metadata()
    message_type = fields.String(load_default="transactional", validate=validate.OneOf(MESSAGE_TYPES))
    send_at = fields.AwareDateTime(default_timezone=None, metadata={"description": "RFC 3339; ≤ 30 days ahead."})
    track_opens = StrictBoolean(load_default=False)
    track_clicks = StrictBoolean(load_default=False)
    brand_id = fields.String(validate=validate.Length(max=32))
    idempotency_key = fields.String(validate=validate.Length(min=1, max=255), load_only=True)

    @validates_schema
    def _content(self, data, **kwargs):
        if not data.get("template_id") and not (data.get("html") or data.get("text")):
            raise ValidationError("is required: give html, text, or a template_id.", "html")
        if data.get("template_id") and (data.get("html") or data.get("text")):
            raise ValidationError("cannot be combined with html or text: give one or the other.", "template_id")
        if not data.get("template_id") and data.get("subject") is None:
            raise ValidationError("Missing data for required field.", "subject")
        for name in (data.get("headers") or {}):
            if not HEADER_NAME_RE.match(name):
                raise ValidationError(f"'{name}' is not a valid header name.", "headers")
            if name.lower() in RESERVED_HEADERS:
                raise ValidationError(f"'{name}' is set by Postline and cannot be overridden.", "headers")


class GenericSendSchema(Schema):
    """`POST /messages`: the channel-generic form."""

    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    idempotency_key = fields.String(required=True, validate=validate.Length(min=1, max=255))
    destination = fields.Raw(required=True, metadata={
        "description": "Email: an address, `{email, name}`, or a list of them; SMS: an E.164 number.",
        "oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array", "items": {}}]})
    payload = fields.Dict(load_default=dict, metadata={
        "description": "Email: from, subject, html, text, cc, bcc, reply_to, headers, attachments."})
    message_type = fields.String(load_default="transactional", validate=validate.OneOf(MESSAGE_TYPES))
    metadata = Metadata()
    template_id = fields.String(validate=validate.Length(max=32))
    template_vars = fields.Dict(keys=fields.String(validate=validate.Length(max=100)))
    tags = _Tags()
    send_at = fields.AwareDateTime(default_timezone=None)


class BatchItemsSchema(Schema):
    """`POST /messages/batch`: either `items` (full message objects) or a shared template + `messages`."""

    items = fields.List(fields.Dict(), validate=validate.Length(min=1, max=MAX_BATCH),
                        metadata={"description": "Full `POST /messages/email` bodies."})
    template_id = fields.String(validate=validate.Length(max=32))
    from_ = Address(data_key="from")
    subject = fields.String(validate=[validate.Length(max=998), no_newlines])
    message_type = fields.String(validate=validate.OneOf(MESSAGE_TYPES))
    tags = _Tags()
    metadata = Metadata()
    messages = fields.List(fields.Dict(), validate=validate.Length(min=1, max=MAX_BATCH),
                           metadata={"description": "`[{to, variables, …}]` sharing the fields above."})

    @pre_load
    def _bare_list(self, data, **kwargs):
        return {"items": data} if isinstance(data, list) else data

    @validates_schema
    def _one_form(self, data, **kwargs):
        if bool(data.get("items")) == bool(data.get("messages")):
            raise ValidationError("Send either `items` (a list of messages) or `messages` with shared fields.",
                                  "items")


class RecipientSchema(Schema):
    address = fields.String()
    name = fields.String(allow_none=True)
    type = fields.String(attribute="kind")
    status = fields.Method("_status")

    def _status(self, obj):
        return obj.status


class AttemptSchema(Schema):
    at = Timestamp()
    recipient = fields.String()
    status = fields.String()
    mx_host = fields.String(allow_none=True)
    smtp_code = fields.Integer(allow_none=True)
    enhanced_code = fields.String(allow_none=True)
    smtp_response = fields.String(allow_none=True)


class EventSchema(Schema):
    id = fields.String()
    type = fields.String()
    occurred_at = Timestamp()
    recipient = fields.String(allow_none=True)
    data = fields.Dict()


class MessageSchema(Schema):
    id = fields.String()
    object = fields.Constant("message")
    channel = fields.String()
    status = fields.Method("_status")
    status_reason = fields.String(allow_none=True)
    message_type = fields.String()
    from_ = fields.Method("_from", data_key="from")
    to = fields.Method("_to")
    subject = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    metadata = fields.Dict(attribute="metadata_")
    template_id = fields.String(allow_none=True)
    template_version = fields.Integer(allow_none=True)
    broadcast_id = fields.String(allow_none=True)
    batch_id = fields.String(allow_none=True)
    send_at = Timestamp(allow_none=True)
    track_opens = fields.Boolean()
    track_clicks = fields.Boolean()
    created_at = Timestamp()
    updated_at = Timestamp()
    completed_at = Timestamp(allow_none=True)

    def _status(self, obj):
        return "queued" if obj.status == "sending" else obj.status

    def _from(self, obj):
        return {"email": obj.from_email, "name": obj.from_name} if obj.from_email else None

    def _to(self, obj):
        return obj.to


class MessageDetailSchema(MessageSchema):
    html = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    reply_to = fields.List(fields.Dict())
    headers = fields.Dict()
    recipients = fields.List(fields.Nested(RecipientSchema))
    events = fields.List(fields.Nested(EventSchema))
    attempts = fields.List(fields.Nested(AttemptSchema))
    attachments = fields.List(fields.Dict())


class BatchResultItemSchema(Schema):
    success = fields.Boolean()
    response = fields.Nested(MessageSchema, allow_none=True)
    error = fields.Dict(allow_none=True)


class BatchResultSchema(Schema):
    batch_id = fields.String()
    object = fields.Constant("batch")
    queued = fields.Integer()
    failed = fields.Integer()
    data = fields.List(fields.Nested(BatchResultItemSchema))


class MessageQueryArgs(PaginationArgs):
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    status = fields.String(validate=validate.OneOf(
        ("scheduled", "queued", "sent", "delivered", "bounced", "complained", "failed", "suppressed", "canceled")))
    tag = fields.String(validate=validate.Length(min=1, max=100))
    to = fields.String(validate=validate.Length(min=1, max=320))
    broadcast_id = fields.String(validate=validate.Length(max=32))
    created_gte = fields.AwareDateTime(data_key="created[gte]", default_timezone=None)
    created_lte = fields.AwareDateTime(data_key="created[lte]", default_timezone=None)
