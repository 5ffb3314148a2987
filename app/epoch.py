"""The configuration epoch: one counter in Redis that moves whenever tenant configuration that hot paths
cache in-process (API keys, organizations, webhook endpoints) changes.

Hot paths keep small per-process caches (app.api.auth: resolved API keys; app.webhooks.dispatch: each
tenant's enabled endpoints) tagged with the epoch they were read under, and drop an entry whose epoch is
no longer current.  Reading the epoch is nearly free on the API path: the rate limiter's Lua call returns
it with its verdict (``g.config_epoch``); elsewhere it is one Redis GET per batch.

Every committed change bumps it:
- changes to a watched model (``watch``) made through the session are seen by the hooks below: flushed
  instances, and ``session.execute(update(Model)…)`` / ``delete(Model)`` statements;
- statements on the bare tables (``update(Model.__table__)``) say so with ``bump_after_commit()``.
The bump happens after COMMIT, so a reader that sees the new epoch also sees the new rows.  If Redis is
unreachable at that moment the caches' own age limit (``MAX_AGE_SECONDS``) still bounds staleness.
"""
from __future__ import annotations

import logging
from itertools import chain

from flask import g, has_app_context, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db, redis

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 30.0
_FLAG = "postline_config_changed"
_WATCHED: list[type] = []
_LOCAL_CACHES: list[str] = []  # app.extensions keys of the caches to clear on this process's own bumps


def watch(model: type) -> type:
    """Any ORM change to ``model`` instances bumps the epoch (usable as a class decorator)."""
    _WATCHED.append(model)
    return model


def local_cache(name: str) -> dict:
    """A per-app dict registered to be cleared when this process bumps the epoch."""
    from flask import current_app

    if name not in _LOCAL_CACHES:
        _LOCAL_CACHES.append(name)
    return current_app.extensions.setdefault(name, {})


def key() -> str:
    return redis.key("config-epoch")


def current() -> str:
    """The epoch now: the one this request's rate-limit call returned, else asked of Redis."""
    if has_request_context() and g.get("config_epoch") is not None:
        return g.config_epoch
    value = redis.client.get(key())
    return value.decode() if value is not None else "0"


def bump_after_commit() -> None:
    """Call after a Core UPDATE/DELETE of a watched table: the epoch moves when the transaction commits."""
    db.session().info[_FLAG] = True


def _clear_local() -> None:
    from flask import current_app

    for name in _LOCAL_CACHES:
        cache = current_app.extensions.get(name)
        if cache is not None:
            cache.clear()


@event.listens_for(Session, "after_flush")
def _note_changes(session, _flush_context):
    if _WATCHED and any(isinstance(obj, tuple(_WATCHED)) for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[_FLAG] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_changes(state):
    """``session.execute(update(Organization)…)`` and the like: no instance is flushed, so look here."""
    if (state.is_update or state.is_delete) and _WATCHED and any(
            issubclass(m.class_, tuple(_WATCHED)) for m in state.all_mappers):
        state.session.info[_FLAG] = True


@event.listens_for(Session, "after_commit")
def _bump(session):
    if session.get_nested_transaction() is not None:
        return  # a SAVEPOINT released: the outer transaction decides
    if not session.info.pop(_FLAG, False) or not has_app_context():
        return
    _clear_local()
    if has_request_context():
        g.pop("config_epoch", None)
    try:
        redis.client.incr(key())
    except Exception:
        log.exception("could not bump the configuration epoch")


@event.listens_for(Session, "after_soft_rollback")
def _forget(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop(_FLAG, None)
