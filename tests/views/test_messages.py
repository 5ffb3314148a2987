"""Message pages: list with htmx filters and keyset paging, detail (recipients, timeline, SMTP attempts,
sandboxed preview), "Send a test email" through the API's schema and service, cancel, isolation."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import PASSWORD, ApiClient, make_account
from tests.views.conftest import csrf_from

_IDS = re.compile(r'href="/messages/(msg_[A-Za-z0-9]+)"')
FROM = "Acme <hello@acme.example>"


def dispatch(app):
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        return dispatch_email()


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="messages-table"'):]


def _ids(resp) -> list[str]:
    return _IDS.findall(_table(resp))


def _test_mode(user, next_="/messages"):
    resp = user.submit("/messages", "/session/mode", {"mode": "test", "next": next_})
    assert resp.status_code == 303


def _send_form(user, **data):
    body = {"from_": FROM, "to": "delivered@simulator.test", "subject": "Hello", "text": "Hi there",
            "html": "", "message_type": "transactional", "tags": ""}
    body.update(data)
    return user.submit("/messages/new", "/messages", body)


def _api_send(api, **body):
    body.setdefault("from", FROM)
    body.setdefault("subject", "Hi")
    body.setdefault("text", "Hello")
    resp = api.post("/messages/email", json=body)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["id"]


def _field(html: str, name: str) -> str:
    """The markup of one form field (its ``.field`` block), to check an error landed on it."""
    start = html.index(f'name="{name}"')
    begin = html.rindex('<div class="field', 0, start)
    end = html.index("</div>", start)
    return html[begin:end]


def test_empty_list_points_to_the_send_form_and_docs(user):
    resp = user.get("/messages")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'class="nav-link is-active"\s+href="/messages" aria-current="page">', html)
    table = _table(resp)
    assert "No messages yet" in table
    assert 'href="/messages/new"' in table and 'href="/api/v1/docs"' in table


def test_send_in_test_mode_then_detail_after_dispatch(app, user, test_api):
    _test_mode(user)
    html_part = '<p class="x">Hello <b>Ada</b> & "friends"</p><script>alert(1)</script>'
    resp = _send_form(user, to="opened@simulator.test", subject="Welcome aboard", text="Hello Ada",
                      html=html_part, tags="welcome, onboarding")
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    location = resp.headers["Location"]
    message_id = re.fullmatch(r"/messages/(msg_[A-Za-z0-9]+)", location).group(1)

    page = user.get(location).get_data(as_text=True)
    assert "Email queued in test mode" in page
    assert "Welcome aboard" in page and "opened@simulator.test" in page
    assert re.search(r'id="message-status"><span class="badge badge-info">queued</span>', page)
    assert "waiting for the delivery worker" in page

    # The API sees the very same message.
    body = test_api.get(f"/messages/{message_id}").get_json()
    assert body["subject"] == "Welcome aboard" and body["tags"] == ["welcome", "onboarding"]
    assert body["from"] == {"email": "hello@acme.example", "name": "Acme"}
    assert body["html"] == html_part and body["text"] == "Hello Ada"

    dispatch(app)
    page = user.get(location).get_data(as_text=True)
    assert re.search(r'id="message-status"><span class="badge badge-ok">delivered</span>', page)
    timeline = page[page.index('id="timeline"'):page.index('id="attempts"')]
    assert re.findall(r'data-type="(message\.[a-z]+)"', timeline) == [
        "message.queued", "message.sent", "message.delivered", "message.opened"]
    assert "250 2.0.0 simulated: accepted for delivery" in timeline
    attempts = page[page.index('id="attempts"'):page.index('id="content"')]
    for text in ("opened@simulator.test", ">accepted<", ">simulator<", ">250<", ">2.0.0<",
                 "2.0.0 simulated: accepted for delivery"):
        assert text in attempts, text
    recipients = page[page.index('id="recipients"'):page.index('id="timeline"')]
    assert ">to<" in recipients and ">delivered<" in recipients and "250 2.0.0 simulated" in recipients

    # The preview: a sandboxed iframe (no allow-scripts) loading a document with its own CSP: the email's
    # inline styles apply, scripts and remote loads do not; only this dashboard may frame it.
    iframe = re.search(r"<iframe[^>]*>", page).group(0)
    assert re.search(r'\ssandbox\s', iframe) and "allow-" not in iframe
    src = re.search(r'src="([^"]+)"', iframe).group(1)
    assert "<script>alert" not in page
    doc = user.get(src)
    assert doc.status_code == 200 and doc.mimetype == "text/html"
    csp = doc.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "style-src 'unsafe-inline'" in csp and "frame-ancestors 'self'" in csp
    assert "img-src data:" in csp and doc.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "<script>alert(1)</script>" in doc.get_data(as_text=True)  # served as is, never run (sandbox + CSP)
    assert '<pre class="code code-body msg-text" id="text-part">Hello Ada</pre>' in page
    assert "welcome" in page and "onboarding" in page


def test_preview_document_keeps_the_doctype_first():
    from app.messages.views import PREVIEW_HEAD, preview_document
    assert preview_document(None) is None and preview_document("") is None
    assert preview_document("<p>x</p>") == PREVIEW_HEAD + "<p>x</p>"
    assert preview_document(" <!DOCTYPE html><html><p>x</p></html>") == (
        " <!DOCTYPE html>" + PREVIEW_HEAD + "<html><p>x</p></html>")


def test_bounce_shows_the_reply_everywhere(app, user, test_api):
    message_id = _api_send(test_api, to="bounce@simulator.test", subject="Bouncy")
    dispatch(app)
    _test_mode(user)
    page = user.get(f"/messages/{message_id}").get_data(as_text=True)
    assert re.search(r'id="message-status"><span class="badge badge-error">bounced</span>', page)
    timeline = page[page.index('id="timeline"'):page.index('id="attempts"')]
    assert re.findall(r'data-type="(message\.[a-z]+)"', timeline) == ["message.queued", "message.bounced"]
    assert "Bounce type</dt><dd>hard" in timeline
    assert "550 5.1.1 simulated: the mailbox does not exist" in timeline
    attempts = page[page.index('id="attempts"'):page.index('id="content"')]
    assert ">bounced<" in attempts and ">550<" in attempts and ">5.1.1<" in attempts


def test_list_filters(app, user, test_api):
    delivered = _api_send(test_api, to="delivered@simulator.test", tags=["welcome"])
    bounced = _api_send(test_api, to="bounce@simulator.test", tags=["welcome", "beta"])
    dispatch(app)
    queued = _api_send(test_api, to=["Ada@Example.com", "b@example.com"], subject="Two")
    _test_mode(user)
    assert _ids(user.get("/messages")) == [queued, bounced, delivered]
    assert _ids(user.get("/messages?status=delivered")) == [delivered]
    assert _ids(user.get("/messages?status=bounced")) == [bounced]
    assert _ids(user.get("/messages?status=queued")) == [queued]
    assert _ids(user.get("/messages?tag=welcome")) == [bounced, delivered]
    assert _ids(user.get("/messages?tag=beta&status=bounced")) == [bounced]
    assert _ids(user.get("/messages?to=ada@example.com")) == [queued]
    assert _ids(user.get("/messages?to=b@example.com&tag=welcome")) == []

    listing = _table(user.get("/messages"))
    assert "ada@example.com" in listing and "+1" in listing
    assert re.search(r'badge-error">bounced<', listing) and re.search(r'badge-info">queued<', listing)
    empty = user.get("/messages?tag=nope")
    assert "No matching messages" in _table(empty) and 'href="/messages"' in _table(empty)
    page = user.get("/messages?status=bounced").get_data(as_text=True)
    assert '<option value="bounced" selected>' in page

    bad = user.get("/messages?status=lost")
    assert bad.status_code == 200 and "Status must be one of" in _table(bad)
    unknown = user.get("/messages?starting_after=msg_nope")
    assert unknown.status_code == 200 and "No such object for cursor" in _table(unknown)

    fragment = user.get("/messages?status=delivered", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="messages-table"') and "<html" not in body
    assert _ids(fragment) == [delivered]
    assert "HX-Request" in fragment.headers["Vary"]


def test_keyset_paging(app, user, account, test_api):
    from app.extensions import db
    from app.messages.schemas import EmailSendSchema
    from app.messages.service import send_email
    from app.tenancy import tenant_scope
    schema = EmailSendSchema()
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        for i in range(27):
            send_email(schema.load({"from": FROM, "to": f"p{i}@example.com", "subject": f"S{i}", "text": "x"}))
        db.session.commit()
    expected = [m["id"] for m in test_api.get("/messages?limit=100").get_json()["data"]]
    assert len(expected) == 27
    _test_mode(user)
    first = user.get("/messages?tag=")  # a blank filter is no filter
    assert _ids(first) == expected[:25]
    older = re.search(r'href="(/messages\?starting_after=msg_[A-Za-z0-9]+)"', _table(first)).group(1)
    second = user.get(older.replace("&amp;", "&"))
    assert _ids(second) == expected[25:]
    newer = re.search(r'href="(/messages\?ending_before=msg_[A-Za-z0-9]+)"', _table(second)).group(1)
    assert _ids(user.get(newer)) == expected[:25]
    # Filters ride along in the pager's links.
    with_filter = _table(user.get("/messages?status=queued"))
    assert re.search(r'href="/messages\?status=queued&amp;starting_after=msg_', with_filter)


def test_send_form_page(user):
    html = user.get("/messages/new").get_data(as_text=True)
    assert "Live mode: this email is really delivered" in html
    assert 'name="from_"' in html and 'name="to"' in html and 'name="message_type"' in html
    _test_mode(user, "/messages/new")
    html = user.get("/messages/new").get_data(as_text=True)
    assert "Simulator addresses" in html and 'value="delivered@simulator.test"' in html


def test_live_send_needs_a_verified_domain(user, api):
    resp = _send_form(user, to="someone@example.com")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "The from address is not on a verified domain" in _field(html, "from_")
    assert 'value="someone@example.com"' in html  # what was typed stays
    assert api.get("/messages").get_json()["data"] == []


@pytest.mark.parametrize("data,field,text", [
    ({"to": "not-an-email"}, "to", "To is not a valid email address"),
    ({"to": "ok@example.com, bad@"}, "to", "To is not a valid email address"),
    ({"to": ""}, "to", "To missing data for required field."),
    ({"from_": "nobody"}, "from_", "From is not a valid email address"),
    ({"from_": ""}, "from_", "From missing data for required field."),
    ({"subject": ""}, "subject", "Subject missing data for required field."),
    ({"text": "", "html": ""}, "text", "Give a text part, an HTML part, or both."),
    ({"tags": "x" * 101}, "tags", "Tags length must be between 1 and 100."),
])
def test_send_form_errors_are_shown_on_the_field(user, test_api, data, field, text):
    _test_mode(user, "/messages/new")
    resp = _send_form(user, **data)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert text in _field(html, field), _field(html, field)
    assert 'aria-invalid="true"' in _field(html, field)
    assert test_api.get("/messages").get_json()["data"] == []


def test_header_injection_is_refused(user, test_api):
    _test_mode(user, "/messages/new")
    resp = _send_form(user, subject="Hi\r\nBcc: victim@example.com")
    assert resp.status_code == 422
    assert "must not contain CR or LF" in _field(resp.get_data(as_text=True), "subject")
    assert test_api.get("/messages").get_json()["data"] == []


def test_html_only_and_marketing(app, user, test_api):
    _test_mode(user, "/messages/new")
    resp = _send_form(user, text="", html="<p>Only HTML</p>", to="nobody@example.com", message_type="marketing")
    assert resp.status_code == 303
    page = user.get(resp.headers["Location"]).get_data(as_text=True)
    # Marketing needs consent: the address is no subscribed contact, so it is suppressed, not sent.
    assert "recorded as suppressed" in page
    assert re.search(r'id="message-status"><span class="badge badge-neutral">suppressed</span>', page)
    assert "no_consent" in page and 'id="text-part"' not in page
    src = re.search(r'<iframe[^>]*src="([^"]+)"', page).group(1)
    assert "Only HTML" in user.get(src).get_data(as_text=True)


def test_send_needs_csrf(user, client, test_api):
    _test_mode(user)
    resp = client.post("/messages", data={"from_": FROM, "to": "a@example.com", "subject": "x", "text": "y"})
    assert resp.status_code == 400
    assert test_api.get("/messages").get_json()["data"] == []


def test_cancel_a_scheduled_send(app, user, client, test_api):
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    message_id = _api_send(test_api, to="a@example.com", send_at=later)
    _test_mode(user)
    path = f"/messages/{message_id}"
    page = user.get(path).get_data(as_text=True)
    assert "Cancel scheduled send" in page and "Scheduled for" in page
    assert client.post(f"{path}/cancel").status_code == 400  # no CSRF token
    resp = user.submit(path, f"{path}/cancel")
    assert resp.status_code == 303 and resp.headers["Location"] == path
    page = user.get(path).get_data(as_text=True)
    assert "The scheduled send was canceled." in page
    assert re.search(r'id="message-status"><span class="badge badge-neutral">canceled</span>', page)
    assert "Cancel scheduled send" not in page and 'data-type="message.canceled"' in page
    assert test_api.get(path).get_json()["status"] == "canceled"
    # Again: nothing to cancel, said as a flash, nothing changes.
    token = csrf_from(page)
    again = client.post(f"{path}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "Only a scheduled message can be canceled; this one is canceled." in again.get_data(as_text=True)


def test_other_organizations_messages_are_not_found(app, user, client, other_account):
    theirs_api = ApiClient(client, other_account["test_api_key"])
    theirs = _api_send(theirs_api, to="secret@example.com", subject="Their secret")
    _test_mode(user)
    for path in (f"/messages/{theirs}",):
        resp = user.get(path)
        assert resp.status_code == 404
        assert "secret@example.com" not in resp.get_data(as_text=True)
    assert user.submit("/messages", f"/messages/{theirs}/cancel").status_code == 404
    assert theirs not in _table(user.get("/messages"))
    assert _ids(user.get("/messages?to=secret@example.com")) == []


def test_live_and_test_messages_are_separate(user, test_api):
    message_id = _api_send(test_api, to="a@example.com")
    assert user.get(f"/messages/{message_id}").status_code == 404  # the dashboard starts in live mode
    assert _ids(user.get("/messages")) == []
    _test_mode(user)
    assert _ids(user.get("/messages")) == [message_id]


def test_viewer_reads_only(app, web, client, account, test_api):
    from app.accounts.service import add_member
    from app.extensions import db
    message_id = _api_send(test_api, to="a@example.com", send_at=(datetime.now(timezone.utc) + timedelta(
        days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    with app.app_context():
        viewer = make_account()
        add_member(account["organization_id"], viewer["email"], "viewer")
        db.session.commit()
    web.login(viewer["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    web.submit("/", "/session/mode", {"mode": "test", "next": "/messages"})
    html = client.get("/messages").get_data(as_text=True)
    assert "Send a test email" not in html and message_id in html
    detail = client.get(f"/messages/{message_id}").get_data(as_text=True)
    assert "Cancel scheduled send" not in detail
    assert client.get("/messages/new").status_code == 403
    assert web.submit("/messages", "/messages", {"from_": FROM, "to": "a@example.com", "subject": "x",
                                                 "text": "y"}).status_code == 403
    assert web.submit(f"/messages/{message_id}", f"/messages/{message_id}/cancel").status_code == 403
    assert test_api.get(f"/messages/{message_id}").get_json()["status"] == "scheduled"


def test_every_form_has_csrf_and_no_inline_code(app, user, test_api):
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    message_id = _api_send(test_api, to="a@example.com", send_at=later, html='<p style="color:red">x</p>')
    _test_mode(user)
    for path in ("/messages", "/messages/new", f"/messages/{message_id}"):
        html = user.get(path).get_data(as_text=True)
        posts = [f for f in html.split("<form")[1:] if 'method="post"' in f.split(">")[0]]
        assert posts, path
        for form in posts:
            assert 'name="csrf_token"' in form.split("</form>")[0], (path, form[:200])
        html = re.sub(r' srcdoc="[^"]*"', "", html)  # the email itself, escaped: it may have styles
        assert "<script>" not in html and " style=" not in html, path
