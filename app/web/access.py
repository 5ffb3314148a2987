"""Who may see a dashboard page: logged in, with an organization in scope, and the role to act."""
from __future__ import annotations

import functools

from flask import g
from flask_login import login_required

from ..errors import PermissionDenied


def org_required(view):
    """Logged in, with an organization in scope (so tenant-owned queries are safe)."""

    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if g.get("organization") is None:
            raise PermissionDenied("Your user is not a member of any organization.")
        return view(*args, **kwargs)

    return wrapper


def can(permission: str) -> bool:
    from ..accounts.service import ROLE_PERMISSIONS
    membership = g.get("membership")
    return membership is not None and permission in ROLE_PERMISSIONS.get(membership.role, set())


def require(permission: str) -> None:
    """PermissionDenied unless the current member's role grants ``permission``."""
    from ..accounts.service import require_permission
    require_permission(g.membership, permission)
