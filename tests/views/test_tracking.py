"""The public tracking endpoints and the preference center (API.md 15; issue 4 points 5 and 6).

Opens and clicks: a signed token, a GIF or a 302 to exactly the message's URL, events on the message and its
contact, machine fetches flagged.  Preference center: per-channel consent, the same unsubscribe as the
one-click path, resubscribe lifting only an `unsubscribe` suppression, CSRF required, never a redirect.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.tracking.tokens import click_token, open_token, unsubscribe_token
from tests.views.conftest import csrf_from

CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
URL = "https://shop.example.com/sale?utm_source=news&utm_medium=email#top"


@pytest.fixture
def public(app):
    """No cookies: a mail client fetching an image, a browser following a link from a message."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def contact(test_api):
    resp = test_api.post("/contacts", json={"email": "reader@example.com", "phone_number": "+14155550123",
                                            "consent": {"email": True, "sms": True}})
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def _dispatch(app):
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        dispatch_email()


def _age(app, message_id, seconds=3600):
    """Pretend the message was delivered ``seconds`` ago (outside the machine window)."""
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped
    from app.timeutil import utcnow
    with app.app_context(), unscoped():
        db.session.execute(update(Message).where(Message.id == message_id)
                           .values(completed_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


@pytest.fixture
def message(app, test_api, contact):
    """A test-mode message to the contact, delivered (simulated) an hour ago."""
    resp = test_api.post("/messages/email", json={
        "from": "news@acme.example", "to": "reader@example.com", "subject": "Sale",
        "html": f'<p><a href="{URL}">Sale</a></p>', "track_opens": True, "track_clicks": True})
    assert resp.status_code == 202, resp.get_json()
    msg = resp.get_json()
    _dispatch(app)
    _age(app, msg["id"])
    return msg


def _events(app, account, type_, mode="test"):
    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], mode):
        return db.session.execute(select(Event).where(Event.type == type_)
                                  .order_by(Event.occurred_at, Event.id)).scalars().all()


def _token(app, fn, *args):
    with app.app_context():
        return fn(*args)


# --- clicks ------------------------------------------------------------------------------------------------

def test_click_redirects_to_the_exact_url_and_records_it(app, public, account, test_api, contact, message):
    token = _token(app, click_token, message["id"], URL)
    resp = public.get(f"/t/c/{token}", headers={"User-Agent": CHROME, "X-Forwarded-For": "203.0.113.9"})
    assert resp.status_code == 302
    assert resp.headers["Location"] == URL
    assert resp.headers["Referrer-Policy"] == "no-referrer" and "no-store" in resp.headers["Cache-Control"]
    assert "Set-Cookie" not in resp.headers
    [event] = _events(app, account, "message.clicked")
    assert event.message_id == message["id"] and event.contact_id == contact["id"]
    assert event.data == {"url": URL, "user_agent": CHROME, "ip": "203.0.113.9", "machine": False, "first": True}
    # On the message's timeline through the API.
    timeline = test_api.get(f"/messages/{message['id']}").get_json()["events"]
    assert [e["data"]["url"] for e in timeline if e["type"] == "message.clicked"] == [URL]
    # A second click is recorded too, no longer first.
    assert public.get(f"/t/c/{token}", headers={"User-Agent": CHROME}).headers["Location"] == URL
    assert [e.data["first"] for e in _events(app, account, "message.clicked")] == [True, False]


def test_click_to_a_non_ascii_url(app, public, message):
    """The Location header is ASCII: the path and query percent-encoded (UTF-8), the host IDNA-encoded."""
    for url, location in (("https://shop.example.com/café?q=crème", "https://shop.example.com/caf%C3%A9?q=cr%C3%A8me"),
                          ("https://bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe")):
        resp = public.get(f"/t/c/{_token(app, click_token, message['id'], url)}", headers={"User-Agent": CHROME})
        assert resp.status_code == 302 and resp.headers["Location"] == location


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t[:12] + ("x" if t[12] != "x" else "y") + t[13:],
    lambda t: t.rpartition(".")[0],
    lambda t: "forged.token",
])
def test_forged_or_altered_click_is_a_404_never_a_redirect(app, public, account, message, mutate):
    token = mutate(_token(app, click_token, message["id"], URL))
    resp = public.get(f"/t/c/{token}", headers={"User-Agent": CHROME})
    assert resp.status_code == 404
    assert "Location" not in resp.headers
    assert "This link is not valid" in resp.get_data(as_text=True)
    assert _events(app, account, "message.clicked") == []


def test_open_token_is_not_a_click_token(app, public, message):
    assert public.get(f"/t/c/{_token(app, open_token, message['id'])}").status_code == 404


def test_click_for_an_erased_message_still_redirects_but_records_nothing(app, public, account):
    token = _token(app, click_token, "msg_doesnotexist000000", URL)
    resp = public.get(f"/t/c/{token}", headers={"User-Agent": CHROME})
    assert resp.status_code == 302 and resp.headers["Location"] == URL
    assert _events(app, account, "message.clicked") == []


def test_head_click_is_a_machine(app, public, account, message):
    token = _token(app, click_token, message["id"], URL)
    resp = public.head(f"/t/c/{token}", headers={"User-Agent": CHROME})
    assert resp.status_code == 302 and resp.headers["Location"] == URL
    [event] = _events(app, account, "message.clicked")
    assert event.data["machine"] is True and event.data["machine_reason"] == "head"


# --- opens -------------------------------------------------------------------------------------------------

def _assert_gif(resp):
    assert resp.status_code == 200
    assert resp.mimetype == "image/gif"
    assert resp.data.startswith(b"GIF89a") and len(resp.data) == 43
    assert "no-store" in resp.headers["Cache-Control"] and "no-cache" in resp.headers["Cache-Control"]
    assert resp.headers["Pragma"] == "no-cache" and resp.headers["Expires"] == "0"
    assert "Set-Cookie" not in resp.headers


def test_pixel_returns_a_gif_and_records_the_open(app, public, account, contact, message):
    token = _token(app, open_token, message["id"])
    resp = public.get(f"/t/o/{token}", headers={"User-Agent": CHROME})
    _assert_gif(resp)
    [event] = _events(app, account, "message.opened")
    assert event.message_id == message["id"] and event.contact_id == contact["id"]
    assert event.data == {"user_agent": CHROME, "ip": "127.0.0.1", "machine": False, "first": True}


@pytest.mark.parametrize("token", ["garbage", "a.b", "x" * 7000])
def test_pixel_with_a_bad_token_is_still_a_gif_and_records_nothing(app, public, account, message, token):
    _assert_gif(public.get(f"/t/o/{token}", headers={"User-Agent": CHROME}))
    _assert_gif(public.get(f"/t/o/{_token(app, click_token, message['id'], URL)}"))  # a click token
    assert _events(app, account, "message.opened") == []


@pytest.mark.parametrize("user_agent", [
    "Mozilla/5.0",  # Apple Mail Privacy Protection
    "Barracuda Sentinel (EE)", "Mozilla/5.0 (compatible; Mimecast-Url-Protect)", "python-requests/2.32.3", "",
])
def test_machine_opens_by_user_agent(app, public, account, message, user_agent):
    _assert_gif(public.get(f"/t/o/{_token(app, open_token, message['id'])}", headers={"User-Agent": user_agent}))
    [event] = _events(app, account, "message.opened")
    assert event.data["machine"] is True and event.data["machine_reason"] == "user_agent"


def test_gmail_image_proxy_is_a_real_open(app, public, account, message):
    gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    public.get(f"/t/o/{_token(app, open_token, message['id'])}", headers={"User-Agent": gmail})
    [event] = _events(app, account, "message.opened")
    assert event.data["machine"] is False


def test_machine_by_timing_right_after_delivery(app, public, account, message, monkeypatch):
    _age(app, message["id"], seconds=2)
    public.get(f"/t/o/{_token(app, open_token, message['id'])}", headers={"User-Agent": CHROME})
    public.get(f"/t/c/{_token(app, click_token, message['id'], URL)}", headers={"User-Agent": CHROME})
    [opened], [clicked] = _events(app, account, "message.opened"), _events(app, account, "message.clicked")
    assert opened.data["machine"] is True and opened.data["machine_reason"] == "timing"
    assert clicked.data["machine"] is True and clicked.data["machine_reason"] == "timing"
    # The window is configurable (0 turns timing off).
    monkeypatch.setitem(app.config, "TRACKING_MACHINE_WINDOW", 0)
    public.get(f"/t/o/{_token(app, open_token, message['id'])}", headers={"User-Agent": CHROME})
    assert _events(app, account, "message.opened")[-1].data["machine"] is False


def test_simulated_open_and_click_have_the_same_data_shape(app, test_api, account):
    resp = test_api.post("/messages/email", json={"from": "news@acme.example", "to": "clicked@simulator.test",
                                                  "subject": "S", "text": "T"})
    _dispatch(app)
    events = {e["type"]: e["data"] for e in test_api.get(f"/messages/{resp.get_json()['id']}").get_json()["events"]}
    assert set(events["message.opened"]) >= {"user_agent", "ip", "machine", "first"}
    assert set(events["message.clicked"]) >= {"url", "user_agent", "ip", "machine", "first"}
    assert events["message.clicked"]["machine"] is False


# --- preference center -------------------------------------------------------------------------------------

@pytest.fixture
def prefs(app, account, contact):
    token = _token(app, unsubscribe_token, account["organization_id"], "test", "msg_news1", "reader@example.com")
    return f"/u/{token}/preferences"


def _consent(test_api, contact):
    return test_api.get(f"/contacts/{contact['id']}").get_json()["consent"]


def _suppressions(test_api, recipient="reader@example.com"):
    return [(s["channel"], s["reason"], s["message_id"])
            for s in test_api.get(f"/suppressions?recipient={recipient}").get_json()["data"]]


def test_unsubscribe_page_links_to_the_preference_center(app, public, account, contact, prefs):
    token = prefs.split("/")[2]
    page = public.get(f"/u/{token}").get_data(as_text=True)
    assert f'href="{prefs}"' in page


def test_preference_page_shows_masked_per_channel_consent(app, client, prefs):
    resp = client.get(prefs)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "r•••@example.com" in html and "+1•••0123" in html
    assert "reader@example.com" not in html and "+14155550123" not in html
    assert html.count('value="subscribed" checked') == 2
    assert 'name="csrf_token"' in html and "<script" not in html and " style=" not in html
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


def test_preferences_unsubscribe_then_resubscribe(app, web, account, test_api, contact, prefs):
    resp = web.submit(prefs, data={"email": "unsubscribed", "sms": "subscribed"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert "Your preferences are saved." in resp.get_data(as_text=True)
    assert _consent(test_api, contact) == {"email": "unsubscribed", "sms": "subscribed"}
    assert _suppressions(test_api) == [("email", "unsubscribe", "msg_news1")]
    [unsub] = _events(app, account, "contact.unsubscribed")
    assert (unsub.contact_id, unsub.message_id, unsub.data) == (
        contact["id"], "msg_news1", {"message_id": "msg_news1", "source": "preferences", "channel": "email"})
    [updated] = _events(app, account, "contact.updated")
    assert updated.contact_id == contact["id"] and updated.data["consent"]["email"] == "unsubscribed"
    # The page shows the new state.
    assert 'value="unsubscribed" checked' in web.get(prefs).get_data(as_text=True)

    # Resubscribe: consent back, the unsubscribe suppression lifted.
    resp = web.submit(prefs, data={"email": "subscribed", "sms": "subscribed"})
    assert resp.status_code == 200
    assert _consent(test_api, contact) == {"email": "subscribed", "sms": "subscribed"}
    assert _suppressions(test_api) == []
    assert len(_events(app, account, "contact.updated")) == 2
    assert len(_events(app, account, "contact.unsubscribed")) == 1
    # Saving again without a change records nothing.
    web.submit(prefs, data={"email": "subscribed", "sms": "subscribed"})
    assert len(_events(app, account, "contact.updated")) == 2


def test_sms_from_an_email_link(app, web, account, test_api, contact, prefs):
    web.submit(prefs, data={"sms": "unsubscribed"})
    assert _consent(test_api, contact) == {"email": "subscribed", "sms": "unsubscribed"}
    assert _suppressions(test_api, "%2B14155550123") == [("sms", "unsubscribe", "msg_news1")]
    assert _suppressions(test_api) == []


def test_resubscribe_never_lifts_a_bounce_or_complaint(app, web, account, test_api, contact, prefs):
    web.submit(prefs, data={"email": "unsubscribed"})
    [sup] = test_api.get("/suppressions?recipient=reader@example.com").get_json()["data"]
    assert test_api.delete(f"/suppressions/{sup['id']}").status_code in (200, 204)
    test_api.post("/suppressions", json={"channel": "email", "recipient": "reader@example.com", "reason": "bounce"})
    resp = web.submit(prefs, data={"email": "subscribed"})
    assert resp.status_code == 200
    assert "bounced" in resp.get_data(as_text=True)
    assert _consent(test_api, contact)["email"] == "subscribed"
    assert _suppressions(test_api) == [("email", "bounce", None)]


def test_preferences_need_csrf(app, client, test_api, account, contact, prefs):
    client.get(prefs)  # a session exists, but the token is not sent
    for data in ({"email": "unsubscribed"}, {"email": "unsubscribed", "csrf_token": "forged"}):
        resp = client.post(prefs, data=data)
        assert resp.status_code == 400
        assert "This form expired" in resp.get_data(as_text=True)
    assert _consent(test_api, contact)["email"] == "subscribed"
    assert _suppressions(test_api) == []
    assert _events(app, account, "contact.unsubscribed") == []


def test_preferences_are_not_an_open_redirect(app, web, prefs):
    resp = web.submit(prefs + "?next=https://evil.example/", data={"email": "subscribed",
                                                                    "next": "https://evil.example/"})
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert "evil.example" not in resp.get_data(as_text=True)


def test_preferences_ignore_unknown_values(app, web, test_api, contact, prefs):
    resp = web.submit(prefs, data={"email": "maybe", "sms": "\x00", "push": "unsubscribed"})
    assert resp.status_code == 200
    assert _consent(test_api, contact) == {"email": "subscribed", "sms": "subscribed"}


def test_preferences_without_a_contact(app, web, account, test_api):
    token = _token(app, unsubscribe_token, account["organization_id"], "test", None, "stranger@example.com")
    prefs = f"/u/{token}/preferences"
    html = web.get(prefs).get_data(as_text=True)
    assert "s•••@example.com" in html and "Text messages" not in html and " checked" not in html
    web.submit(prefs, data={"email": "unsubscribed"})
    assert _suppressions(test_api, "stranger@example.com") == [("email", "unsubscribe", None)]
    assert 'value="unsubscribed" checked' in web.get(prefs).get_data(as_text=True)
    web.submit(prefs, data={"email": "subscribed"})
    assert _suppressions(test_api, "stranger@example.com") == []
    assert _events(app, account, "contact.updated") == []


def test_preferences_with_a_bad_token(app, client):
    assert client.get("/u/forged/preferences").status_code == 404
    page = client.get("/login").get_data(as_text=True)
    resp = client.post("/u/forged/preferences", data={"csrf_token": csrf_from(page), "email": "unsubscribed"})
    assert resp.status_code == 404


def test_preferences_from_an_sms_link(app, web, account, test_api, contact):
    token = _token(app, unsubscribe_token, account["organization_id"], "test", None, "+14155550123", "sms")
    prefs = f"/u/{token}/preferences"
    html = web.get(prefs).get_data(as_text=True)
    assert "+1•••0123" in html and "r•••@example.com" in html
    web.submit(prefs, data={"sms": "unsubscribed", "email": "subscribed"})
    assert _consent(test_api, contact) == {"email": "subscribed", "sms": "unsubscribed"}
    assert _suppressions(test_api, "%2B14155550123") == [("sms", "unsubscribe", None)]
    [unsub] = _events(app, account, "contact.unsubscribed")
    assert unsub.data == {"message_id": None, "source": "preferences", "channel": "sms"}
