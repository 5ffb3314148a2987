from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..api.fields import Metadata, StrictBoolean, Timestamp
from ..api.pagination import PaginationArgs
from .models import TEMPLATE_CHANNELS
from .render import RESERVED_NAMES

MAX_SUBJECT = 998  # RFC 5322's line limit
MAX_HTML = 512 * 1024
MAX_TEXT = 256 * 1024
MAX_VARIABLES = 100
# The reserved names are excluded by the pattern too, so the OpenAPI document says so.
VARIABLE_NAME = r"^(?!(?:contact|unsubscribe_url)$)[A-Za-z_][A-Za-z0-9_]{0,63}$"


class JSONObject(fields.Dict):
    """Any JSON object (``body_json``: an editor's document, stored verbatim)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be an object.")
        return super()._deserialize(value, attr, data, **kwargs)


class VariableSchema(Schema):
    name = fields.String(required=True, validate=[
        validate.NoneOf(RESERVED_NAMES, error="is always provided (contact, unsubscribe_url) and cannot be "
                                              "declared."),
        validate.Regexp(VARIABLE_NAME, error="must be a letter or underscore followed by letters, digits or "
                                             "underscores (at most 64).")])
    sample = fields.Raw(allow_none=True, load_default=None,
                        metadata={"description": "Example value, used by dashboard previews only."})
    default = fields.Raw(allow_none=True, load_default=None,
                         metadata={"description": "Used when the variable is not supplied."})
    required = StrictBoolean(load_default=False,
                             metadata={"description": "Rendering without it (and without a default) fails "
                                                      "with `missing_variable`."})


class _TemplateInput(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    channel = fields.String(validate=validate.OneOf(TEMPLATE_CHANNELS))
    subject = fields.String(allow_none=True, validate=validate.Length(max=MAX_SUBJECT),
                            metadata={"description": "Mustache; one line (email only)."})
    html = fields.String(allow_none=True, validate=validate.Length(max=MAX_HTML),
                         metadata={"description": "Mustache; `{{x}}` is HTML-escaped, `{{{x}}}` is not."})
    text = fields.String(allow_none=True, validate=validate.Length(max=MAX_TEXT),
                         metadata={"description": "Mustache, not escaped (plain-text email part, or the SMS body)."})
    body_json = JSONObject(allow_none=True, metadata={"description": "An editor's document, stored verbatim."})
    variables = fields.List(fields.Nested(VariableSchema), validate=validate.Length(max=MAX_VARIABLES))
    is_active = StrictBoolean()
    metadata = Metadata()

    @validates_schema
    def _unique_variables(self, data, **kwargs):
        seen = set()
        for i, var in enumerate(data.get("variables") or []):
            if var["name"] in seen:
                raise ValidationError({i: {"name": [f"'{var['name']}' is declared twice."]}}, "variables")
            seen.add(var["name"])


class TemplateCreateSchema(_TemplateInput):
    """A new template (version 1).  An email template needs `html` or `text`; an SMS template needs `text`."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    channel = fields.String(load_default="email", validate=validate.OneOf(TEMPLATE_CHANNELS))


class TemplateUpdateSchema(_TemplateInput):
    """Any subset of the fields.  Changing `subject`, `html`, `text`, `body_json` or `variables` creates a new
    version; `name`, `is_active`, `channel` and `metadata` do not."""


class VariableOutSchema(Schema):
    name = fields.String()
    sample = fields.Raw(allow_none=True)
    default = fields.Raw(allow_none=True)
    required = fields.Boolean()


class TemplateSchema(Schema):
    id = fields.String()
    object = fields.Constant("template")
    name = fields.String()
    channel = fields.String()
    subject = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    body_json = fields.Dict(allow_none=True)
    variables = fields.List(fields.Nested(VariableOutSchema))
    is_active = fields.Boolean()
    version = fields.Integer()
    metadata = fields.Dict(attribute="metadata_")
    created_at = Timestamp()
    updated_at = Timestamp()


class TemplateVersionSchema(Schema):
    id = fields.String()
    object = fields.Constant("template_version")
    template_id = fields.String()
    version = fields.Integer()
    subject = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    body_json = fields.Dict(allow_none=True)
    variables = fields.List(fields.Nested(VariableOutSchema))
    created_at = Timestamp()


class TemplateQueryArgs(PaginationArgs):
    channel = fields.String(validate=validate.OneOf(TEMPLATE_CHANNELS))
    is_active = fields.Boolean()


class VersionQueryArgs(PaginationArgs):
    pass


class RenderRequestSchema(Schema):
    variables = fields.Dict(keys=fields.String(), load_default=dict,
                            metadata={"description": "Values for the template's variables (any JSON)."})
    version = fields.Integer(validate=validate.Range(min=1, max=2_000_000_000),
                             metadata={"description": "Render this version instead of the current one."})
    contact_id = fields.String(validate=validate.Length(min=1, max=64),
                               metadata={"description": "Render with this contact's fields."})


class RenderedSchema(Schema):
    object = fields.Constant("rendered_template")
    template_id = fields.String()
    version = fields.Integer()
    subject = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String(allow_none=True)


class TemplateDeletedSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()
