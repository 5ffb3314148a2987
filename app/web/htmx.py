"""Page or fragment: the one place the dashboard decides what an htmx request gets back.

A request made by htmx for one swap target (``HX-Request`` without ``HX-Boosted``, and not a history
restore after a cache miss) gets the partial; everything else — a plain browser request, a boosted link or
form, a history restore — gets the whole page, which itself includes the partial.  Because the same URL
answers with two bodies, every answer says ``Vary: HX-Request`` (and the two headers that refine it) so no
cache hands one to the other.
"""
from __future__ import annotations

from flask import make_response, render_template

from ..extensions import htmx


def wants_fragment() -> bool:
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


VARY = ("HX-Request", "HX-Boosted", "HX-History-Restore-Request")


def add_vary(response):
    for header in VARY:
        response.vary.add(header)
    return response


def render(page: str, fragment: str | None = None, /, status: int = 200, **context):
    """Render ``fragment`` for an htmx swap, ``page`` otherwise; both with ``Vary: HX-Request``.
    (Positional-only, so ``page`` and ``fragment`` stay free as names in the template context.)"""
    template = fragment if fragment and wants_fragment() else page
    return add_vary(make_response(render_template(template, **context), status))
