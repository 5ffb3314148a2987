"""Dashboard sessions: who is logged in, which organization and mode they are looking at.

Sign-up, log-in and log-out live here, with the two session switches (organization, live/test mode).
Every mutating dashboard request is CSRF-checked before any view runs.
"""
from __future__ import annotations

import re

from flask import Flask, Response, flash, g, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..errors import Conflict, ValidationError
from ..extensions import csrf, db, htmx, login_manager
from ..tenancy import Tenant, reset_tenant, set_tenant
from .access import org_required
from .forms import (LoginForm, ModeForm, PostForm, SignupForm, SwitchOrganizationForm, apply_domain_error,
                    safe_next)
from .htmx import render
from .views import bp


@login_manager.user_loader
def _load_user(user_id: str):
    from ..accounts.models import User
    return db.session.get(User, user_id)


@login_manager.unauthorized_handler
def _unauthorized():
    """Send the browser to log in, then back here.  An htmx swap gets ``HX-Redirect`` on a 401 (a 302
    would be followed inside the XHR, and the login form squeezed into a table)."""
    target = url_for("web.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
    flash(login_manager.login_message, login_manager.login_message_category)
    if htmx and not htmx.boosted:
        return Response(status=401, headers={"HX-Redirect": target})
    return redirect(target)


def _scope_session(user_id: str) -> None:
    """Put the session's organization and mode (and the tenant) in scope for this request."""
    from ..accounts.service import memberships_for
    memberships = memberships_for(user_id)
    if not memberships:
        return
    org_id = session.get("org_id")
    m = next((m for m in memberships if m.organization_id == org_id), memberships[0])
    session["org_id"] = m.organization_id
    mode = session.get("mode", "live")
    g.membership = m
    g.memberships = memberships
    g.organization = m.organization
    g.mode = mode if mode in ("live", "test") else "live"
    previous = g.pop("tenant_token", None)
    if previous is not None:  # re-scoping after log-in in the same request: undo the first scope
        reset_tenant(previous)
    g.tenant_token = set_tenant(Tenant(m.organization_id, g.mode))


def _dashboard_tenant():
    if request.path.startswith("/api/") or request.path.startswith("/static/"):
        return
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not request.path.startswith(("/u/", "/t/")):
        csrf.protect()
    if not current_user.is_authenticated:
        return
    _scope_session(current_user.id)


def _start_session(user, remember: bool = False, organization_id: str | None = None) -> None:
    login_user(user, remember=remember)
    session.pop("mode", None)
    if organization_id:
        session["org_id"] = organization_id
    _scope_session(user.id)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an organization, its owner and two keys; log in; show the keys once."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("web.home"))
    form = SignupForm()
    if form.validate_on_submit():
        from ..accounts.service import create_account
        try:
            result = create_account(form.org_name.data, form.email.data, form.password.data)
        except (ValidationError, Conflict) as err:
            apply_domain_error(form, err, {"org": "org_name"})
        else:
            _start_session(result["user"], organization_id=result["organization_id"])
            return render("accounts/welcome.html", status=201, live_key=result["live_api_key"],
                          test_key=result["test_api_key"])
    status = 422 if form.is_submitted() else 200
    return render("accounts/signup.html", status=status, form=form)


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(form.next.data or url_for("web.home"))
    if form.validate_on_submit():
        from ..accounts.service import authenticate_user
        user = authenticate_user(form.email.data, form.password.data)
        if user is not None:
            _start_session(user, remember=form.remember.data)
            return redirect(safe_next(form.next.data) or url_for("web.home"), 303)
        form.form_errors.append("Wrong email or password.")
    status = 422 if form.is_submitted() else 200
    return render("accounts/login.html", status=status, form=form)


@bp.post("/logout")
def logout():
    PostForm()  # the CSRF token was checked before the view; the form documents that it is needed
    logout_user()
    for key in ("org_id", "mode"):
        session.pop(key, None)
    flash("You have been logged out.", "info")
    return redirect(url_for("web.login"), 303)


@bp.post("/session/organization")
@org_required
def switch_organization():
    """Look at another organization the user belongs to (never one they don't: 404)."""
    from ..accounts.service import membership
    form = SwitchOrganizationForm()
    if not form.validate_on_submit():
        raise ValidationError("Choose an organization.", param="organization_id")
    m = membership(current_user.id, form.organization_id.data)
    session["org_id"] = m.organization_id
    flash(f"Switched to {m.organization.name}.", "success")
    return redirect(url_for("web.home"), 303)


@bp.post("/session/mode")
@org_required
def set_mode():
    """Switch between live and test data; stay on the same page."""
    form = ModeForm()
    if not form.validate_on_submit() or form.mode.data not in ("live", "test"):
        raise ValidationError("Mode must be live or test.", param="mode")
    session["mode"] = form.mode.data
    return redirect(_same_section(safe_next(form.next.data)) or url_for("web.home"), 303)


def _same_section(path: str | None) -> str | None:
    """A detail page (``/contacts/con_…``) does not exist in the other mode: go back to its list."""
    if not path:
        return None
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) > 1 and re.match(r"^[a-z]+_[A-Za-z0-9]{8,}$", parts[1]):
        return "/" + parts[0]  # an object of this mode; `/messages/new` and the like exist in both
    return path


def init_app(app: Flask) -> None:
    login_manager.login_view = "web.login"
    login_manager.login_message = "Log in to see this page."
    login_manager.login_message_category = "info"
    app.before_request(_dashboard_tenant)
