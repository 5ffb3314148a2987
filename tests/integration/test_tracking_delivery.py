"""Tracking end to end (API.md 15): a live send with track_opens / track_clicks is delivered over real SMTP
into the aiosmtpd sink with its links rewritten and the open pixel in place (still DKIM-valid), and
following the links from the received mail records the click (or open) on the message and redirects to the
original URL."""
from __future__ import annotations

import email
import re
from email import policy
from urllib.parse import urlsplit

from sqlalchemy import update

from tests.dns_server import dns_server, local_dns  # noqa: F401
from tests.integration.test_delivery import FROM, dispatch, dkim_verifies, mail, send  # noqa: F401
from tests.smtp_sink import _smtp_sink_server, smtp_sink  # noqa: F401

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
SHOP = "https://shop.example.com/fall?utm_source=news&utm_medium=email"
BLOG = "https://blog.example.com/post/1"
HTML = (f'<html><body><h1>Fall sale</h1><p><a href="https://shop.example.com/fall?utm_source=news&amp;utm_medium=email"'
        f' class="btn">Shop now</a> · <a href="{BLOG}">Read</a> · <a href="mailto:help@acme-corp.com">Help</a>'
        ' · <a href="#terms">Terms</a></p></body></html>')
TEXT = f"Shop now: {SHOP}\nRead: {BLOG}.\n"


def _parts(raw: bytes):
    parsed = email.message_from_bytes(raw, policy=policy.default)
    return parsed.get_body(("html",)).get_content(), parsed.get_body(("plain",)).get_content()


def _age(app, message_id, seconds=3600):
    from datetime import timedelta

    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped
    from app.timeutil import utcnow
    with app.app_context(), unscoped():
        db.session.execute(update(Message).where(Message.id == message_id)
                           .values(completed_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://localhost:5000"  # BASE_URL in the tests
    return parts.path


def test_delivered_mail_is_instrumented_and_its_links_work(app, api, mail, local_dns):
    msg = send(api, to="ada@example.org", subject="Fall sale", html=HTML, text=TEXT, track_opens=True,
               track_clicks=True)
    assert dispatch(app) == {"delivered": 1}
    [received] = mail.messages
    assert dkim_verifies(received.data, local_dns)
    html, text = _parts(received.data)

    hrefs = re.findall(r'href="([^"]+)"', html)
    assert len(hrefs) == 4
    assert hrefs[0].startswith("http://localhost:5000/t/c/") and hrefs[1].startswith("http://localhost:5000/t/c/")
    assert hrefs[2:] == ["mailto:help@acme-corp.com", "#terms"]
    assert '<a href="http' in html and 'class="btn">Shop now</a>' in html
    [pixel] = re.findall(r'<img src="(http://localhost:5000/t/o/[^"]+)" width="1" height="1"', html)
    assert html.index(pixel) < html.index("</body>")
    text_links = re.findall(r"http://localhost:5000/t/c/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", text)
    assert len(text_links) == 2 and text.rstrip().endswith(".")  # the sentence's full stop stays outside

    public = app.test_client(use_cookies=False)
    # A security scanner follows the link as the mail arrives: redirected, but flagged as a machine.
    resp = public.get(_path(hrefs[0]), headers={"User-Agent": CHROME})
    assert resp.status_code == 302 and resp.headers["Location"] == SHOP
    # The person, an hour later, from the HTML and from the text part.
    _age(app, msg["id"])
    for link, target in ((hrefs[1], BLOG), (text_links[0], SHOP)):
        resp = public.get(_path(link), headers={"User-Agent": CHROME})
        assert resp.status_code == 302 and resp.headers["Location"] == target
    pixel_resp = public.get(_path(pixel), headers={"User-Agent": CHROME})
    assert pixel_resp.status_code == 200 and pixel_resp.mimetype == "image/gif"

    events = api.get(f"/messages/{msg['id']}").get_json()["events"]
    clicks = [e["data"] for e in events if e["type"] == "message.clicked"]
    assert [(c["url"], c["machine"], c["first"]) for c in clicks] == [(SHOP, True, True), (BLOG, False, False),
                                                                      (SHOP, False, False)]
    assert clicks[0]["machine_reason"] == "timing"
    opens = [e["data"] for e in events if e["type"] == "message.opened"]
    assert [(o["machine"], o["first"], o["user_agent"]) for o in opens] == [(False, True, CHROME)]
    # A tampered link from the mail goes nowhere.
    assert public.get(_path(hrefs[1])[:-3] + "AAA").status_code == 404


def test_untracked_mail_is_untouched(app, api, mail):
    send(api, to="ada@example.org", html=HTML, text=TEXT)
    dispatch(app)
    html, text = _parts(mail.messages[0].data)
    assert "/t/c/" not in html and "/t/o/" not in html and "/t/c/" not in text
    assert f'href="{BLOG}"' in html


def test_marketing_mail_names_its_recipient_and_keeps_the_unsubscribe_link(app, api, account, mail):
    contact = api.post("/contacts", json={"email": "ada@example.org", "consent": {"email": True}}).get_json()
    template = api.post("/templates", json={
        "name": "Newsletter", "subject": "News",
        "html": (f'<html><body><a href="{BLOG}">Read</a> '
                 '<a href="{{unsubscribe_url}}">Unsubscribe</a></body></html>'),
        "text": "Read {{unsubscribe_url}}"}).get_json()
    resp = api.post("/messages/email", json={"from": FROM, "to": "ada@example.org", "template_id": template["id"],
                                             "message_type": "marketing", "track_clicks": True, "track_opens": True})
    assert resp.status_code == 202, resp.get_json()
    msg = resp.get_json()
    assert dispatch(app) == {"delivered": 1}
    html, text = _parts(mail.messages[0].data)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs[0].startswith("http://localhost:5000/t/c/")
    assert hrefs[1].startswith("http://localhost:5000/u/")  # never rewritten
    assert "http://localhost:5000/u/" in text and "/t/c/" not in text
    _age(app, msg["id"])
    public = app.test_client(use_cookies=False)
    assert public.get(_path(hrefs[0]), headers={"User-Agent": CHROME}).headers["Location"] == BLOG
    # The unsubscribe link from the mail leads to the page that links to the preference center.
    page = public.get(_path(hrefs[1])).get_data(as_text=True)
    assert "/preferences" in page

    from sqlalchemy import select

    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        [event] = db.session.execute(select(Event).where(Event.type == "message.clicked")).scalars().all()
        assert (event.recipient, event.contact_id, event.message_id) == ("ada@example.org", contact["id"], msg["id"])

