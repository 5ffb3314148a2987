"""app.dbpool: a pooled connection that sat idle is pinged before use, and a dead one is replaced; a
connection in steady use is handed out without a round trip."""
import os

import pytest
from sqlalchemy import create_engine, text

from app.config import normalize_database_url
from app.dbpool import ping_when_idle

pytestmark = pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                                reason="PostgreSQL only (SQLite has no server to drop a connection)")


@pytest.fixture
def engine():
    engine = create_engine(normalize_database_url(os.environ["DATABASE_URL"]), pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=5)
    yield engine
    engine.dispose()


def test_a_dead_idle_connection_is_replaced(engine):
    pid = _kill_pooled(engine)
    # The pooled connection has been idle "for a minute": its ping fails and the pool hands out a new one.
    for record in list(engine.pool._pool.queue):
        record.info["postline_idle_since"] -= 60
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_a_busy_connection_costs_no_ping(engine):
    """Shown by its cost: a connection checked in a moment ago is handed out unchecked, so one killed in
    that moment fails its first statement (the pool then drops it, and the next checkout is fresh)."""
    from sqlalchemy.exc import OperationalError

    pid = _kill_pooled(engine)
    with pytest.raises(OperationalError):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def _kill_pooled(engine) -> int:
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = create_engine(normalize_database_url(os.environ["DATABASE_URL"]))
    with killer.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    killer.dispose()
    return pid
