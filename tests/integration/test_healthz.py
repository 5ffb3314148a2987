"""/healthz: public, not tenant-scoped; 200 when the database and Redis answer, 503 otherwise; the
worker's heartbeat is reported but a stale one only degrades the status."""
from __future__ import annotations

from datetime import timedelta

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry


def test_healthz_is_public_and_reports_a_fresh_heartbeat(app, client):
    from app.system.tasks import record_heartbeat

    with app.app_context():
        record_heartbeat()  # the job wrapper commits it, as on the worker
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert list(body) == ["status", "database", "redis", "worker"]
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["database"]["latency_ms"] >= 0
    assert body["redis"]["ok"] is True and body["redis"]["latency_ms"] >= 0
    assert body["worker"]["ok"] is True
    assert body["worker"]["last_heartbeat_at"].endswith("Z")


def test_stale_heartbeat_degrades_but_still_serves(app, client, monkeypatch):
    import app.system.views as views

    monkeypatch.setattr(views, "HEARTBEAT_STALE_AFTER", timedelta(seconds=-1))  # every beat is stale
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "degraded"
    assert body["worker"]["ok"] is False
    assert body["database"]["ok"] is True and body["redis"]["ok"] is True


def test_redis_down_is_503(app, client, monkeypatch):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
    monkeypatch.setitem(app.extensions, "postline_redis", dead)
    resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "degraded"
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True


def test_database_down_is_503(tmp_path):
    from app import create_app

    broken = create_app({"TESTING": True,
                         "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "missing" / "db.sqlite3")})
    resp = broken.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["database"]["ok"] is False
    assert body["worker"] == {"last_heartbeat_at": None, "ok": False}
    with broken.app_context():
        from app.extensions import db
        db.engine.dispose()
