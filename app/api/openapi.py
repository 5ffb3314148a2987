"""The OpenAPI document: flask-smorest's spec, plus what every /api/v1 operation shares.

Two documented extension points, no patching of the spec after the fact:

- ``PostlineApi`` is flask-smorest's ``Api`` with the contract's error body as its ``ERROR_SCHEMA``: the
  per-status error responses it registers (``BAD_REQUEST``, ``NOT_FOUND``, … and ``DEFAULT_ERROR``) all
  describe ``{"error": {type, code, message, param, status, doc_url, request_id}}``.  It also teaches the
  marshmallow converter our field types (emails, E.164 phones, metadata, constants).
- ``ConventionsPlugin`` is an apispec plugin whose ``operation_helper`` runs for every operation as its
  blueprint is registered: it adds the shared error responses (400/401/403/404/409/429/500), swaps
  flask-smorest's automatic 422 for our 400, adds the ``Version`` and ``Idempotency-Key`` request headers,
  the ``X-Request-Id`` / ``X-RateLimit-*`` / ``Version`` response headers, an ``operationId`` and the
  scope the operation requires (read from ``require_scope``).

Blueprints need nothing special: ``api.register_blueprint(blp)`` is enough.
"""
from __future__ import annotations

import http
import re

import flask
from apispec import BasePlugin
from flask_smorest import Api
from marshmallow import Schema, fields

from .fields import METADATA_MAX_KEYS, METADATA_MAX_VALUE_LEN, Email, Metadata, Phone

ERROR_TYPES = ("validation_error", "authentication_error", "permission_error", "not_found_error",
               "conflict_error", "idempotency_error", "rate_limit_error", "billing_error", "api_error")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
MUTATING_METHODS = ("post", "put", "patch", "delete")
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"


class ErrorDetailSchema(Schema):
    type = fields.String(required=True, metadata={"enum": list(ERROR_TYPES),
                                                  "description": "The error family; matches the HTTP status."})
    code = fields.String(required=True, metadata={"description": "Machine-readable code, e.g. `invalid_email`.",
                                                  "example": "invalid_email"})
    message = fields.String(required=True, metadata={"description": "A human-readable explanation."})
    param = fields.String(required=True, allow_none=True,
                          metadata={"description": "The offending field or header (`to`, `contacts[3].email`, "
                                                   "`Idempotency-Key`), or null."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status, repeated.",
                                                     "minimum": 400, "maximum": 599})
    doc_url = fields.String(required=True, metadata={"description": "Where this code is documented."})
    request_id = fields.String(required=True, metadata={"description": "Equal to the `X-Request-Id` header.",
                                                        "pattern": "^req_"})


class ErrorSchema(Schema):
    """Every error, whatever its status."""

    error = fields.Nested(ErrorDetailSchema, required=True)


# The error responses every operation documents, with the contract's wording.
COMMON_ERRORS = {
    400: "Malformed request: invalid JSON, a wrong type, a missing or unknown field, a bad query parameter "
         "or header (`invalid_request`, `invalid_email`, `invalid_phone`, `invalid_version` …). "
         "`error.param` names the field.",
    401: "Missing, unknown, revoked or disabled API key (`unauthorized`).",
    403: "The key lacks the scope this operation needs (`forbidden`), or plain HTTP where HTTPS is "
         "required (`https_required`).",
    404: "No such object, or it belongs to another organization or mode (`not_found`).",
    409: "A conflict with the current state, or an `Idempotency-Key` reused with a different request "
         "(`idempotency_key_reused`) or still in progress (`idempotency_key_in_use`).",
    429: "Rate limit exceeded (`rate_limit_exceeded`): retry after `Retry-After` seconds.",
    500: "Unexpected error (`internal_error`); nothing leaks.  Retry with backoff and quote the request id.",
}
DEFAULT_ERROR_DESCRIPTION = ("Any other error, in the same shape: 402 `spend_cap_exceeded`, 405, 413 "
                             "`payload_too_large`, 415, 422 for well-formed requests the current state refuses.")

# Response headers (components/headers).
HEADERS = {
    "XRequestId": {"description": "This request's id; error bodies repeat it.", "required": True,
                   "schema": {"type": "string", "pattern": "^req_", "example": "req_8sK2c91Lp0"}},
    "XRateLimitLimit": {"description": "The key's burst size (token bucket capacity).",
                        "schema": {"type": "integer", "minimum": 0}},
    "XRateLimitRemaining": {"description": "Requests left in the bucket right now.",
                            "schema": {"type": "integer", "minimum": 0}},
    "XRateLimitReset": {"description": "Seconds until the bucket is full again.",
                        "schema": {"type": "integer", "minimum": 0}},
    "Version": {"description": "The API version this request was served with.",
                "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}},
    "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
    "IdempotentReplayed": {"description": "`true` when this is the stored answer to an earlier request with "
                                          "the same `Idempotency-Key`.",
                           "schema": {"type": "string", "enum": ["true"]}},
}
_RATE_LIMIT_HEADERS = {"X-RateLimit-Limit": "XRateLimitLimit", "X-RateLimit-Remaining": "XRateLimitRemaining",
                       "X-RateLimit-Reset": "XRateLimitReset"}
_ERROR_HEADERS = {"X-Request-Id": "XRequestId"}


def _success_headers(method: str) -> dict:
    headers = {"X-Request-Id": "XRequestId", "Version": "Version", **_RATE_LIMIT_HEADERS}
    if method in MUTATING_METHODS:
        headers["Idempotent-Replayed"] = "IdempotentReplayed"
    return headers


def _error_headers(status: int) -> dict:
    headers = dict(_ERROR_HEADERS)
    if status == 429:
        headers.update({"Retry-After": "RetryAfter", **_RATE_LIMIT_HEADERS})
    return headers

REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{ title }} reference</title>
    <link rel="icon" href="data:,">
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="{{ spec_url }}" expand-responses="200,201,202" required-props-first
           json-sample-expand-level="3"></redoc>
    <script src="{{ redoc_url }}"></script>
  </body>
</html>
"""
REDOC_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'")


def _camel(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", " ", name).title().replace(" ", "")


class ConventionsPlugin(BasePlugin):
    """apispec plugin: document the conventions every /api/v1 operation shares."""

    def __init__(self):
        self.app = None
        self._operation_ids: set[str] = set()

    def init_spec(self, spec):
        super().init_spec(spec)
        self.spec = spec
        self._operation_ids = set()

    def _view_method(self, rule, method: str):
        if self.app is None or rule is None:
            return None
        view = self.app.view_functions.get(rule.endpoint)
        view_class = getattr(view, "view_class", None)
        return getattr(view_class, method, None) if view_class is not None else view

    def _operation_id(self, rule, method: str) -> str:
        if rule is None:
            return method
        blueprint, _, view = rule.endpoint.rpartition(".")
        candidate = method + view
        if candidate in self._operation_ids:
            candidate = method + _camel(blueprint) + view
        self._operation_ids.add(candidate)
        return candidate

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        for method, operation in (operations or {}).items():
            if method not in HTTP_METHODS:
                continue
            responses = {str(code): resp for code, resp in operation.get("responses", {}).items()}
            # flask-smorest documents a 422 for every @arguments; the contract answers 400 instead.
            if responses.get("422") == http.HTTPStatus.UNPROCESSABLE_ENTITY.name:
                del responses["422"]
            for status in COMMON_ERRORS:
                responses.setdefault(str(status), http.HTTPStatus(status).name)
            for code, resp in responses.items():
                if code.startswith("2") and isinstance(resp, dict):
                    resp.setdefault("headers", {}).update(_success_headers(method))
            operation["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0])))

            # A PATCH (or a partial PUT) without a body changes nothing and answers the object (webargs
            # reads it as `{}`).
            if method in ("patch", "put") and isinstance(operation.get("requestBody"), dict):
                operation["requestBody"]["required"] = False

            parameters = operation.setdefault("parameters", [])
            parameters.append("Version")
            if method in MUTATING_METHODS:
                parameters.append("IdempotencyKey")

            operation.setdefault("operationId", self._operation_id(rule, method))
            scope = getattr(self._view_method(rule, method), "required_scope", None)
            if scope:
                operation["x-required-scope"] = scope
                note = f"Requires the `{scope}` scope."
                operation["description"] = (operation.get("description", "") + "\n\n" + note).strip()


def _field_attributes(converter, field, **kwargs) -> dict:
    """OpenAPI attributes for our marshmallow field types (app/api/fields.py)."""
    if isinstance(field, fields.Constant) and isinstance(field.constant, str):
        return {"type": "string", "enum": [field.constant]}
    if isinstance(field, Phone):
        return {"pattern": E164_PATTERN, "example": "+14155550123"}
    if isinstance(field, Metadata):
        return {"maxProperties": METADATA_MAX_KEYS,
                "additionalProperties": {"type": "string", "maxLength": METADATA_MAX_VALUE_LEN}}
    return {}


class PostlineApi(Api):
    """flask-smorest's Api with the contract's errors and conventions in its OpenAPI document."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, *args, **kwargs):
        self.conventions = ConventionsPlugin()
        super().__init__(*args, **kwargs)

    def init_app(self, app, *, spec_kwargs=None):
        self.conventions.app = app
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs["extra_plugins"] = [*spec_kwargs.get("extra_plugins", ()), self.conventions]
        super().init_app(app, spec_kwargs=spec_kwargs)

    def _init_spec(self, **kwargs):
        super()._init_spec(**kwargs)
        self.ma_plugin.map_to_openapi_type(Email, "string", "email")
        self.ma_plugin.converter.add_attribute_function(_field_attributes)
        spec = self.spec
        for name, header in HEADERS.items():
            spec.components.header(name, header)
        spec.components.parameter("Version", "header", {
            "name": "Version", "required": False,
            "schema": {"type": "string", "enum": list(self._app.config.get("API_VERSIONS") or ())},
            "description": "API version (`YYYY-MM-DD`). Defaults to the version your organization is pinned "
                           "to; an unknown one is a 400 `invalid_version`."})
        spec.components.parameter("IdempotencyKey", "header", {
            "name": "Idempotency-Key", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Makes the request safe to retry for 24 h: the same key with the same body replays "
                           "the first answer (with `Idempotent-Replayed: true`); with a different body → 409 "
                           "`idempotency_key_reused`; while the first is still running → 409 "
                           "`idempotency_key_in_use`."})

    def _register_responses(self):
        """Lazily register one error response per HTTP status (``BAD_REQUEST``, …) and ``DEFAULT_ERROR``:
        components an operation does not use stay out of the document."""
        for status in http.HTTPStatus:
            if status < 400:
                self.spec.components.response(status.name, {"description": status.phrase}, lazy=True)
                continue
            response = {
                "description": COMMON_ERRORS.get(status, status.phrase),
                "headers": _error_headers(status),
                "content": {self.DEFAULT_RESPONSE_CONTENT_TYPE: {"schema": self.ERROR_SCHEMA}},
            }
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, {
            "description": DEFAULT_ERROR_DESCRIPTION,
            "headers": _error_headers(0),
            "content": {self.DEFAULT_RESPONSE_CONTENT_TYPE: {"schema": self.ERROR_SCHEMA}},
        }, lazy=True)

    def _register_pagination_header(self):
        """Our lists use the contract's cursor envelope, not flask-smorest's ``X-Pagination`` header."""

    def _openapi_redoc(self):
        """The docs UI: ReDoc from our own static files.  The CSP keeps every request on this host (the
        bundle's footer would otherwise fetch a logo from a CDN)."""
        html = flask.render_template_string(
            REDOC_PAGE, title=self.spec.title, redoc_url=self._redoc_url,
            spec_url=flask.url_for(f"{self._make_doc_blueprint_name()}.openapi_json"))
        response = flask.make_response(html)
        response.headers["Content-Security-Policy"] = REDOC_CSP
        return response

    def handle_http_exception(self, error):
        """Errors are rendered once, in app/errors.py, in the contract's shape."""
        from ..errors import handle_http_exception

        return handle_http_exception(error)
