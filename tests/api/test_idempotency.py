"""Idempotency keys: replay, reuse, in-progress, 5xx release, expiry, and 50 concurrent requests."""
import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from tests.helpers import ApiClient, assert_error, make_account


def test_replay_returns_original_answer(api):
    first = api.post("/contacts", json={"email": "idem@example.com"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = api.post("/contacts", json={"email": "idem@example.com"}, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert again.headers["Original-Request"] == first.headers["X-Request-Id"]


def test_same_body_other_formatting_is_the_same_request(api):
    h = {"Idempotency-Key": "k-fmt", "Authorization": f"Bearer {api.key}"}
    a = api.client.post("/api/v1/contacts", data='{"email": "f@example.com", "tags": ["a"]}',
                        content_type="application/json", headers=h)
    b = api.client.post("/api/v1/contacts", data='{"tags":["a"],"email":"f@example.com"}',
                        content_type="application/json", headers=h)
    assert a.status_code == b.status_code == 201
    assert b.headers["Idempotent-Replayed"] == "true"


def test_reuse_with_different_body_conflicts(api):
    api.post("/contacts", json={"email": "one@example.com"}, headers={"Idempotency-Key": "k-2"})
    err = assert_error(api.post("/contacts", json={"email": "two@example.com"}, headers={"Idempotency-Key": "k-2"}),
                       409, "idempotency_key_reused", "Idempotency-Key")
    assert err["type"] == "idempotency_error"
    # nothing was done for the refused request
    assert api.get("/contacts?email=two@example.com").get_json()["data"] == []


def test_reuse_on_another_path_conflicts(api):
    api.post("/contacts", json={"email": "p@example.com"}, headers={"Idempotency-Key": "k-path"})
    assert_error(api.post("/api-keys", json={"name": "x", "scope": "read"}, headers={"Idempotency-Key": "k-path"}),
                 409, "idempotency_key_reused")


def test_errors_4xx_are_replayed_too(api):
    first = api.post("/contacts", json={"email": "bad"}, headers={"Idempotency-Key": "k-4xx"})
    again = api.post("/contacts", json={"email": "bad"}, headers={"Idempotency-Key": "k-4xx"})
    assert first.status_code == again.status_code == 400
    assert again.headers["Idempotent-Replayed"] == "true"


def test_key_in_progress(app, api, account):
    from app.api import idempotency

    with app.app_context():
        digest = idempotency.fingerprint("POST", "/api/v1/contacts", b'{"email": "ip@example.com"}')
        assert idempotency.claim(account["organization_id"], "live", "k-busy", digest) is None
    err = assert_error(api.post("/contacts", json={"email": "ip@example.com"}, headers={"Idempotency-Key": "k-busy"}),
                       409, "idempotency_key_in_use", "Idempotency-Key")
    assert err["type"] == "idempotency_error"


def test_5xx_is_not_stored(api, monkeypatch):
    from app.contacts import service

    real = service.upsert_contact
    monkeypatch.setattr(service, "upsert_contact", lambda data: (_ for _ in ()).throw(RuntimeError("db down")))
    failed = api.post("/contacts", json={"email": "retry@example.com"}, headers={"Idempotency-Key": "k-5xx"})
    assert failed.status_code == 500
    monkeypatch.setattr(service, "upsert_contact", real)
    ok = api.post("/contacts", json={"email": "retry@example.com"}, headers={"Idempotency-Key": "k-5xx"})
    assert ok.status_code == 201 and "Idempotent-Replayed" not in ok.headers


def test_keys_are_scoped_by_mode_and_organization(api, test_api, other_api):
    body = {"email": "scope@example.com"}
    assert api.post("/contacts", json=body, headers={"Idempotency-Key": "shared"}).status_code == 201
    t = test_api.post("/contacts", json=body, headers={"Idempotency-Key": "shared"})
    o = other_api.post("/contacts", json=body, headers={"Idempotency-Key": "shared"})
    assert t.status_code == o.status_code == 201
    assert "Idempotent-Replayed" not in t.headers and "Idempotent-Replayed" not in o.headers


def test_expired_key_is_free_again(app, api, account):
    from app.api.models import IdempotencyRecord
    from app.extensions import db

    api.post("/contacts", json={"email": "old@example.com"}, headers={"Idempotency-Key": "k-old"})
    with app.app_context():
        t = IdempotencyRecord.__table__
        with db.engine.begin() as conn:
            conn.execute(update(t).where(t.c.organization_id == account["organization_id"], t.c.key == "k-old")
                         .values(created_at=t.c.created_at - timedelta(hours=25)))
    resp = api.post("/contacts", json={"email": "new@example.com"}, headers={"Idempotency-Key": "k-old"})
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers


def test_key_too_long(api):
    assert_error(api.post("/contacts", json={"email": "l@example.com"}, headers={"Idempotency-Key": "x" * 256}),
                 400, "invalid_request", "Idempotency-Key")


def _fast_account(app):
    from app.accounts.models import Organization
    from app.extensions import db

    with app.app_context():
        acct = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == acct["organization_id"])
                           .values(rate_limit_per_second=1000, rate_limit_burst=1000))
        db.session.commit()
    return acct


def _hammer(app, key, path, body, n=50):
    """n threads fire the identical request at once; returns the responses."""
    results, barrier = [None] * n, threading.Barrier(n)

    def run(i):
        client = app.test_client()
        barrier.wait()
        results[i] = client.post(path, json=body, headers={"Authorization": f"Bearer {key}",
                                                            "Idempotency-Key": "fifty"})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_fifty_concurrent_identical_requests_create_one_object(app):
    from app.apikeys.models import ApiKey
    from app.extensions import db
    from app.tenancy import tenant_scope

    acct = _fast_account(app)
    results = _hammer(app, acct["live_api_key"], "/api/v1/api-keys", {"name": "concurrent", "scope": "read"})
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409}, statuses
    originals = [r for r in results if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    for r in results:
        if r.status_code == 409:
            assert r.get_json()["error"]["code"] == "idempotency_key_in_use"
        elif r is not originals[0]:
            assert r.get_json() == originals[0].get_json()
    with app.app_context(), tenant_scope(acct["organization_id"]):
        names = db.session.execute(select(func.count()).select_from(ApiKey).where(ApiKey.name == "concurrent")
                                   ).scalar_one()
    assert names == 1
    # Once the first finished, the key replays for everyone.
    replay = ApiClient(app.test_client(), acct["live_api_key"]).post(
        "/api-keys", json={"name": "concurrent", "scope": "read"}, headers={"Idempotency-Key": "fifty"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["id"] == originals[0].get_json()["id"]


def test_fifty_concurrent_contact_creates(app):
    acct = _fast_account(app)
    results = _hammer(app, acct["live_api_key"], "/api/v1/contacts", {"email": "race@example.com"})
    originals = [r for r in results if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    assert all(r.status_code in (201, 409) for r in results)  # never a 200 "updated": it ran once


def _multipart(boundary: str, csv: bytes, **fields) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.csv"\r\n'
                 'Content-Type: text/csv\r\n\r\n'.encode() + csv + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_an_upload_is_fingerprinted_by_value_not_by_its_boundary(client, api):
    def upload(boundary, csv, key="upload-key-1", **fields):
        return client.post("/api/v1/imports", data=_multipart(boundary, csv, **fields),
                           content_type=f"multipart/form-data; boundary={boundary}",
                           headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": key})

    first = upload("aaaa1111", b"email\nup1@example.com\n", update_existing="true")
    assert first.status_code in (200, 201, 202), first.get_json()
    again = upload("bbbb2222", b"email\nup1@example.com\n", update_existing="true")  # a retry, new boundary
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert_error(upload("cccc3333", b"email\nsomeone-else@example.com\n", update_existing="true"),
                 409, "idempotency_key_reused", "Idempotency-Key")
    assert_error(upload("dddd4444", b"email\nup1@example.com\n", update_existing="false"),
                 409, "idempotency_key_reused", "Idempotency-Key")


def test_an_upload_with_nul_in_a_field_is_refused(client, api):
    resp = client.post("/api/v1/imports", data=_multipart("eeee5555", b"email\na@example.com\n", list_id="x\x00y"),
                       content_type="multipart/form-data; boundary=eeee5555",
                       headers={"Authorization": f"Bearer {api.key}"})
    assert_error(resp, 400, "invalid_request", "list_id")
