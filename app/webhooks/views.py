"""Webhook pages: endpoints list and form (with an event-type picker), the signing secret shown once and
rotated, pause/resume, a test ping, the deliveries table with each attempt's request and response, and a
Retry button.  Input goes through the API's schemas and the same service as the API.

Owners are told, once per session, when Postline has disabled an endpoint (410 or 5 days of failures)."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, request, session, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select
from wtforms import SelectChoice, StringField
from wtforms.validators import Length

from ..errors import UnprocessableError, ValidationError
from ..events.service import EVENT_TYPES
from ..extensions import db
from ..web.access import org_required, require
from ..web.forms import MultiCheckboxField, PostForm, apply_domain_error, apply_schema_errors
from ..web.htmx import render
from ..web.pagination import Page, keyset_page
from . import service
from .models import WebhookDelivery, WebhookEndpoint
from .schemas import WebhookCreateSchema, WebhookUpdateSchema

bp = Blueprint("web_webhooks", __name__, url_prefix="/webhooks")

STATUS_BADGES = {"enabled": "ok", "paused": "warn", "disabled": "error",
                 "succeeded": "ok", "pending": "warn", "failed": "error"}
DISABLED_REASONS = {"gone": "the endpoint answered 410 Gone", "failing": "it failed for 5 days in a row"}
_NOTICE_KEY = "webhooks_disabled_seen"


def _event_choices() -> list[SelectChoice]:
    groups: dict[str, list[str]] = {}
    for t in EVENT_TYPES:
        groups.setdefault(t.split(".", 1)[0], []).append(t)
    choices = []
    for prefix, types in groups.items():
        choices.append(SelectChoice(f"{prefix}.*", f"All {prefix} events"))
        choices.extend(SelectChoice(t, t) for t in types)
    return choices


def event_groups(form_field) -> list[tuple[str, list]]:
    """The picker's checkboxes grouped by resource: ``[(prefix, [wildcard option, type options…])]``."""
    groups: dict[str, list] = {}
    for opt in form_field:
        groups.setdefault(opt.data.split(".", 1)[0], []).append(opt)
    return list(groups.items())


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL", validators=[Length(max=2048)],
                      render_kw={"placeholder": "https://example.com/webhooks/postline", "autocomplete": "off"},
                      description="HTTPS in live mode. Public hosts only.")
    description = StringField("Description", validators=[Length(max=500)],
                              render_kw={"placeholder": "e.g. Order service"})
    events = MultiCheckboxField("Events", choices=_event_choices(),
                                description="Pick none to receive every event.")


def endpoint_input(form: EndpointForm) -> dict:
    data = {"url": (form.url.data or "").strip(), "events": form.events.data or ["*"]}
    description = (form.description.data or "").strip()
    data["description"] = description or None
    return data


def _list(form: EndpointForm | None = None, status: int = 200, **context):
    error = None
    try:
        page = keyset_page(service.list_endpoints_query(), WebhookEndpoint)
    except ValidationError as err:
        error, page = err.message, Page(items=[])
    disabled = [e for e in page.items if e.status == "disabled"]
    return render("webhooks/page.html", "webhooks/_table.html", status=status, page=page, error=error,
                  form=form or EndpointForm(formdata=None), disabled=disabled, status_badges=STATUS_BADGES,
                  disabled_reasons=DISABLED_REASONS, event_groups=event_groups, **context)


@bp.get("")
@org_required
def index():
    return _list()


@bp.post("")
@org_required
def create():
    require("write")
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            data = WebhookCreateSchema().load(endpoint_input(form))
            endpoint, secret = service.create_endpoint(data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages)
        except (ValidationError, UnprocessableError) as err:
            apply_domain_error(form, err)
        else:
            # The secret exists in clear only in this response: never in the session, a flash or a redirect.
            return _detail(endpoint, status=201, secret=secret, secret_action="created")
    return _list(form, status=422)


def _detail(endpoint: WebhookEndpoint, status: int = 200, form: EndpointForm | None = None, **context):
    # The filter carries the path parameter, so the pager's links (url_for + filters) point back here.
    deliveries = keyset_page(service.list_deliveries_query(endpoint.id), WebhookDelivery,
                             filters={"webhook_id": endpoint.id})
    if form is None:
        form = EndpointForm(formdata=None, url=endpoint.url, description=endpoint.description,
                            events=[] if endpoint.events == ["*"] else endpoint.events)
    return render("webhooks/detail.html", "webhooks/_deliveries.html", status=status, endpoint=endpoint,
                  page=deliveries, form=form, action_form=PostForm(), status_badges=STATUS_BADGES,
                  disabled_reasons=DISABLED_REASONS, event_groups=event_groups, **context)


@bp.get("/<webhook_id>")
@org_required
def detail(webhook_id):
    return _detail(service.get_endpoint(webhook_id))


@bp.post("/<webhook_id>")
@org_required
def update(webhook_id):
    require("write")
    endpoint = service.get_endpoint(webhook_id)
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            data = WebhookUpdateSchema().load(endpoint_input(form))
            service.update_endpoint(endpoint.id, data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages)
        except (ValidationError, UnprocessableError) as err:
            apply_domain_error(form, err)
        else:
            flash("Endpoint saved.", "success")
            return redirect(url_for(".detail", webhook_id=endpoint.id), 303)
    db.session.rollback()
    return _detail(service.get_endpoint(webhook_id), status=422, form=form, edit_open=True)


@bp.post("/<webhook_id>/status")
@org_required
def set_status(webhook_id):
    require("write")
    endpoint = service.get_endpoint(webhook_id)
    form = PostForm()
    if form.validate_on_submit():
        target = "paused" if request.form.get("status") == "paused" else "enabled"
        service.update_endpoint(endpoint.id, {"status": target})
        flash("Endpoint paused: events wait until you resume it." if target == "paused"
              else "Endpoint enabled.", "success")
    return redirect(url_for(".detail", webhook_id=endpoint.id), 303)


@bp.post("/<webhook_id>/test")
@org_required
def send_test(webhook_id):
    require("write")
    endpoint = service.get_endpoint(webhook_id)
    form = PostForm()
    if not form.validate_on_submit():
        return redirect(url_for(".detail", webhook_id=endpoint.id), 303)
    delivery = service.send_test(endpoint.id)
    if delivery.status == "succeeded":
        flash(f"Test event delivered: HTTP {delivery.response_code}.", "success")
    else:
        flash(f"Test event failed: {delivery.last_error or 'no response'}.", "error")
    return redirect(url_for(".delivery", webhook_id=endpoint.id, delivery_id=delivery.id), 303)


@bp.route("/<webhook_id>/rotate", methods=["GET", "POST"])
@org_required
def rotate(webhook_id):
    require("write")
    endpoint = service.get_endpoint(webhook_id)
    form = PostForm()
    if form.validate_on_submit():
        endpoint, secret = service.rotate_secret(endpoint.id)
        return _detail(endpoint, secret=secret, secret_action="rotated")
    return render("webhooks/confirm.html", endpoint=endpoint, form=form, action="rotate")


@bp.route("/<webhook_id>/delete", methods=["GET", "POST"])
@org_required
def delete(webhook_id):
    require("write")
    endpoint = service.get_endpoint(webhook_id)
    form = PostForm()
    if form.validate_on_submit():
        service.delete_endpoint(endpoint.id)
        flash(f"Endpoint {endpoint.url} deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render("webhooks/confirm.html", endpoint=endpoint, form=form, action="delete")


@bp.get("/<webhook_id>/deliveries/<delivery_id>")
@org_required
def delivery(webhook_id, delivery_id):
    d = service.get_delivery(webhook_id, delivery_id)
    return render("webhooks/delivery.html", endpoint=service.get_endpoint(webhook_id), delivery=d,
                  attempts=service.delivery_attempts(d), form=PostForm(), status_badges=STATUS_BADGES)


@bp.post("/<webhook_id>/deliveries/<delivery_id>/retry")
@org_required
def retry(webhook_id, delivery_id):
    require("write")
    d = service.get_delivery(webhook_id, delivery_id)
    form = PostForm()
    if form.validate_on_submit():
        d = service.retry_delivery(webhook_id, d.id)
        if d.public_status == "succeeded":
            flash(f"Delivered again: HTTP {d.response_code}.", "success")
        else:
            flash(f"Retry failed: {d.last_error or 'no response'}.", "error")
    return redirect(url_for(".delivery", webhook_id=webhook_id, delivery_id=d.id), 303)


# --- owners hear about disabled endpoints -----------------------------------------------------------------------

@bp.before_app_request
def _tell_owners_about_disabled_endpoints():
    """On an owner's next full page view, flash each endpoint Postline disabled (once per session)."""
    if request.method != "GET" or request.headers.get("HX-Request") or request.path.startswith(("/api/", "/static/")):
        return
    membership, organization = g.get("membership"), g.get("organization")
    if membership is None or organization is None or membership.role != "owner":
        return
    t = WebhookEndpoint.__table__
    rows = db.session.execute(select(t.c.id, t.c.url, t.c.mode, t.c.disabled_reason).where(
        t.c.organization_id == organization.id, t.c.status == "disabled",
        t.c.disabled_reason.is_not(None)).limit(5)).all()
    seen = set(session.get(_NOTICE_KEY, []))
    fresh = [r for r in rows if r.id not in seen]
    for r in fresh:
        flash(f"Webhook endpoint {r.url} ({r.mode}) was disabled because "
              f"{DISABLED_REASONS.get(r.disabled_reason, r.disabled_reason)}. Fix it, then enable it again "
              "on the Webhooks page.", "warning")
    if fresh:
        session[_NOTICE_KEY] = sorted(seen | {r.id for r in fresh})[-50:]
