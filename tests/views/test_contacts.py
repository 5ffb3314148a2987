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


def test_search_and_filters(app, user, api, account):
    from datetime import datetime

    from sqlalchemy import update

    from app.contacts.models import Contact
    from app.extensions import db
    from app.tenancy import tenant_scope

    ada = api.post("/contacts", json={"email": "ada@lovelace.org", "first_name": "Ada", "consent": {"email": True}})
    ada = ada.get_json()["id"]
    alan = api.post("/contacts", json={"email": "alan@turing.org", "last_name": "Turing",
                                       "consent": {"sms": True}}).get_json()["id"]
    lst = api.post("/lists", json={"name": "Pioneers"}).get_json()
    api.post(f"/lists/{lst['id']}/members", json={"contact_id": alan})
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        db.session.execute(update(Contact).where(Contact.id == ada).values(created_at=datetime(2025, 3, 1, 10)))
        db.session.execute(update(Contact).where(Contact.id == alan).values(risk="high"))
        db.session.commit()
    assert _ids(user.get("/contacts?q=LOVE")) == [ada]
    assert _ids(user.get("/contacts?q=turing")) == [alan]
    assert _ids(user.get(f"/contacts?list_id={lst['id']}")) == [alan]
    assert _ids(user.get("/contacts?consent_email=subscribed")) == [ada]
    assert _ids(user.get("/contacts?consent_sms=subscribed")) == [alan]
    assert _ids(user.get("/contacts?risk=high")) == [alan]
    assert _ids(user.get("/contacts?created_from=2025-03-01&created_to=2025-03-01")) == [ada]
    assert _ids(user.get("/contacts?created_to=2025-02-28")) == []
    page = user.get("/contacts").get_data(as_text=True)
    assert f'<option value="{lst["id"]}">Pioneers</option>' in page  # the list filter offers the lists
    bad = user.get("/contacts?created_from=03/01/2025")
    assert bad.status_code == 200 and "Created from" in _table(bad)
    unknown = user.get("/contacts?list_id=list_nope")
    assert unknown.status_code == 200 and "No such list" in _table(unknown)
    # The filter state survives paging links.
    fragment = user.get("/contacts?q=a&consent_email=subscribed", headers={"HX-Request": "true"})
    assert _ids(fragment) == [ada]


def test_detail_shows_lists_and_activity_and_adds_to_a_list(user, api):
    c = api.post("/contacts", json={"email": "act@example.com", "tags": ["vip"]}).get_json()["id"]
    api.patch(f"/contacts/{c}", json={"first_name": "Act"})
    static = api.post("/lists", json={"name": "Newsletter"}).get_json()["id"]
    api.post("/lists", json={"name": "VIPs", "list_type": "dynamic", "segment_rules": {"tags": ["vip"]}})
    html = user.get(f"/contacts/{c}").get_data(as_text=True)
    timeline = html[html.index('id="contact-timeline"'):]
    assert "contact.updated" in timeline and "contact.created" in timeline
    lists = html[html.index('id="contact-lists"'):html.index('id="contact-timeline"')]
    assert "VIPs" in lists and "dynamic" in lists and f'<option value="{static}">Newsletter</option>' in lists
    resp = user.submit(f"/contacts/{c}", f"/contacts/{c}/lists", {"list_id": static})
    assert resp.status_code == 303
    html = user.get(f"/contacts/{c}").get_data(as_text=True)
    lists = html[html.index('id="contact-lists"'):html.index('id="contact-timeline"')]
    assert "Newsletter" in lists and "Added to Newsletter." in html
    assert api.get(f"/lists/{static}").get_json()["member_count"] == 1


def test_erase_from_the_dashboard(user, api):
    c = api.post("/contacts", json={"email": "forget@example.com"}).get_json()["id"]
    confirm = user.get(f"/contacts/{c}/delete")
    assert confirm.status_code == 200 and "GDPR erasure" in confirm.get_data(as_text=True)
    assert api.get(f"/contacts/{c}").status_code == 200  # a GET never deletes
    resp = user.submit(f"/contacts/{c}/delete")
    assert resp.status_code == 303 and resp.headers["Location"] == "/contacts"
    assert "erased" in user.get("/contacts").get_data(as_text=True)
    assert api.get(f"/contacts/{c}").status_code == 404
    sups = api.get("/suppressions?recipient=forget@example.com").get_json()["data"]
    assert [s["reason"] for s in sups] == ["erased"]
