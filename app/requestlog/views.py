"""Request log pages: a filterable, keyset-paged table of API requests and one request's detail."""
from __future__ import annotations

import json

from flask import Blueprint, g, request

from ..api.models import RequestLog
from ..errors import ValidationError
from ..web.access import org_required
from ..web.htmx import render
from ..web.pagination import Page, keyset_page
from . import service

bp = Blueprint("web_requests", __name__, url_prefix="/requests")

STATUS_CLASSES = [("", "Any status"), ("2xx", "2xx success"), ("4xx", "4xx client error"),
                  ("5xx", "5xx server error")]
STATUS_CODES = ["200", "201", "202", "400", "401", "402", "403", "404", "409", "413", "422", "429", "500"]


@bp.get("")
@org_required
def index():
    filters = {"status": request.args.get("status", "").strip().lower(), "path": request.args.get("path", "").strip()}
    error = None
    try:
        stmt = service.list_requests_query(mode=g.mode, status=filters["status"], path=filters["path"])
        page = keyset_page(stmt, RequestLog, filters)
    except ValidationError as err:
        error, page = err, Page(items=[], filters=filters)
    codes = STATUS_CODES
    if filters["status"] and filters["status"] not in codes and not error and filters["status"][-2:] != "xx":
        codes = sorted(codes + [filters["status"]])  # an exact code typed into the URL stays selected
    return render("requestlog/page.html", "requestlog/_table.html", page=page, filters=filters, error=error,
                  status_classes=STATUS_CLASSES, status_codes=codes)


@bp.get("/<request_id>")
@org_required
def detail(request_id):
    row = service.get_request(request_id)
    return render("requestlog/detail.html", row=row, request_body=_pretty(row.request_body),
                  response_body=_pretty(row.response_body))


def _pretty(body: str | None) -> str | None:
    """Indented JSON when the (possibly truncated) body parses, the text as stored otherwise."""
    if not body:
        return body
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body
