"""The request pipeline every /api/v1 endpoint goes through, implemented once.

before: request id → HTTPS → authentication (tenant in scope) → Version → rate limit → body checks →
idempotency claim.  after: commit once at the boundary (rollback on error) → idempotency store →
headers → request log.
"""
from __future__ import annotations

import json
import logging
import re
import time

from flask import Flask, Response, current_app, g, request
from sqlalchemy import insert

from ..errors import (AuthenticationError, DomainError, PermissionDenied, RateLimited, ValidationError,
                      render_error)
from ..extensions import db
from ..ids import new_id
from ..tenancy import reset_tenant, set_tenant
from ..timeutil import utcnow
from . import idempotency, ratelimit
from .. import epoch as config_epoch
from .auth import authenticate, forget_cached_keys
from .models import RequestLog

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
PUBLIC_PATHS = {f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/postman.json"}
PUBLIC_PREFIXES = (f"{API_PREFIX}/docs",)
MUTATING = {"POST", "PATCH", "PUT", "DELETE"}
BODY_IDEMPOTENCY_PATHS = {f"{API_PREFIX}/messages"}
LOG_BODY_LIMIT = 4096
_SECRETS = re.compile(r"(sk_(?:live|test)_|whsec_)[A-Za-z0-9+/=_-]{6,}")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_api() -> bool:
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def _is_public() -> bool:
    return request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES)


def _redact(text: str | None) -> str | None:
    """A body as the request log keeps it: cut to LOG_BODY_LIMIT, secrets masked, and text no database can
    store (NUL, lone surrogates) replaced, so logging can never fail the request it describes."""
    if text is None:
        return None
    text = _UNSTORABLE.sub("\ufffd", text[:LOG_BODY_LIMIT])
    return _SECRETS.sub(lambda m: m.group(1) + "…redacted", text)


def _logged_request_body() -> str | None:
    if request.method not in MUTATING:
        return None
    if request.mimetype == "multipart/form-data":
        # An upload (a CSV, an image) is a file, not something to read in a log: say what it was.
        return f"<{request.mimetype}, {request.content_length or 0} bytes>"
    return _redact(request.get_data(as_text=True))


def _assign_request_id():
    g.request_id = new_id("req", 16)
    g.started_at = time.perf_counter()


def _api_before():
    if not _is_api() or _is_public():
        return None
    if current_app.config["REQUIRE_HTTPS"]:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip().lower()
        if proto != "https":
            raise PermissionDenied("The API is only served over HTTPS.", code="https_required")
    if request.url_rule is None:
        return None  # routing 404/405: answered in the contract's shape without asking for a key
    authenticate()
    g.tenant_token = set_tenant(g.tenant)

    version = request.headers.get("Version")
    if version is not None:
        version = version.strip()
        if not _VERSION_RE.match(version) or version not in current_app.config["API_VERSIONS"]:
            raise ValidationError(
                f"Unknown API version {version!r}. Known versions: {', '.join(current_app.config['API_VERSIONS'])}.",
                code="invalid_version", param="Version")
    g.api_version = version or g.organization.api_version

    for name, value in request.args.items(multi=True):
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value):
            raise ValidationError(_unstorable_message(name + value, "Query parameters"),
                                  param=_UNSTORABLE.sub("", name))

    rate, burst = ratelimit.limits_for(g.organization)
    decision = ratelimit.hit(g.api_key.id, rate, burst, config_epoch.key())
    g.config_epoch = decision.epoch
    if decision.epoch != g.auth_epoch:
        # A key or an organization changed since this key was cached: ask the database again (401 now if
        # this key was revoked or disabled), then take the token under the limits as they are now (the
        # bucket pays one extra token for it, once per change).
        forget_cached_keys()
        authenticate(fresh=True)
        reset_tenant(g.tenant_token)
        g.tenant_token = set_tenant(g.tenant)
        g.api_version = version or g.organization.api_version
        rate, burst = ratelimit.limits_for(g.organization)
        decision = ratelimit.hit(g.api_key.id, rate, burst, config_epoch.key())
        g.config_epoch = decision.epoch
    g.rate_limit = decision
    if not decision.allowed:
        raise RateLimited(f"Rate limit of {rate:g} requests/s (burst {burst}) exceeded for this key.",
                          headers={"Retry-After": str(decision.retry_after)})

    if request.method in MUTATING:
        multipart = request.mimetype == "multipart/form-data"
        # An upload is parsed by werkzeug, which keeps large files in temporary files: it is never held in
        # memory whole, here or later (the view reads the same parsed request.files).
        body = b"" if multipart else request.get_data(cache=True)
        parsed = None
        if multipart:
            _refuse_unstorable_form()
        elif body:
            if request.mimetype == "application/json" or request.mimetype.endswith("+json"):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    raise ValidationError("The request body is not valid JSON.") from None
                _refuse_nul(parsed)
            else:
                raise ValidationError("Send the body as application/json.", status=415, param="Content-Type")
        key = request.headers.get("Idempotency-Key")
        if key is None and request.path in BODY_IDEMPOTENCY_PATHS and body:
            # API.md 1: `POST /messages` also takes the key as the body field `idempotency_key`.
            candidate = parsed.get("idempotency_key") if isinstance(parsed, dict) else None
            key = candidate if isinstance(candidate, str) and 0 < len(candidate) <= 255 else None
        if key is not None:
            digest = (idempotency.form_fingerprint(request.method, request.path, request.form, request.files)
                      if multipart else idempotency.fingerprint(request.method, request.path, body))
            replay = idempotency.claim(g.tenant.organization_id, g.tenant.mode, key.strip(), digest)
            if replay is not None:
                headers = dict(replay.headers)
                original = headers.pop("X-Request-Id", None)
                resp = Response(replay.body, status=replay.status, headers=headers)
                resp.headers["Idempotent-Replayed"] = "true"
                if original:
                    resp.headers["Original-Request"] = original
                g.idempotency_replayed = True
                return resp
            g.idempotency_key = key.strip()
    return None


# NUL, and lone UTF-16 surrogates (JSON's "\ud800" escapes decode to them): text no database can store.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_message(text: str, what: str) -> str:
    if "\x00" in text:
        return f"{what} may not contain NUL characters."
    return f"{what} may not contain lone surrogate escapes (invalid Unicode)."


def _refuse_unstorable_form() -> None:
    """The NUL / lone-surrogate rule for form fields and uploaded file names."""
    for name, value in request.form.items(multi=True):
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value):
            raise ValidationError(_unstorable_message(name + value, f"'{_UNSTORABLE.sub('', name)}'"),
                                  param=_UNSTORABLE.sub("", name) or None)
    for name, upload in request.files.items(multi=True):
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(upload.filename or ""):
            raise ValidationError(_unstorable_message(name + (upload.filename or ""), "File names"),
                                  param=_UNSTORABLE.sub("", name) or None)


def _refuse_nul(value, path: str = "") -> None:
    """NUL (U+0000) and lone surrogates are refused everywhere: PostgreSQL text and JSONB cannot store
    them, and no field of the contract has a use for them.  Checked once here, so no endpoint can reach
    the database with one."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValidationError(_unstorable_message(value, f"'{path or 'body'}'"), param=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if _UNSTORABLE.search(key):
                raise ValidationError(_unstorable_message(key, "Object keys"), param=path or None)
            _refuse_nul(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}[{index}]")


def _finalize(response: Response) -> Response:
    """Commit once for the whole request (errors roll back), then the API bookkeeping.  A successful
    request's log row goes in with its own work, in the same COMMIT (one fsync, not two)."""
    logged = False
    if response.status_code < 400:
        try:
            if _is_api() and g.get("tenant") is not None:
                logged = _log_in_transaction(response)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("commit failed for request %s", getattr(g, "request_id", None))
            response = render_error(500, "api_error", "internal_error", "An unexpected error occurred.")
    else:
        db.session.rollback()

    response.headers["X-Request-Id"] = g.get("request_id", "")
    if not _is_api():
        return response
    tenant = g.get("tenant")
    key = g.pop("idempotency_key", None)
    if key and tenant is not None:
        idempotency.store(tenant.organization_id, tenant.mode, key, response)
    decision = g.get("rate_limit")
    if decision is not None:
        response.headers.update(decision.headers())
    if g.get("api_version"):
        response.headers["Version"] = g.api_version
    response.headers.setdefault("Cache-Control", "no-store")
    if tenant is not None and not logged:
        _write_request_log(response)
    return response


def _log_in_transaction(response: Response) -> bool:
    """The log row inside the request's own transaction (no SAVEPOINT: two round trips a request).  Its
    INSERT carries a fresh id and bounded values, so it fails only when the database does; then the whole
    request rolls back and answers 500, which is not stored for idempotency, so a retry is safe."""
    db.session.execute(_REQUEST_LOG_INSERT, _request_log_row(response))
    return True


def _write_request_log(response: Response) -> None:
    try:
        db.session.execute(_REQUEST_LOG_INSERT, _request_log_row(response))
        db.session.commit()
    except Exception:  # the log must never break the answer
        db.session.rollback()
        log.exception("could not write the request log")


# Built once: a statement made per request with .values(...) costs hundreds of Python calls to coerce.
_REQUEST_LOG_INSERT = insert(RequestLog.__table__)


def _request_log_row(response: Response) -> dict:
    error_code = None
    if response.status_code >= 400 and response.is_json:
        error_code = ((response.get_json(silent=True) or {}).get("error") or {}).get("code")
    key = g.get("api_key")
    return dict(
        id=g.request_id, organization_id=g.tenant.organization_id, mode=g.tenant.mode,
        api_key_id=key.id if key else None, key_prefix=key.key_prefix if key else None,
        method=request.method, path=request.path[:500],
        query_string=request.query_string.decode("latin-1")[:2000] or None,
        status=response.status_code,
        duration_ms=int((time.perf_counter() - g.get("started_at", time.perf_counter())) * 1000),
        error_code=error_code, idempotency_key=request.headers.get("Idempotency-Key", "")[:255] or None,
        ip=(request.access_route[0] if request.access_route else request.remote_addr),
        user_agent=(request.user_agent.string or "")[:300] or None,
        request_body=_logged_request_body(),
        response_body=_redact(response.get_data(as_text=True)) if not response.direct_passthrough else None,
        created_at=utcnow(),
    )


def _teardown(exc):
    key = g.pop("idempotency_key", None)
    tenant = g.get("tenant")
    if key and tenant is not None:
        # The request died before _finalize stored an answer: free the key for a retry.
        try:
            idempotency.release(tenant.organization_id, tenant.mode, key)
        except Exception:
            log.exception("could not release idempotency key")
    token = g.pop("tenant_token", None)
    if token is not None:
        reset_tenant(token)


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.before_request(_api_before)
    app.after_request(_finalize)
    app.teardown_request(_teardown)
