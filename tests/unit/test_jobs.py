"""app.jobs: enqueue after commit (and never before, nor after a rollback), and the job wrapper.

Uses the session's real Redis (embedded or REDIS_URL) through the app's prefixed queues.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import select

from app.jobs import QUEUES, enqueue_after_commit, job, queue, queue_name
from app.system.tasks import record_heartbeat
from app.tenancy import Tenant, TenancyError, current_tenant

LONG_AGO = datetime(2000, 1, 1)  # rows written here must never look like a live worker to /healthz


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def job_app(app):
    """Jobs called outside an app context run in the worker's app: here, the session's."""
    import app.jobs as jobs

    saved = jobs._app, jobs._app_pid
    jobs.set_job_app(app)
    yield app
    jobs._app, jobs._app_pid = saved


@pytest.fixture
def token(app):
    """Jobs enqueued by a test carry its token; they are deleted afterwards (no worker runs here)."""
    value = f"t-{uuid.uuid4().hex[:10]}"
    yield value
    with app.app_context():
        for name in QUEUES:
            for j in _jobs(name, value):
                j.delete()


def _jobs(name: str, token: str) -> list:
    q = queue(name)
    return [j for j in q.get_jobs() if token in repr(j.args)]


def _beat(name: str):
    from app.extensions import db
    from app.system.models import WorkerHeartbeat

    db.session.add(WorkerHeartbeat(name=name, beat_at=LONG_AGO, detail="test"))


def _beat_exists(name: str) -> bool:
    from app.extensions import db
    from app.system.models import WorkerHeartbeat

    found = db.session.get(WorkerHeartbeat, name) is not None
    db.session.rollback()
    return found


def test_queue_names_carry_the_deployment_prefix(ctx):
    prefix = ctx.config["RQ_QUEUE_PREFIX"]
    assert prefix  # the test session sets one, so runs sharing a Redis never see each other's jobs
    assert queue("high").name == prefix + "high" == queue_name("high")
    with pytest.raises(ValueError):
        queue("urgent")
    with pytest.raises(ValueError):
        enqueue_after_commit(record_heartbeat, "x", queue_name="urgent")


def test_enqueues_only_after_commit(ctx, token):
    from app.extensions import db

    _beat(token)
    enqueue_after_commit(record_heartbeat, token, queue_name="low")
    db.session.flush()
    assert _jobs("low", token) == []  # flushed but not committed: a worker must not see it yet
    db.session.commit()
    jobs = _jobs("low", token)
    assert len(jobs) == 1
    assert jobs[0].func_name == "app.system.tasks.record_heartbeat"
    assert jobs[0].origin == ctx.config["RQ_QUEUE_PREFIX"] + "low"
    assert _beat_exists(token)


def test_rollback_drops_the_job(ctx, token):
    from app.extensions import db

    _beat(token)
    enqueue_after_commit(record_heartbeat, token, queue_name="low")
    db.session.rollback()
    db.session.commit()  # a later commit in the same session does not resurrect it
    assert _jobs("low", token) == []
    assert not _beat_exists(token)


def test_closing_the_session_without_commit_drops_the_job(ctx, token):
    from app.extensions import db

    _beat(token)
    enqueue_after_commit(record_heartbeat, token, queue_name="low")
    db.session.close()
    db.session.commit()
    assert _jobs("low", token) == []


def test_savepoints_release_into_the_outer_transaction_and_roll_back_alone(ctx, token):
    """SQLAlchemy fires after_commit when a SAVEPOINT is released: that must not enqueue."""
    from app.extensions import db

    _beat(f"{token}-outer")
    enqueue_after_commit(record_heartbeat, f"{token}-outer", queue_name="low")
    with db.session.begin_nested():
        _beat(f"{token}-released")
        enqueue_after_commit(record_heartbeat, f"{token}-released", queue_name="low")
        with db.session.begin_nested():
            _beat(f"{token}-inner")
            enqueue_after_commit(record_heartbeat, f"{token}-inner", queue_name="low")
    assert _jobs("low", token) == []  # both savepoints released, outer transaction still open

    with pytest.raises(RuntimeError):
        with db.session.begin_nested():
            _beat(f"{token}-rolled-back")
            enqueue_after_commit(record_heartbeat, f"{token}-rolled-back", queue_name="low")
            raise RuntimeError("conflict")
    db.session.commit()

    enqueued = sorted(j.args[0] for j in _jobs("low", token))
    assert enqueued == sorted(f"{token}-{s}" for s in ("outer", "released", "inner"))
    assert _beat_exists(f"{token}-inner")
    assert not _beat_exists(f"{token}-rolled-back")


def test_outer_rollback_drops_jobs_from_released_savepoints(ctx, token):
    from app.extensions import db

    # A write first, as a service does: pysqlite only opens the SQLite transaction at the first DML, so a
    # SAVEPOINT before any write would itself be the outermost transaction there.
    _beat(f"{token}-outer")
    db.session.flush()
    with db.session.begin_nested():
        _beat(token)
        enqueue_after_commit(record_heartbeat, token, queue_name="low")
    db.session.rollback()
    db.session.commit()
    assert _jobs("low", token) == []
    assert not _beat_exists(token) and not _beat_exists(f"{token}-outer")


def test_jobs_in_one_commit_go_out_in_order_per_queue(ctx, token):
    from app.extensions import db

    for i in range(3):
        enqueue_after_commit(record_heartbeat, f"{token}-{i}", queue_name="bulk",
                             job_options={"job_id": f"{token}-{i}"})
    enqueue_after_commit(record_heartbeat, f"{token}-h", queue_name="high")
    db.session.commit()
    assert [j.id for j in _jobs("bulk", token)] == [f"{token}-{i}" for i in range(3)]
    assert len(_jobs("high", token)) == 1


# --- the job wrapper ------------------------------------------------------------------------------------------

@job
def whoami():
    """What a job sees: its tenant and the API keys the tenant criteria let through."""
    from app.apikeys.models import ApiKey
    from app.extensions import db

    keys = db.session.scalars(select(ApiKey)).all()
    return current_tenant(), {k.organization_id for k in keys}, len(keys)


@job
def write_then_fail(name: str):
    _beat(name)
    from app.extensions import db
    db.session.flush()
    raise ValueError("boom")


def test_wrapper_sets_the_tenant_scope(job_app, app, account, other_account):
    org = account["organization_id"]
    tenant, orgs, count = whoami(tenant=(org, "test"))  # no app context here: the wrapper pushes one
    assert tenant == Tenant(org, "test")
    assert orgs == {org} and count == 2  # the live and the test key of this organization only
    # RQ's JSON serializer would hand the tuple back as a list: accepted too.
    assert whoami(tenant=[other_account["organization_id"], "live"])[1] == {other_account["organization_id"]}
    assert current_tenant() is None  # the scope ends with the job


def test_wrapper_without_tenant_cannot_read_tenant_rows(job_app, app):
    with pytest.raises(TenancyError):
        whoami()


def test_wrapper_commits_once_at_the_end(job_app, app, token):
    record_heartbeat(token)
    with app.app_context():
        assert _beat_exists(token)
        from app.extensions import db
        from app.system.models import WorkerHeartbeat
        db.session.delete(db.session.get(WorkerHeartbeat, token))
        db.session.commit()


def test_wrapper_rolls_back_on_error(job_app, app, token):
    with pytest.raises(ValueError, match="boom"):
        write_then_fail(token)
    with app.app_context():
        assert not _beat_exists(token)


def test_wrapper_inside_an_app_context_uses_it(ctx):
    """Called from a request or a test, the job runs in the current app context (no second app)."""
    from flask import current_app

    @job
    def which_app():
        return current_app._get_current_object()

    assert which_app() is ctx


def test_redis_down_at_commit_logs_and_keeps_the_commit(ctx, token, monkeypatch, caplog):
    """The transaction is committed already: the rows are the truth and the sweepers re-enqueue."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from app.extensions import db

    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    monkeypatch.setitem(ctx.extensions, "postline_redis", dead)
    _beat(token)
    enqueue_after_commit(record_heartbeat, token, queue_name="low")
    with caplog.at_level("ERROR", logger="app.jobs"):
        db.session.commit()
    assert "could not enqueue 1 job(s)" in caplog.text
    monkeypatch.undo()
    assert _beat_exists(token)
    assert _jobs("low", token) == []
