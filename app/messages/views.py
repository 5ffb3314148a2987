"""Message pages: a filterable, keyset-paged list; one message's detail (recipients, timeline, SMTP
attempts, content preview); "Send a test email"; cancel a scheduled send.

Input is checked by the API's own schemas (EmailSendSchema, MessageQueryArgs) and handled by the same
service as `POST /api/v1/messages/email`, so the dashboard and the API accept and refuse the same things."""
from __future__ import annotations

import json
import re

from flask import Blueprint, flash, g, redirect, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from ..errors import Conflict, DomainError, ValidationError
from ..web.access import org_required, require
from ..web.forms import PostForm, add_error, apply_domain_error, apply_schema_errors
from ..web.htmx import render
from ..web.pagination import Page, keyset_page
from . import service
from .models import Message
from .schemas import EmailSendSchema, MessageQueryArgs

bp = Blueprint("web_messages", __name__, url_prefix="/messages")

# The statuses a person can filter by: the API's (``sending`` is internal and counts as ``queued``).
STATUS_CHOICES = ("scheduled", "queued", "sent", "delivered", "bounced", "complained", "failed", "suppressed",
                  "canceled")
STATUS_BADGES = {
    "scheduled": "info", "queued": "info", "sending": "info", "deferred": "warn", "sent": "accent",
    "delivered": "ok", "accepted": "ok", "bounced": "error", "complained": "error", "failed": "error",
    "suppressed": "neutral", "canceled": "neutral",
}
EVENT_BADGES = {
    "message.queued": "info", "message.scheduled": "info", "message.sent": "accent", "message.delivered": "ok",
    "message.opened": "ok", "message.clicked": "ok", "message.replied": "ok", "message.deferred": "warn",
    "message.bounced": "error", "message.complained": "error", "message.failed": "error",
    "message.suppressed": "neutral", "message.canceled": "neutral",
}
# Event data worth a line in the timeline, in this order; any other key follows, so nothing is hidden.
_DETAIL_KEYS = ("reason", "bounce_type", "feedback_type", "smtp_response", "next_attempt_at", "send_at", "url",
                "user_agent", "machine", "simulated")
_DETAIL_SKIP = {"smtp_code", "enhanced_code", "mx_host"}  # shown with the attempt, and folded into the reply
# In the preview, on top of the iframe's sandbox: no script, no network (remote images are tracking pixels).
# A srcdoc document also inherits the dashboard's own CSP, which still blocks the email's inline styles.
PREVIEW_CSP = "default-src 'none'; script-src 'none'; img-src data:; style-src 'unsafe-inline'"
PREVIEW_HEAD = f'<meta http-equiv="Content-Security-Policy" content="{PREVIEW_CSP}">'
_DOCTYPE = re.compile(r"^\s*<!doctype[^>]*>", re.IGNORECASE)


def preview_document(html: str | None) -> str | None:
    """The email's HTML for the preview iframe's ``srcdoc``: our CSP first (after a doctype, so the email
    keeps its rendering mode).  Jinja escapes it into the attribute; the browser unescapes it."""
    if not html:
        return None
    match = _DOCTYPE.match(html)
    cut = match.end() if match else 0
    return html[:cut] + PREVIEW_HEAD + html[cut:]


def status_label(status: str | None) -> str:
    return "queued" if status == "sending" else (status or "—")


class SendForm(FlaskForm):
    from_ = StringField("From", validators=[Length(max=600)], render_kw={"placeholder": "Acme <hello@mail.acme.com>"})
    to = StringField("To", validators=[Length(max=20000)], description="One address, or several separated by commas.")
    subject = StringField("Subject", validators=[Length(max=998)], render_kw={"placeholder": "Hello from Postline"})
    text = TextAreaField("Text", render_kw={"rows": 6}, description="The plain-text part.")
    html = TextAreaField("HTML", render_kw={"rows": 6, "spellcheck": "false"},
                         description="Optional. Scripts never run in the preview.")
    message_type = SelectField("Type", default="transactional",
                               choices=[SelectChoice("transactional", "Transactional"),
                                        SelectChoice("marketing", "Marketing")],
                               description="Marketing mail goes only to contacts subscribed to email.")
    tags = StringField("Tags", render_kw={"placeholder": "welcome, onboarding"},
                       description="Optional, comma-separated.")


# Form field ↔ API field ("from" is a Python keyword).
_FIELD_MAP = {"from": "from_"}


def send_input(form: SendForm) -> dict:
    """The form as the API's JSON body: blank fields left out, recipients and tags split on commas."""
    data = {"from": (form.from_.data or "").strip()}
    to = [a.strip() for a in (form.to.data or "").split(",") if a.strip()]
    if to:
        data["to"] = to[0] if len(to) == 1 else to
    subject = (form.subject.data or "").strip()
    if subject:
        data["subject"] = subject
    for name in ("text", "html"):
        value = getattr(form, name).data or ""
        if value.strip():
            data[name] = value.replace("\r\n", "\n")
    if form.message_type.data:
        data["message_type"] = form.message_type.data
    tags = [t.strip() for t in (form.tags.data or "").split(",") if t.strip()]
    if tags:
        data["tags"] = tags
    if not data["from"]:
        del data["from"]
    return data


def _schema_errors(form: SendForm, messages: dict) -> None:
    """The schema's messages on the form's fields; the one whole-body rule ("give html, text, or a
    template") said in the form's own words, on the Text field."""
    messages = dict(messages)
    content = messages.get("html")
    if content and any("template_id" in m for m in content if isinstance(m, str)):
        del messages["html"]
        add_error(form, "text", "Give a text part, an HTML part, or both.")
    apply_schema_errors(form, messages, _FIELD_MAP)


def _filters() -> dict:
    return {name: request.args.get(name, "").strip() for name in ("status", "tag", "to")}


def _list():
    filters = _filters()
    error = None
    try:
        args = MessageQueryArgs().load({k: v for k, v in filters.items() if v})
        page = keyset_page(service.list_messages_query(args), Message, filters)
    except SchemaError as err:
        field, messages = next(iter(err.messages.items()))
        error, page = f"{field.capitalize()} {_first(messages)}", Page(items=[], filters=filters)
    except ValidationError as err:
        error, page = err.message, Page(items=[], filters=filters)
    return render("messages/page.html", "messages/_table.html", page=page, filters=filters, error=error,
                  statuses=STATUS_CHOICES, **_helpers())


def _first(messages) -> str:
    while isinstance(messages, (list, dict)):
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    text = str(messages)
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[:2].isupper() else text


def _helpers() -> dict:
    return {"status_label": status_label, "status_badges": STATUS_BADGES, "event_badges": EVENT_BADGES,
            "recipient_list": recipient_list}


def recipient_list(to) -> list[str]:
    """A message's ``to`` as stored ([{email, name}] for email, [number] for SMS) → display strings."""
    out = []
    for item in to or []:
        out.append((item.get("email") or "") if isinstance(item, dict) else str(item))
    return out


def event_details(event) -> list[tuple[str, str]]:
    """The key facts of one timeline event, as (label, text) pairs: the SMTP reply, the reason, the next
    retry, the clicked URL …"""
    data = dict(event.data or {})
    out = []
    keys = [k for k in _DETAIL_KEYS if k in data] + sorted(k for k in data if k not in _DETAIL_KEYS)
    for key in keys:
        value = data[key]
        if key in _DETAIL_SKIP or value is None or value == "":
            continue
        if key == "smtp_response" and data.get("smtp_code"):
            value = f"{data['smtp_code']} {value}"
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        out.append((key.replace("_", " ").capitalize().replace("Smtp", "SMTP").replace("Url", "URL"), str(value)))
    return out


def _new_form() -> SendForm:
    form = SendForm(formdata=None)
    if g.mode == "test":
        form.to.data = "delivered@simulator.test"
    return form


def _new(form: SendForm, status: int = 200):
    return render("messages/new.html", status=status, form=form)


@bp.get("")
@org_required
def index():
    return _list()


@bp.get("/new")
@org_required
def new():
    require("write")
    return _new(_new_form())


@bp.post("")
@org_required
def create():
    require("write")
    form = SendForm()
    if form.validate_on_submit():
        try:
            data = EmailSendSchema().load(send_input(form))
            message = service.send_email(data)
        except SchemaError as err:
            _schema_errors(form, err.messages)
        except DomainError as err:
            apply_domain_error(form, err, _FIELD_MAP)
        else:
            verb = {"scheduled": "scheduled", "suppressed": "recorded as suppressed (not sent)"}.get(
                message.status, "queued")
            flash(f"Email {verb}" + (" in test mode: delivery is simulated." if g.mode == "test" else "."),
                  "success" if message.status != "suppressed" else "info")
            return redirect(url_for(".detail", message_id=message.id), 303)
    return _new(form, status=422)


@bp.get("/<message_id>")
@org_required
def detail(message_id):
    message = service.message_detail(message_id)
    return render("messages/detail.html", message=message, srcdoc=preview_document(message.html), form=PostForm(),
                  event_details=event_details, **_helpers())


# The preview as a document of its own: its own CSP (the email's inline styles apply; no script, no network;
# only this dashboard may frame it), loaded by a sandboxed iframe (an opaque origin: no cookies, no DOM).
PREVIEW_DOCUMENT_CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                        "font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@bp.get("/<message_id>/preview")
@org_required
def preview(message_id):
    from flask import make_response

    message = service.get_message(message_id)
    resp = make_response(preview_document(message.html) or "")
    resp.headers["Content-Type"] = "text/html; charset=utf-8"
    resp.headers["Content-Security-Policy"] = PREVIEW_DOCUMENT_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/<message_id>/cancel")
@org_required
def cancel(message_id):
    require("write")
    form = PostForm()
    message = service.get_message(message_id)
    if not form.validate_on_submit():
        raise ValidationError("The form expired; reload the page and try again.")
    try:
        service.cancel_message(message.id)
    except Conflict as err:
        flash(err.message, "error")
    else:
        flash("The scheduled send was canceled.", "success")
    return redirect(url_for(".detail", message_id=message.id), 303)
