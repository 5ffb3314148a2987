"""API key pages: create (secret shown once), list, revoke, rotate — through the API's own service."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Length

from ..api.scopes import PRESETS, SCOPES
from ..errors import UnprocessableError, ValidationError
from ..web.access import org_required, require
from ..web.forms import MultiCheckboxField, PostForm, apply_domain_error, apply_schema_errors
from ..web.htmx import render
from . import service
from .models import ApiKey
from .schemas import ApiKeyCreateSchema

bp = Blueprint("web_keys", __name__, url_prefix="/api-keys")

PRESET_HELP = {
    "send": "Send messages, read them, upsert contacts, use templates.",
    "read": "Read-only access to every resource.",
    "admin": "Everything, including managing keys, domains and billing.",
    "custom": "Pick scopes one by one.",
}


class ApiKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)],
                       render_kw={"placeholder": "e.g. Production server"})
    preset = RadioField("Access", default="send",
                        choices=[SelectChoice("send", "Send"), SelectChoice("read", "Read only"),
                                 SelectChoice("admin", "Full access"), SelectChoice("custom", "Custom")])
    scopes = MultiCheckboxField("Scopes", choices=[SelectChoice(s) for s in SCOPES])
    mode = RadioField("Mode", choices=[SelectChoice("live", "Live"), SelectChoice("test", "Test")])


PRESET_BADGES = {"admin": ("all scopes", "accent"), "send": ("send", "info"), "read": ("read only", "neutral")}


def preset_of(scopes: list[str]) -> str | None:
    """The preset a key's scopes amount to, if any (keys store the expanded list)."""
    return next((name for name, preset in PRESETS.items() if sorted(preset) == sorted(scopes or [])), None)


def _keys() -> list[ApiKey]:
    from ..extensions import db
    stmt = service.list_keys_query().order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    return list(db.session.execute(stmt).scalars())


def _page(form: ApiKeyForm | None = None, status: int = 200, **context):
    if form is None:
        form = ApiKeyForm(mode=g.mode)
    return render("apikeys/page.html", status=status, form=form, keys=_keys(), preset_of=preset_of,
                  preset_badges=PRESET_BADGES, preset_help=PRESET_HELP, **context)


@bp.get("")
@org_required
def index():
    return _page()


@bp.post("")
@org_required
def create():
    require("manage_keys")
    form = ApiKeyForm()
    if form.validate_on_submit():
        data = {"name": form.name.data, "test_mode": form.mode.data == "test"}
        if form.preset.data == "custom":
            data["scopes"] = form.scopes.data or []
        else:
            data["scope"] = form.preset.data
        try:
            data = ApiKeyCreateSchema().load(data)
            key, secret = service.create_key(g.organization.id, name=data["name"], test_mode=data["test_mode"],
                                             scopes=data.get("scopes"), preset=data.get("scope"),
                                             created_by=current_user.id)
        except SchemaError as err:
            apply_schema_errors(form, err.messages, {"scope": "preset"})
        except (ValidationError, UnprocessableError) as err:
            apply_domain_error(form, err, {"scope": "preset"})
        else:
            # The secret exists in clear only in this response: never in the session, a flash or a redirect.
            return _page(status=201, new_key=key, secret=secret, secret_action="created")
    return _page(form, status=422)


@bp.route("/<key_id>/revoke", methods=["GET", "POST"])
@org_required
def revoke(key_id):
    require("manage_keys")
    key = service.get_key(key_id)
    form = PostForm()
    if form.validate_on_submit():
        service.revoke_key(key.id)
        flash(f"Key “{key.name}” ({key.key_prefix}…) was revoked. Requests using it now get 401.", "success")
        return redirect(url_for(".index"), 303)
    return render("apikeys/confirm.html", key=key, form=form, action="revoke")


@bp.route("/<key_id>/rotate", methods=["GET", "POST"])
@org_required
def rotate(key_id):
    require("manage_keys")
    key = service.get_key(key_id)
    form = PostForm()
    if form.validate_on_submit():
        key, secret = service.rotate_key(key.id)
        return _page(new_key=key, secret=secret, secret_action="rotated")
    return render("apikeys/confirm.html", key=key, form=form, action="rotate")
