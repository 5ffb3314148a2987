"""Contact pages: create through the API's schema and service, search, paging, detail, isolation."""
from __future__ import annotations

import re

_IDS = re.compile(r'href="/contacts/(con_[A-Za-z0-9]+)"')


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="contacts-table"'):]


def _ids(resp) -> list[str]:
    return _IDS.findall(_table(resp))


def _create(user, **data):
    return user.submit("/contacts", data=data)


def test_create_then_detail(user, api):
    resp = _create(user, email="Ada@Example.com", first_name="Ada", last_name="Lovelace",
                   phone_number="+14155550123", tags="vip, newsletter,vip, ")
    assert resp.status_code == 303
    contact_id = resp.headers["Location"].rsplit("/", 1)[1]
    page = user.get(resp.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Contact ada@example.com created." in html
    assert "Ada Lovelace" in html and "+14155550123" in html
    # The API sees the very same contact.
    body = api.get(f"/contacts/{contact_id}").get_json()
    assert body["email"] == "ada@example.com"
    assert body["tags"] == ["vip", "newsletter"]
    assert body["first_name"] == "Ada"


def test_create_upserts_by_email(user):
    first = _create(user, email="grace@example.com", first_name="Grace")
    again = _create(user, email="GRACE@example.com", last_name="Hopper")
    assert first.headers["Location"] == again.headers["Location"]
    html = user.get(again.headers["Location"]).get_data(as_text=True)
    assert "updated" in html and "Grace Hopper" in html


def test_create_shows_schema_errors(user):
    resp = _create(user, email="not an email")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "Email is not a valid email address" in html
    assert 'id="new-contact" open' in html  # the form stays open with its errors

    resp = _create(user, phone_number="12345")
    assert resp.status_code == 422
    assert "Phone must be an E.164 phone number" in resp.get_data(as_text=True)

    resp = _create(user, first_name="Nobody")
    assert resp.status_code == 422
    assert "A contact needs an email or a phone_number." in resp.get_data(as_text=True)

    resp = _create(user, email="t@example.com", tags="x" * 101)
    assert resp.status_code == 422
    assert "Tags length must be between 1 and 100." in resp.get_data(as_text=True)


def test_search_by_email_and_tag(user, api):
    a = api.post("/contacts", json={"email": "a@example.com", "tags": ["vip"]}).get_json()["id"]
    b = api.post("/contacts", json={"email": "b@example.com", "tags": ["vip", "beta"]}).get_json()["id"]
    c = api.post("/contacts", json={"email": "c@example.com"}).get_json()["id"]
    assert _ids(user.get("/contacts")) == [c, b, a]
    assert _ids(user.get("/contacts?email=B@example.com")) == [b]
    assert _ids(user.get("/contacts?tag=vip")) == [b, a]
    assert _ids(user.get("/contacts?tag=vip&email=a@example.com")) == [a]
    assert _ids(user.get("/contacts?tag=nope")) == []
    assert "No matching contacts" in _table(user.get("/contacts?tag=nope"))
    bad = user.get("/contacts?email=nonsense")
    assert bad.status_code == 200 and "Email is not a valid email address" in _table(bad)

    fragment = user.get("/contacts?tag=beta", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="contacts-table"')
    assert _ids(fragment) == [b]
    assert "HX-Request" in fragment.headers["Vary"]


def test_next_page(app, user, account):
    from app.contacts.service import upsert_contact
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        ids = [upsert_contact({"email": f"p{i}@example.com"})[0].id for i in range(27)]
        db.session.commit()
    first = user.get("/contacts")
    assert _ids(first) == list(reversed(ids))[:25]
    older = re.search(r'href="(/contacts\?starting_after=con_[A-Za-z0-9]+)"', _table(first)).group(1)
    assert _ids(user.get(older)) == list(reversed(ids))[25:]


def test_modes_are_separate(user, api, test_api):
    live = api.post("/contacts", json={"email": "live@example.com"}).get_json()["id"]
    test = test_api.post("/contacts", json={"email": "test@example.com"}).get_json()["id"]
    assert _ids(user.get("/contacts")) == [live]
    assert user.get(f"/contacts/{test}").status_code == 404
    resp = user.submit("/contacts", "/session/mode", {"mode": "test", "next": f"/contacts/{live}"})
    assert resp.headers["Location"] == "/contacts"  # the live contact's page does not exist in test mode
    assert _ids(user.get("/contacts")) == [test]
    assert user.get(f"/contacts/{test}").status_code == 200


def test_other_organizations_contacts_are_not_found(user, other_api):
    theirs = other_api.post("/contacts", json={"email": "secret@example.com"}).get_json()["id"]
    resp = user.get(f"/contacts/{theirs}")
    assert resp.status_code == 404
    assert "secret@example.com" not in resp.get_data(as_text=True)
    assert theirs not in _table(user.get("/contacts"))
    assert _ids(user.get("/contacts?email=secret@example.com")) == []
    # Upserting the same address creates our own contact; theirs is untouched.
    created = _create(user, email="secret@example.com", first_name="Ours")
    assert created.status_code == 303 and theirs not in created.headers["Location"]
    assert other_api.get(f"/contacts/{theirs}").get_json()["first_name"] is None
