"""API key authentication and scope checks.

Every API call presents a key; looking it (and its organization) up in PostgreSQL on every call was a
round trip, an ORM load and a COMMIT per request.  Resolved keys are kept in a small per-process cache
tagged with the configuration epoch (app.epoch), which moves after any committed change to an API key or
an organization.  The rate limiter's Lua call, which every request makes anyway, returns the current
epoch; a request served from the cache under an older epoch is authenticated again from the database
before it goes any further, so a revoked, disabled or re-scoped key stops working on the very next
request, on every web process.
"""
from __future__ import annotations

import functools
import hashlib
import time
from datetime import timedelta

from flask import g, has_app_context, request
from sqlalchemy import select, update

from ..accounts.models import Organization
from ..apikeys.models import ApiKey
from ..errors import AuthenticationError, PermissionDenied
from .. import epoch as config_epoch
from ..extensions import db
from ..tenancy import Tenant, unscoped
from ..timeutil import utcnow

KEY_PREFIXES = ("sk_live_", "sk_test_")
LAST_USED_RESOLUTION = timedelta(seconds=60)
AUTH_CACHE_MAX = 10_000
_CACHE = "postline_auth_cache"

config_epoch.watch(ApiKey)
config_epoch.watch(Organization)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def forget_cached_keys() -> None:
    if has_app_context():
        config_epoch.local_cache(_CACHE).clear()


def authenticate(*, fresh: bool = False) -> None:
    """Resolve the key to (organization, mode) and put the tenant in scope; 401 if anything is off.
    ``g.auth_epoch`` is the epoch the answer was read under, for the caller to compare with the rate
    limiter's (see the module docstring); ``fresh`` skips the cache."""
    secret = presented_key()
    if not secret:
        raise AuthenticationError("No API key provided. Use 'Authorization: Bearer sk_…' or 'X-API-Key'.")
    if not secret.startswith(KEY_PREFIXES) or len(secret) > 200:
        raise AuthenticationError("Invalid API key provided.")
    digest = hash_secret(secret)
    cache = config_epoch.local_cache(_CACHE)
    entry = None if fresh else cache.get(digest)
    if entry is not None and time.monotonic() - entry[0] < config_epoch.MAX_AGE_SECONDS:
        _, epoch, key, org = entry
    else:
        # The epoch is read before the rows, so a change committed in between is seen as a newer epoch.
        epoch = config_epoch.current()
        key, org = _load_key(digest)
        if len(cache) >= AUTH_CACHE_MAX:
            cache.clear()
        cache[digest] = (time.monotonic(), epoch, key, org)
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: one write a minute per key, not one per request.
        db.session.execute(update(ApiKey.__table__).where(ApiKey.__table__.c.id == key.id).values(last_used_at=now))
        db.session.commit()
        key.last_used_at = now  # the detached, cached copy: no session sees this
    g.api_key = key
    g.organization = org
    g.auth_epoch = epoch
    g.tenant = Tenant(org.id, key.mode)


def _load_key(digest: str):
    with unscoped():
        # One round trip for both: the key and its organization.
        row = db.session.execute(
            select(ApiKey, Organization).join(Organization, Organization.id == ApiKey.organization_id)
            .where(ApiKey.key_hash == digest)).one_or_none()
        key, org = row if row is not None else (None, None)
    if key is None or org is None or not key.is_enabled or key.revoked_at is not None:
        db.session.rollback()
        raise AuthenticationError("Invalid API key provided.")
    # Detach both (their loaded attributes stay readable, and the cache shares them read-only) and end
    # the read transaction, so this request holds no pooled connection while it claims an idempotency key
    # on a connection of its own.
    db.session.expunge(key)
    db.session.expunge(org)
    db.session.commit()
    return key, org


def require_scope(scope: str):
    """Decorator for API methods: 403 ``forbidden`` unless the key carries ``scope``."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            key = getattr(g, "api_key", None)
            if key is None:
                raise AuthenticationError()
            if scope not in (key.scopes or []):
                raise PermissionDenied(f"This API key lacks the '{scope}' scope.")
            return fn(*args, **kwargs)

        wrapper.required_scope = scope
        return wrapper

    return decorator
