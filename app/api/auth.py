"""API key authentication and scope checks."""
from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

from flask import g, request
from sqlalchemy import select, update

from ..accounts.models import Organization
from ..apikeys.models import ApiKey
from ..errors import AuthenticationError, PermissionDenied
from ..extensions import db
from ..tenancy import Tenant, unscoped
from ..timeutil import utcnow

KEY_PREFIXES = ("sk_live_", "sk_test_")
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def authenticate() -> None:
    """Resolve the key to (organization, mode) and put the tenant in scope; 401 if anything is off."""
    secret = presented_key()
    if not secret:
        raise AuthenticationError("No API key provided. Use 'Authorization: Bearer sk_…' or 'X-API-Key'.")
    if not secret.startswith(KEY_PREFIXES) or len(secret) > 200:
        raise AuthenticationError("Invalid API key provided.")
    with unscoped():
        # One round trip for both: the key and its organization.
        row = db.session.execute(
            select(ApiKey, Organization).join(Organization, Organization.id == ApiKey.organization_id)
            .where(ApiKey.key_hash == hash_secret(secret))).one_or_none()
        key, org = row if row is not None else (None, None)
    if key is None or org is None or not key.is_enabled or key.revoked_at is not None:
        db.session.rollback()
        raise AuthenticationError("Invalid API key provided.")
    # Detach both (their loaded attributes stay readable) and end the read transaction, so this request
    # holds no pooled connection while it claims an idempotency key on a connection of its own.
    db.session.expunge(key)
    db.session.expunge(org)
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: one write a minute per key, not one per request.
        db.session.execute(update(ApiKey.__table__).where(ApiKey.__table__.c.id == key.id).values(last_used_at=now))
    db.session.commit()
    g.api_key = key
    g.organization = org
    g.tenant = Tenant(org.id, key.mode)


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
