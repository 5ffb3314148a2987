"""Dashboard forms (Flask-WTF: every form carries a CSRF token) and the glue that turns schema and
service errors into form errors, so the dashboard shows the same rules the API enforces."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField, widgets
from wtforms.fields import SelectMultipleField
from wtforms.validators import DataRequired, InputRequired, Length

from ..accounts.service import MIN_PASSWORD_LENGTH
from ..errors import DomainError


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None: the only redirects a form may ask for.

    Refuses absolute URLs, scheme-relative ``//host`` and ``/\\host`` (browsers read a backslash as a
    slash), and control characters that some browsers strip before parsing."""
    if not target:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SignupForm(FlaskForm):
    org_name = StringField("Organization name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Work email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1024,
                               message=f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")])


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Keep me logged in")
    next = HiddenField()


class PostForm(FlaskForm):
    """A button that only needs its CSRF token (log out, revoke, rotate)."""


class ModeForm(FlaskForm):
    mode = HiddenField(validators=[InputRequired()])
    next = HiddenField()


class SwitchOrganizationForm(FlaskForm):
    organization_id = HiddenField(validators=[InputRequired()])


class OrganizationForm(FlaskForm):
    name = StringField("Organization name", validators=[DataRequired(), Length(max=200)])


def _flatten(messages) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flatten(value)]
    if isinstance(messages, (list, tuple)):
        return [m for value in messages for m in _flatten(value)]
    return [str(messages)]


def add_error(form: FlaskForm, field_name: str | None, message: str) -> None:
    """Attach ``message`` to a field, or to the form as a whole when no field matches."""
    field = form._fields.get(field_name) if field_name else None
    if field is None or field_name == "csrf_token":
        form.form_errors.append(message)
        return
    if not isinstance(field.errors, list):
        field.errors = list(field.errors)
    field.errors.append(message)


def apply_schema_errors(form: FlaskForm, messages: dict, field_map: dict | None = None) -> None:
    """Marshmallow's ``{field: [msg] | {index: [msg]}}`` onto the form's fields."""
    field_map = field_map or {}
    for name, value in messages.items():
        target = field_map.get(name, name)
        label = getattr(form._fields.get(target), "label", None)
        for msg in _flatten(value):
            if msg == "Unknown field.":
                msg = f"Unknown field '{name}'."
            add_error(form, target, msg if label is None else f"{label.text} {_lower_first(msg)}")


def apply_domain_error(form: FlaskForm, err: DomainError, field_map: dict | None = None) -> None:
    field_map = field_map or {}
    add_error(form, field_map.get(err.param, err.param), err.message)


def _lower_first(text: str) -> str:
    if text[:1].isupper() and not text[:2].isupper():
        return text[0].lower() + text[1:]
    return text
