"""Contact pages: search, keyset-paged list, create (upsert), detail.

Input is checked by the API's own schemas (ContactCreateSchema, ContactQueryArgs) and written by the same
service, so the dashboard and the API accept and refuse exactly the same things."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import EmailField, StringField, TelField
from wtforms.validators import Length

from ..errors import ValidationError
from ..web.access import org_required, require
from ..web.forms import apply_domain_error, apply_schema_errors
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


def _list(form: ContactForm | None = None, status: int = 200):
    filters = {"email": request.args.get("email", "").strip(), "tag": request.args.get("tag", "").strip()}
    error = None
    try:
        args = ContactQueryArgs().load({k: v for k, v in filters.items() if v})
        stmt = service.list_contacts_query(email=args.get("email"), tag=args.get("tag"))
        page = keyset_page(stmt, Contact, filters)
    except SchemaError as err:
        field, messages = next(iter(err.messages.items()))
        error, page = f"{field.capitalize()} {_first(messages)}", Page(items=[], filters=filters)
    except ValidationError as err:
        error, page = err.message, Page(items=[], filters=filters)
    return render("contacts/page.html", "contacts/_table.html", status=status, page=page, filters=filters,
                  error=error, form=form or ContactForm(formdata=None))


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


@bp.get("/<contact_id>")
@org_required
def detail(contact_id):
    contact = service.get_contact(contact_id)
    return render("contacts/detail.html", contact=contact)
