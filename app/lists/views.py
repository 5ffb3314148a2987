"""List pages: index with member counts, create (static, or dynamic with the rule builder), detail with
members (keyset paged), add/remove members, edit, delete.

The rule builder is server-rendered: each condition row is a few form fields (``c-<i>-field``,
``c-<i>-key``, ``c-<i>-days``, ``c-<i>-op``, ``c-<i>-value``); htmx re-renders the builder when a row is
added or removed or a field changes (so each row offers the ops and inputs of its field), and asks
``/lists/preview-count`` for the live count as you type.  Without JavaScript the same buttons submit the
form and the page comes back with the change.  Rules go through the API's compiler (app.segments), so the
dashboard accepts and refuses exactly what the API does."""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..contacts.models import Contact
from ..contacts.service import list_contacts_query
from ..errors import DomainError, NotFound, ValidationError
from ..extensions import db
from ..segments.compiler import FIELD_OPS, CONSENT, RISK_BANDS, parse_rules
from ..web.access import org_required, require
from ..web.forms import PostForm
from ..web.htmx import render
from ..web.pagination import keyset_page
from . import service
from .models import ContactList

bp = Blueprint("web_lists", __name__, url_prefix="/lists")

FIELD_CHOICES = [
    ("email", "Email"), ("first_name", "First name"), ("last_name", "Last name"), ("tags", "Tags"),
    ("attributes", "Attribute…"), ("consent.email", "Email consent"), ("consent.sms", "SMS consent"),
    ("created_at", "Created"), ("timezone", "Time zone"), ("risk", "Churn risk"), ("score", "Churn score"),
    ("events", "Events in the last N days…"),
]
OP_LABELS = {"eq": "is", "neq": "is not", "in": "is one of", "contains": "contains", "gt": "greater than",
             "gte": "at least", "lt": "less than", "lte": "at most", "exists": "is set", "not_exists": "is not set"}
VALUE_CHOICES = {"consent.email": CONSENT, "consent.sms": CONSENT, "risk": RISK_BANDS}
MAX_ROWS = 50
_ROW = re.compile(r"^c-(\d{1,2})-(field|key|days|op|value)$")
_NUMBER = re.compile(r"^-?\d{1,15}(\.\d{1,15})?$")


class ListForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Length(max=1000)], render_kw={"rows": 2})


# ---------------------------------------------------------------------------------------------- builder

def _blank_row() -> dict:
    return {"field": "tags", "key": "", "days": "30", "op": "contains", "value": ""}


def rows_from_form(form) -> tuple[str, list[dict]]:
    """The builder's rows as posted (in index order), and ``match``."""
    rows: dict[int, dict] = {}
    for name in form:
        m = _ROW.match(name)
        if m:
            rows.setdefault(int(m.group(1)), _blank_row() | {"op": "", "value": ""})[m.group(2)] = form.get(name, "")
    ordered = [rows[i] for i in sorted(rows)][:MAX_ROWS]
    for row in ordered:
        ops = FIELD_OPS.get(row["field"]) or FIELD_OPS["tags"]
        if row["op"] not in ops:
            row["op"] = ops[0]
    match = form.get("match", "all")
    return (match if match in ("all", "any") else "all"), ordered


def _typed(kind: str, op: str, text: str):
    text = text.strip()
    if kind in ("score", "events") or (kind == "attributes" and op not in ("contains",)):
        if _NUMBER.match(text):
            return float(text) if "." in text else int(text)
        if kind == "attributes" and text in ("true", "false"):
            return text == "true"
    return text


def rules_from_rows(match: str, rows: list[dict]) -> dict:
    """The ``{match, conditions}`` rules the rows describe (values typed the way a person means them:
    ``100`` is a number, ``true`` a boolean, a comma list for "is one of")."""
    conditions = []
    for row in rows:
        kind, op = row["field"], row["op"]
        field = kind
        if kind == "attributes":
            field = f"attributes.{row['key'].strip()}"
        elif kind == "events":
            field = f"events.{row['key'].strip()}.count_{row['days'].strip() or '30'}d"
        cond = {"field": field, "op": op}
        if op == "in":
            cond["value"] = [_typed(kind, op, part) for part in row["value"].split(",") if part.strip()]
        elif op not in ("exists", "not_exists"):
            cond["value"] = _typed(kind, op, row["value"])
        conditions.append(cond)
    return {"match": match, "conditions": conditions}


def rows_from_rules(rules: dict | None) -> tuple[str, list[dict]]:
    """Stored rules (either form) as builder rows, for editing; values shown as they were written."""
    rules = rules or {}
    segment = parse_rules(rules)
    if "conditions" in rules or "match" in rules:
        raw_values = [c.get("value") for c in rules.get("conditions", [])]
    else:
        raw_values = list(rules.get("tags", [])) + list(rules.get("attributes", {}).values())
    rows = []
    for cond, raw in zip(segment.conditions, raw_values):
        value = ", ".join(_text(v) for v in raw) if isinstance(raw, list) else _text(raw)
        rows.append({"field": cond.kind, "key": cond.key or cond.event_type or "", "days": str(cond.days or 30),
                     "op": cond.op, "value": value})
    return segment.match, rows


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PARAM = re.compile(r"'segment_rules\.conditions\[(\d+)\]\.(\w+)(\[\d+\])?'")


def human_message(error: DomainError) -> str:
    """The compiler's message in the builder's words: "Condition 2: value must be a number." rather than
    "'segment_rules.conditions[1].value' must be a number."."""
    message = error.message
    m = _PARAM.search(message)
    if m:
        part = {"field": "field", "op": "operator", "value": "value"}.get(m.group(2), m.group(2))
        message = f"Condition {int(m.group(1)) + 1}: {part}" + message[m.end():]
    return message.replace("'segment_rules.match'", "Match")


def _builder_context(match: str, rows: list[dict], error: DomainError | None = None) -> dict:
    bad_row = None
    if error is not None and error.param:
        m = re.search(r"conditions\[(\d+)\]", error.param)
        bad_row = int(m.group(1)) if m else None
    return {"match": match, "rows": rows, "field_choices": FIELD_CHOICES, "op_labels": OP_LABELS,
            "field_ops": FIELD_OPS, "value_choices": VALUE_CHOICES, "bad_row": bad_row,
            "builder_error": human_message(error) if error is not None else None,
            "max_rows": MAX_ROWS}


def _apply_action(rows: list[dict], action: str) -> list[dict]:
    if action == "add" and len(rows) < MAX_ROWS:
        rows.append(_blank_row())
    elif action.startswith("remove-") and action[7:].isdigit():
        index = int(action[7:])
        if 0 <= index < len(rows):
            rows.pop(index)
    return rows


@bp.post("/builder")
@org_required
def builder():
    """Re-render the rule builder (a row added or removed, or a field changed)."""
    match, rows = rows_from_form(request.form)
    rows = _apply_action(rows, request.form.get("action", ""))
    return render("lists/_builder.html", "lists/_builder.html", **_builder_context(match, rows))


@bp.post("/preview-count")
@org_required
def preview_count():
    """The live count of the rules in the builder."""
    match, rows = rows_from_form(request.form)
    try:
        count, error = service.count_segment(rules_from_rows(match, rows)), None
    except ValidationError as err:
        count, error = None, human_message(err)
    return render("lists/_count.html", "lists/_count.html", count=count, error=error)


# ---------------------------------------------------------------------------------------------- pages

@bp.get("")
@org_required
def index():
    page = keyset_page(service.list_lists_query(), ContactList)
    service.attach_member_counts(page.items)
    return render("lists/page.html", "lists/_table.html", page=page)


def _form_page(form: ListForm, list_type: str, match: str, rows: list[dict], lst: ContactList | None = None,
               error: DomainError | None = None, status: int = 200):
    return render("lists/form.html", status=status, form=form, list_type=list_type, lst=lst,
                  **_builder_context(match, rows, error))


def _save(form: ListForm, list_type: str, lst: ContactList | None):
    """Create or update from the posted form; returns a response."""
    match, rows = rows_from_form(request.form)
    action = request.form.get("action", "")
    if action:  # no-JS add/remove row: show the form again with the change
        return _form_page(form, list_type, match, _apply_action(rows, action), lst)
    if not form.validate_on_submit():
        return _form_page(form, list_type, match, rows, lst, status=422)
    data = {"name": form.name.data.strip(), "description": (form.description.data or "").strip() or None}
    if list_type == "dynamic":
        data["segment_rules"] = rules_from_rows(match, rows)
    try:
        if lst is None:
            lst = service.create_list({**data, "list_type": list_type})
            flash(f"List {lst.name} created.", "success")
        else:
            lst = service.update_list(lst.id, data)
            flash(f"List {lst.name} saved.", "success")
    except ValidationError as err:
        if err.param and err.param.startswith("segment_rules"):
            return _form_page(form, list_type, match, rows, lst, error=err, status=422)
        form.form_errors.append(err.message)
        return _form_page(form, list_type, match, rows, lst, status=422)
    return redirect(url_for(".detail", list_id=lst.id), 303)


@bp.route("/new", methods=["GET", "POST"])
@org_required
def create():
    require("write")
    list_type = "dynamic" if request.values.get("type") == "dynamic" else "static"
    form = ListForm()
    if request.method == "POST":
        return _save(form, list_type, None)
    return _form_page(form, list_type, "all", [_blank_row()] if list_type == "dynamic" else [])


@bp.route("/<list_id>/edit", methods=["GET", "POST"])
@org_required
def edit(list_id):
    require("write")
    lst = service.get_list(list_id)
    form = ListForm(obj=lst)
    if request.method == "POST":
        return _save(form, lst.list_type, lst)
    match, rows = rows_from_rules(lst.segment_rules) if lst.list_type == "dynamic" else ("all", [])
    return _form_page(form, lst.list_type, match, rows, lst)


def _detail(lst: ContactList, status: int = 200, **context):
    lst = service.attach_member_counts([lst])[0]
    page = keyset_page(service.members_query(lst.id), Contact, {"list_id": lst.id})
    summary = rows_from_rules(lst.segment_rules) if lst.list_type == "dynamic" else None
    return render("lists/detail.html", "lists/_members.html", status=status, lst=lst, page=page,
                  summary=summary, op_labels=OP_LABELS, field_labels=dict(FIELD_CHOICES), form=PostForm(),
                  **context)


@bp.get("/<list_id>")
@org_required
def detail(list_id):
    return _detail(service.get_list(list_id))


@bp.post("/<list_id>/members")
@org_required
def add_member(list_id):
    """Add a contact by email address or contact id."""
    require("write")
    lst = service.get_list(list_id)
    form = PostForm()
    who = (request.form.get("contact", "") or "").strip()
    if form.validate_on_submit():
        try:
            if not who:
                raise ValidationError("Enter a contact's email address or id.", param="contact")
            if who.startswith("con_"):
                contact_id = who
            else:
                found = db.session.execute(list_contacts_query(email=who).limit(1)).scalar_one_or_none()
                if found is None:
                    raise NotFound(f"No contact with the address {who}.", param="contact")
                contact_id = found.id
            service.add_members(lst.id, [contact_id], single=True)
        except DomainError as err:
            return _detail(lst, status=err.status, member_error=err.message, member_value=who)
        flash("Contact added.", "success")
    return redirect(url_for(".detail", list_id=lst.id), 303)


@bp.post("/<list_id>/members/<contact_id>/remove")
@org_required
def remove_member(list_id, contact_id):
    require("write")
    lst = service.get_list(list_id)
    if PostForm().validate_on_submit():
        service.remove_member(lst.id, contact_id)
        flash("Contact removed from the list.", "success")
    return redirect(url_for(".detail", list_id=lst.id), 303)


@bp.route("/<list_id>/delete", methods=["GET", "POST"])
@org_required
def delete(list_id):
    require("write")
    lst = service.get_list(list_id)
    form = PostForm()
    if form.validate_on_submit():
        service.delete_list(lst.id)
        flash(f"List {lst.name} deleted.", "success")
        return redirect(url_for(".index"), 303)
    return render("lists/confirm.html", lst=lst, form=form)
