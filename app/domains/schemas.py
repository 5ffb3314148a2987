from marshmallow import Schema, ValidationError, fields

from ..api.fields import Timestamp
from ..api.pagination import PaginationArgs
from . import service
from .models import DOMAIN_STATUSES

RECORD_PURPOSES = ("dkim", "spf", "return_path", "dmarc", "tracking")
RECORD_STATUSES = ("verified", "pending", "failed")


class DomainName(fields.String):
    """A hostname you own, e.g. ``mail.acme.com``: lower-cased, internationalised names in their ASCII
    (IDNA) form, at least two labels, no IP address, ≤ 253 characters."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {
            "example": "mail.acme.com", "maxLength": 253,
            "pattern": r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?$",
            "description": "The domain or subdomain to send from, e.g. `mail.acme.com`. Stored lower-case. "
                           "An internationalised name is also accepted in Unicode and stored in its ASCII "
                           "(`xn--`) form."})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return service.normalise_domain(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class DomainRecordSchema(Schema):
    type = fields.String(metadata={"enum": ["TXT", "MX", "CNAME", "A"]})
    name = fields.String(metadata={"description": "The fully qualified name to publish the record at."})
    value = fields.String(metadata={"description": "The record's value (for MX: the mail exchanger host)."})
    priority = fields.Integer(allow_none=True, metadata={"description": "MX preference; null for other types."})
    purpose = fields.String(metadata={"enum": list(RECORD_PURPOSES)})
    required = fields.Boolean(metadata={"description": "Whether the domain needs this record to be verified "
                                                       "(DKIM, SPF, return path); DMARC and tracking are "
                                                       "recommended."})
    status = fields.String(metadata={"enum": list(RECORD_STATUSES)})
    detail = fields.String(dump_default="", metadata={
        "description": "What the last check found, when it is not simply verified."})


class DomainSchema(Schema):
    id = fields.String()
    object = fields.Constant("domain")
    domain = fields.String()
    status = fields.String(metadata={"enum": list(DOMAIN_STATUSES)})
    fully_verified = fields.Function(lambda d: service.fully_verified(d), metadata={
        "type": "boolean",
        "description": "Every record, required and recommended, was found as published at the last check. "
                       "Sending needs only `status: verified` (the required records)."})
    dkim_selector = fields.String()
    return_path = fields.Function(lambda d: service.return_path_host(d), metadata={
        "type": "string", "description": "The envelope-sender (bounce) host of this domain."})
    records = fields.List(fields.Nested(DomainRecordSchema))
    last_checked_at = Timestamp(allow_none=True)
    verified_at = Timestamp(allow_none=True, metadata={"description": "When the domain was first verified."})
    created_at = Timestamp()
    updated_at = Timestamp()


class DomainCreateSchema(Schema):
    domain = DomainName(required=True)


class DomainQueryArgs(PaginationArgs):
    pass


class DomainDeletedSchema(Schema):
    id = fields.String()
    object = fields.Constant("domain")
    deleted = fields.Boolean()
