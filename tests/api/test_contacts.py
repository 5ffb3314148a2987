"""Contacts (API.md 4): upsert, every filter, keyset pagination, read/update, and GDPR erasure."""
import base64

import pytest

from tests.helpers import ApiClient, assert_error, make_account


@pytest.fixture
def fast(app, client):
    """An enterprise account with a high rate limit: ``(live api, test api, account)``."""
    from sqlalchemy import update

    from app.accounts.models import Organization
    from app.extensions import db

    with app.app_context():
        acct = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == acct["organization_id"])
                           .values(rate_limit_per_second=1000, rate_limit_burst=1000))
        db.session.commit()
    return ApiClient(client, acct["live_api_key"]), ApiClient(client, acct["test_api_key"]), acct


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
        # Erasure removed the history; the deletion itself is still an event, with the id only (no PII).
        assert [e.type for e in events] == ["contact.deleted"]
        assert events[0].data == {"id": created["id"], "object": "contact", "deleted": True}
        assert events[0].recipient is None


def test_changes_before_deletion_are_events_with_the_contact(app, api, account):
    from sqlalchemy import select

    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope

    created = api.post("/contacts", json={"email": "ev2@example.com"}).get_json()
    api.post("/contacts", json={"email": "ev2@example.com", "first_name": "Eve"})
    api.patch(f"/contacts/{created['id']}", json={"last_name": "Ng"})
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        events = db.session.execute(select(Event).where(Event.contact_id == created["id"])
                                    .order_by(Event.occurred_at, Event.id)).scalars().all()
        assert [e.type for e in events] == ["contact.created", "contact.updated", "contact.updated"]
        assert events[1].data["first_name"] == "Eve" and events[0].recipient == "ev2@example.com"


def _emails(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(c["email"] or "" for c in resp.get_json()["data"])  # "" = a phone-only contact


def test_risk_and_score_are_returned_and_filterable(app, fast):
    api, _, account = fast
    from sqlalchemy import update

    from app.contacts.models import Contact
    from app.extensions import db
    from app.tenancy import tenant_scope

    a = api.post("/contacts", json={"email": "r1@example.com"}).get_json()
    api.post("/contacts", json={"email": "r2@example.com"})
    assert a["risk"] is None and a["score"] is None
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        db.session.execute(update(Contact).where(Contact.id == a["id"]).values(risk="high", score=88))
        db.session.commit()
    got = api.get(f"/contacts/{a['id']}").get_json()
    assert (got["risk"], got["score"]) == ("high", 88)
    assert _emails(api.get("/contacts?risk=high")) == ["r1@example.com"]
    assert _emails(api.get("/contacts?risk=low")) == []
    assert_error(api.get("/contacts?risk=extreme"), 400, "invalid_request", "risk")
    # Written by retention signals, never by clients.
    assert_error(api.post("/contacts", json={"email": "r3@example.com", "risk": "low"}), 400, "invalid_request",
                 "risk")


def test_attribute_filters_deep_object(fast):
    api = fast[0]
    api.post("/contacts", json={"email": "a1@example.com", "attributes": {"plan": "growth", "mrr": 799}})
    api.post("/contacts", json={"email": "a2@example.com", "attributes": {"plan": "growth", "mrr": "799"}})
    api.post("/contacts", json={"email": "a3@example.com", "attributes": {"plan": "starter", "active": True}})
    api.post("/contacts", json={"email": "a4@example.com", "attributes": {"plan": "growth", "mrr": 799.5}})
    assert _emails(api.get("/contacts?attributes[plan]=growth")) == ["a1@example.com", "a2@example.com",
                                                                     "a4@example.com"]
    # A value that spells a number matches the number and the string.
    assert _emails(api.get("/contacts?attributes[mrr]=799")) == ["a1@example.com", "a2@example.com"]
    assert _emails(api.get("/contacts?attributes[mrr]=799.5")) == ["a4@example.com"]
    assert _emails(api.get("/contacts?attributes[active]=true")) == ["a3@example.com"]
    assert _emails(api.get("/contacts?attributes[plan]=growth&attributes[mrr]=799")) == ["a1@example.com",
                                                                                          "a2@example.com"]
    assert _emails(api.get("/contacts?attributes[nope]=x")) == []
    assert _emails(api.get("/contacts", query_string={"attributes[we\"ird]": "x"})) == []
    assert_error(api.get("/contacts?attributes=plan"), 400, "invalid_request", "attributes")
    # Any key is a valid filter (deepObject); one no contact has matches nobody.
    assert _emails(api.get("/contacts?attributes[a][b]=1")) == []
    assert _emails(api.get("/contacts?attributes[]=growth")) == []
    assert _emails(api.get("/contacts?attributes[" + "k" * 300 + "]=1")) == []
    many = "&".join(f"attributes[k{i}]=1" for i in range(11))
    assert_error(api.get(f"/contacts?{many}"), 400, "invalid_request", "attributes")


def test_consent_created_and_search_filters(app, fast):
    api, _, account = fast
    from datetime import datetime, timedelta

    from sqlalchemy import update

    from app.contacts.models import Contact
    from app.extensions import db
    from app.tenancy import tenant_scope

    ada = api.post("/contacts", json={"email": "ada@lovelace.org", "first_name": "Ada", "last_name": "Lovelace",
                                      "consent": {"email": True, "sms": "unsubscribed"}}).get_json()
    api.post("/contacts", json={"email": "alan@turing.org", "first_name": "Alan", "last_name": "Turing",
                                "consent": {"email": "unsubscribed"}})
    api.post("/contacts", json={"phone_number": "+14155550199", "first_name": "Grace_100%"})
    assert _emails(api.get("/contacts?consent[email]=subscribed")) == ["ada@lovelace.org"]
    assert _emails(api.get("/contacts?consent[email]=true")) == ["ada@lovelace.org"]
    assert _emails(api.get("/contacts?consent[email]=false")) == ["alan@turing.org"]
    assert _emails(api.get("/contacts?consent[sms]=unknown")) == ["", "alan@turing.org"]
    assert_error(api.get("/contacts?consent[email]=maybe"), 400, "invalid_request", "consent[email]")
    assert_error(api.get("/contacts?consent[push]=true"), 400, "invalid_request", "consent[push]")

    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        db.session.execute(update(Contact).where(Contact.id == ada["id"])
                           .values(created_at=datetime(2025, 1, 15, 12, 0, 0)))
        db.session.commit()
    assert _emails(api.get("/contacts?created[lte]=2025-02-01T00:00:00Z")) == ["ada@lovelace.org"]
    assert _emails(api.get("/contacts?created[gte]=2025-02-01T00:00:00Z")) == ["", "alan@turing.org"]
    assert _emails(api.get("/contacts?created[gte]=2025-01-01T00:00:00Z&created[lte]=2025-01-31T00:00:00Z")) == [
        "ada@lovelace.org"]
    assert_error(api.get("/contacts?created[gte]=yesterday"), 400, "invalid_request", "created[gte]")
    now = (datetime.utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _emails(api.get(f"/contacts?created[gte]={now}")) == []

    assert _emails(api.get("/contacts?q=LOVE")) == ["ada@lovelace.org"]
    assert _emails(api.get("/contacts?q=AL")) == ["alan@turing.org"]
    assert _emails(api.get("/contacts?q=turing.org")) == ["alan@turing.org"]
    assert _emails(api.get("/contacts?q=a")) == ["", "ada@lovelace.org", "alan@turing.org"]
    # LIKE wildcards in q are literal.
    assert _emails(api.get("/contacts?q=_100%25")) == [""]
    assert _emails(api.get("/contacts?q=%25")) == [""]
    assert _emails(api.get("/contacts?q=r_c")) == []  # "_" is not a wildcard ("Grace")
    assert_error(api.get("/contacts?q="), 400, "invalid_request", "q")
    assert_error(api.get("/contacts?q=" + "x" * 201), 400, "invalid_request", "q")
    # Filters combine.
    assert _emails(api.get("/contacts?q=a&consent[email]=subscribed")) == ["ada@lovelace.org"]


def test_list_filter(fast):
    api = fast[0]
    a = api.post("/contacts", json={"email": "l1@example.com", "tags": ["beta"]}).get_json()
    api.post("/contacts", json={"email": "l2@example.com"})
    static = api.post("/lists", json={"name": "Static"}).get_json()
    api.post(f"/lists/{static['id']}/members", json={"contact_id": a["id"]})
    dynamic = api.post("/lists", json={"name": "Beta", "list_type": "dynamic",
                                       "segment_rules": {"tags": ["beta"]}}).get_json()
    assert _emails(api.get(f"/contacts?list_id={static['id']}")) == ["l1@example.com"]
    assert _emails(api.get(f"/contacts?list_id={dynamic['id']}")) == ["l1@example.com"]
    assert_error(api.get("/contacts?list_id=list_nope"), 404, "not_found", "list_id")


def test_phone_must_be_e164(fast):
    api = fast[0]
    for bad in ("4155550123", "+1415", "+999999999999", "+1 (415) 555-0123x", "+1415555012a"):
        assert_error(api.post("/contacts", json={"phone_number": bad}), 400, "invalid_phone", "phone_number")
    ok = api.post("/contacts", json={"phone_number": "+442071838750"})
    assert ok.status_code == 201 and ok.get_json()["phone_number"] == "+442071838750"


def test_delete_is_a_gdpr_erasure(app, fast):
    """Contact, memberships, events (by contact and by address), message content and attachments are gone;
    message rows keep their ids and statuses; the address is suppressed with reason `erased`; the
    `contact.deleted` event carries the id only."""
    from sqlalchemy import func, select

    from app.events.models import Event
    from app.extensions import db
    from app.lists.models import ListMember
    from app.messages.models import DeliveryAttempt, Message, MessageAttachment, MessageRecipient
    from app.suppressions.models import Suppression
    from app.tenancy import tenant_scope

    _, api, account = fast
    c = api.post("/contacts", json={"email": "erase-me@simulator.test", "phone_number": "+14155550150",
                                    "first_name": "Erin", "attributes": {"ssn": "nope"}}).get_json()
    keep = api.post("/contacts", json={"email": "keep-me@simulator.test"}).get_json()
    lst = api.post("/lists", json={"name": "L"}).get_json()
    api.post(f"/lists/{lst['id']}/members", json={"contact_ids": [c["id"], keep["id"]]})
    attachment = {"filename": "a.txt", "content": base64.b64encode(b"secret").decode(), "content_type": "text/plain"}
    sent = api.post("/messages/email", json={
        "from": "hello@example.com", "to": "erase-me@simulator.test", "subject": "Hi Erin", "html": "<p>Erin</p>",
        "text": "Erin", "attachments": [attachment], "metadata": {"k": "v"}})
    assert sent.status_code == 202, sent.get_data(as_text=True)
    shared = api.post("/messages/email", json={
        "from": "hello@example.com", "to": ["keep-me@simulator.test", "erase-me@simulator.test"],
        "subject": "Both", "text": "Both"}).get_json()
    other = api.post("/messages/email", json={
        "from": "hello@example.com", "to": "keep-me@simulator.test", "subject": "Only keep", "text": "K"}).get_json()
    msg_id = sent.get_json()["id"]

    resp = api.delete(f"/contacts/{c['id']}")
    assert resp.status_code == 200 and resp.get_json() == {"id": c["id"], "object": "contact", "deleted": True}

    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        m = db.session.get(Message, msg_id)
        assert m is not None and m.status and (m.subject, m.html, m.text) == (None, None, None)
        assert m.metadata_ == {} and m.variables == {} and m.to == []
        assert db.session.execute(select(func.count()).select_from(MessageAttachment)
                                  .where(MessageAttachment.message_id == msg_id)).scalar_one() == 0
        both = db.session.get(Message, shared["id"])
        assert both.subject is None
        addresses = set(db.session.execute(select(MessageRecipient.address)
                                           .where(MessageRecipient.message_id == shared["id"])).scalars())
        assert addresses == {"keep-me@simulator.test", "[erased]"}
        assert db.session.get(Message, other["id"]).subject == "Only keep"
        assert "erase-me@simulator.test" not in set(db.session.execute(select(DeliveryAttempt.recipient)).scalars())
        events = db.session.execute(select(Event).where(
            (Event.contact_id == c["id"]) | (Event.recipient == "erase-me@simulator.test")
            | (Event.recipient == "+14155550150"))).scalars().all()
        assert [(e.type, e.data, e.recipient) for e in events] == [
            ("contact.deleted", {"id": c["id"], "object": "contact", "deleted": True}, None)]
        assert db.session.execute(select(func.count()).select_from(Event)
                                  .where(Event.recipient == "keep-me@simulator.test")).scalar_one() > 0
        members = set(db.session.execute(select(ListMember.contact_id)).scalars())
        assert members == {keep["id"]}
        sups = {(s.channel, s.recipient, s.reason) for s in db.session.execute(select(Suppression)).scalars()}
        assert ("email", "erase-me@simulator.test", "erased") in sups
        assert ("sms", "+14155550150", "erased") in sups
    assert_error(api.get(f"/contacts/{c['id']}"), 404, "not_found")
    assert api.get(f"/lists/{lst['id']}").get_json()["member_count"] == 1
    # The address stays suppressed: a later send to it is recorded as suppressed, not delivered.
    again = api.post("/messages/email", json={"from": "hello@example.com", "to": "erase-me@simulator.test",
                                              "subject": "Again", "text": "x"}).get_json()
    assert again["status"] == "suppressed"


def test_erasure_of_an_already_suppressed_address_keeps_the_first_reason(app, api, account):
    from sqlalchemy import select

    from app.extensions import db
    from app.suppressions.models import Suppression
    from app.tenancy import tenant_scope

    c = api.post("/contacts", json={"email": "bounced@example.com"}).get_json()
    api.post("/suppressions", json={"channel": "email", "recipient": "bounced@example.com", "reason": "manual"})
    assert api.delete(f"/contacts/{c['id']}").status_code == 200
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        reasons = db.session.execute(select(Suppression.reason).where(
            Suppression.recipient == "bounced@example.com")).scalars().all()
    assert reasons == ["manual"]
