"""Per-key token bucket: headers on every response, 429 + Retry-After past the burst, refill over time."""
import time

from sqlalchemy import update

from tests.helpers import ApiClient, assert_error, make_account


def _account_with_limit(app, rate, burst):
    from app.accounts.models import Organization
    from app.extensions import db

    with app.app_context():
        acct = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == acct["organization_id"])
                           .values(rate_limit_per_second=rate, rate_limit_burst=burst))
        db.session.commit()
    return acct


def test_headers_on_every_response(api):
    resp = api.get("/contacts")
    assert resp.headers["X-RateLimit-Limit"] == "20"  # starter: 10 r/s, burst 20
    assert int(resp.headers["X-RateLimit-Remaining"]) == 19
    assert int(resp.headers["X-RateLimit-Reset"]) >= 0
    err = api.post("/contacts", json={"email": "bad"})
    assert "X-RateLimit-Remaining" in err.headers


def test_burst_then_429_with_retry_after(app, client):
    acct = _account_with_limit(app, rate=1, burst=3)
    api = ApiClient(client, acct["live_api_key"])
    remaining = [int(api.get("/contacts").headers["X-RateLimit-Remaining"]) for _ in range(3)]
    assert remaining == [2, 1, 0]
    resp = api.get("/contacts")
    err = assert_error(resp, 429, "rate_limit_exceeded")
    assert err["type"] == "rate_limit_error"
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    # Refill: one token a second.
    time.sleep(1.1)
    assert api.get("/contacts").status_code == 200


def test_buckets_are_per_key(app, client):
    acct = _account_with_limit(app, rate=1, burst=1)
    live, test = ApiClient(client, acct["live_api_key"]), ApiClient(client, acct["test_api_key"])
    assert live.get("/contacts").status_code == 200
    assert live.get("/contacts").status_code == 429
    assert test.get("/contacts").status_code == 200


def test_plan_limits_come_from_config(app):
    from app.accounts.models import Organization
    from app.api.ratelimit import limits_for

    with app.app_context():
        assert limits_for(Organization(plan="growth")) == (50.0, 100)
        assert limits_for(Organization(plan="scale")) == (200.0, 400)
        assert limits_for(Organization(plan="enterprise", rate_limit_per_second=7, rate_limit_burst=9)) == (7.0, 9)
