from marshmallow import Schema, ValidationError, fields, validate

from ..api.fields import Metadata, Timestamp
from ..api.pagination import PaginationArgs
from ..events.service import EVENT_TYPES
from .service import valid_event_pattern

MAX_EVENT_PATTERNS = 50


def _check_pattern(value: str) -> None:
    if not valid_event_pattern(value):
        raise ValidationError(f"{value!r} is not an event type, a wildcard such as 'message.*', or '*'.")


EVENT_PATTERNS = ["*"] + [f"{p}.*" for p in dict.fromkeys(t.split(".", 1)[0] for t in EVENT_TYPES)] + list(EVENT_TYPES)

EventPatterns = lambda **kw: fields.List(  # noqa: E731
    fields.String(validate=[validate.OneOf(EVENT_PATTERNS), _check_pattern]),
    validate=validate.Length(max=MAX_EVENT_PATTERNS),
    metadata={"description": "Event types to receive; `message.*` wildcards; omitted or `[\"*\"]` = all. "
                             "Types: " + ", ".join(f"`{t}`" for t in EVENT_TYPES) + "."}, **kw)


class WebhookSchema(Schema):
    id = fields.String()
    object = fields.Constant("webhook_endpoint")
    url = fields.String()
    description = fields.String(allow_none=True)
    events = fields.List(fields.String())
    status = fields.String(metadata={"description": "`enabled`, `paused` (by you) or `disabled` (by Postline: "
                                                    "the endpoint answered 410, or failed for 5 days)."})
    disabled_reason = fields.String(allow_none=True, metadata={"description": "`gone` (410) or `failing`."})
    disabled_at = Timestamp(allow_none=True)
    failing_since = Timestamp(allow_none=True)
    last_success_at = Timestamp(allow_none=True)
    secret_rotated_at = Timestamp(allow_none=True)
    metadata = fields.Dict(attribute="metadata_")
    created_at = Timestamp()
    updated_at = Timestamp()


class WebhookWithSecretSchema(WebhookSchema):
    signing_secret = fields.String(metadata={"description": "`whsec_…`: shown once, on creation and rotation."})


class WebhookCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                        metadata={"format": "uri", "pattern": "^https?://",
                                  "description": "HTTPS in live mode (HTTP allowed in test mode); public hosts "
                                                 "only."})
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    events = EventPatterns()
    metadata = Metadata()


class WebhookUpdateSchema(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2048), metadata={"format": "uri", "pattern": "^https?://"})
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    events = EventPatterns()
    metadata = Metadata()
    status = fields.String(validate=validate.OneOf(("enabled", "paused")),
                           metadata={"description": "`paused` stops deliveries (they wait); `enabled` resumes, "
                                                    "and re-enables an endpoint Postline disabled."})


class WebhookAttemptSchema(Schema):
    id = fields.String()
    object = fields.Constant("webhook_attempt")
    attempt = fields.Integer()
    trigger = fields.String(metadata={"description": "`auto`, `manual` (a retry you asked for) or `test`."})
    url = fields.String()
    request_headers = fields.Dict()
    response_code = fields.Integer(allow_none=True)
    response_body = fields.String(allow_none=True, metadata={"description": "The first 1 KiB."})
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()
    created_at = Timestamp()


class WebhookDeliverySchema(Schema):
    id = fields.String()
    object = fields.Constant("webhook_delivery")
    webhook_id = fields.String(attribute="endpoint_id")
    event_id = fields.String(metadata={"description": "Also the `webhook-id` header, the same on every attempt."})
    event_type = fields.String()
    status = fields.String(attribute="public_status", metadata={"description": "pending, succeeded or failed."})
    response_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempt_count = fields.Integer()
    next_attempt_at = Timestamp(allow_none=True)
    created_at = Timestamp()
    completed_at = Timestamp(allow_none=True)


class WebhookDeliveryDetailSchema(WebhookDeliverySchema):
    request_body = fields.String(attribute="payload", metadata={"description": "The exact body sent."})
    attempts = fields.List(fields.Nested(WebhookAttemptSchema), metadata={"description": "Newest first."})


class DeliveryQueryArgs(PaginationArgs):
    status = fields.String(validate=validate.OneOf(("pending", "succeeded", "failed")))


class WebhookDeletedSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()
