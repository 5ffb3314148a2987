"""Unsubscribe tokens: signed, compact, never expiring; forged or altered ones are refused."""
from __future__ import annotations

import base64

import pytest
from itsdangerous import URLSafeSerializer

from app.tracking.tokens import (list_unsubscribe_headers, read_unsubscribe_token, unsubscribe_mailto,
                                 unsubscribe_token, unsubscribe_url)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def test_round_trip(ctx):
    token = unsubscribe_token("org_abc", "live", "msg_123", "ada@example.com")
    assert read_unsubscribe_token(token) == {"organization_id": "org_abc", "mode": "live", "message_id": "msg_123",
                                             "recipient": "ada@example.com", "channel": "email"}
    sms = unsubscribe_token("org_abc", "test", None, "+14155550123", channel="sms")
    assert read_unsubscribe_token(sms) == {"organization_id": "org_abc", "mode": "test", "message_id": None,
                                           "recipient": "+14155550123", "channel": "sms"}
    # URL-safe, deterministic, compact enough for a header line.
    assert token == unsubscribe_token("org_abc", "live", "msg_123", "ada@example.com")
    assert all(c.isalnum() or c in "-_." for c in token)
    realistic = unsubscribe_token("org_" + "A" * 20, "live", "msg_" + "B" * 20, "firstname.lastname@example.com")
    assert len(realistic) < 200


def test_recipient_and_tenant_are_inside_the_signature(ctx):
    token = unsubscribe_token("org_abc", "live", "msg_1", "ada@example.com")
    assert token != unsubscribe_token("org_abc", "live", "msg_1", "bob@example.com")
    assert token != unsubscribe_token("org_xyz", "live", "msg_1", "ada@example.com")
    assert token != unsubscribe_token("org_abc", "test", "msg_1", "ada@example.com")


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),    # signature altered
    lambda t: t[:5] + ("x" if t[5] != "x" else "y") + t[6:],  # payload altered
    lambda t: t.split(".")[0],                             # signature removed
    lambda t: t + "x",
    lambda t: "",
    lambda t: "not-a-token",
    lambda t: "a" * 5000,
])
def test_altered_tokens_are_refused(ctx, mutate):
    token = unsubscribe_token("org_abc", "live", "msg_1", "ada@example.com")
    assert read_unsubscribe_token(mutate(token)) is None


def test_forged_tokens_are_refused(ctx):
    payload = ["org_abc", "l", "", "victim@example.com", "e"]
    wrong_key = URLSafeSerializer("not-the-secret", salt="postline.unsubscribe.v1").dumps(payload)
    assert read_unsubscribe_token(wrong_key) is None
    other_salt = URLSafeSerializer(ctx.config["SECRET_KEY"], salt="something-else").dumps(payload)
    assert read_unsubscribe_token(other_salt) is None
    unsigned = base64.urlsafe_b64encode(b'["org_abc","l","","victim@example.com","e"]').decode().rstrip("=")
    assert read_unsubscribe_token(unsigned) is None
    # Correctly signed, but not the shape we issue.
    good_key = URLSafeSerializer(ctx.config["SECRET_KEY"], salt="postline.unsubscribe.v1")
    for bad in (["org_abc", "x", "", "v@example.com", "e"], ["org_abc", "l", "", "v@example.com", "p"],
                {"organization_id": "org_abc"}, ["org_abc", "l", "", "", "e"], ["", "l", "", "v@example.com", "e"],
                ["org_abc", "l", None, "v@example.com", "e"], "just a string", 42):
        assert read_unsubscribe_token(good_key.dumps(bad)) is None, bad


def test_tokens_never_expire(ctx, monkeypatch):
    token = unsubscribe_token("org_abc", "live", "msg_1", "ada@example.com")
    import time
    monkeypatch.setattr(time, "time", lambda: 4_102_444_800)  # 2100-01-01
    assert read_unsubscribe_token(token)["recipient"] == "ada@example.com"


def test_bad_arguments(ctx):
    with pytest.raises(ValueError):
        unsubscribe_token("org_abc", "sandbox", None, "a@example.com")
    with pytest.raises(ValueError):
        unsubscribe_token("org_abc", "live", None, "a@example.com", channel="push")


def test_url_mailto_and_headers(ctx, monkeypatch):
    monkeypatch.setitem(ctx.config, "BASE_URL", "https://mail.acme.example")
    monkeypatch.setitem(ctx.config, "INBOUND_MX_HOST", None)
    token = unsubscribe_token("org_abc", "live", "msg_1", "ada@example.com")
    url = unsubscribe_url("org_abc", "live", "msg_1", "ada@example.com")
    assert url == f"https://mail.acme.example/u/{token}"
    assert unsubscribe_mailto("org_abc", "live", "msg_1", "ada@example.com") == \
        "mailto:unsubscribe+msg_1@mail.acme.example"
    headers = list_unsubscribe_headers("org_abc", "live", "msg_1", "ada@example.com")
    assert headers == {"List-Unsubscribe": f"<{url}>, <mailto:unsubscribe+msg_1@mail.acme.example>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    monkeypatch.setitem(ctx.config, "INBOUND_MX_HOST", "mx.postline.example")
    assert unsubscribe_mailto("org_abc", "live", "msg_1", "ada@example.com").endswith("@mx.postline.example")
    assert "\r" not in headers["List-Unsubscribe"] and "\n" not in headers["List-Unsubscribe"]


# --- open and click tokens; instrumenting outgoing mail -------------------------------------------------------

import hashlib  # noqa: E402
import re  # noqa: E402

from itsdangerous import Signer  # noqa: E402

from app.tracking.instrument import instrument, own_prefixes, tracking_base  # noqa: E402
from app.tracking.machine import machine_reason, user_agent_is_machine  # noqa: E402
from app.tracking.tokens import (click_token, open_token, read_click_token, read_open_token,  # noqa: E402
                                 is_trackable_url)

URL = "https://shop.example.com/p/1?utm_source=news&b=2#top"
BASE = "https://track.example.net"
_TRACKED = re.compile(r'https://track\.example\.net/t/c/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)')


def test_click_and_open_tokens_round_trip(ctx):
    token = click_token("msg_abc", URL, "rcp_1")
    assert read_click_token(token) == {"message_id": "msg_abc", "recipient_id": "rcp_1", "url": URL}
    assert read_click_token(click_token("msg_abc", URL)) == {"message_id": "msg_abc", "recipient_id": None,
                                                             "url": URL}
    assert read_open_token(open_token("msg_abc", "rcp_1")) == {"message_id": "msg_abc", "recipient_id": "rcp_1"}
    assert all(c.isalnum() or c in "-_." for c in token)
    # Exactly itsdangerous's Signer format (HMAC-SHA256, key derived from SECRET_KEY and the salt).
    value, _, _sig = token.rpartition(".")
    signer = Signer(ctx.config["SECRET_KEY"], salt="postline.track.click.v1", key_derivation="hmac",
                    digest_method=hashlib.sha256)
    assert signer.sign(value).decode() == token
    # Kinds are not interchangeable: each has its own salt.
    assert read_open_token(token) is None
    assert read_click_token(open_token("msg_abc")) is None
    assert read_unsubscribe_token(token) is None


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),        # signature altered
    lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],  # payload (URL) altered
    lambda t: t.rpartition(".")[0],                            # signature removed
    lambda t: t + "x", lambda t: "", lambda t: "nope", lambda t: "a" * 7000, lambda t: t + "é",
])
def test_altered_click_tokens_are_refused(ctx, mutate):
    assert read_click_token(mutate(click_token("msg_abc", URL))) is None


def test_forged_click_tokens_are_refused(ctx):
    import base64
    import json
    evil = ["msg_abc", "", "https://evil.example/phish"]
    value = base64.urlsafe_b64encode(json.dumps(evil).encode()).rstrip(b"=").decode()
    wrong_key = Signer("not-the-secret", salt="postline.track.click.v1", key_derivation="hmac",
                       digest_method=hashlib.sha256).sign(value).decode()
    assert read_click_token(wrong_key) is None
    assert read_click_token(value) is None  # unsigned
    # Signed with our key but a shape we never issue: still refused (no javascript: URL ever redirects).
    good = Signer(ctx.config["SECRET_KEY"], salt="postline.track.click.v1", key_derivation="hmac",
                  digest_method=hashlib.sha256)
    for bad in (["msg_abc", "", "javascript:alert(1)"], ["msg_abc", "", "//evil.example"],
                ["con_abc", "", URL], ["msg_abc", "x", URL], ["msg_abc", URL], {"u": URL}, [None, "", URL]):
        v = base64.urlsafe_b64encode(json.dumps(bad).encode()).rstrip(b"=").decode()
        assert read_click_token(good.sign(v).decode()) is None, bad


@pytest.mark.parametrize("url,ok", [
    ("https://a.example/x", True), ("HTTP://A.EXAMPLE", True), ("https://a.example/ü?q=ö", True),
    ("javascript:alert(1)", False), ("mailto:a@b.c", False), ("tel:+1555", False), ("#top", False),
    ("/relative", False), ("//a.example/x", False), ("https:///nohost", False), ("https://a.example/a b", False),
    ("https://a.example/\x00", False), ("ftp://a.example/", False), ("https://" + "a" * 5000, False),
])
def test_trackable_urls(url, ok):
    assert is_trackable_url(url) is ok


def _links(html):
    return [read_click_token(t)["url"] for t in _TRACKED.findall(html)]


def test_rewriting_keeps_everything_else_byte_identical(ctx, monkeypatch):
    html = ('<!DOCTYPE html><html><head><style>a > b { color: red }</style></head><BODY>\n'
            '<a href="https://shop.example.com/a?x=1&amp;y=2" class="btn" title="Go > now">Shop</a>\n'
            "<A HREF='http://b.example/path'>B</A> <a href=https://c.example/u?q=1>C</a>\n"
            '<a class="x" href = "  https://d.example/  ">D</a>\n'
            '<a href="mailto:help@example.com">Mail</a> <a href="tel:+15555550123">Call</a>\n'
            '<a href="javascript:alert(1)">JS</a> <a href="JavaScript:void(0)">JS2</a>\n'
            '<a href="#section">Anchor</a> <a href="/relative">Rel</a> <a name="top">Top</a>\n'
            '<a href="https://shop.example.com/a?x=1&amp;y=2">Shop again</a>\n'
            '<a href="https://e.example/" data-pl-no-track>Untracked</a>\n'
            '<a href="http://localhost:5000/u/sometoken">Unsubscribe</a>\n'
            '<!--[if mso]><v:roundrect href="https://f.example/vml" arcsize="10%"><![endif]-->\n'
            '<area shape="rect" href="https://g.example/map"><abbr title="x">Abbr</abbr>\n'
            '<p>Text with https://not-a-link-in-html.example inside</p></BODY></html>')
    monkeypatch.setitem(ctx.config, "BASE_URL", "http://localhost:5000")
    with ctx.app_context():
        out, _ = instrument("msg_1", html, None, base=BASE, opens=False, clicks=True, own_prefixes=own_prefixes())
    assert _links(out) == ["https://shop.example.com/a?x=1&y=2", "http://b.example/path", "https://c.example/u?q=1",
                           "https://d.example/", "https://shop.example.com/a?x=1&y=2", "https://f.example/vml",
                           "https://g.example/map"]
    # Put the original values back where the tracked ones are: the rest of the document is untouched.
    originals = iter(['https://shop.example.com/a?x=1&amp;y=2', 'http://b.example/path', 'https://c.example/u?q=1',
                      '  https://d.example/  ', 'https://shop.example.com/a?x=1&amp;y=2', 'https://f.example/vml',
                      'https://g.example/map'])
    assert _TRACKED.sub(lambda m: next(originals), out) == html
    # The same URL twice in one message gets the same token.
    assert len(set(_TRACKED.findall(out))) == 6


def test_open_pixel_before_body_end(ctx):
    html = "<html><body><p>Hi</p></BODY></html>"
    with ctx.app_context():
        out, text = instrument("msg_1", html, "plain", base=BASE, opens=True, clicks=False)
    assert text == "plain"
    pixel = re.search(r'<img src="https://track\.example\.net/t/o/([^"]+)" width="1" height="1" alt=""[^>]*>', out)
    assert pixel and out.endswith("</BODY></html>") and out.index(pixel.group(0)) == html.index("</BODY>")
    assert read_open_token(pixel.group(1)) == {"message_id": "msg_1", "recipient_id": None}
    assert out.replace(pixel.group(0), "") == html
    with ctx.app_context():
        fragment, _ = instrument("msg_1", "<p>No body tag</p>", None, base=BASE, opens=True, clicks=False)
    assert fragment.startswith("<p>No body tag</p><img src=")
    # Nothing asked, nothing changed.
    with ctx.app_context():
        assert instrument("msg_1", html, "t https://a.example", base=BASE, opens=False, clicks=False) == \
            (html, "t https://a.example")


def test_text_part_links(ctx, monkeypatch):
    text = ("Shop at https://shop.example.com/a?x=1. Or (see https://b.example/wiki/Foo_(bar)).\n"
            "Docs: <https://c.example/docs>, mail help@example.com, unsubscribe: http://localhost:5000/u/tok\n")
    monkeypatch.setitem(ctx.config, "BASE_URL", "http://localhost:5000")
    with ctx.app_context():
        _, out = instrument("msg_1", None, text, base=BASE, opens=True, clicks=True, own_prefixes=own_prefixes())
    assert _links(out) == ["https://shop.example.com/a?x=1", "https://b.example/wiki/Foo_(bar)",
                           "https://c.example/docs"]
    originals = iter(["https://shop.example.com/a?x=1", "https://b.example/wiki/Foo_(bar)", "https://c.example/docs"])
    assert _TRACKED.sub(lambda m: next(originals), out) == text


def test_tracking_base(ctx, monkeypatch):
    from types import SimpleNamespace
    monkeypatch.setitem(ctx.config, "BASE_URL", "https://app.postline.example")
    monkeypatch.setitem(ctx.config, "TRACKING_HOST", "app.postline.example")
    with ctx.app_context():
        assert tracking_base() == "https://app.postline.example"
        monkeypatch.setitem(ctx.config, "TRACKING_HOST", "t.postline.example")
        assert tracking_base() == "https://t.postline.example"
        verified = SimpleNamespace(records=[{"purpose": "tracking", "status": "verified", "name": "pl-track.acme.com"}])
        pending = SimpleNamespace(records=[{"purpose": "tracking", "status": "pending", "name": "pl-track.acme.com"}])
        assert tracking_base(verified) == "https://t.postline.example"  # branded links are opt-in (TLS)
        monkeypatch.setitem(ctx.config, "TRACKING_BRANDED_LINKS", "1")
        assert tracking_base(verified) == "https://pl-track.acme.com"
        assert tracking_base(pending) == "https://t.postline.example"
        monkeypatch.setitem(ctx.config, "BASE_URL", "http://localhost:5000")
        assert tracking_base(verified) == "http://pl-track.acme.com:5000"


def test_machine_detection():
    from datetime import datetime, timedelta
    delivered = datetime(2026, 11, 23, 6, 0, 0)
    chrome = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 "
              "Safari/537.36")
    gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    later = delivered + timedelta(minutes=5)
    assert machine_reason(user_agent=chrome, method="GET", delivered_at=delivered, now=later, window=10) is None
    assert machine_reason(user_agent=gmail, method="GET", delivered_at=delivered, now=later, window=10) is None
    assert machine_reason(user_agent=chrome, method="GET", delivered_at=delivered,
                          now=delivered + timedelta(seconds=3), window=10) == "timing"
    assert machine_reason(user_agent=chrome, method="GET", delivered_at=delivered,
                          now=delivered + timedelta(seconds=3), window=0) is None
    assert machine_reason(user_agent=chrome, method="HEAD", delivered_at=delivered, now=later, window=10) == "head"
    for ua in ("Mozilla/5.0", "", None, "Barracuda Sentinel (EE)", "Mimecast-Url-Protect/1.0",
               "Mozilla/5.0 (compatible; Proofpoint URL Defense)", "python-requests/2.31", "curl/8.4.0",
               "Mozilla/5.0 (compatible; BingPreview/1.0b)", "Slackbot-LinkExpanding 1.0"):
        assert user_agent_is_machine(ua), ua
        assert machine_reason(user_agent=ua, method="GET", delivered_at=delivered, now=later, window=10) == \
            "user_agent"
    assert not user_agent_is_machine("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15")
    assert not user_agent_is_machine("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html")


def test_rewriting_is_linear_on_hostile_html(ctx):
    """Unclosed tags and quotes never make the scan quadratic (a broadcast's worker must not stall)."""
    import time
    with ctx.app_context():
        for hostile in ("<a x" * 50_000, '<a "' * 50_000, "<a href='" + "x" * 400_000, '<a title="<a ' * 50_000):
            started = time.perf_counter()
            out, _ = instrument("msg_1", hostile, None, base=BASE, opens=False, clicks=True)
            assert out == hostile
            assert time.perf_counter() - started < 2.0


def test_quoted_values_may_hold_angle_brackets_and_look_like_href(ctx):
    html = ('<a title="1 < 2 > 0" data-x=\' href="https://decoy.example/"\' href="https://real.example/">x</a>'
            '<a href="https://e.example/" rel=noopener>y</a>')
    with ctx.app_context():
        out, _ = instrument("msg_1", html, None, base=BASE, opens=False, clicks=True)
    assert _links(out) == ["https://real.example/", "https://e.example/"]
    assert 'data-x=\' href="https://decoy.example/"\'' in out and out.endswith('" rel=noopener>y</a>')
