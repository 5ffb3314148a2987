"""The /api/v1 machinery and the table of API blueprints."""
from __future__ import annotations

import re

from flask import Flask, jsonify
from werkzeug.routing import BaseConverter

API_DESCRIPTION = """\
Postline's REST API: lifecycle email and SMS, audiences, validation, retention signals.

**Authentication.** Send your secret key as `Authorization: Bearer sk_live_…` (or `sk_test_…`), or in the
`X-API-Key` header.  A test key sees only test-mode objects and delivers nothing; a live key sees only live
ones.  Each operation names the scope it requires (`x-required-scope`).

**Errors** always have the same shape and a matching HTTP status:

```json
{"error": {"type": "validation_error", "code": "invalid_email", "message": "'to' is not a valid email.",
           "param": "to", "status": 400, "doc_url": "/docs/errors#invalid_email", "request_id": "req_8sK2c91Lp0"}}
```

A body or query that fails validation (wrong type, missing or unknown field) is a **400** naming the field in
`param`; 422 is kept for well-formed requests the current state refuses.

**Pagination.** Lists take `limit` (1–100, default 20) and one of `starting_after` / `ending_before` (an
object id), newest first, and answer `{"object": "list", "url": …, "has_more": …, "data": […]}`.

**Idempotency.** Every POST/PATCH/PUT/DELETE accepts `Idempotency-Key` (≤ 255 characters, kept 24 h).

**Rate limits** are per key (token bucket with burst); every response carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset`, and a 429 carries `Retry-After`.

**Versioning** is by date: send `Version: YYYY-MM-DD`, or get the version your organization is pinned to.

Strings never contain U+0000 (NUL): a body or query that has one is a 400 naming the field.

Every response carries `X-Request-Id`.  Times are RFC 3339 UTC, money is integer micro-dollars (`_micros`).
A Postman collection of this API is at `/api/v1/postman.json`.
"""

API_SPEC_OPTIONS = {
    "info": {"description": API_DESCRIPTION},
    "servers": [{"url": "/", "description": "This Postline server."}],
    "components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer",
                       "description": "`Authorization: Bearer sk_live_…` (or `sk_test_…`)."},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "The same key in the `X-API-Key` header."},
    }},
    "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
}


def blueprints():
    """Every API blueprint, in the order the OpenAPI document lists them."""
    from ..apikeys.api import blp as api_keys
    from ..broadcasts.api import blp as broadcasts
    from ..contacts.api import blp as contacts
    from ..domains.api import blp as domains
    from ..lists.api import blp as lists
    from ..messages.api import blp as messages
    from ..suppressions.api import blp as suppressions
    from ..templates.api import blp as templates
    from ..webhooks.api import blp as webhooks
    from ..bgjobs.api import blp as jobs
    from ..imports.api import blp as imports
    return [messages, templates, contacts, lists, suppressions, domains, api_keys, webhooks, broadcasts, imports, jobs]


class ObjectIdConverter(BaseConverter):
    """``<oid("msg"):message_id>``: a path segment that is an id with that prefix.  A resource whose
    sub-paths are words (``/messages/email``, ``/messages/batch``) then never also matches them as ids,
    so ``GET /messages/email`` is a 405 with the true ``Allow`` rather than a 404 for an id ``email``."""

    def __init__(self, url_map, prefix: str):
        super().__init__(url_map)
        self.prefix = prefix
        self.regex = re.escape(prefix) + r"_[A-Za-z0-9]{1,64}"


def _oid_schema(converter: ObjectIdConverter) -> dict:
    return {"type": "string", "pattern": f"^{converter.prefix}_[A-Za-z0-9]+$", "example": f"{converter.prefix}_4fJ9"}


def register_api(app: Flask) -> None:
    from ..extensions import api
    from .postman import collection_from_spec

    app.config.setdefault("API_SPEC_OPTIONS", API_SPEC_OPTIONS)
    app.url_map.converters["oid"] = ObjectIdConverter
    api.init_app(app)
    api.register_converter(ObjectIdConverter, _oid_schema)
    for blp in blueprints():
        api.register_blueprint(blp)

    @app.get("/api/v1/postman.json")
    def postman_collection():
        return jsonify(collection_from_spec(api.spec.to_dict(), app.config["BASE_URL"]))
