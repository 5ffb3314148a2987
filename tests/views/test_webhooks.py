"""Webhook pages: create with the event picker (secret shown once), edit, pause, rotate, test ping, the
delivery page with its attempts and Retry, errors inline, owners told about disabled endpoints."""
from __future__ import annotations

import re

import pytest
from standardwebhooks import Webhook

from tests.api.test_webhooks import Receiver
from tests.views.conftest import csrf_from

SECRET = re.compile(r'id="signing-secret" data-secret>(whsec_[A-Za-z0-9+/=]+)<')


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _create(user, url, events=()):
    data = {"url": url, "description": "Orders"}
    if events:
        data["events"] = list(events)
    return user.submit("/webhooks", "/webhooks", data)


def _endpoint_id(html: str) -> str:
    return re.search(r"<code>(wh_[A-Za-z0-9]+)</code>", html).group(1)


def test_page_lists_and_offers_the_picker(user):
    html = user.get("/webhooks").get_data(as_text=True)
    assert "No webhook endpoints yet" in html
    for value in ("message.*", "message.delivered", "contact.created", "domain.verified"):
        assert f'value="{value}"' in html
    assert 'href="/webhooks"' in html  # the nav entry is live


def test_create_shows_the_secret_once(user, receiver):
    _test_mode(user)
    resp = _create(user, receiver.url, events=["message.*", "contact.created"])
    assert resp.status_code == 201
    html = resp.get_data(as_text=True)
    secret = SECRET.search(html).group(1)
    assert "only time it is shown" in html
    endpoint_id = _endpoint_id(html)
    again = user.get(f"/webhooks/{endpoint_id}").get_data(as_text=True)
    assert secret not in again and "message.*" in again
    assert receiver.url in user.get("/webhooks").get_data(as_text=True)


def test_bad_url_is_an_inline_error(user, app, monkeypatch):
    resp = _create(user, "ftp://example.com/x")
    assert resp.status_code == 422
    assert "https://" in resp.get_data(as_text=True) and 'class="field-error"' in resp.get_data(as_text=True)
    # In the dashboard's default mode (live) plain HTTP is refused.
    resp = _create(user, "http://127.0.0.1:9/x")
    assert resp.status_code == 422 and "Live-mode URLs must use HTTPS." in resp.get_data(as_text=True)


def _test_mode(user):
    page = user.get("/webhooks").get_data(as_text=True)
    resp = user.client.post("/session/mode", data={"csrf_token": csrf_from(page), "mode": "test", "next": "/webhooks"})
    assert resp.status_code in (302, 303)


def test_ping_delivery_page_and_retry(user, receiver):
    _test_mode(user)
    created = _create(user, receiver.url)
    html = created.get_data(as_text=True)
    secret, endpoint_id = SECRET.search(html).group(1), _endpoint_id(html)

    resp = user.submit(f"/webhooks/{endpoint_id}", f"/webhooks/{endpoint_id}/test")
    assert resp.status_code == 303 and "/deliveries/whd_" in resp.headers["Location"]
    page = user.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Test event delivered: HTTP 200." in page and "webhook.test" in page
    assert "webhook-signature: v1," in page and 'id="attempt-count">1<' in page
    Webhook(secret).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])

    retry = user.submit(resp.headers["Location"], resp.headers["Location"] + "/retry")
    assert retry.status_code == 303
    page = user.get(retry.headers["Location"]).get_data(as_text=True)
    assert "Delivered again: HTTP 200." in page and 'id="attempt-count">2<' in page and "manual" in page
    assert len(receiver.requests) == 2

    detail = user.get(f"/webhooks/{endpoint_id}").get_data(as_text=True)
    assert 'data-status="succeeded"' in detail


def test_edit_pause_rotate_delete(user, receiver):
    _test_mode(user)
    endpoint_id = _endpoint_id(_create(user, receiver.url).get_data(as_text=True))
    path = f"/webhooks/{endpoint_id}"

    resp = user.submit(path, path, {"url": receiver.url + "?v=2", "description": "", "events": ["message.*"]})
    assert resp.status_code == 303
    html = user.get(path).get_data(as_text=True)
    assert "?v=2" in html and "<code>message.*</code>" in html

    bad = user.submit(path, path, {"url": "gopher://x", "description": ""})
    assert bad.status_code == 422 and 'class="field-error"' in bad.get_data(as_text=True)

    resp = user.submit(path, f"{path}/status", {"status": "paused"})
    assert resp.status_code == 303 and "badge-warn\">paused" in user.get(path).get_data(as_text=True)
    user.submit(path, f"{path}/status", {"status": "enabled"})

    confirm = user.get(f"{path}/rotate")
    assert "Rotate the signing secret?" in confirm.get_data(as_text=True)
    rotated = user.submit(f"{path}/rotate", f"{path}/rotate")
    new_secret = SECRET.search(rotated.get_data(as_text=True)).group(1)
    user.submit(path, f"{path}/test")
    Webhook(new_secret).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])

    resp = user.submit(f"{path}/delete", f"{path}/delete")
    assert resp.status_code == 303
    assert user.get(path).status_code == 404


def test_other_organizations_endpoints_are_404(user, other_account, app, receiver):
    from app.extensions import db
    from app.tenancy import tenant_scope
    from app.webhooks import service
    with app.app_context(), tenant_scope(other_account["organization_id"], "live"):
        endpoint, _ = service.create_endpoint({"url": "https://127.0.0.1:9/x"})
        db.session.commit()
        theirs = endpoint.id
    for path in (f"/webhooks/{theirs}", f"/webhooks/{theirs}/rotate", f"/webhooks/{theirs}/delete",
                 f"/webhooks/{theirs}/deliveries/whd_nope"):
        assert user.get(path).status_code == 404


def test_owner_is_told_once_about_a_disabled_endpoint(user, app, account):
    from app.extensions import db
    from app.tenancy import tenant_scope
    from app.webhooks import dispatch, service
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        endpoint, _ = service.create_endpoint({"url": "https://127.0.0.1:9/gone"})
        db.session.flush()
        dispatch.disable_endpoints([endpoint.id], "failing")
        db.session.commit()
    first = user.get("/contacts").get_data(as_text=True)
    assert "https://127.0.0.1:9/gone (live) was disabled because it failed for 5 days" in first
    assert "was disabled because" not in user.get("/contacts").get_data(as_text=True)
    page = user.get("/webhooks").get_data(as_text=True)
    assert "Endpoint disabled: https://127.0.0.1:9/gone" in page


def test_viewers_cannot_change_endpoints(user, app, account, receiver):
    from sqlalchemy import update

    from app.accounts.models import Membership
    from app.extensions import db
    page = user.get("/webhooks").get_data(as_text=True)
    with app.app_context():
        db.session.execute(update(Membership).where(Membership.organization_id == account["organization_id"])
                           .values(role="viewer"))
        db.session.commit()
    resp = user.client.post("/webhooks", data={"csrf_token": csrf_from(page), "url": "https://127.0.0.1:9/x"})
    assert resp.status_code == 403
    assert "Add an endpoint" not in user.get("/webhooks").get_data(as_text=True)
