"""Public pages reached from messages (API.md section 15): no login, no API key, the signed token is
the only credential.  The token's tenant is put in scope for the request.

Unsubscribe (RFC 8058): ``GET /u/<token>`` only shows a confirmation page — mail scanners and link
previewers fetch every URL in a message, so a GET must never change anything.  ``POST /u/<token>`` is both
the mailbox provider's one-click request (body ``List-Unsubscribe=One-Click``, no cookies) and the page's
button; it needs no session and no CSRF token (the signed token already proves the link came from the
message), and answers 200 with a page — never a redirect.  These two pages never redirect anywhere, show
no more than a masked address, and set no cookie.

Preference center: ``/u/<token>/preferences`` (linked from the unsubscribe page) shows the recipient's
contact's consent per channel (email, SMS) and saves changes.  It is an ordinary Flask-WTF form — so, unlike
the one-click POST, it needs a CSRF token and sets the session cookie that holds it — and answers the POST
with the page itself (200), never a redirect.

Tracking (``/t/o/<token>`` open pixel, ``/t/c/<token>`` click redirect): high-traffic, no session, no CSRF,
no auth; one indexed lookup and one insert (app.tracking.service.record_hit), committed in the view so a
recording failure never costs the reader the image or the link.  The pixel is a GIF with no-cache headers
whatever the token (a bad one records nothing); a click token that is not ours, or altered, is a 404 page and
never a redirect; a good one is a 302 to exactly the URL that was in the message.
"""
from __future__ import annotations

import base64
import logging
from urllib.parse import quote, urlsplit, urlunsplit

from flask import Blueprint, Response, make_response, render_template, request, url_for
from flask_wtf import FlaskForm

from ..accounts.models import Organization
from ..extensions import csrf, db
from ..tenancy import tenant_scope
from . import service
from .tokens import read_click_token, read_open_token, read_unsubscribe_token

log = logging.getLogger(__name__)

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
                 masked=mask(claims["channel"], claims["recipient"]), already=already,
                 preferences_url=url_for_preferences(token))


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
                 masked=mask(claims["channel"], claims["recipient"]), preferences_url=url_for_preferences(token))


def url_for_preferences(token: str) -> str:
    return url_for("tracking.preferences", token=token)


# --- preference center ----------------------------------------------------------------------------------------

class PreferencesForm(FlaskForm):
    """Only the CSRF token: the per-channel choices are read from the form against a fixed list."""


CHANNEL_LABELS = {"email": "Email", "sms": "Text messages (SMS)"}
BLOCKED_TEXT = {
    "bounce": "Messages to this address bounced, so none are sent to it.",
    "complaint": "This address reported a message as spam, so none are sent to it.",
    "stop_keyword": "This number replied STOP. Text START to receive messages again.",
    "manual": "The sender has stopped messages to this address.",
    "erased": "This address was erased at the owner’s request.",
}


def _preferences_page(token, claims, org, form, *, saved=False, status=200):
    state = service.preference_state(claims["channel"], claims["recipient"])
    channels = [{**row, "label": CHANNEL_LABELS[row["channel"]], "masked": mask(row["channel"], row["address"]),
                 "blocked_text": BLOCKED_TEXT.get(row["blocked"]) if row["blocked"] else None}
                for row in state["channels"]]
    return _page("tracking/preferences.html", status=status, token=token, organization=org.name, form=form,
                 channels=channels, saved=saved, has_contact=state["contact"] is not None,
                 masked=mask(claims["channel"], claims["recipient"]))


@bp.route("/u/<token>/preferences", methods=["GET", "POST"])
def preferences(token):
    """The preference center: GET shows the form; POST (CSRF-checked) saves it and shows it again."""
    resolved = _resolve(token)
    if resolved is None:
        return _not_found()
    claims, org = resolved
    form = PreferencesForm()
    with tenant_scope(claims["organization_id"], claims["mode"]):
        if request.method == "GET":
            return _preferences_page(token, claims, org, form)
        if not form.validate_on_submit():  # the CSRF token is missing, wrong or from another session
            return _preferences_page(token, claims, org, form, status=400)
        choices = {ch: request.form.get(ch) for ch in service.PREFERENCE_CHANNELS
                   if request.form.get(ch) in service.CONSENT_CHOICES}
        service.save_preferences(claims["channel"], claims["recipient"], choices,
                                 message_id=claims["message_id"])
        db.session.flush()
        return _preferences_page(token, claims, org, PreferencesForm(formdata=None), saved=True)


# --- open pixel and click redirect ---------------------------------------------------------------------------

# A 1×1 GIF whose one pixel is the transparent colour (43 bytes; LZW: clear, index 0, end).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
_NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private", "Pragma": "no-cache",
             "Expires": "0", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


def _client() -> dict:
    route = request.access_route
    return {"user_agent": request.headers.get("User-Agent"),
            "ip": route[0] if route else request.remote_addr, "method": request.method}


def _record(event_type: str, claims: dict, url: str | None = None) -> None:
    try:
        service.record_hit(event_type, claims["message_id"], claims["recipient_id"], url=url, **_client())
        db.session.commit()
    except Exception:  # the reader still gets the image or the link
        db.session.rollback()
        log.exception("could not record %s for %s", event_type, claims["message_id"])


@bp.get("/t/o/<token>")
@csrf.exempt
def open_pixel(token):
    claims = read_open_token(token)
    if claims is not None:
        _record("message.opened", claims)
    resp = Response(PIXEL_GIF, mimetype="image/gif")
    resp.headers.update(_NO_CACHE)
    return resp


def _location(url: str) -> str:
    """``url`` as a Location header value: non-ASCII is percent-encoded (UTF-8), an internationalised host
    name IDNA-encoded; everything already valid is kept exactly."""
    if url.isascii():
        return url
    safe = "!#$%&'()*+,-./:;=?@[]~_"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: still the message's URL, just encoded
        return quote(url, safe=safe)
    netloc = parts.netloc
    host = parts.hostname or ""
    if host and not host.isascii():
        try:
            netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
        except UnicodeError:
            pass
    return urlunsplit((parts.scheme, quote(netloc, safe=safe), quote(parts.path, safe=safe),
                       quote(parts.query, safe=safe), quote(parts.fragment, safe=safe)))


@bp.get("/t/c/<token>")
@csrf.exempt
def click(token):
    claims = read_click_token(token)
    if claims is None:
        return _not_found()
    _record("message.clicked", claims, url=claims["url"])
    resp = Response(status=302)
    resp.headers["Location"] = _location(claims["url"])
    resp.headers.update(_NO_CACHE)
    return resp
