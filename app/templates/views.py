"""Template pages: keyset-paged list, editor with a live htmx preview, versions, delete.

Input goes through the API's own schemas (TemplateCreateSchema / TemplateUpdateSchema) and the same service,
so the dashboard accepts and refuses exactly what the API does; saving bumps the version the same way.
The preview renders unsaved form content with each variable's ``sample`` in a sandboxed iframe."""
from __future__ import annotations

import json
import secrets

from flask import Blueprint, abort, current_app, flash, g, make_response, redirect, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from ..errors import DomainError
from ..extensions import redis
from ..api.validation import describe
from ..web.access import org_required, require
from ..web.forms import PostForm, add_error, apply_domain_error, apply_schema_errors
from ..web.htmx import render
from ..web.pagination import keyset_page
from . import service
from .models import Template
from .render import to_json_text
from .schemas import MAX_HTML, MAX_SUBJECT, MAX_TEXT, TemplateCreateSchema, TemplateUpdateSchema

bp = Blueprint("web_templates", __name__, url_prefix="/templates")

# On top of the iframe's sandbox (no scripts, opaque origin): no script and no network in the preview.
PREVIEW_CSP = "default-src 'none'; script-src 'none'; img-src data:; style-src 'unsafe-inline'"
PREVIEW_HEAD = f'<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{PREVIEW_CSP}">'
SAMPLE_CONTACT = {"id": "con_preview", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                  "phone_number": "+14155550123", "attributes": {}, "tags": []}
VARIABLES_HINT = 'A JSON list, e.g. [{"name": "code", "sample": "A1B2", "default": null, "required": true}]'


class TemplateForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)], render_kw={"placeholder": "e.g. Welcome email"})
    channel = SelectField("Channel", choices=[SelectChoice("email", "Email"), SelectChoice("sms", "SMS")], default="email")
    subject = StringField("Subject", validators=[Length(max=MAX_SUBJECT)],
                          render_kw={"placeholder": "Welcome, {{first_name}}!"})
    html = TextAreaField("HTML", validators=[Length(max=MAX_HTML)],
                         description="{{name}} is HTML-escaped, {{{name}}} is not.")
    text = TextAreaField("Text", validators=[Length(max=MAX_TEXT)],
                         description="The plain-text part of an email, or the SMS body.")
    variables = TextAreaField("Variables", description=VARIABLES_HINT)
    is_active = BooleanField("Active (can be used in sends)", default=True)


def template_input(form: TemplateForm) -> dict:
    """The form as the API's JSON body.  Blank parts are null; ``variables`` is parsed as JSON (a parse error
    is added to the form and raised as SchemaError)."""
    data = {"channel": form.channel.data or "email", "is_active": bool(form.is_active.data)}
    if (form.name.data or "").strip():
        data["name"] = form.name.data.strip()
    for part in ("subject", "html", "text"):
        # Browsers submit textarea line breaks as CRLF: store LF, so saving unchanged content is no change.
        value = (form[part].data or "").replace("\r\n", "\n")
        data[part] = value if value.strip() else None
    raw = (form.variables.data or "").strip()
    if raw:
        try:
            data["variables"] = json.loads(raw)
        except ValueError as exc:
            raise SchemaError({"variables": [f"is not valid JSON ({exc.msg}, line {exc.lineno})."]}) from None
    else:
        data["variables"] = []
    return data


def _form_for(template: Template) -> TemplateForm:
    form = TemplateForm(formdata=None, name=template.name, channel=template.channel, subject=template.subject,
                        html=template.html, text=template.text, is_active=template.is_active)
    form.variables.data = to_json_text(template.variables) if template.variables else ""
    return form


def _preview_of(data: dict) -> dict:
    """The preview pane's content; every expected error (bad JSON, schema, parse, missing variable) is
    shown in the pane."""
    try:
        data = TemplateUpdateSchema().load(data)
        result = service.preview(data, contact=SAMPLE_CONTACT,
                                 unsubscribe_url=current_app.config.get("BASE_URL", "").rstrip("/") + "/u/preview")
    except SchemaError as err:
        return {"error": _schema_message(err.messages)}
    except DomainError as err:
        return {"error": err.message, "code": err.code, "param": err.param}
    result["src"] = _store_preview(PREVIEW_HEAD + result["html"]) if result.get("html") else None
    return result


# The rendered preview is served as a document of its own, with its own CSP, so the email's inline styles
# apply (a srcdoc document inherits the dashboard's CSP, which forbids them).  It lives in Redis for a few
# minutes under an unguessable token bound to the organization.
PREVIEW_TTL = 600
PREVIEW_DOCUMENT_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                        "font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def _preview_key(token: str) -> str:
    return redis.key("template-preview", g.organization.id, token)


def _store_preview(document: str) -> str:
    token = secrets.token_urlsafe(24)
    redis.client.set(_preview_key(token), document.encode(), ex=PREVIEW_TTL)
    return url_for("web_templates.preview_document", token=token)


@bp.get("/preview/<token>")
@org_required
def preview_document(token):
    document = redis.client.get(_preview_key(token)) if len(token) <= 64 else None
    if document is None:
        abort(404)
    resp = make_response(document)
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    resp.headers["Content-Security-Policy"] = PREVIEW_DOCUMENT_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _schema_message(messages) -> str:
    return describe(messages)[2]


def _editor(form: TemplateForm, template: Template | None = None, status: int = 200):
    try:
        preview = _preview_of(template_input(form))
    except SchemaError as err:
        preview = {"error": _schema_message(err.messages)}
    versions = service.versions_page(template.id, {"limit": 50}, "")["data"] if template is not None else None
    return render("templates/editor.html", status=status, form=form, template=template, preview=preview,
                  versions=versions, delete_form=PostForm())


def _save(form: TemplateForm, schema, action):
    """Validate the form through the API's schema and call ``action(data)``; errors land on the form."""
    if not form.validate_on_submit():
        return None
    try:
        data = template_input(form)
        if not data.get("name"):
            add_error(form, "name", "Name is required.")
            return None
        return action(schema.load(data))
    except SchemaError as err:
        apply_schema_errors(form, err.messages)
    except DomainError as err:
        apply_domain_error(form, err, {"template_id": None})
    return None


@bp.get("")
@org_required
def index():
    page = keyset_page(service.list_templates_query(), Template)
    return render("templates/page.html", "templates/_table.html", page=page)


@bp.get("/new")
@org_required
def new():
    require("write")
    form = TemplateForm(formdata=None)
    return _editor(form)


@bp.post("/new")
@org_required
def create():
    require("write")
    form = TemplateForm()
    template = _save(form, TemplateCreateSchema(), service.create_template)
    if template is not None:
        flash(f"Template “{template.name}” created.", "success")
        return redirect(url_for(".detail", template_id=template.id), 303)
    return _editor(form, status=422)


@bp.post("/preview")
@org_required
def preview():
    """The live preview (htmx, on every pause in typing): always 200, errors shown in the pane."""
    form = TemplateForm()
    if not form.validate():
        errors = [e for name, errs in form.errors.items() for e in errs]
        return render("templates/_preview.html", preview={"error": "; ".join(errors) or "Invalid form."})
    try:
        data = template_input(form)
    except SchemaError as err:
        return render("templates/_preview.html", preview={"error": _schema_message(err.messages)})
    return render("templates/_preview.html", preview=_preview_of(data))


@bp.get("/<template_id>")
@org_required
def detail(template_id):
    template = service.get_template(template_id)
    return _editor(_form_for(template), template)


@bp.post("/<template_id>")
@org_required
def update(template_id):
    require("write")
    template = service.get_template(template_id)
    before = template.version
    form = TemplateForm()
    saved = _save(form, TemplateUpdateSchema(), lambda data: service.update_template(template.id, data))
    if saved is not None:
        if saved.version != before:
            flash(f"Saved “{saved.name}” as version {saved.version}.", "success")
        else:
            flash(f"Saved “{saved.name}” (content unchanged: still version {saved.version}).", "success")
        return redirect(url_for(".detail", template_id=saved.id), 303)
    return _editor(form, template, status=422)


@bp.route("/<template_id>/delete", methods=["GET", "POST"])
@org_required
def delete(template_id):
    require("write")
    template = service.get_template(template_id)
    form = PostForm()
    if form.validate_on_submit():
        service.delete_template(template.id)
        flash(f"Template “{template.name}” was deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render("templates/confirm_delete.html", template=template, form=form)

