"""Organization settings: who is in it, and creating another organization."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, session, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..web.access import org_required
from ..web.forms import OrganizationForm
from ..web.htmx import render
from . import service
from .models import Membership, User

bp = Blueprint("web_accounts", __name__, url_prefix="/settings")


def _members() -> list[tuple[Membership, User]]:
    return list(db.session.execute(
        select(Membership, User).join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == g.organization.id).order_by(Membership.created_at)).all())


def _page(form: OrganizationForm | None = None, status: int = 200):
    return render("accounts/settings.html", status=status, members=_members(),
                  form=form or OrganizationForm(formdata=None))


@bp.get("")
@org_required
def settings():
    return _page()


@bp.post("/organizations")
@org_required
def create_organization():
    """A new organization with the current user as its owner; the session switches to it."""
    form = OrganizationForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    org = service.create_organization(form.name.data)
    service.add_member(org.id, current_user.email, "owner")
    session["org_id"] = org.id
    session["mode"] = "live"
    flash(f"Organization “{org.name}” created. Create an API key to start sending.", "success")
    return redirect(url_for("web.home"), 303)
