"""The domain error hierarchy and the one place that renders errors.

Services raise these; the API renders the contract's JSON shape, the dashboard a flash fragment (htmx) or
an error page.  Codes and types are those of API.md section 1.
"""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = 400
    type = "api_error"
    code = "internal_error"

    def __init__(self, message: str | None = None, *, code: str | None = None, param: str | None = None,
                 status: int | None = None, headers: dict | None = None):
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code:
            self.code = code
        if status:
            self.status = status
        self.param = param
        self.headers = headers or {}


class ValidationError(DomainError):
    """The request is malformed."""
    status, type, code = 400, "validation_error", "invalid_request"


class UnprocessableError(DomainError):
    """The request is well formed but the current state refuses it."""
    status, type, code = 422, "validation_error", "unprocessable"


class AuthenticationError(DomainError):
    """No valid API key provided."""
    status, type, code = 401, "authentication_error", "unauthorized"


class PermissionDenied(DomainError):
    """This key or user may not perform this operation."""
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(DomainError):
    """The resource does not exist."""
    status, type, code = 404, "not_found_error", "not_found"


class Conflict(DomainError):
    """The request conflicts with the current state."""
    status, type, code = 409, "conflict_error", "conflict"


class IdempotencyError(DomainError):
    status, type, code = 409, "idempotency_error", "idempotency_key_reused"


class RateLimited(DomainError):
    """Too many requests."""
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class BillingError(DomainError):
    status, type, code = 402, "billing_error", "spend_cap_exceeded"


class PayloadTooLarge(DomainError):
    """The request body exceeds the size limit."""
    status, type, code = 413, "validation_error", "payload_too_large"


# HTTP statuses raised by Flask/werkzeug itself, mapped to the contract.
_HTTP_MAP = {
    400: ("validation_error", "invalid_request"),
    401: ("authentication_error", "unauthorized"),
    403: ("permission_error", "forbidden"),
    404: ("not_found_error", "not_found"),
    405: ("validation_error", "method_not_allowed"),
    406: ("validation_error", "invalid_request"),
    409: ("conflict_error", "conflict"),
    413: ("validation_error", "payload_too_large"),
    415: ("validation_error", "unsupported_media_type"),
    422: ("validation_error", "invalid_request"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def is_api_request() -> bool:
    return request.path == "/api/v1" or request.path.startswith("/api/v1/")


def error_body(status: int, type_: str, code: str, message: str, param: str | None = None) -> dict:
    return {"error": {
        "type": type_, "code": code, "message": message, "param": param, "status": status,
        "doc_url": f"/docs/errors#{code}", "request_id": getattr(g, "request_id", None),
    }}


def api_error_response(status: int, type_: str, code: str, message: str, param: str | None = None,
                       headers: dict | None = None):
    resp = make_response(jsonify(error_body(status, type_, code, message, param)), status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def render_error(status: int, type_: str, code: str, message: str, param: str | None = None,
                 headers: dict | None = None):
    """The one renderer: JSON under /api/v1, a flash fragment for htmx, a page otherwise."""
    if is_api_request() or request.path.startswith("/api/"):
        return api_error_response(status, type_, code, message, param, headers)
    if request.headers.get("HX-Request") == "true":
        resp = make_response(render_template("errors/_flash.html", message=message, status=status), status)
        # Let htmx swap the fragment into the flash area rather than the original target.
        resp.headers["HX-Retarget"] = "#flash"
        resp.headers["HX-Reswap"] = "innerHTML"
    else:
        resp = make_response(render_template("errors/page.html", message=message, status=status), status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _handle_domain_error(err: DomainError):
    return render_error(err.status, err.type, err.code, err.message, err.param, err.headers)


def handle_http_exception(err: HTTPException):
    status = err.code or 500
    if status >= 500:
        return render_error(status, "api_error", "internal_error", "An unexpected error occurred.")
    data = getattr(err, "data", None) or {}
    if status in (400, 422) and "messages" in data:
        # webargs/marshmallow: a malformed body or query is a 400 naming the field (not smorest's 422).
        from .api.validation import describe
        param, code, message = describe(data["messages"], data.get("schema"))
        return render_error(400, "validation_error", code, message, param)
    type_, code = _HTTP_MAP.get(status, ("validation_error", "invalid_request"))
    headers = {k: v for k, v in err.get_headers() if k.lower() not in {"content-type", "content-length"}}
    message = {
        404: "No such route." if request.url_rule is None else "The resource does not exist.",
        405: f"Method {request.method} is not allowed on this path.",
        413: "The request body is too large.",
    }.get(status, err.description or "Bad request.")
    return render_error(status, type_, code, message, None, headers)


def _handle_unexpected(err: Exception):
    if isinstance(err, HTTPException):
        return handle_http_exception(err)
    log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                  getattr(g, "request_id", None))
    return render_error(500, "api_error", "internal_error",
                        "An unexpected error occurred. Retry with backoff; quote the request id if it persists.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
