"""Sign-up, log-in, log-out, CSRF and redirects."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from app.web.forms import safe_next
from tests.helpers import ApiClient
from tests.views.conftest import csrf_from


def _login_next(resp) -> str:
    url = urlsplit(resp.headers["Location"])
    assert url.path == "/login" and not url.netloc
    return parse_qs(url.query)["next"][0]


def _email():
    return f"person-{uuid.uuid4().hex[:10]}@example.com"


def test_fresh_visitor_lands_on_signup(client):
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/signup"
    page = client.get("/signup").get_data(as_text=True)
    assert "Create your account" in page
    assert 'href="/login"' in page


def test_signup_creates_account_logs_in_and_shows_keys_once(web, client):
    email = _email()
    resp = web.submit("/signup", data={"org_name": "Acme", "email": email, "password": "long enough pw"})
    assert resp.status_code == 201
    html = resp.get_data(as_text=True)
    assert "Copy these keys now" in html
    live = html.split('id="live-key" data-secret>')[1].split("<")[0]
    test = html.split('id="test-key" data-secret>')[1].split("<")[0]
    assert live.startswith("sk_live_") and test.startswith("sk_test_")
    assert resp.headers["Cache-Control"] == "no-store"
    # The keys work, and were shown only in that response.
    assert ApiClient(client, live).get("/contacts").status_code == 200
    assert ApiClient(client, test).get("/contacts").status_code == 200
    home = client.get("/")
    assert home.status_code == 200
    assert "Acme" in home.get_data(as_text=True)
    assert live not in home.get_data(as_text=True)
    assert client.get("/signup").status_code == 302  # logged in: no second sign-up form
    assert live not in client.get("/api-keys").get_data(as_text=True)


@pytest.mark.parametrize("data, message", [
    ({"org_name": "Acme", "password": "long enough pw", "email": "not-an-email"}, "not a valid email"),
    ({"org_name": "Acme", "password": "short", "email": "x@example.com"}, "at least 10 characters"),
    ({"org_name": "", "password": "long enough pw", "email": "x@example.com"}, "This field is required"),
])
def test_signup_refuses_bad_input(web, data, message):
    resp = web.submit("/signup", data=data)
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)


def test_signup_refuses_taken_email(web, account):
    resp = web.submit("/signup", data={"org_name": "Again", "email": account["email"].upper(),
                                       "password": "long enough pw"})
    assert resp.status_code == 422
    assert "already exists" in resp.get_data(as_text=True)


def test_login_and_logout(web, client, account):
    resp = web.login(account["email"], account["password"])
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"
    assert client.get("/api-keys").status_code == 200

    resp = web.submit("/", "/logout")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/login"
    assert "logged out" in client.get("/login").get_data(as_text=True)
    resp = client.get("/api-keys")
    assert resp.status_code == 302
    assert _login_next(resp) == "/api-keys"


def test_login_refuses_wrong_password(web, account):
    resp = web.login(account["email"], "wrong password!")
    assert resp.status_code == 422
    assert "Wrong email or password." in resp.get_data(as_text=True)
    assert web.login("nobody-" + account["email"], account["password"]).status_code == 422


def test_protected_page_redirects_to_login_and_back(web, client, account):
    resp = client.get("/requests?status=4xx")
    assert resp.status_code == 302
    assert _login_next(resp) == "/requests?status=4xx"
    resp = web.login(account["email"], account["password"], next_="/requests?status=4xx")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/requests?status=4xx"


def test_htmx_request_without_session_is_sent_to_login(client):
    resp = client.get("/requests?status=4xx", headers={"HX-Request": "true"})
    assert resp.status_code == 401  # not a 302: the XHR would follow it and swap the login page into the table
    assert resp.headers["HX-Redirect"] == "/login?next=/requests?status%3D4xx"
    boosted = client.get("/requests", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.status_code == 302  # a boosted navigation swaps the whole body: the login page is right


@pytest.mark.parametrize("target", [
    "https://evil.example", "https://evil.example/", "//evil.example", "///evil.example", "/\\evil.example",
    "\\\\evil.example", "javascript:alert(1)", "http:evil.example", "/\tevil", "evil.example",
])
def test_login_refuses_open_redirect(web, account, target):
    page = web.get("/login", query_string={"next": target}).get_data(as_text=True)
    assert "evil" not in page.split('name="next"')[1].split(">")[0]
    resp = web.submit("/login", "/login", {"email": account["email"], "password": account["password"],
                                           "next": target})
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("target, expected", [
    ("/contacts", "/contacts"), ("/requests?status=4xx", "/requests?status=4xx"), ("", None), (None, None),
    ("https://evil.example", None), ("//evil.example", None), ("/\\evil.example", None), ("/ok\r\nX: y", None),
    ("mailto:a@b.c", None),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_post_without_csrf_token_is_refused(client, account):
    resp = client.post("/login", data={"email": account["email"], "password": account["password"]})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)
    resp = client.post("/signup", data={"org_name": "X", "email": _email(), "password": "long enough pw"})
    assert resp.status_code == 400


def test_post_with_wrong_csrf_token_is_refused(user, client):
    for path, data in [("/logout", {}), ("/api-keys", {"name": "k", "preset": "send", "mode": "live"}),
                       ("/contacts", {"email": "a@example.com"})]:
        resp = client.post(path, data={**data, "csrf_token": "forged"})
        assert resp.status_code == 400, path
    assert client.get("/api-keys").status_code == 200  # still logged in: the log-out was refused


def test_csrf_token_in_header_is_accepted(user, client):
    token = csrf_from(client.get("/").get_data(as_text=True))
    resp = client.post("/logout", headers={"X-CSRFToken": token, "HX-Request": "true", "HX-Boosted": "true"})
    assert resp.status_code == 303


def test_csrf_error_for_htmx_goes_to_flash(user, client):
    resp = client.post("/logout", headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert resp.headers["HX-Retarget"] == "#flash"
    assert resp.headers["HX-Push-Url"] == "false"
    assert 'class="flash flash-error"' in resp.get_data(as_text=True)
