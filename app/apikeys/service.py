"""API keys: created with a secret shown once, stored as a hash, scoped, rotated and revoked."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from ..api.auth import hash_secret
from ..api.scopes import PRESETS, SCOPES, expand
from ..errors import NotFound, UnprocessableError, ValidationError
from ..extensions import db
from ..ids import random_base62
from ..timeutil import utcnow
from .models import ApiKey

SECRET_LENGTH = 40  # base62 → ≈ 238 bits
PREFIX_LENGTH = 12  # "sk_live_" + 4 chars shown to recognise a key


def _new_secret(test_mode: bool) -> str:
    return ("sk_test_" if test_mode else "sk_live_") + random_base62(SECRET_LENGTH)


def _resolve_scopes(scopes: list[str] | None, preset: str | None) -> list[str]:
    if preset is not None and preset not in PRESETS:
        raise ValidationError(f"Unknown scope preset {preset!r}; use one of {', '.join(PRESETS)}.", param="scope")
    unknown = [s for s in scopes or () if s not in SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scope {unknown[0]!r}.", param="scopes")
    result = expand(scopes, preset)
    if not result:
        raise ValidationError("Give 'scopes' or a 'scope' preset (send, read, admin).", param="scopes")
    return result


def active_key_count(organization_id: str) -> int:
    return db.session.execute(select(func.count(ApiKey.id)).where(
        ApiKey.organization_id == organization_id, ApiKey.revoked_at.is_(None))).scalar_one()


def create_key(organization_id: str, *, name: str, test_mode: bool = False, scopes: list[str] | None = None,
               preset: str | None = None, created_by: str | None = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret (the only time the secret exists in clear).

    Raises UnprocessableError ``too_many_api_keys`` past the organization's limit."""
    resolved = _resolve_scopes(scopes, preset)
    if active_key_count(organization_id) >= current_app.config["MAX_API_KEYS"]:
        raise UnprocessableError(
            f"An organization may have at most {current_app.config['MAX_API_KEYS']} API keys; revoke one first.",
            code="too_many_api_keys")
    secret = _new_secret(test_mode)
    key = ApiKey(organization_id=organization_id, name=name.strip() or "API key", test_mode=test_mode,
                 key_prefix=secret[:PREFIX_LENGTH], key_hash=hash_secret(secret), scopes=resolved,
                 is_enabled=True, created_by=created_by)
    db.session.add(key)
    db.session.flush()
    return key, secret


def list_keys_query():
    """Active keys first, newest first (tenant-scoped by the session)."""
    return select(ApiKey).where(ApiKey.revoked_at.is_(None))


def get_key(key_id: str) -> ApiKey:
    key = db.session.execute(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                             ).scalar_one_or_none()
    if key is None:
        raise NotFound("No such API key.", param="id")
    return key


def update_key(key_id: str, *, name: str | None = None, scopes: list[str] | None = None,
               preset: str | None = None, is_enabled: bool | None = None) -> ApiKey:
    key = get_key(key_id)
    if name is not None:
        key.name = name.strip() or key.name
    if scopes is not None or preset is not None:
        key.scopes = _resolve_scopes(scopes, preset)
    if is_enabled is not None:
        key.is_enabled = is_enabled
    db.session.flush()
    return key


def revoke_key(key_id: str) -> ApiKey:
    """Revoked keys answer 401 from the next request on; the row stays for the audit trail."""
    key = get_key(key_id)
    key.revoked_at = utcnow()
    key.is_enabled = False
    db.session.flush()
    return key


def rotate_key(key_id: str) -> tuple[ApiKey, str]:
    """Replace the secret in place: the old secret stops working at once, id/name/scopes stay."""
    key = get_key(key_id)
    secret = _new_secret(key.test_mode)
    key.key_hash = hash_secret(secret)
    key.key_prefix = secret[:PREFIX_LENGTH]
    key.rotated_at = utcnow()
    db.session.flush()
    return key, secret
