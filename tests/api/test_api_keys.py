"""API keys (API.md 13): secret once, hashed at rest, scopes and presets, rotate, revoke, limits."""
from sqlalchemy import select

from tests.helpers import ApiClient, assert_error


def _row(app, org_id, key_id):
    from app.apikeys.models import ApiKey
    from app.extensions import db
    from app.tenancy import tenant_scope

    with app.app_context(), tenant_scope(org_id):
        row = db.session.execute(select(ApiKey).where(ApiKey.id == key_id)).scalar_one()
        db.session.expunge(row)
        return row


def test_create_shows_secret_once_and_stores_only_a_hash(app, api, account):
    resp = api.post("/api-keys", json={"name": "CI", "scope": "send"})
    assert resp.status_code == 201
    body = resp.get_json()
    secret = body["secret"]
    assert secret.startswith("sk_live_") and len(secret) >= 8 + 32
    assert body["key_prefix"] == secret[:12] and body["object"] == "api_key"
    assert body["scopes"] == sorted(["messages.send", "messages.read", "contacts.write", "templates.read",
                                     "suppressions.write", "uploads.write"])
    got = api.get(f"/api-keys/{body['id']}").get_json()
    assert "secret" not in got
    listed = api.get("/api-keys").get_json()["data"]
    assert body["id"] in [k["id"] for k in listed] and all("secret" not in k for k in listed)
    row = _row(app, account["organization_id"], body["id"])
    assert secret not in (row.key_hash, row.key_prefix, row.name)
    assert len(row.key_hash) == 64


def test_test_mode_key(api):
    body = api.post("/api-keys", json={"name": "t", "scope": "read", "test_mode": True}).get_json()
    assert body["secret"].startswith("sk_test_") and body["test_mode"] is True


def test_scopes_enforced(client, api):
    reader = api.post("/api-keys", json={"name": "reader", "scope": "read"}).get_json()
    r = ApiClient(client, reader["secret"])
    assert r.get("/contacts").status_code == 200
    err = assert_error(r.post("/contacts", json={"email": "x@example.com"}), 403, "forbidden")
    assert err["type"] == "permission_error" and "contacts.write" in err["message"]
    custom = api.post("/api-keys", json={"name": "c", "scopes": ["contacts.write"]}).get_json()
    c = ApiClient(client, custom["secret"])
    assert c.post("/contacts", json={"email": "x@example.com"}).status_code == 201
    assert_error(c.get("/contacts"), 403, "forbidden")
    assert_error(c.get("/api-keys"), 403, "forbidden")


def test_bad_scopes(api):
    assert_error(api.post("/api-keys", json={"name": "x", "scopes": ["contacts.destroy"]}), 400,
                 "invalid_request", "scopes[0]")
    assert_error(api.post("/api-keys", json={"name": "x", "scope": "superuser"}), 400, "invalid_request", "scope")
    assert_error(api.post("/api-keys", json={"name": "x"}), 400, "invalid_request", "scopes")
    assert_error(api.post("/api-keys", json={"scope": "read"}), 400, "invalid_request", "name")


def test_revoke_is_immediate(client, api):
    body = api.post("/api-keys", json={"name": "temp", "scope": "admin"}).get_json()
    k = ApiClient(client, body["secret"])
    assert k.get("/contacts").status_code == 200
    assert api.delete(f"/api-keys/{body['id']}").status_code == 200
    assert_error(k.get("/contacts"), 401, "unauthorized")
    assert_error(api.get(f"/api-keys/{body['id']}"), 404, "not_found")


def test_rotate_replaces_secret(client, api):
    body = api.post("/api-keys", json={"name": "rot", "scope": "admin"}).get_json()
    rotated = api.post(f"/api-keys/{body['id']}/rotate").get_json()
    assert rotated["id"] == body["id"] and rotated["secret"] != body["secret"]
    assert_error(ApiClient(client, body["secret"]).get("/contacts"), 401, "unauthorized")
    assert ApiClient(client, rotated["secret"]).get("/contacts").status_code == 200


def test_disable_and_enable(client, api):
    body = api.post("/api-keys", json={"name": "d", "scope": "read"}).get_json()
    k = ApiClient(client, body["secret"])
    assert api.patch(f"/api-keys/{body['id']}", json={"is_enabled": False}).get_json()["is_enabled"] is False
    assert_error(k.get("/contacts"), 401, "unauthorized")
    api.patch(f"/api-keys/{body['id']}", json={"is_enabled": True, "name": "renamed"})
    assert k.get("/contacts").status_code == 200
    assert api.get(f"/api-keys/{body['id']}").get_json()["name"] == "renamed"


def test_last_used_at(client, api):
    body = api.post("/api-keys", json={"name": "u", "scope": "read"}).get_json()
    assert body["last_used_at"] is None
    ApiClient(client, body["secret"]).get("/contacts")
    assert api.get(f"/api-keys/{body['id']}").get_json()["last_used_at"] is not None


def test_at_most_ten_keys(api):
    # The account starts with two (live + test).
    for i in range(8):
        assert api.post("/api-keys", json={"name": f"k{i}", "scope": "read"}).status_code == 201
    err = assert_error(api.post("/api-keys", json={"name": "eleven", "scope": "read"}), 422, "too_many_api_keys")
    assert err["type"] == "validation_error"
    victim = api.get("/api-keys?limit=1").get_json()["data"][0]["id"]
    api.delete(f"/api-keys/{victim}")
    assert api.post("/api-keys", json={"name": "again", "scope": "read"}).status_code == 201


def test_keys_of_another_organization_are_invisible(api, other_api):
    theirs = other_api.post("/api-keys", json={"name": "theirs", "scope": "read"}).get_json()["id"]
    assert_error(api.get(f"/api-keys/{theirs}"), 404, "not_found")
    assert_error(api.delete(f"/api-keys/{theirs}"), 404, "not_found")
    assert_error(api.post(f"/api-keys/{theirs}/rotate"), 404, "not_found")
    assert theirs not in [k["id"] for k in api.get("/api-keys?limit=100").get_json()["data"]]
