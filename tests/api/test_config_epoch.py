"""The per-process caches of credentials and webhook endpoints (app.epoch): a change committed by one
process is seen by every other on its next request, not when a cache entry happens to expire.

A second app object stands in for a second web process: it shares the database and Redis, and has caches
of its own that only the epoch in Redis can invalidate."""
import pytest
from sqlalchemy import func, select

from tests.helpers import ApiClient, assert_error


@pytest.fixture
def other_process(app):
    from app import create_app

    second = create_app({"TESTING": True})
    yield second
    with second.app_context():
        from app.extensions import db
        db.engine.dispose()


def test_revoking_in_one_process_locks_the_key_out_of_another(client, api, other_process):
    body = api.post("/api-keys", json={"name": "shared", "scope": "admin"}).get_json()
    elsewhere = ApiClient(other_process.test_client(), body["secret"])
    assert elsewhere.get("/contacts").status_code == 200  # now cached over there
    assert elsewhere.get("/contacts").status_code == 200
    assert api.delete(f"/api-keys/{body['id']}").status_code == 200  # revoked here
    assert_error(elsewhere.get("/contacts"), 401, "unauthorized")


def test_scope_and_rate_limit_changes_reach_a_cached_key(client, api, other_process, account):
    from app.accounts.models import Organization
    from app.extensions import db

    body = api.post("/api-keys", json={"name": "narrow", "scope": "admin"}).get_json()
    elsewhere = ApiClient(other_process.test_client(), body["secret"])
    assert elsewhere.get("/contacts").status_code == 200
    assert api.patch(f"/api-keys/{body['id']}", json={"scopes": ["messages.read"]}).status_code == 200
    assert_error(elsewhere.get("/contacts"), 403, "forbidden")

    # A bulk UPDATE through the session (no instance flushed) moves the epoch too.
    from sqlalchemy import update
    with client.application.app_context():
        db.session.execute(update(Organization).where(Organization.id == account["organization_id"])
                           .values(rate_limit_per_second=7, rate_limit_burst=3))
        db.session.commit()
    assert elsewhere.get("/messages").headers["X-RateLimit-Limit"] == "3"


def test_a_cached_key_costs_no_query(app, api):
    from sqlalchemy import event

    from app.extensions import db

    api.get("/contacts")
    seen = []
    with app.app_context():
        engine = db.engine
    listener = lambda conn, cursor, statement, *a: seen.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert api.get("/webhooks").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert not [s for s in seen if "api_keys" in s and "SELECT" in s.upper()], seen


def test_endpoint_created_in_one_process_receives_events_recorded_in_another(app, test_api, other_process, account):
    from app.events.service import record_events
    from app.extensions import db
    from app.tenancy import tenant_scope
    from app.webhooks.models import WebhookDelivery

    def record_elsewhere():
        with other_process.app_context(), tenant_scope(account["organization_id"], "test"):
            record_events([{"type": "contact.created", "contact_id": "con_x", "data": {"id": "con_x"}}])
            db.session.commit()

    def deliveries():
        with app.app_context():
            return db.session.execute(select(func.count()).select_from(WebhookDelivery.__table__).where(
                WebhookDelivery.__table__.c.organization_id == account["organization_id"])).scalar_one()

    record_elsewhere()  # caches "no endpoints" for this organization over there
    assert deliveries() == 0
    created = test_api.post("/webhooks", json={"url": "http://127.0.0.1:1/hook", "events": ["contact.created"]})
    assert created.status_code == 201, created.get_json()
    record_elsewhere()
    assert deliveries() == 1

    assert test_api.delete(f"/webhooks/{created.get_json()['id']}").status_code == 200
    record_elsewhere()
    assert deliveries() == 0  # deleted with its deliveries, and nothing new fanned out to it
