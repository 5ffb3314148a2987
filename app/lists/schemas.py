from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..api.fields import Metadata, Timestamp
from ..api.pagination import PaginationArgs
from ..segments.compiler import FIELDS_SIMPLE, MAX_CONDITIONS, OPS
from .models import LIST_TYPES

_RULES_DOC = (
    "For dynamic lists (required there, refused for static ones). Either the short form "
    "`{\"tags\": [\"beta\"], \"attributes\": {\"plan\": \"pro\"}}` (every tag and every attribute must match) or "
    "`{\"match\": \"all\" | \"any\", \"conditions\": [{\"field\", \"op\", \"value\"}]}` with fields "
    + ", ".join(f"`{f}`" for f in FIELDS_SIMPLE) + ", `attributes.<key>`, `events.<type>.count_<N>d` and ops "
    + ", ".join(f"`{o}`" for o in OPS) + f" (at most {MAX_CONDITIONS} conditions). `neq` is the negation of "
    "`eq`; attribute comparisons follow the JSON type of `value` (numbers compare as numbers); `contains` is a "
    "case-insensitive substring (on `tags`: has the tag); `created_at` takes an RFC 3339 time, a date or a "
    "relative `-30d`; `risk` bands order low < medium < high. An invalid rule is a 400 "
    "`invalid_segment_rules` whose `param` points at it, e.g. `segment_rules.conditions[2].op`.")

_CONDITION = {"type": "object", "required": ["field", "op"], "additionalProperties": False, "properties": {
    "field": {"type": "string", "example": "attributes.plan"},
    "op": {"type": "string", "enum": list(OPS)},
    "value": {"nullable": True, "description": "A string, number, boolean, or a list of them for `in`."}}}

RULES_METADATA = {"description": _RULES_DOC, "oneOf": [
    {"type": "object", "additionalProperties": False, "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object", "additionalProperties": {"oneOf": [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"}]}}}},
    {"type": "object", "additionalProperties": False, "properties": {
        "match": {"type": "string", "enum": ["all", "any"]},
        "conditions": {"type": "array", "maxItems": MAX_CONDITIONS, "items": _CONDITION}}},
]}


class SegmentRules(fields.Dict):
    """A JSON object checked in depth by the service (app.segments), which names the offending param."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", RULES_METADATA)
        super().__init__(**kwargs)


class ListSchema(Schema):
    id = fields.String()
    object = fields.Constant("list")
    name = fields.String()
    description = fields.String(allow_none=True)
    list_type = fields.String(metadata={"enum": list(LIST_TYPES)})
    segment_rules = fields.Dict(allow_none=True)
    member_count = fields.Integer(metadata={"description": "Static: the members; dynamic: the contacts the "
                                                           "rules match now."})
    metadata = fields.Dict(attribute="metadata_")
    created_at = Timestamp()
    updated_at = Timestamp()


class ListCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    list_type = fields.String(load_default="static", validate=validate.OneOf(LIST_TYPES),
                              metadata={"description": "`static` (default) or `dynamic`."})
    segment_rules = SegmentRules(allow_none=True)
    metadata = Metadata()


class ListUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    segment_rules = SegmentRules(allow_none=True, metadata={
        **RULES_METADATA, "description": "A dynamic list's rules (a static list has none). `list_type` cannot "
                                         "change: create a new list instead."})
    metadata = Metadata()


class ListQueryArgs(PaginationArgs):
    list_type = fields.String(validate=validate.OneOf(LIST_TYPES))


class PreviewCountSchema(Schema):
    segment_rules = SegmentRules(required=True)


class PreviewCountResultSchema(Schema):
    object = fields.Constant("segment_count")
    member_count = fields.Integer()


class _ContactId(fields.String):
    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Length(min=1, max=64))
        kwargs.setdefault("metadata", {"pattern": "^con_[A-Za-z0-9]+$", "example": "con_4fJ9"})
        super().__init__(**kwargs)


class AddMembersSchema(Schema):
    contact_id = _ContactId(metadata={"description": "One contact (already a member → 409 `duplicate_member`)."})
    contact_ids = fields.List(_ContactId(), validate=validate.Length(min=1, max=1000),
                              metadata={"description": "Up to 1,000 contacts; those already members are counted "
                                                       "in `already_members`."})

    @validates_schema
    def _one_form(self, data, **kwargs):
        if ("contact_id" in data) == ("contact_ids" in data):
            raise ValidationError("Give either contact_id or contact_ids.", "contact_id")


class AddMembersResultSchema(Schema):
    object = fields.Constant("list_members")
    list_id = fields.String()
    added = fields.Integer()
    already_members = fields.Integer()


class DeletedListSchema(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()


class RemovedMemberSchema(Schema):
    object = fields.Constant("list_member")
    list_id = fields.String()
    contact_id = fields.String()
    deleted = fields.Boolean()
