"""The dashboard shell: the ``web`` blueprint (overview, sections to come; sign-up, log-in and the
session switches are added to it by app.web.auth)."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, g, redirect, url_for
from flask_login import current_user
from sqlalchemy import func, select

from ..extensions import db
from ..timeutil import utcnow
from .access import org_required
from .htmx import render
from .nav import COMING_SOON, SOON_TEXT

bp = Blueprint("web", __name__)


@bp.get("/")
def home():
    """The overview when logged in; a fresh visitor starts at sign-up (which links to log-in)."""
    if not current_user.is_authenticated:
        return redirect(url_for("web.signup"))
    if g.get("organization") is None:
        abort(403)
    from ..apikeys.service import list_keys_query
    from ..contacts.models import Contact
    from ..requestlog import service as requestlog
    from ..api.models import RequestLog

    keys = list(db.session.execute(list_keys_query()).scalars())
    contacts = db.session.execute(select(func.count(Contact.id))).scalar_one()
    day = requestlog.count_requests_since(utcnow() - timedelta(days=1), mode=g.mode)
    recent = list(db.session.execute(
        requestlog.list_requests_query(mode=g.mode)
        .order_by(RequestLog.created_at.desc(), RequestLog.id.desc()).limit(5)).scalars())
    return render("web/home.html", keys=keys, contacts=contacts, day=day, recent=recent)


@bp.get("/<any(" + ",".join(sorted(COMING_SOON)) + "):section>")
@org_required
def coming_soon(section):
    return render("web/coming_soon.html", item=COMING_SOON[section], text=SOON_TEXT.get(section, ""))
