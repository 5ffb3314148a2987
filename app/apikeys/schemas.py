from marshmallow import Schema, fields, validate

from ..api.fields import StrictBoolean, Timestamp
from ..api.scopes import PRESETS, SCOPES


class ApiKeySchema(Schema):
    id = fields.String()
    object = fields.Constant("api_key")
    name = fields.String()
    key_prefix = fields.String(metadata={"description": "The first characters of the secret, to recognise it."})
    test_mode = fields.Boolean()
    scopes = fields.List(fields.String())
    is_enabled = fields.Boolean()
    last_used_at = Timestamp(allow_none=True)
    rotated_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class ApiKeyWithSecretSchema(ApiKeySchema):
    secret = fields.String(metadata={"description": "Shown once, on creation and rotation."})


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), validate=validate.Length(max=len(SCOPES)))
    scope = fields.String(validate=validate.OneOf(tuple(PRESETS)),
                          metadata={"description": "A preset: send, read or admin."})
    test_mode = StrictBoolean(load_default=False)


class ApiKeyUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), validate=validate.Length(max=len(SCOPES)))
    scope = fields.String(validate=validate.OneOf(tuple(PRESETS)))
    is_enabled = StrictBoolean()
