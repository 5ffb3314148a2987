"""Pessimistic disconnect handling without a round trip per checkout.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` every time a connection leaves the pool: on the accept
path that was three extra round trips a request.  A connection in steady use is known to be alive; the
ones worth checking are those that sat in the pool long enough for the server, a proxy or a failover to
have dropped them.  So: note when each connection is checked in, and ping on checkout only when it has been
idle for more than ``idle_seconds``.  A failed ping raises ``DisconnectionError``, which makes the pool
discard that connection and hand out a fresh one (SQLAlchemy's documented custom-ping recipe).
"""
from __future__ import annotations

import time

from sqlalchemy import event, exc


def ping_when_idle(engine, idle_seconds: float) -> None:
    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record):
        record.info["postline_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        since = record.info.get("postline_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
        except Exception as error:  # any failure: this connection is not to be trusted
            raise exc.DisconnectionError(f"idle connection failed its ping: {error}") from error
        finally:
            try:
                cursor.close()
            except Exception:
                pass
