"""API key pages: the secret is shown once, the same service as the API does the work."""
from __future__ import annotations

import re

from tests.helpers import ApiClient, PASSWORD, make_account

_SECRET = re.compile(r'id="new-key-secret" data-secret>([^<]+)<')


def _create(user, **data):
    payload = {"name": "Server key", "preset": "send", "mode": "live"}
    payload.update(data)
    return user.submit("/api-keys", data=payload)


def _secret(resp) -> str:
    match = _SECRET.search(resp.get_data(as_text=True))
    assert match, resp.get_data(as_text=True)[:2000]
    return match.group(1)


def _key_id(html: str, name: str) -> str:
    row = r'id="key-(key_[A-Za-z0-9]+)" data-key-id="[^"]+">\s*<td class="strong name">'
    match = re.search(row + re.escape(name), html)
    assert match, f"no row for {name!r}"
    return match.group(1)


def test_page_lists_active_keys(user, account):
    html = user.get("/api-keys").get_data(as_text=True)
    assert "Default live key" in html and "Default test key" in html
    assert account["live_api_key"][:12] + "…" in html
    assert account["live_api_key"] not in html  # never the secret
    assert "2 of 10" in html


def test_create_shows_secret_once_and_it_works(user, client):
    resp = _create(user, name="Checkout service", preset="send", mode="test")
    assert resp.status_code == 201
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    secret = _secret(resp)
    assert secret.startswith("sk_test_")
    assert html.count(secret) == 1
    assert 'hx-history="false"' in html  # htmx never snapshots the page holding it

    page = user.get("/api-keys").get_data(as_text=True)
    assert secret not in page
    assert "Checkout service" in page and secret[:12] + "…" in page

    api = ApiClient(client, secret)  # the send preset: contacts.write, but no *.read beyond messages
    assert api.post("/contacts", json={"email": "a@example.com"}).status_code == 201
    assert api.get("/contacts").status_code == 403


def test_create_with_custom_scopes(user, client):
    resp = _create(user, name="Reader", preset="custom", scopes=["contacts.read", "messages.read"])
    assert resp.status_code == 201
    api = ApiClient(client, _secret(resp))
    assert api.get("/contacts").status_code == 200
    assert api.post("/contacts", json={"email": "a@example.com"}).status_code == 403


def test_create_refuses_bad_input(user):
    resp = _create(user, name="Nothing", preset="custom")
    assert resp.status_code == 422
    assert "Give &#39;scopes&#39; or a &#39;scope&#39; preset" in resp.get_data(as_text=True)

    resp = _create(user, name="")
    assert resp.status_code == 422
    assert "This field is required." in resp.get_data(as_text=True)

    resp = _create(user, preset="custom", scopes=["contacts.read", "root.everything"])
    assert resp.status_code == 422
    assert "is not a valid choice" in resp.get_data(as_text=True)


def test_create_refuses_past_the_limit(user, app):
    for i in range(app.config["MAX_API_KEYS"] - 2):
        assert _create(user, name=f"k{i}").status_code == 201
    resp = _create(user, name="one too many")
    assert resp.status_code == 422
    assert "at most 10 API keys" in resp.get_data(as_text=True)
    assert "one too many" not in resp.get_data(as_text=True).split("Active keys")[1]


def test_revoke_asks_then_revokes(user, client):
    secret = _secret(_create(user, name="Doomed", preset="read"))
    key_id = _key_id(user.get("/api-keys").get_data(as_text=True), "Doomed")
    confirm = user.get(f"/api-keys/{key_id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke “Doomed”?" in confirm.get_data(as_text=True)
    assert ApiClient(client, secret).get("/contacts").status_code == 200  # a GET revokes nothing

    resp = user.submit(f"/api-keys/{key_id}/revoke")
    assert resp.status_code == 303
    page = client.get("/api-keys").get_data(as_text=True)
    assert "was revoked" in page
    assert f'id="key-{key_id}"' not in page
    assert ApiClient(client, secret).get("/contacts").status_code == 401
    assert user.get(f"/api-keys/{key_id}/revoke").status_code == 404


def test_rotate_shows_new_secret_and_kills_old(user, client):
    old = _secret(_create(user, name="Rotating", preset="read"))
    key_id = _key_id(user.get("/api-keys").get_data(as_text=True), "Rotating")
    assert "Rotate “Rotating”?" in user.get(f"/api-keys/{key_id}/rotate").get_data(as_text=True)
    resp = user.submit(f"/api-keys/{key_id}/rotate")
    assert resp.status_code == 200
    new = _secret(resp)
    assert new != old and new.startswith("sk_live_")
    assert "rotated" in resp.get_data(as_text=True)
    assert ApiClient(client, old).get("/contacts").status_code == 401
    assert ApiClient(client, new).get("/contacts").status_code == 200
    assert new not in user.get("/api-keys").get_data(as_text=True)


def test_viewer_cannot_manage_keys(app, web, client, account):
    from app.accounts.service import add_member
    from app.extensions import db
    with app.app_context():
        viewer = make_account()  # a user with an organization of their own …
        add_member(account["organization_id"], viewer["email"], "viewer")  # … and a viewer seat in ours
        db.session.commit()
    web.login(viewer["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    page = client.get("/api-keys").get_data(as_text=True)
    assert "Default live key" in page
    assert "Create a key" not in page and "/revoke" not in page
    assert _create(web, name="nope").status_code == 403
    key_id = _key_id(page, "Default live key")
    assert client.get(f"/api-keys/{key_id}/revoke").status_code == 403
    assert ApiClient(client, account["live_api_key"]).get("/contacts").status_code == 200


def test_other_organizations_keys_are_not_found(app, user, client, other_account):
    from sqlalchemy import select

    from app.apikeys.models import ApiKey
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        other_key = db.session.execute(select(ApiKey.id).where(
            ApiKey.organization_id == other_account["organization_id"])).scalars().first()
    assert user.get(f"/api-keys/{other_key}/revoke").status_code == 404
    assert user.get(f"/api-keys/{other_key}/rotate").status_code == 404
    assert user.submit("/api-keys", f"/api-keys/{other_key}/revoke").status_code == 404
    assert user.submit("/api-keys", f"/api-keys/{other_key}/rotate").status_code == 404
    assert ApiClient(client, other_account["live_api_key"]).get("/contacts").status_code == 200
