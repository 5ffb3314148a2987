"""Who the tenant is, and the one mechanism that scopes every query to it.

The organization (and mode, live|test) is resolved once per request from credentials (API key or dashboard
session) or set by the job wrapper, and kept in a context variable.  A ``do_orm_execute`` listener adds
``organization_id = :org`` (and ``mode = :mode``) to every ORM SELECT, UPDATE and DELETE that touches a
tenant-owned model — SQLAlchemy's documented "global WHERE criteria" recipe.  A query on a tenant-owned
model with no tenant set *fails* rather than returning every tenant's rows; maintenance code that must
cross tenants says so explicitly with ``unscoped()``.  New rows get the tenant's ids at flush, and a row
carrying another tenant's id cannot be flushed.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

from sqlalchemy import String, event
from sqlalchemy.orm import Mapped, Session, mapped_column, with_loader_criteria

MODES = ("live", "test")


@dataclass(frozen=True)
class Tenant:
    organization_id: str
    mode: str = "live"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")


class TenancyError(RuntimeError):
    """A tenant-owned table was queried without a tenant (a bug, never a user error)."""


_current: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("postline_tenant", default=None)
_unscoped: contextvars.ContextVar[bool] = contextvars.ContextVar("postline_unscoped", default=False)


def current_tenant() -> Tenant | None:
    return _current.get()


def require_tenant() -> Tenant:
    tenant = _current.get()
    if tenant is None:
        raise TenancyError("no tenant in scope")
    return tenant


def set_tenant(tenant: Tenant | None) -> contextvars.Token:
    return _current.set(tenant)


def reset_tenant(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def tenant_scope(organization_id: str, mode: str = "live"):
    token = _current.set(Tenant(organization_id, mode))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def unscoped():
    """Opt out of tenant criteria: only for authentication lookups and maintenance jobs."""
    token = _unscoped.set(True)
    try:
        yield
    finally:
        _unscoped.reset(token)


class OrgScoped:
    """A row owned by one organization, shared by both modes (API keys, memberships, request log)."""

    organization_id: Mapped[str] = mapped_column(String(32), index=True)


class TenantScoped(OrgScoped):
    """A row owned by one organization *and* one mode (contacts, messages, lists, webhooks …)."""

    # No index of its own: two values, and every query that filters on it leads with organization_id, which
    # the tables' composite (organization_id, mode, …) indexes serve.
    mode: Mapped[str] = mapped_column(String(4))


def _touches_tenant_tables(state) -> bool:
    return any(issubclass(m.class_, OrgScoped) for m in state.all_mappers)


@event.listens_for(Session, "do_orm_execute")
def _add_tenant_criteria(state):
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if _unscoped.get() or state.execution_options.get("skip_tenant_scope"):
        return
    if state.is_column_load or state.is_relationship_load:
        # Criteria were attached to the parent statement and propagate to these loads.
        return
    if not _touches_tenant_tables(state):
        return
    tenant = _current.get()
    if tenant is None:
        raise TenancyError("a tenant-owned table was queried with no tenant in scope")
    state.statement = state.statement.options(*_criteria_for(tenant))


_CRITERIA: dict[Tenant, tuple] = {}


def _criteria_for(tenant: Tenant) -> tuple:
    """The two loader-criteria options of a tenant, built once per tenant and process (building them
    analyses the lambdas: a few hundred Python calls a statement on the accept path)."""
    options = _CRITERIA.get(tenant)
    if options is None:
        org_id, mode = tenant.organization_id, tenant.mode
        options = (
            with_loader_criteria(OrgScoped, lambda cls: cls.organization_id == org_id, include_aliases=True),
            with_loader_criteria(TenantScoped, lambda cls: cls.mode == mode, include_aliases=True),
        )
        if len(_CRITERIA) >= 10_000:
            _CRITERIA.clear()
        _CRITERIA[tenant] = options
    return options


@event.listens_for(Session, "before_flush")
def _stamp_new_rows(session, flush_context, instances):
    if _unscoped.get():
        return
    tenant = _current.get()
    for obj in session.new:
        if not isinstance(obj, OrgScoped):
            continue
        if tenant is None:
            if obj.organization_id is None:
                raise TenancyError(f"{type(obj).__name__} created with no tenant in scope")
            continue
        if obj.organization_id is None:
            obj.organization_id = tenant.organization_id
        elif obj.organization_id != tenant.organization_id:
            raise TenancyError(f"{type(obj).__name__} belongs to another organization")
        if isinstance(obj, TenantScoped):
            if obj.mode is None:
                obj.mode = tenant.mode
            elif obj.mode != tenant.mode:
                raise TenancyError(f"{type(obj).__name__} belongs to the other mode")
