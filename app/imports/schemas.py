from marshmallow import Schema, fields, validate

from ..api.fields import StrictBoolean
from .service import MAX_SYNC_CONTACTS


class ContactImportSchema(Schema):
    # Items are checked one by one (a bad one is reported by index, never a 400 for the whole request).
    contacts = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=MAX_SYNC_CONTACTS),
                           metadata={"description": f"Up to {MAX_SYNC_CONTACTS:,} contacts, each as the body of "
                                                    "`POST /contacts`; an item that is not a valid "
                                                    "contact is reported in `errors`."})
    list_id = fields.String(validate=validate.Length(min=1, max=64),
                            metadata={"description": "A static list the contacts are added to."})
    update_existing = StrictBoolean(load_default=True,
                                    metadata={"description": "false: existing contacts are left alone (skipped)."})


class RowErrorSchema(Schema):
    index = fields.Integer(metadata={"description": "Position in `contacts` (0-based)."})
    code = fields.String()
    message = fields.String()
    param = fields.String(allow_none=True)


class ImportResultSchema(Schema):
    object = fields.Constant("import_result")
    imported = fields.Integer(metadata={"description": "Contacts created."})
    updated = fields.Integer(metadata={"description": "Existing contacts updated."})
    skipped = fields.Integer(metadata={"description": "Rows not written: erased (suppressed) addresses, and "
                                                      "existing contacts when `update_existing` is false."})
    failed = fields.Integer(metadata={"description": "Invalid rows (each is in `errors`)."})
    errors = fields.List(fields.Nested(RowErrorSchema))


class ImportUrlSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                        metadata={"description": "An http(s) URL of the CSV, e.g. an S3 presigned URL (HTTPS in "
                                                 "live mode; private addresses refused)."})
    list_id = fields.String(validate=validate.Length(min=1, max=64))
    update_existing = StrictBoolean(load_default=True)


class ImportFormSchema(Schema):
    """The form fields next to the multipart `file` (text, so `true`/`false` as words)."""
    list_id = fields.String(validate=validate.Length(min=1, max=64))
    update_existing = fields.Boolean(load_default=True)


class ExportQueryArgs(Schema):
    list_id = fields.String(validate=validate.Length(min=1, max=64),
                            metadata={"description": "Only the members of this static list."})
    tag = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Only contacts with "
                                                                                           "this tag."})
