"""The public unsubscribe link (API.md 3.2, 15; RFC 8058): GET only asks, the one-click POST needs no
cookie and no CSRF token, answers 200, flips consent, suppresses, records the event, and is idempotent."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.tracking.tokens import unsubscribe_token


@pytest.fixture
def contact(api):
    return api.post("/contacts", json={"email": "Reader@Example.com", "consent": {"email": True}}).get_json()


@pytest.fixture
def token(app, account, contact):
    with app.app_context():
        return unsubscribe_token(account["organization_id"], "live", "msg_news1", "reader@example.com")


@pytest.fixture
def public(app):
    """A client with no cookies at all (a mailbox provider's server)."""
    return app.test_client(use_cookies=False)


def _events(app, account, mode="live"):
    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], mode):
        rows = db.session.execute(select(Event).where(Event.type == "contact.unsubscribed")).scalars().all()
        return [(e.contact_id, e.recipient, e.message_id, e.data) for e in rows]


def _state(api, contact):
    consent = api.get(f"/contacts/{contact['id']}").get_json()["consent"]["email"]
    sup = api.get("/suppressions?channel=email&recipient=reader@example.com").get_json()["data"]
    return consent, sup


def test_get_shows_a_confirmation_and_changes_nothing(app, public, api, account, contact, token):
    for _ in range(3):  # a scanner prefetching, a preview, the person
        resp = public.get(f"/u/{token}")
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert "Unsubscribe <strong>r•••@example.com</strong> from" in html
        assert f"{_org_name(app, account)}’s emails?" in html
        assert f'<form method="post" action="/u/{token}"' in html
        assert "reader@example.com" not in html.lower()  # masked only
        assert "csrf_token" not in html and "<script" not in html and " style=" not in html
        assert "Set-Cookie" not in resp.headers
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert public.head(f"/u/{token}").status_code == 200
    assert _state(api, contact) == ("subscribed", [])
    assert _events(app, account) == []


def _org_name(app, account):
    from app.accounts.models import Organization
    from app.extensions import db
    with app.app_context():
        return db.session.get(Organization, account["organization_id"]).name


def test_one_click_post(app, public, api, account, contact, token):
    resp = public.post(f"/u/{token}", data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200  # never a redirect
    assert "Location" not in resp.headers and "Set-Cookie" not in resp.headers
    html = resp.get_data(as_text=True)
    assert "You are unsubscribed" in html and "r•••@example.com" in html and "reader@example.com" not in html
    consent, sup = _state(api, contact)
    assert consent == "unsubscribed"
    assert len(sup) == 1 and sup[0]["reason"] == "unsubscribe" and sup[0]["message_id"] == "msg_news1"
    assert _events(app, account) == [(contact["id"], "reader@example.com", "msg_news1",
                                      {"message_id": "msg_news1", "source": "one_click", "channel": "email"})]

    # Idempotent: a provider retrying, the person clicking too.
    again = public.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and "You are unsubscribed" in again.get_data(as_text=True)
    assert public.post(f"/u/{token}").status_code == 200
    assert _state(api, contact)[1] == sup
    assert len(_events(app, account)) == 1
    # The page now says so, still without a button.
    page = public.get(f"/u/{token}").get_data(as_text=True)
    assert "You are unsubscribed" in page and "<form" not in page


def test_page_button_post_and_multipart_one_click(app, public, api, account, contact, token):
    resp = public.post(f"/u/{token}")  # the confirmation page's button: an empty form
    assert resp.status_code == 200
    assert _state(api, contact)[0] == "unsubscribed"
    assert [e[3]["source"] for e in _events(app, account)] == ["page"]


def test_one_click_as_multipart(app, public, api, account, contact, token):
    resp = public.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data")
    assert resp.status_code == 200
    assert [e[3]["source"] for e in _events(app, account)] == ["one_click"]


def test_csrf_is_not_needed_here_but_still_is_on_the_dashboard(app, user, client, api, account, contact, token):
    """A logged-in person (session cookie, CSRF enforced on the dashboard) can still one-click."""
    resp = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200
    assert _state(api, contact)[0] == "unsubscribed"
    assert client.post("/suppressions", data={"channel": "email", "recipient": "x@example.com"}).status_code == 400


def test_unknown_recipient_is_suppressed_without_a_contact(app, public, api, account):
    with app.app_context():
        token = unsubscribe_token(account["organization_id"], "live", None, "stranger@example.com")
    assert public.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    sup = api.get("/suppressions?recipient=stranger@example.com").get_json()["data"]
    assert [(s["reason"], s["message_id"]) for s in sup] == [("unsubscribe", None)]
    assert _events(app, account) == [(None, "stranger@example.com", None,
                                      {"message_id": None, "source": "one_click", "channel": "email"})]


def test_already_suppressed_contact_still_loses_consent(app, public, api, account, contact, token):
    api.post("/suppressions", json={"channel": "email", "recipient": "reader@example.com", "reason": "bounce"})
    assert public.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    consent, sup = _state(api, contact)
    assert consent == "unsubscribed" and [s["reason"] for s in sup] == ["bounce"]
    assert len(_events(app, account)) == 1


def test_token_is_bound_to_its_tenant_and_mode(app, public, api, test_api, other_api, account, contact):
    """A test-mode link touches test data only; another organization's same address is untouched."""
    theirs = other_api.post("/contacts", json={"email": "reader@example.com", "consent": {"email": True}}).get_json()
    with app.app_context():
        token = unsubscribe_token(account["organization_id"], "test", "msg_t", "reader@example.com")
    assert public.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _state(api, contact) == ("subscribed", [])
    assert other_api.get(f"/contacts/{theirs['id']}").get_json()["consent"]["email"] == "subscribed"
    assert other_api.get("/suppressions").get_json()["data"] == []
    assert [s["recipient"] for s in test_api.get("/suppressions").get_json()["data"]] == ["reader@example.com"]
    assert len(_events(app, account, "test")) == 1 and _events(app, account) == []


def test_sms_token(app, public, api, account):
    c = api.post("/contacts", json={"phone_number": "+14155550142", "consent": {"sms": True}}).get_json()
    with app.app_context():
        token = unsubscribe_token(account["organization_id"], "live", None, "+14155550142", channel="sms")
    page = public.get(f"/u/{token}").get_data(as_text=True)
    assert "+1•••0142" in page and "text messages" in page and "+14155550142" not in page
    assert public.post(f"/u/{token}").status_code == 200
    assert api.get(f"/contacts/{c['id']}").get_json()["consent"] == {"email": "unknown", "sms": "unsubscribed"}
    assert api.get("/suppressions?channel=sms").get_json()["data"][0]["recipient"] == "+14155550142"


@pytest.mark.parametrize("method", ["get", "post"])
def test_forged_or_altered_token_is_an_html_404(app, public, api, account, contact, token, method):
    from itsdangerous import URLSafeSerializer
    forged = URLSafeSerializer("guessed", salt="postline.unsubscribe.v1").dumps(
        [account["organization_id"], "l", "", "reader@example.com", "e"])
    for bad in (forged, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "garbage"):
        resp = getattr(public, method)(f"/u/{bad}", data={"List-Unsubscribe": "One-Click"} if method == "post" else None)
        assert resp.status_code == 404, bad
        assert resp.mimetype == "text/html" and "This link is not valid" in resp.get_data(as_text=True)
        assert "Location" not in resp.headers
    assert _state(api, contact) == ("subscribed", [])


def test_token_of_a_deleted_organization_is_404(app, public):
    with app.app_context():
        token = unsubscribe_token("org_doesnotexist", "live", None, "a@example.com")
    assert public.get(f"/u/{token}").status_code == 404
    assert public.post(f"/u/{token}").status_code == 404


def test_no_open_redirect_and_no_reflection(app, public, account, contact, token):
    resp = public.post(f"/u/{token}?next=https://evil.example/", data={"List-Unsubscribe": "One-Click"},
                       headers={"Referer": "https://evil.example/"})
    assert resp.status_code == 200 and "evil.example" not in resp.get_data(as_text=True)
    resp = public.get(f"/u/{token}?next=https://evil.example/")
    assert resp.status_code == 200 and "evil.example" not in resp.get_data(as_text=True)
