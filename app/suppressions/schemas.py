from marshmallow import Schema, fields, validate

from ..api.fields import Timestamp
from ..api.pagination import PaginationArgs
from .models import SUPPRESSION_CHANNELS, SUPPRESSION_REASONS

_CHANNEL = {"description": "`email` or `sms`."}
# An address or a number, whichever the channel calls for (the service checks which).
_RECIPIENT_FORMS = {"anyOf": [{"type": "string", "format": "email"},
                              {"type": "string", "pattern": r"^\+[1-9][0-9]{1,14}$"}]}
_REASON = {"description": "Why the recipient is suppressed: " + ", ".join(f"`{r}`" for r in SUPPRESSION_REASONS) + "."}


class SuppressionSchema(Schema):
    id = fields.String()
    object = fields.Constant("suppression")
    channel = fields.String(metadata=_CHANNEL)
    recipient = fields.String(metadata={"description": "Lower-cased email address, or E.164 phone number."})
    reason = fields.String(metadata=_REASON)
    message_id = fields.String(allow_none=True, metadata={"description": "The message that caused it, if any."})
    detail = fields.String(allow_none=True, metadata={"description": "E.g. the receiving server's answer."})
    created_at = Timestamp()


class SuppressionCreateSchema(Schema):
    """Shape only: the recipient is checked against its channel (and normalised) by the service."""

    channel = fields.String(required=True, validate=validate.OneOf(SUPPRESSION_CHANNELS),
                            metadata={**_CHANNEL, "example": "email"})
    recipient = fields.String(required=True, validate=validate.Length(min=1, max=320),
                              metadata={"description": "An email address (channel `email`) or an E.164 phone "
                                                       "number (channel `sms`).", "example": "ada@example.com",
                                        **_RECIPIENT_FORMS})
    reason = fields.String(load_default="manual", validate=validate.OneOf(SUPPRESSION_REASONS),
                           metadata=_REASON)
    detail = fields.String(allow_none=True, validate=validate.Length(max=500),
                           metadata={"description": "A note for your team (≤ 500 characters)."})


class SuppressionQueryArgs(PaginationArgs):
    channel = fields.String(validate=validate.OneOf(SUPPRESSION_CHANNELS), metadata=_CHANNEL)
    recipient = fields.String(validate=validate.Length(min=1, max=320),
                              metadata={"description": "Exact address or number (normalised before matching).",
                                        **_RECIPIENT_FORMS})
    reason = fields.String(validate=validate.OneOf(SUPPRESSION_REASONS), metadata=_REASON)


class SuppressionDeleteArgs(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(SUPPRESSION_CHANNELS),
                            metadata={**_CHANNEL, "example": "email"})
    recipient = fields.String(required=True, validate=validate.Length(min=1, max=320),
                              metadata={"description": "The suppressed address or number.",
                                        "example": "grace@example.com", **_RECIPIENT_FORMS})


class SuppressionDeletedSchema(Schema):
    id = fields.String()
    object = fields.Constant("suppression")
    channel = fields.String()
    recipient = fields.String()
    deleted = fields.Boolean()
