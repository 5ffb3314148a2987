"""Suppression pages: filtered, keyset-paged list; add (the API's schema and service); remove.

Input is checked by the API's own schema (SuppressionCreateSchema) and written by the same service, so the
dashboard and the API accept and refuse exactly the same things."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import Length

from ..errors import ValidationError
from ..web.access import org_required, require
from ..web.forms import apply_domain_error, apply_schema_errors, safe_next
from ..web.htmx import render
from ..web.pagination import Page, keyset_page
from . import service
from .models import SUPPRESSION_CHANNELS, SUPPRESSION_REASONS, Suppression
from .schemas import SuppressionCreateSchema

bp = Blueprint("web_suppressions", __name__, url_prefix="/suppressions")

CHANNEL_LABELS = {"email": "Email", "sms": "SMS"}
REASON_LABELS = {"manual": "Manual", "bounce": "Hard bounce", "complaint": "Complaint",
                 "unsubscribe": "Unsubscribed", "stop_keyword": "STOP reply", "erased": "Erased (GDPR)"}
REASON_BADGES = {"bounce": "error", "complaint": "error", "unsubscribe": "warn", "stop_keyword": "warn",
                 "erased": "neutral", "manual": "info"}


class SuppressionForm(FlaskForm):
    channel = SelectField("Channel", choices=[SelectChoice(c, CHANNEL_LABELS[c]) for c in SUPPRESSION_CHANNELS],
                          default="email")
    recipient = StringField("Recipient", validators=[Length(max=320)],
                            render_kw={"placeholder": "ada@example.com or +14155550123"})
    reason = SelectField("Reason", choices=[SelectChoice(r, REASON_LABELS[r]) for r in SUPPRESSION_REASONS],
                         default="manual")


class RemoveForm(FlaskForm):
    next = HiddenField()


def _filters() -> dict:
    return {name: request.args.get(name, "").strip() for name in ("channel", "reason", "search")}


def _list(form: SuppressionForm | None = None, status: int = 200):
    filters = _filters()
    error = None
    try:
        if filters["channel"] and filters["channel"] not in SUPPRESSION_CHANNELS:
            raise ValidationError("Channel must be email or sms.", param="channel")
        if filters["reason"] and filters["reason"] not in SUPPRESSION_REASONS:
            raise ValidationError("Unknown reason.", param="reason")
        if len(filters["search"]) > 320:
            raise ValidationError("Search is too long.", param="search")
        stmt = service.list_suppressions_query(channel=filters["channel"] or None,
                                               reason=filters["reason"] or None, search=filters["search"] or None)
        page = keyset_page(stmt, Suppression, filters)
    except ValidationError as err:
        error, page = err.message, Page(items=[], filters=filters)
    return render("suppressions/page.html", "suppressions/_table.html", status=status, page=page,
                  filters=filters, error=error, form=form or SuppressionForm(formdata=None),
                  remove_form=RemoveForm(formdata=None), channel_labels=CHANNEL_LABELS,
                  reason_labels=REASON_LABELS, reason_badges=REASON_BADGES)


@bp.get("")
@org_required
def index():
    return _list()


@bp.post("")
@org_required
def create():
    require("write")
    form = SuppressionForm()
    if form.validate_on_submit():
        if not (form.recipient.data or "").strip():
            form.recipient.errors = ["Enter an email address or a phone number."]
            return _list(form, status=422)
        try:
            data = SuppressionCreateSchema().load({"channel": form.channel.data, "reason": form.reason.data,
                                                   "recipient": (form.recipient.data or "").strip()})
            suppression, created = service.create_suppression(data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages)
        except ValidationError as err:
            err.message = err.message.replace("'recipient'", "Recipient", 1)  # the API's wording, on a form
            apply_domain_error(form, err)
        else:
            if created:
                flash(f"{suppression.recipient} is suppressed: nothing will be sent to it.", "success")
            else:
                flash(f"{suppression.recipient} was already suppressed "
                      f"({REASON_LABELS.get(suppression.reason, suppression.reason).lower()}).", "info")
            return redirect(url_for(".index"), 303)
    return _list(form, status=422)


@bp.post("/<suppression_id>/delete")
@org_required
def remove(suppression_id):
    """Lift a suppression (the CSRF token was checked before the view)."""
    require("write")
    form = RemoveForm()
    suppression = service.delete_suppression(suppression_id)
    flash(f"{suppression.recipient} is no longer suppressed and may be contacted again.", "success")
    target = safe_next(form.next.data)
    if not (target and target.split("?", 1)[0] == url_for(".index")):
        target = url_for(".index")
    return redirect(target, 303)
