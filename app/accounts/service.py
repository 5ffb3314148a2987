"""Organizations, users and memberships."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import current_app
from sqlalchemy import func, select

from ..errors import Conflict, NotFound, PermissionDenied, ValidationError
from ..extensions import db
from ..tenancy import tenant_scope
from .models import PLANS, ROLES, Membership, Organization, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10

# What each role may do in the dashboard; the API uses key scopes instead.
ROLE_PERMISSIONS = {
    "owner": {"manage_members", "manage_billing", "manage_keys", "write", "read"},
    "admin": {"manage_members", "manage_keys", "write", "read"},
    "developer": {"manage_keys", "write", "read"},
    "viewer": {"read"},
}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _validate_signup(org_name: str, email: str, password: str, plan: str) -> str:
    from ..api.fields import Email
    from marshmallow import ValidationError as MmError

    if not org_name or not org_name.strip() or len(org_name) > 200:
        raise ValidationError("Organization name is required (≤ 200 characters).", param="org")
    try:
        email = Email().deserialize(email)
    except MmError:
        raise ValidationError("That is not a valid email address.", code="invalid_email", param="email") from None
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.", param="password")
    if plan not in PLANS:
        raise ValidationError(f"Plan must be one of {', '.join(PLANS)}.", param="plan")
    return email


def create_organization(name: str, plan: str = "starter") -> Organization:
    org = Organization(name=name.strip(), plan=plan, api_version=current_app.config["API_VERSIONS"][-1])
    db.session.add(org)
    db.session.flush()
    return org


def create_account(org_name: str, email: str, password: str, plan: str = "starter") -> dict:
    """Create an organization, its owner and two admin keys (live + test).  Flushes; caller commits.

    Raises ValidationError for bad input and Conflict when the email already has an account."""
    from ..apikeys.service import create_key

    email = _validate_signup(org_name, email, password, plan)
    if db.session.execute(select(User.id).where(func.lower(User.email) == email.lower())).first():
        raise Conflict("An account with this email already exists. Log in instead.", code="duplicate_user",
                       param="email")
    org = create_organization(org_name, plan)
    user = User(email=email, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    db.session.add(Membership(organization_id=org.id, user_id=user.id, role="owner"))
    with tenant_scope(org.id, "live"):
        _, live_secret = create_key(org.id, name="Default live key", test_mode=False, preset="admin",
                                    created_by=user.id)
        _, test_secret = create_key(org.id, name="Default test key", test_mode=True, preset="admin",
                                    created_by=user.id)
    return {"organization_id": org.id, "user_id": user.id, "live_api_key": live_secret,
            "test_api_key": test_secret, "organization": org, "user": user}


def authenticate_user(email: str, password: str) -> User | None:
    user = db.session.execute(select(User).where(func.lower(User.email) == (email or "").strip().lower())
                              ).scalar_one_or_none()
    if user is None:
        _hasher.hash("timing-equaliser")  # same cost whether or not the user exists
        return None
    return user if check_password(user, password or "") else None


def memberships_for(user_id: str) -> list[Membership]:
    return list(db.session.execute(
        select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)).scalars())


def membership(user_id: str, organization_id: str) -> Membership:
    m = db.session.execute(select(Membership).where(
        Membership.user_id == user_id, Membership.organization_id == organization_id)).scalar_one_or_none()
    if m is None:
        raise NotFound("No such organization.")
    return m


def require_permission(m: Membership, permission: str) -> None:
    if permission not in ROLE_PERMISSIONS.get(m.role, set()):
        raise PermissionDenied(f"Your role ({m.role}) may not do this.")


def add_member(organization_id: str, email: str, role: str) -> Membership:
    if role not in ROLES:
        raise ValidationError(f"Role must be one of {', '.join(ROLES)}.", param="role")
    user = db.session.execute(select(User).where(func.lower(User.email) == email.lower())).scalar_one_or_none()
    if user is None:
        raise NotFound("No user with that email.", param="email")
    m = Membership(organization_id=organization_id, user_id=user.id, role=role)
    db.session.add(m)
    db.session.flush()
    return m
