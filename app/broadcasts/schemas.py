"""Broadcast schemas: shape only (types, lengths, enums, unknown fields); the rules are the service's."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..api.fields import Email, Metadata, Phone, StrictBoolean, Timestamp
from ..api.pagination import PaginationArgs
from ..messages.models import MESSAGE_TYPES
from ..messages.schemas import Address, AddressList, _Tags, no_newlines
from .models import BROADCAST_CHANNELS, BROADCAST_STATUSES
from .service import MAX_INLINE, MAX_TEST_RECIPIENTS, STAT_KEYS


class InlineRecipientSchema(Schema):
    email = Email(required=True, validate=validate.Length(max=320),
                  metadata={"description": "Required: only the email channel is served yet."})
    phone_number = Phone(metadata={"description": "Kept for SMS broadcasts (not served yet)."})
    data = fields.Dict(keys=fields.String(validate=validate.Length(max=100)), load_default=dict,
                       metadata={"description": "This recipient's template variables."})


def _lower(data: dict) -> dict:
    if data.get("email"):
        data["email"] = data["email"].lower()
    return data


class _Content(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    from_ = Address(data_key="from")
    reply_to = AddressList()
    subject = fields.String(validate=[validate.Length(max=998), no_newlines])
    html = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    text = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    body = fields.String(validate=validate.Length(max=5000), metadata={"description": "SMS body (sms channel)."})
    template_id = fields.String(validate=validate.Length(max=32))
    template_version = fields.Integer(strict=True, validate=validate.Range(min=1, max=1_000_000))
    audience_list_id = fields.String(validate=validate.Length(min=1, max=32))
    recipients = fields.List(fields.Nested(InlineRecipientSchema), validate=validate.Length(max=MAX_INLINE),
                             metadata={"description": f"Inline recipients (≤ {MAX_INLINE:,}): upserted as "
                                                      "contacts (an existing contact is left as it is); each "
                                                      "`data` object is that recipient's template variables."})
    message_type = fields.String(validate=validate.OneOf(MESSAGE_TYPES))
    track_opens = StrictBoolean()
    track_clicks = StrictBoolean()
    brand_id = fields.String(validate=validate.Length(max=32),
                             metadata={"description": "Accepted; brands are not stored yet."})
    tags = _Tags()
    metadata = Metadata()

    @validates_schema
    def _shape(self, data, **kwargs):
        if data.get("template_id") and (data.get("html") or data.get("text")):
            raise ValidationError("cannot be combined with html or text: give one or the other.", "template_id")
        if data.get("audience_list_id") and data.get("recipients") is not None:
            raise ValidationError("Give either audience_list_id or recipients, not both.", "recipients")
        for r in data.get("recipients") or []:
            _lower(r)


class BroadcastCreateSchema(_Content):
    """`POST /broadcasts`."""

    channel = fields.String(load_default="email", validate=validate.OneOf(BROADCAST_CHANNELS))
    from_ = Address(data_key="from", required=True)
    message_type = fields.String(load_default="marketing", validate=validate.OneOf(MESSAGE_TYPES))
    track_opens = StrictBoolean(load_default=False)
    track_clicks = StrictBoolean(load_default=False)

    @validates_schema
    def _content(self, data, **kwargs):
        if data.get("channel", "email") == "email" and not data.get("template_id") \
                and not (data.get("html") or data.get("text")):
            raise ValidationError("is required: give html, text, or a template_id.", "html")


class BroadcastUpdateSchema(_Content):
    """`PATCH /broadcasts/{id}` (drafts only): any field of the create body but `channel`."""


class BulkSendSchema(Schema):
    """`POST /send/bulk` (seed 004)."""

    from_email = Address(required=True, metadata={"description": "Verified sending address."})
    name = fields.String(validate=validate.Length(min=1, max=200))
    subject = fields.String(validate=[validate.Length(max=998), no_newlines])
    body_html = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    body_text = fields.String(validate=validate.Length(max=5 * 1024 * 1024))
    template_id = fields.String(validate=validate.Length(max=32))
    audience_list_id = fields.String(validate=validate.Length(min=1, max=32))
    recipients = fields.List(fields.Nested(InlineRecipientSchema), validate=validate.Length(min=1, max=MAX_INLINE))
    message_type = fields.String(load_default="marketing", validate=validate.OneOf(MESSAGE_TYPES))
    track_opens = StrictBoolean(load_default=False)
    track_clicks = StrictBoolean(load_default=False)
    tags = _Tags()
    metadata = Metadata()

    @validates_schema
    def _shape(self, data, **kwargs):
        if not data.get("template_id") and not (data.get("body_html") or data.get("body_text")):
            raise ValidationError("is required: give body_html, body_text, or a template_id.", "body_html")
        if data.get("template_id") and (data.get("body_html") or data.get("body_text")):
            raise ValidationError("cannot be combined with body_html: give one or the other.", "template_id")
        if bool(data.get("audience_list_id")) == bool(data.get("recipients")):
            raise ValidationError("Give either audience_list_id or recipients.", "audience_list_id")
        for r in data.get("recipients") or []:
            _lower(r)


def bulk_to_create(data: dict) -> dict:
    out = {k: v for k, v in data.items() if k not in ("from_email", "body_html", "body_text")}
    out["from_"] = data["from_email"]
    if data.get("body_html"):
        out["html"] = data["body_html"]
    if data.get("body_text"):
        out["text"] = data["body_text"]
    return out


class ScheduleSchema(Schema):
    scheduled_at = fields.DateTime(required=True, metadata={
        "description": "Wall-clock time in `timezone` (`2026-06-12T09:00:00`); an explicit offset wins."})
    timezone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64),
                             metadata={"description": "IANA time zone, e.g. `Europe/Paris` (default UTC)."})


class TestSendSchema(Schema):
    recipients = fields.List(Email(validate=validate.Length(max=320)), required=True,
                             validate=validate.Length(min=1, max=MAX_TEST_RECIPIENTS),
                             metadata={"description": f"1–{MAX_TEST_RECIPIENTS} addresses."})


class BroadcastQueryArgs(PaginationArgs):
    status = fields.String(validate=validate.OneOf(BROADCAST_STATUSES))


StatsSchema = Schema.from_dict({key: fields.Integer() for key in STAT_KEYS}, name="BroadcastStatsSchema")


class BroadcastSchema(Schema):
    id = fields.String()
    object = fields.Constant("broadcast")
    name = fields.String()
    channel = fields.String()
    status = fields.String(metadata={"description": "`draft`, `scheduled`, `sending` (fan-out running), `sent` "
                                                    "(every message written), `canceled`."})
    message_type = fields.String()
    from_ = fields.Method("_from", data_key="from")
    from_email = fields.String(allow_none=True)
    reply_to = fields.List(fields.Dict())
    subject = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    template_id = fields.String(allow_none=True)
    template_version = fields.Integer(allow_none=True)
    audience_list_id = fields.String(allow_none=True)
    inline_recipients = fields.Integer(metadata={"description": "How many recipients were given inline."})
    track_opens = fields.Boolean()
    track_clicks = fields.Boolean()
    tags = fields.List(fields.String())
    metadata = fields.Dict(attribute="metadata_")
    scheduled_at = Timestamp(allow_none=True)
    timezone = fields.String(allow_none=True)
    total_recipients = fields.Integer(metadata={"description": "Messages written so far (queued + suppressed)."})
    queued_count = fields.Integer(metadata={"description": "Messages written as queued by the fan-out."})
    suppressed_count = fields.Integer(metadata={"description": "Recipients skipped: suppressed or no consent."})
    sent_count = fields.Method("_sent", metadata={"description": "With stats only (retrieve, send)."})
    failed_count = fields.Method("_failed", metadata={"description": "Failed + bounced; with stats only."})
    started_at = Timestamp(allow_none=True)
    completed_at = Timestamp(allow_none=True)
    canceled_at = Timestamp(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()

    def _from(self, obj):
        return {"email": obj.from_email, "name": obj.from_name} if obj.from_email else None

    def _sent(self, obj):
        stats = getattr(obj, "stats", None)
        return stats["sent"] if stats else None

    def _failed(self, obj):
        stats = getattr(obj, "stats", None)
        return stats["failed"] + stats["bounced"] if stats else None


class BroadcastDetailSchema(BroadcastSchema):
    stats = fields.Nested(StatsSchema, metadata={
        "description": "`sent` = handed over (sent, delivered or complained); `delivered` includes complaints; "
                       "`opened`/`clicked`/`unsubscribed` count distinct messages (machine opens excluded)."})


class BroadcastDeletedSchema(Schema):
    id = fields.String()
    object = fields.Constant("broadcast")
    deleted = fields.Boolean()
