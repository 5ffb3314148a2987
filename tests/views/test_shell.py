"""The dashboard shell: overview, navigation, organization and mode switches, errors, headers."""
from __future__ import annotations

import re

import pytest

from app.web.nav import COMING_SOON
from tests.helpers import PASSWORD, make_account


def test_overview(user, account, api):
    api.post("/contacts", json={"email": "a@example.com"})
    api.get("/contacts/con_missing")
    resp = user.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'class="nav-link is-active"\s+href="/" aria-current="page">.*?<span>Overview</span>', html, re.S)
    assert "Recent API requests" in html
    assert "/api/v1/contacts/con_missing" in html
    for label in ("Overview", "Messages", "Templates", "Contacts", "Lists", "Broadcasts", "Domains", "Suppressions",
                  "Webhooks", "Validation", "Signals", "Analytics", "Billing", "API keys", "Request log", "Settings"):
        assert f"<span>{label}</span>" in html, label


@pytest.mark.parametrize("section", sorted(COMING_SOON))
def test_unbuilt_sections_say_so(user, section):
    resp = user.get(f"/{section}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Coming soon" in html and "This page is not built yet" in html


def test_mode_toggle(user):
    page = user.get("/contacts").get_data(as_text=True)
    assert 'value="live" class="mode-btn is-on"' in page
    resp = user.submit("/contacts", "/session/mode", {"mode": "test", "next": "/contacts?tag=x"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/contacts?tag=x"
    page = user.get("/contacts").get_data(as_text=True)
    assert "Test mode: you are looking at test data" in page
    assert 'class="shell is-test"' in page
    assert user.submit("/", "/session/mode", {"mode": "sandbox"}).status_code == 400
    resp = user.submit("/", "/session/mode", {"mode": "live", "next": "https://evil.example/"})
    assert resp.headers["Location"] == "/"
    assert "Test mode:" not in user.get("/contacts").get_data(as_text=True)


def test_create_and_switch_organizations(user, account, client):
    resp = user.submit("/settings", "/settings/organizations", {"name": "Acme Europe"})
    assert resp.status_code == 303
    home = client.get("/").get_data(as_text=True)
    assert "Organization “Acme Europe” created." in home
    assert '<span class="org-name">Acme Europe</span>' in home
    assert "No active keys" in client.get("/api-keys").get_data(as_text=True)  # a fresh organization
    settings = client.get("/settings").get_data(as_text=True)
    assert "Owner" in settings and account["email"] in settings

    resp = user.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    assert resp.status_code == 303
    page = client.get("/api-keys").get_data(as_text=True)
    assert "Default live key" in page and "Switched to" in page

    assert user.submit("/settings", "/settings/organizations", {"name": ""}).status_code == 422


def test_cannot_switch_to_someone_elses_organization(user, other_account, client):
    resp = user.submit("/", "/session/organization", {"organization_id": other_account["organization_id"]})
    assert resp.status_code == 404
    assert other_account["email"] not in client.get("/settings").get_data(as_text=True)


def test_session_keeps_org_choice_only_among_memberships(app, web, client, account, other_account):
    """A session whose org_id names an organization the user has left falls back to one of theirs."""
    web.login(account["email"], account["password"])
    with client.session_transaction() as s:
        s["org_id"] = other_account["organization_id"]
    html = client.get("/settings").get_data(as_text=True)
    assert account["organization_id"] in html and other_account["organization_id"] not in html


def test_member_sees_the_roles(app, web, client, account):
    from app.accounts.service import add_member
    from app.extensions import db
    with app.app_context():
        dev = make_account()
        add_member(account["organization_id"], dev["email"], "viewer")
        db.session.commit()
    web.login(dev["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    html = client.get("/contacts").get_data(as_text=True)
    assert "New contact" not in html  # viewers read only
    assert web.submit("/contacts", "/contacts", {"email": "x@example.com"}).status_code == 403


def test_error_pages(user, client):
    resp = client.get("/contacts/con_missing")
    assert resp.status_code == 404
    assert "No such contact." in resp.get_data(as_text=True)
    assert "<html" in resp.get_data(as_text=True)

    resp = client.get("/no/such/page")
    assert resp.status_code == 404 and "<html" in resp.get_data(as_text=True)

    resp = client.get("/contacts/con_missing", headers={"HX-Request": "true"})
    assert resp.status_code == 404
    assert resp.headers["HX-Retarget"] == "#flash"
    assert resp.get_data(as_text=True).lstrip().startswith('<div class="flash flash-error"')


def test_security_headers(user, client):
    resp = client.get("/api-keys")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in resp.headers["Vary"]
    html = resp.get_data(as_text=True)
    assert 'hx-boost="true"' in html and 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "<script>" not in html and " style=" not in html and "onclick" not in html  # CSP-clean
    assert "/static/vendor/htmx.min.js" in html and "cdn" not in html.lower()
    api_resp = client.get("/api/v1/contacts")
    assert "Content-Security-Policy" not in api_resp.headers


def test_every_form_carries_a_csrf_token(user, client):
    for path in ("/", "/api-keys", "/contacts", "/settings", "/requests"):
        html = client.get(path).get_data(as_text=True)
        forms = html.split("<form")[1:]
        posts = [f for f in forms if 'method="post"' in f.split(">")[0]]
        assert posts, path
        for form in posts:
            assert 'name="csrf_token"' in form.split("</form>")[0], (path, form[:200])


def test_static_assets(client):
    for path in ("/static/vendor/htmx.min.js", "/static/css/app.css", "/static/js/app.js"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        resp.close()
    resp = client.get("/static/vendor/htmx.min.js")
    assert b'version:"2.0.' in resp.data
    resp.close()
