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
