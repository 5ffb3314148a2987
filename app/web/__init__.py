"""The dashboard: server-rendered pages with htmx layered on."""
from __future__ import annotations

from flask import Flask, request
from flask_login import current_user
from markupsafe import Markup

from ..timeutil import rfc3339

# Everything is served from this origin (htmx is vendored); no inline script, no eval.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def register_web(app: Flask) -> None:
    from ..accounts import views as accounts_views
    from ..apikeys import views as apikeys_views
    from ..broadcasts import views as broadcasts_views
    from ..contacts import views as contacts_views
    from ..imports import views as imports_views
    from ..lists import views as lists_views
    from ..domains import views as domains_views
    from ..messages import views as messages_views
    from ..suppressions import views as suppressions_views
    from ..templates import views as templates_views
    from ..tracking import views as tracking_views
    from ..requestlog import views as requestlog_views
    from ..webhooks import views as webhooks_views
    from . import auth, views
    from .access import can
    from .nav import NAV

    auth.init_app(app)
    app.register_blueprint(views.bp)
    for module in (apikeys_views, contacts_views, requestlog_views, accounts_views, messages_views,
                   templates_views, suppressions_views, domains_views, tracking_views, webhooks_views, imports_views, broadcasts_views,
                   lists_views):
        app.register_blueprint(module.bp)

    app.add_template_global(NAV, "nav_sections")
    app.add_template_global(can, "can")
    app.add_template_filter(_datetime, "datetime")
    app.after_request(_dashboard_headers)


def _datetime(value) -> Markup:
    """``<time datetime="…Z">2026-06-12 09:24 UTC</time>``, or an em dash for None."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    stamp = rfc3339(value)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(stamp, value.strftime("%Y-%m-%d %H:%M UTC"))


def _dashboard_headers(response):
    if request.path.startswith(("/api/", "/static/")):
        return response
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if current_user.is_authenticated:
        # Pages show secrets once and tenant data: never from a cache, never from the back/forward cache.
        response.headers["Cache-Control"] = "no-store"
    if response.headers.get("HX-Retarget") == "#flash":
        # An error shown in the flash area leaves the page where it was: no history entry for it.
        response.headers["HX-Push-Url"] = "false"
    return response
