"""``POST /contacts/import`` (synchronous, ≤ 10,000), ``POST /imports`` (CSV upload or URL → job) and
``GET /contacts/export`` (→ job).  The static paths ``/contacts/import`` and ``/contacts/export`` win over the
contacts blueprint's ``/contacts/<contact_id>`` (werkzeug ranks static segments first)."""
from __future__ import annotations

import json

from flask import request
from flask.views import MethodView
from marshmallow import ValidationError as SchemaError

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.validation import describe
from ..bgjobs.schemas import JobSchema
from ..errors import ValidationError
from . import service
from .schemas import (ContactImportSchema, ExportQueryArgs, ImportFormSchema, ImportResultSchema,
                      ImportUrlSchema)
from .tasks import max_import_bytes

blp = Blueprint("imports", __name__, url_prefix="/api/v1",
                description="Contact imports (JSON, CSV upload, CSV URL) and exports.")

# Multipart overhead allowed on top of the file itself.
_FORM_SLACK = 1024 * 1024


@blp.before_app_request
def _upload_limit():
    """The upload routes take files up to IMPORT_MAX_BYTES (default 100 MB), above the app's default body
    limit.  Runs before the API pipeline reads the body."""
    if request.method == "POST" and request.path in ("/api/v1/imports", "/contacts/import"):
        request.max_content_length = max_import_bytes() + _FORM_SLACK


def _load(schema, data, location: str):
    try:
        return schema.load(data)
    except SchemaError as err:
        param, code, message = describe({location: err.messages}, schema)
        raise ValidationError(message, code=code, param=param) from None


@blp.route("/contacts/import")
class ContactImport(MethodView):
    @require_scope("contacts.write")
    @blp.arguments(ContactImportSchema)
    @blp.response(200, ImportResultSchema)
    def post(self, data):
        """Upsert up to 10,000 contacts now.  Each is validated like `POST /contacts`; a bad one is reported
        in `errors` by its index and never stops the others.  Addresses erased under GDPR are skipped."""
        return service.import_contacts(data["contacts"], list_id=data.get("list_id"),
                                       update_existing=data["update_existing"])


_IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"], "additionalProperties": False,
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "A UTF-8 CSV with a header row (see the import guide)."},
                "list_id": {"type": "string", "minLength": 1, "maxLength": 64,
                            "description": "A static list the contacts are added to."},
                "update_existing": {"type": "boolean", "default": True}}}},
        "application/json": {"schema": {
            "type": "object", "required": ["url"], "additionalProperties": False,
            "properties": {"url": {"type": "string", "minLength": 1, "maxLength": 2048},
                           "list_id": {"type": "string", "minLength": 1, "maxLength": 64},
                           "update_existing": {"type": "boolean", "default": True}}}},
    },
}


@blp.route("/imports")
class Imports(MethodView):
    @require_scope("contacts.write")
    @blp.doc(requestBody=_IMPORT_BODY)
    @blp.response(202, JobSchema)
    def post(self):
        """Import a CSV of contacts as a job: upload it (`multipart/form-data`, field `file`, up to 100 MB) or
        give a `url` the worker fetches (SSRF-guarded).  Columns: `email`, `phone_number`, `first_name`,
        `last_name`, `tags` (separated by `;`), `consent_email`, `consent_sms`, `timezone`, `locale`,
        `external_id`; any other column (or `attributes.<key>`) becomes an attribute.  Poll
        `GET /jobs/{id}`; the result file is the error report (row, email, code, param, message)."""
        if request.mimetype == "multipart/form-data":
            form = {k: v for k, v in request.form.items()}
            unknown = [k for k in request.files if k != "file"]
            if unknown:
                raise ValidationError(f"Unknown field '{unknown[0]}'.", param=unknown[0])
            data = _load(ImportFormSchema(), form, "form")
            upload = request.files.get("file")
            if upload is None:
                raise ValidationError("'file' is required: a CSV file.", param="file")
            return service.start_import(stream=upload.stream, filename=upload.filename,
                                        list_id=data.get("list_id"), update_existing=data["update_existing"],
                                        max_bytes=max_import_bytes())
        body = request.get_data(cache=True)
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            raise ValidationError("The request body is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise ValidationError("Send a CSV `file` as multipart/form-data, or a JSON object with `url`.",
                                  param="file")
        data = _load(ImportUrlSchema(), payload, "json")
        return service.start_import(url=data["url"], list_id=data.get("list_id"),
                                    update_existing=data["update_existing"], max_bytes=max_import_bytes())


@blp.route("/contacts/export")
class ContactExport(MethodView):
    @require_scope("contacts.read")
    @blp.arguments(ExportQueryArgs, location="query")
    @blp.response(202, JobSchema)
    def get(self, args):
        """Export contacts (all, or a static list's members, or those with a tag) as a job whose result is a
        CSV: the import's columns plus `id` and `created_at`, one `attributes.<key>` column per attribute.
        Cells a spreadsheet would run as a formula (= + - @ tab CR) get a leading `'`; the importer removes it."""
        return service.start_export(args)
