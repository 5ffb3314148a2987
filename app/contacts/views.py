"""Contact pages: search, keyset-paged list, create (upsert), detail.

Input is checked by the API's own schemas (ContactCreateSchema, ContactQueryArgs) and written by the same
service, so the dashboard and the API accept and refuse exactly the same things."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import EmailField, StringField, TelField
from wtforms.validators import Length

from ..errors import NotFound, ValidationError
from ..extensions import db
from ..lists.models import ContactList
from ..web.access import org_required, require
from ..web.forms import PostForm, apply_domain_error, apply_schema_errors
from ..web.htmx import render
from ..web.pagination import Page, keyset_page
from . import service
from .models import Contact
from .schemas import ContactCreateSchema, ContactQueryArgs

bp = Blueprint("web_contacts", __name__, url_prefix="/contacts")


class ContactForm(FlaskForm):
    email = EmailField("Email", validators=[Length(max=320)], render_kw={"placeholder": "ada@example.com"})
    phone_number = TelField("Phone", validators=[Length(max=20)], render_kw={"placeholder": "+14155550123"})
    first_name = StringField("First name", validators=[Length(max=100)])
    last_name = StringField("Last name", validators=[Length(max=100)])
    tags = StringField("Tags", render_kw={"placeholder": "vip, newsletter"},
                       description="Comma-separated.")


def contact_input(form: ContactForm) -> dict:
    """The form as the API's JSON body: blank fields left out, tags split on commas."""
    data = {name: (getattr(form, name).data or "").strip()
            for name in ("email", "phone_number", "first_name", "last_name")}
    data = {k: v for k, v in data.items() if v}
    tags = [t.strip() for t in (form.tags.data or "").split(",") if t.strip()]
    if tags:
        data["tags"] = tags
    return data


FILTERS = ("q", "email", "tag", "list_id", "consent_email", "consent_sms", "created_from", "created_to", "risk")
_FILTER_LABELS = {"q": "Search", "consent[email]": "Email consent", "consent[sms]": "SMS consent",
                  "created[gte]": "Created from", "created[lte]": "Created to", "list_id": "List"}


def _query_args(filters: dict) -> dict:
    """The dashboard's filter inputs as GET /contacts query arguments (dates become whole UTC days)."""
    args = {k: v for k, v in filters.items() if v and k in ("q", "email", "tag", "list_id", "risk")}
    if filters.get("consent_email"):
        args["consent[email]"] = filters["consent_email"]
    if filters.get("consent_sms"):
        args["consent[sms]"] = filters["consent_sms"]
    if filters.get("created_from"):
        args["created[gte]"] = f"{filters['created_from']}T00:00:00Z"
    if filters.get("created_to"):
        args["created[lte]"] = f"{filters['created_to']}T23:59:59Z"
    return args


def _list(form: ContactForm | None = None, status: int = 200):
    from ..lists.service import list_lists_query
    filters = {k: request.args.get(k, "").strip() for k in FILTERS}
    error = None
    try:
        args = ContactQueryArgs().load(_query_args(filters))
        page = keyset_page(service.list_contacts_query(args), Contact, filters)
    except SchemaError as err:
        field, messages = next(iter(err.messages.items()))
        label = _FILTER_LABELS.get(field, field.capitalize())
        error, page = f"{label} {_first(messages)}", Page(items=[], filters=filters)
    except (ValidationError, NotFound) as err:
        error, page = err.message, Page(items=[], filters=filters)
    lists = list(db.session.execute(list_lists_query().order_by(ContactList.name).limit(200)).scalars())
    return render("contacts/page.html", "contacts/_table.html", status=status, page=page, filters=filters,
                  filtered=any(filters.values()), lists=lists, error=error,
                  form=form or ContactForm(formdata=None))


def _first(messages) -> str:
    while isinstance(messages, (list, dict)):
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages)


@bp.get("")
@org_required
def index():
    return _list()


@bp.post("")
@org_required
def create():
    require("write")
    form = ContactForm()
    if form.validate_on_submit():
        try:
            data = ContactCreateSchema().load(contact_input(form))
            contact, created = service.upsert_contact(data)
        except SchemaError as err:
            apply_schema_errors(form, err.messages)
        except ValidationError as err:
            apply_domain_error(form, err)
        else:
            name = contact.email or contact.phone_number
            flash(f"Contact {name} {'created' if created else 'updated'}.", "success")
            return redirect(url_for(".detail", contact_id=contact.id), 303)
    return _list(form, status=422)


def _detail(contact: Contact, status: int = 200, **context):
    from ..lists import service as lists_service
    static_lists = lists_service.lists_of_contact(contact.id)
    member_of = {lst.id for lst in static_lists}
    addable = [lst for lst in db.session.execute(lists_service.list_lists_query("static")
                                                 .order_by(ContactList.name).limit(200)).scalars()
               if lst.id not in member_of]
    return render("contacts/detail.html", status=status, contact=contact, events=service.contact_events(contact.id),
                  static_lists=static_lists, dynamic_lists=lists_service.dynamic_lists_matching(contact.id),
                  addable_lists=addable, form=PostForm(), **context)


@bp.get("/<contact_id>")
@org_required
def detail(contact_id):
    return _detail(service.get_contact(contact_id))


@bp.post("/<contact_id>/lists")
@org_required
def add_to_list(contact_id):
    """Add the contact to a static list (the list picker on the contact's page)."""
    from ..lists import service as lists_service
    require("write")
    contact = service.get_contact(contact_id)
    form = PostForm()
    if form.validate_on_submit():
        list_id = request.form.get("list_id", "")
        lst = lists_service.get_list(list_id, param="list_id")
        lists_service.add_members(lst.id, [contact.id], single=True)
        flash(f"Added to {lst.name}.", "success")
    return redirect(url_for(".detail", contact_id=contact.id), 303)


@bp.route("/<contact_id>/delete", methods=["GET", "POST"])
@org_required
def delete(contact_id):
    """GDPR erasure, after a confirmation page."""
    require("write")
    contact = service.get_contact(contact_id)
    form = PostForm()
    if form.validate_on_submit():
        name = contact.email or contact.phone_number
        service.delete_contact(contact.id)
        flash(f"Contact {name} erased; the address is now suppressed.", "success")
        return redirect(url_for(".index"), 303)
    return render("contacts/confirm_delete.html", contact=contact, form=form)
