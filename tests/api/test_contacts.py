"""Contacts (API.md 4, basic part): upsert, filters, keyset pagination, read/update/delete."""
from tests.helpers import assert_error


def test_upsert_by_email(api):
    first = api.post("/contacts", json={"email": "Ava@Example.com", "first_name": "Ava", "tags": ["vip"],
                                        "attributes": {"plan": "pro", "seats": 3}, "consent": {"email": True}})
    assert first.status_code == 201
    c = first.get_json()
    assert c["id"].startswith("con_") and c["object"] == "contact"
    assert c["email"] == "ava@example.com" and c["consent"] == {"email": "subscribed", "sms": "unknown"}
    assert c["created_at"].endswith("Z")
    second = api.post("/contacts", json={"email": "ava@example.com", "last_name": "Stone",
                                         "attributes": {"seats": 5}, "consent": {"sms": False}})
    assert second.status_code == 200
    c2 = second.get_json()
    assert c2["id"] == c["id"] and c2["first_name"] == "Ava" and c2["last_name"] == "Stone"
    assert c2["attributes"] == {"plan": "pro", "seats": 5}
    assert c2["consent"] == {"email": "subscribed", "sms": "unsubscribed"}


def test_every_field_round_trips(api):
    body = {"email": "full@example.com", "phone_number": "+14155550123", "first_name": "F", "last_name": "L",
            "attributes": {"a": "b", "n": 1.5, "ok": True}, "tags": ["x", "y", "x"],
            "consent": {"email": "unsubscribed", "sms": "subscribed"}, "timezone": "Europe/Paris",
            "locale": "fr-FR", "external_id": "cust_42", "metadata": {"crm": "123"}}
    c = api.post("/contacts", json=body).get_json()
    for field in ("phone_number", "first_name", "last_name", "attributes", "consent", "timezone", "locale",
                  "external_id", "metadata"):
        assert c[field] == body[field], field
    assert c["tags"] == ["x", "y"]
    assert api.get(f"/contacts/{c['id']}").get_json() == c


def test_upsert_by_phone_when_no_email(api):
    a = api.post("/contacts", json={"phone_number": "+14155550124", "first_name": "P"})
    b = api.post("/contacts", json={"phone_number": "+14155550124", "last_name": "Q"})
    assert (a.status_code, b.status_code) == (201, 200)
    assert b.get_json()["id"] == a.get_json()["id"]


def test_needs_email_or_phone(api):
    assert_error(api.post("/contacts", json={"first_name": "Nobody"}), 400, "invalid_request", "email")


def test_filters(api):
    api.post("/contacts", json={"email": "t1@example.com", "tags": ["vip", "beta"]})
    api.post("/contacts", json={"email": "t2@example.com", "tags": ["beta"]})
    api.post("/contacts", json={"email": "t3@example.com", "tags": ["vip\"quoted"]})
    vip = [c["email"] for c in api.get("/contacts?tag=vip").get_json()["data"]]
    assert vip == ["t1@example.com"]
    beta = [c["email"] for c in api.get("/contacts?tag=beta").get_json()["data"]]
    assert beta == ["t2@example.com", "t1@example.com"]
    assert [c["email"] for c in api.get('/contacts?tag=vip"quoted').get_json()["data"]] == ["t3@example.com"]
    assert [c["email"] for c in api.get("/contacts?email=T2@EXAMPLE.com").get_json()["data"]] == ["t2@example.com"]
    assert_error(api.get("/contacts?email=nope"), 400, "invalid_email", "email")


def test_keyset_pagination_walks_both_ways(fast_api):
    api = fast_api
    ids = [api.post("/contacts", json={"email": f"p{i}@example.com"}).get_json()["id"] for i in range(25)]
    newest_first = list(reversed(ids))
    page1 = api.get("/contacts?limit=10").get_json()
    assert page1["has_more"] is True and [c["id"] for c in page1["data"]] == newest_first[:10]
    page2 = api.get(f"/contacts?limit=10&starting_after={page1['data'][-1]['id']}").get_json()
    assert [c["id"] for c in page2["data"]] == newest_first[10:20] and page2["has_more"] is True
    page3 = api.get(f"/contacts?limit=10&starting_after={page2['data'][-1]['id']}").get_json()
    assert [c["id"] for c in page3["data"]] == newest_first[20:] and page3["has_more"] is False
    back = api.get(f"/contacts?limit=10&ending_before={page3['data'][0]['id']}").get_json()
    assert [c["id"] for c in back["data"]] == newest_first[10:20] and back["has_more"] is True
    # Stable while rows are added: a new contact does not shift the next page.
    api.post("/contacts", json={"email": "late@example.com"})
    again = api.get(f"/contacts?limit=10&starting_after={page1['data'][-1]['id']}").get_json()
    assert [c["id"] for c in again["data"]] == newest_first[10:20]


def test_patch(api):
    c = api.post("/contacts", json={"email": "patch@example.com", "attributes": {"a": 1, "b": 2},
                                    "tags": ["one"]}).get_json()
    resp = api.patch(f"/contacts/{c['id']}", json={"attributes": {"a": None, "c": 3}, "tags": ["two"],
                                                   "timezone": "America/New_York"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["attributes"] == {"b": 2, "c": 3} and body["tags"] == ["two"]
    assert body["timezone"] == "America/New_York" and body["email"] == "patch@example.com"
    assert_error(api.patch(f"/contacts/{c['id']}", json={"nope": 1}), 400, "invalid_request", "nope")
    assert_error(api.patch("/contacts/con_missing", json={"first_name": "x"}), 404, "not_found")


def test_patch_email_to_existing_conflicts(api):
    api.post("/contacts", json={"email": "taken@example.com"})
    c = api.post("/contacts", json={"email": "mine@example.com"}).get_json()
    err = assert_error(api.patch(f"/contacts/{c['id']}", json={"email": "taken@example.com"}), 409,
                       "duplicate_contact", "email")
    assert err["type"] == "conflict_error"
    assert api.get(f"/contacts/{c['id']}").get_json()["email"] == "mine@example.com"


def test_delete(api):
    c = api.post("/contacts", json={"email": "gone@example.com"}).get_json()
    resp = api.delete(f"/contacts/{c['id']}")
    assert resp.get_json() == {"id": c["id"], "object": "contact", "deleted": True}
    assert_error(api.get(f"/contacts/{c['id']}"), 404, "not_found")
    assert_error(api.delete(f"/contacts/{c['id']}"), 404, "not_found")


def test_contact_changes_are_recorded_as_events(app, api, account):
    from sqlalchemy import select

    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope

    created = api.post("/contacts", json={"email": "ev@example.com"}).get_json()
    api.post("/contacts", json={"email": "ev@example.com", "first_name": "Eve"})
    api.patch(f"/contacts/{created['id']}", json={"last_name": "Ng"})
    api.delete(f"/contacts/{created['id']}")
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        events = db.session.execute(select(Event).where(Event.contact_id == created["id"])
                                    .order_by(Event.occurred_at, Event.id)).scalars().all()
        assert [e.type for e in events] == ["contact.created", "contact.updated", "contact.updated",
                                            "contact.deleted"]
        assert events[1].data["first_name"] == "Eve" and events[0].recipient == "ev@example.com"
