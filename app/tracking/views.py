"""Public pages reached from messages (API.md section 15): no login, no API key, the signed token is
the only credential.  The token's tenant is put in scope for the request.

Unsubscribe (RFC 8058): ``GET /u/<token>`` only shows a confirmation page — mail scanners and link
previewers fetch every URL in a message, so a GET must never change anything.  ``POST /u/<token>`` is both
the mailbox provider's one-click request (body ``List-Unsubscribe=One-Click``, no cookies) and the page's
button; it needs no session and no CSRF token (the signed token already proves the link came from the
message), and answers 200 with a page — never a redirect.  These pages never redirect anywhere, show no
more than a masked address, and set no cookie.
"""
from __future__ import annotations

from flask import Blueprint, make_response, render_template, request

from ..accounts.models import Organization
from ..extensions import csrf, db
from ..tenancy import tenant_scope
from . import service
from .tokens import read_unsubscribe_token

bp = Blueprint("tracking", __name__)


def mask(channel: str, recipient: str) -> str:
    """``a•••@example.com`` / ``+1•••••••0123``: enough for a person to recognise, not to harvest."""
    if channel == "email":
        local, _, domain = recipient.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    return f"{recipient[:2]}•••{recipient[-4:]}" if len(recipient) > 6 else "•••"


def _page(template: str, status: int = 200, **context):
    resp = make_response(render_template(template, **context), status)
    # The token is in the URL: never cached, never indexed, never sent on as a Referer.
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex, nofollow"
    return resp


def _resolve(token: str):
    """(claims, organization) for a valid token, else None."""
    claims = read_unsubscribe_token(token)
    if claims is None:
        return None
    org = db.session.get(Organization, claims["organization_id"])
    return (claims, org) if org is not None else None


def _not_found():
    return _page("tracking/invalid.html", status=404)


@bp.get("/u/<token>")
def unsubscribe_page(token):
    """The confirmation page.  Reads only."""
    resolved = _resolve(token)
    if resolved is None:
        return _not_found()
    claims, org = resolved
    with tenant_scope(claims["organization_id"], claims["mode"]):
        already = service.is_unsubscribed(claims["channel"], claims["recipient"])
    return _page("tracking/unsubscribe.html", token=token, organization=org.name, channel=claims["channel"],
                 masked=mask(claims["channel"], claims["recipient"]), already=already)


@bp.post("/u/<token>")
@csrf.exempt
def unsubscribe(token):
    """Unsubscribe (one-click or the page's button).  The request's after-hook commits, as for every page."""
    resolved = _resolve(token)
    if resolved is None:
        return _not_found()
    claims, org = resolved
    one_click = request.form.get("List-Unsubscribe", "").strip() == "One-Click"
    with tenant_scope(claims["organization_id"], claims["mode"]):
        service.unsubscribe(claims["channel"], claims["recipient"], message_id=claims["message_id"],
                            source="one_click" if one_click else "page")
    return _page("tracking/unsubscribed.html", organization=org.name, channel=claims["channel"],
                 masked=mask(claims["channel"], claims["recipient"]))
