"""Broadcast pages: the index (status, counts), the create/edit form (from, subject, html/text or a template,
the audience list, message type, tracking), a detail page with stats and a bar chart that refreshes itself
(htmx polling, stopped with 286) while the fan-out runs, and the actions — proof, schedule (date, time and
IANA time zone), send now, cancel (confirmed), delete.  Input goes through the API's schemas and the same
service as the API."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import available_timezones

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from ..errors import Conflict, DomainError, NotFound, UnprocessableError, ValidationError
from ..extensions import db
from ..web.access import org_required, require
from ..web.forms import PostForm, apply_domain_error, apply_schema_errors
from ..web.htmx import add_vary, render
from ..web.pagination import Page, keyset_page
from . import service
from .models import Broadcast
from .schemas import BroadcastCreateSchema, BroadcastUpdateSchema

bp = Blueprint("web_broadcasts", __name__, url_prefix="/broadcasts")

STATUS_BADGES = {"draft": "neutral", "scheduled": "info", "sending": "warn", "sent": "ok", "canceled": "error"}
# The chart's bars, in funnel order, with the CSS class that colours them.
CHART = [("total", "Recipients", "bar-total"), ("queued", "Queued", "bar-queued"), ("sent", "Sent", "bar-sent"),
         ("delivered", "Delivered", "bar-ok"), ("opened", "Opened", "bar-ok"), ("clicked", "Clicked", "bar-ok"),
         ("unsubscribed", "Unsubscribed", "bar-warn"), ("bounced", "Bounced", "bar-error"),
         ("complained", "Complained", "bar-error"), ("failed", "Failed", "bar-error"),
         ("suppressed", "Suppressed", "bar-muted"), ("canceled", "Canceled", "bar-muted")]
_ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))) + ["UTC"]


class BroadcastForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)], render_kw={"placeholder": "Spring newsletter"})
    from_ = StringField("From", validators=[Length(max=520)],
                        render_kw={"placeholder": "Acme <news@mail.acme.com>", "autocomplete": "off"},
                        description="An address on a verified domain (live mode).")
    subject = StringField("Subject", validators=[Length(max=998)],
                          render_kw={"placeholder": "Hi {{first_name}}, our spring news"})
    html = TextAreaField("HTML", render_kw={"rows": 10, "class": "input mono"},
                         description="Mustache: {{first_name}}, {{last_name}}, {{email}}, "
                                     "{{contact.attributes.…}}, {{{unsubscribe_url}}}.")
    text = TextAreaField("Plain text", render_kw={"rows": 5, "class": "input mono"})
    template_id = SelectField("Or a template", choices=[], validate_choice=False,
                              description="A stored email template instead of the HTML and text above.")
    audience_list_id = SelectField("Audience list", choices=[], validate_choice=False)
    message_type = SelectField("Message type", choices=[SelectChoice("marketing", "Marketing (needs consent)"),
                                                        SelectChoice("transactional", "Transactional")])
    track_opens = BooleanField("Track opens")
    track_clicks = BooleanField("Track clicks")


class ScheduleForm(FlaskForm):
    scheduled_at = StringField("Date and time", render_kw={"type": "datetime-local"})
    timezone = SelectField("Time zone", choices=[SelectChoice(z, z) for z in _ZONES], default="UTC", validate_choice=False)


class ProofForm(FlaskForm):
    recipients = StringField("Send a proof to", render_kw={"placeholder": "you@example.com, boss@example.com"},
                             description="Up to 5 addresses. Sample data fills the variables.")


def _choices(form: BroadcastForm) -> BroadcastForm:
    from ..lists.models import ContactList
    from ..templates.models import Template

    lists = db.session.execute(select(ContactList.id, ContactList.name).order_by(
        ContactList.created_at.desc()).limit(500)).all()
    templates = db.session.execute(select(Template.id, Template.name).where(
        Template.channel == "email", Template.is_active.is_(True)).order_by(Template.created_at.desc()).limit(500)).all()
    form.audience_list_id.choices = [SelectChoice("", "— choose a list —")] + [SelectChoice(r.id, r.name)
                                                                                for r in lists]
    form.template_id.choices = [SelectChoice("", "— none: use the HTML and text —")] + [
        SelectChoice(r.id, r.name) for r in templates]
    return form


def _input(form: BroadcastForm, *, partial: bool) -> dict:
    data = {"name": (form.name.data or "").strip() or "Untitled broadcast",
            "from": (form.from_.data or "").strip(),
            "subject": (form.subject.data or "").strip(), "html": form.html.data or "",
            "text": form.text.data or "", "template_id": form.template_id.data or "",
            "audience_list_id": form.audience_list_id.data or "", "message_type": form.message_type.data,
            "track_opens": bool(form.track_opens.data), "track_clicks": bool(form.track_clicks.data)}
    return {k: v for k, v in data.items() if v != ""}


_FIELD_MAP = {"from": "from_", "from_": "from_", "recipients": "audience_list_id"}


def _form_for(b: Broadcast) -> BroadcastForm:
    sender = (f"{b.from_name} <{b.from_email}>" if b.from_name else b.from_email) if b.from_email else ""
    return _choices(BroadcastForm(formdata=None, name=b.name, from_=sender, subject=b.subject, html=b.html,
                                  text=b.text, template_id=b.template_id or "",
                                  audience_list_id=b.audience_list_id or "", message_type=b.message_type,
                                  track_opens=b.track_opens, track_clicks=b.track_clicks))


# --- list and create --------------------------------------------------------------------------------------------

@bp.get("")
@org_required
def index():
    error = None
    status = request.args.get("status") or None
    if status not in (None, *STATUS_BADGES):
        status = None
    try:
        page = keyset_page(service.list_broadcasts_query(status), Broadcast, filters={"status": status})
    except ValidationError as err:
        error, page = err.message, Page(items=[])
    return render("broadcasts/page.html", "broadcasts/_table.html", page=page, error=error, status=status,
                  status_badges=STATUS_BADGES)


@bp.get("/new")
@org_required
def new():
    require("write")
    return render("broadcasts/form.html", form=_choices(BroadcastForm(formdata=None)), broadcast=None)


@bp.post("")
@org_required
def create():
    require("write")
    form = _choices(BroadcastForm())
    if form.validate_on_submit():
        try:
            data = BroadcastCreateSchema().load(_input(form, partial=False))
            b = service.create_broadcast(data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages, _FIELD_MAP)
        except (ValidationError, UnprocessableError, NotFound) as err:
            apply_domain_error(form, err, _FIELD_MAP)
        else:
            flash("Draft saved. Send yourself a proof, then send or schedule it.", "success")
            return redirect(url_for(".detail", broadcast_id=b.id), 303)
    db.session.rollback()
    return render("broadcasts/form.html", status=422, form=form, broadcast=None)


# --- one broadcast ------------------------------------------------------------------------------------------------

def _chart(stats: dict) -> list[dict]:
    top = max(stats.get("total", 0), 1)
    return [{"key": key, "label": label, "cls": cls, "value": stats.get(key, 0),
             "width": round(300 * stats.get(key, 0) / top, 1), "y": i * 26}
            for i, (key, label, cls) in enumerate(CHART)]


def _detail(b: Broadcast, status: int = 200, **context):
    stats = service.broadcast_stats(b)
    schedule = context.pop("schedule_form", None) or ScheduleForm(formdata=None, timezone=b.timezone or "UTC")
    proof = context.pop("proof_form", None) or ProofForm(formdata=None)
    from ..messages.models import Message
    recent = db.session.execute(select(Message).where(Message.broadcast_id == b.id).order_by(
        Message.created_at.desc(), Message.id.desc()).limit(10)).scalars().all()
    return render("broadcasts/detail.html", status=status, broadcast=b, stats=stats, chart=_chart(stats),
                  recent=recent,
                  status_badges=STATUS_BADGES, action_form=PostForm(), schedule_form=schedule, proof_form=proof,
                  **context)


@bp.get("/<broadcast_id>")
@org_required
def detail(broadcast_id):
    return _detail(service.get_broadcast(broadcast_id))


@bp.get("/<broadcast_id>/stats")
@org_required
def stats(broadcast_id):
    """The stats card alone, polled by htmx every 2 s while sending; 286 stops the polling."""
    b = service.get_broadcast(broadcast_id)
    stats = service.broadcast_stats(b)
    response = render("broadcasts/_stats.html", "broadcasts/_stats.html", broadcast=b, stats=stats,
                      chart=_chart(stats), status_badges=STATUS_BADGES)
    if b.status not in ("sending", "scheduled"):
        response.status_code = 286
    return add_vary(response)


@bp.route("/<broadcast_id>/edit", methods=["GET", "POST"])
@org_required
def edit(broadcast_id):
    require("write")
    b = service.get_broadcast(broadcast_id)
    if b.status != "draft":
        flash(f"This broadcast is {b.status}: only drafts can be edited.", "error")
        return redirect(url_for(".detail", broadcast_id=b.id), 303)
    if request.method == "GET":
        return render("broadcasts/form.html", form=_form_for(b), broadcast=b)
    form = _choices(BroadcastForm())
    if form.validate_on_submit():
        try:
            data = BroadcastUpdateSchema().load(_input(form, partial=True))
            service.update_broadcast(b.id, data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages, _FIELD_MAP)
        except (ValidationError, UnprocessableError, NotFound, Conflict) as err:
            apply_domain_error(form, err, _FIELD_MAP)
        else:
            flash("Draft saved.", "success")
            return redirect(url_for(".detail", broadcast_id=b.id), 303)
    db.session.rollback()
    return render("broadcasts/form.html", status=422, form=form, broadcast=service.get_broadcast(broadcast_id))


def _act(broadcast_id, fn, success: str):
    require("write")
    b = service.get_broadcast(broadcast_id)
    if not PostForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for(".detail", broadcast_id=b.id), 303)
    try:
        fn(b.id)
    except DomainError as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        flash(success, "success")
    return redirect(url_for(".detail", broadcast_id=b.id), 303)


@bp.post("/<broadcast_id>/send")
@org_required
def send(broadcast_id):
    return _act(broadcast_id, service.send_broadcast, "Sending: the audience is being fanned out now.")


@bp.post("/<broadcast_id>/schedule")
@org_required
def schedule(broadcast_id):
    require("write")
    b = service.get_broadcast(broadcast_id)
    form = ScheduleForm()
    if form.validate_on_submit():
        try:
            when = datetime.fromisoformat((form.scheduled_at.data or "").strip())
        except ValueError:
            form.scheduled_at.errors = ["Give a date and time."]
        else:
            try:
                service.schedule_broadcast(b.id, when, form.timezone.data or "UTC")
            except DomainError as err:
                db.session.rollback()
                apply_domain_error(form, err)
            else:
                flash("Scheduled.", "success")
                return redirect(url_for(".detail", broadcast_id=b.id), 303)
    return _detail(service.get_broadcast(broadcast_id), status=422, schedule_form=form, schedule_open=True)


@bp.post("/<broadcast_id>/test")
@org_required
def proof(broadcast_id):
    require("write")
    b = service.get_broadcast(broadcast_id)
    form = ProofForm()
    if form.validate_on_submit():
        raw = [a.strip() for a in (form.recipients.data or "").replace(";", ",").split(",") if a.strip()]
        from ..api.fields import Email
        try:
            addresses = [Email()._deserialize(a, "recipients", {}).lower() for a in raw]
        except SchemaError:
            form.recipients.errors = ["Give 1–5 valid email addresses, separated by commas."]
        else:
            try:
                sent = service.send_test(b.id, addresses)
            except DomainError as err:
                db.session.rollback()
                apply_domain_error(form, err)
            else:
                flash(f"Proof sent to {', '.join(m.to[0]['email'] for m in sent)}.", "success")
                return redirect(url_for(".detail", broadcast_id=b.id), 303)
    return _detail(service.get_broadcast(broadcast_id), status=422, proof_form=form)


@bp.route("/<broadcast_id>/cancel", methods=["GET", "POST"])
@org_required
def cancel(broadcast_id):
    require("write")
    b = service.get_broadcast(broadcast_id)
    if request.method == "POST":
        return _act(b.id, service.cancel_broadcast, "Broadcast canceled.")
    return render("broadcasts/confirm.html", broadcast=b, form=PostForm(), action="cancel")


@bp.route("/<broadcast_id>/delete", methods=["GET", "POST"])
@org_required
def delete(broadcast_id):
    require("write")
    b = service.get_broadcast(broadcast_id)
    if request.method == "POST":
        if not PostForm().validate_on_submit():
            return redirect(url_for(".detail", broadcast_id=b.id), 303)
        try:
            service.delete_broadcast(b.id)
        except DomainError as err:
            db.session.rollback()
            flash(err.message, "error")
            return redirect(url_for(".detail", broadcast_id=b.id), 303)
        flash(f"Draft {b.name} deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render("broadcasts/confirm.html", broadcast=b, form=PostForm(), action="delete")
