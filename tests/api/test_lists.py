"""Lists (API.md 4): static and dynamic lists, member_count, members (set-based), preview counts, scopes,
tenancy."""
import pytest

from tests.helpers import ApiClient, assert_error, make_account


@pytest.fixture
def fast(app, client):
    """An enterprise account with a high rate limit: ``(live api, account)``."""
    from sqlalchemy import update

    from app.accounts.models import Organization
    from app.extensions import db

    with app.app_context():
        acct = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == acct["organization_id"])
                           .values(rate_limit_per_second=1000, rate_limit_burst=1000))
        db.session.commit()
    return ApiClient(client, acct["live_api_key"]), acct


def _contact(api, email, **kw):
    resp = api.post("/contacts", json={"email": email, **kw})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()["id"]


def test_static_list_crud_and_members(fast):
    api, _ = fast
    a, b, c = (_contact(api, f"s{i}@example.com") for i in range(3))
    created = api.post("/lists", json={"name": "Newsletter", "description": "Weekly", "metadata": {"src": "x"}})
    assert created.status_code == 201
    lst = created.get_json()
    assert lst["id"].startswith("list_") and lst["object"] == "list" and lst["list_type"] == "static"
    assert lst["member_count"] == 0 and lst["segment_rules"] is None and lst["metadata"] == {"src": "x"}

    one = api.post(f"/lists/{lst['id']}/members", json={"contact_id": a})
    assert one.status_code == 201 and one.get_json()["added"] == 1
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_id": a}), 409, "duplicate_member",
                 "contact_id")
    many = api.post(f"/lists/{lst['id']}/members", json={"contact_ids": [a, b, c, b]}).get_json()
    assert (many["added"], many["already_members"]) == (2, 1)
    assert api.get(f"/lists/{lst['id']}").get_json()["member_count"] == 3

    page = api.get(f"/lists/{lst['id']}/members?limit=2").get_json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [m["id"] for m in page["data"]] == [c, b]  # newest contacts first
    rest = api.get(f"/lists/{lst['id']}/members?limit=2&starting_after={b}").get_json()
    assert [m["id"] for m in rest["data"]] == [a] and rest["has_more"] is False

    removed = api.delete(f"/lists/{lst['id']}/members/{b}")
    assert removed.status_code == 200 and removed.get_json()["deleted"] is True
    assert_error(api.delete(f"/lists/{lst['id']}/members/{b}"), 404, "not_found", "contact_id")
    assert api.get(f"/lists/{lst['id']}").get_json()["member_count"] == 2

    patched = api.patch(f"/lists/{lst['id']}", json={"name": "Renamed", "description": None})
    assert patched.status_code == 200
    assert patched.get_json()["name"] == "Renamed" and patched.get_json()["description"] is None
    assert patched.get_json()["member_count"] == 2

    gone = api.delete(f"/lists/{lst['id']}")
    assert gone.get_json() == {"id": lst["id"], "object": "list", "deleted": True}
    assert_error(api.get(f"/lists/{lst['id']}"), 404, "not_found")
    assert api.get(f"/contacts/{a}").status_code == 200  # contacts stay


def test_member_errors(fast):
    api, _ = fast
    a = _contact(api, "m@example.com")
    lst = api.post("/lists", json={"name": "L"}).get_json()
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_id": "con_nope"}), 404, "not_found",
                 "contact_id")
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_ids": [a, "con_nope"]}), 404, "not_found",
                 "contact_ids[1]")
    assert api.get(f"/lists/{lst['id']}").get_json()["member_count"] == 0  # nothing half-added
    assert_error(api.post(f"/lists/{lst['id']}/members", json={}), 400, "invalid_request", "contact_id")
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_id": a, "contact_ids": [a]}), 400,
                 "invalid_request", "contact_id")
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_ids": []}), 400, "invalid_request",
                 "contact_ids")
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_ids": ["con_x"] * 1001}), 400,
                 "invalid_request", "contact_ids")
    assert_error(api.post("/lists/list_nope/members", json={"contact_id": a}), 404, "not_found")
    assert_error(api.get("/lists/list_nope/members"), 404, "not_found")


def test_bulk_add_of_1000_contacts_is_one_call(app, fast):
    from sqlalchemy import insert

    from app.contacts.models import Contact
    from app.extensions import db
    from app.ids import new_id
    from app.tenancy import tenant_scope
    from app.timeutil import utcnow

    api, acct = fast
    ids = [new_id("con") for _ in range(1000)]
    with app.app_context(), tenant_scope(acct["organization_id"], "live"):
        now = utcnow()
        db.session.execute(insert(Contact.__table__), [
            {"id": cid, "organization_id": acct["organization_id"], "mode": "live", "email": f"b{i}@example.com",
             "attributes": {}, "tags": [], "metadata": {}, "consent_email": "unknown", "consent_sms": "unknown",
             "created_at": now, "updated_at": now} for i, cid in enumerate(ids)])
        db.session.commit()
    lst = api.post("/lists", json={"name": "Big"}).get_json()
    first = api.post(f"/lists/{lst['id']}/members", json={"contact_ids": ids[:500]}).get_json()
    assert first["added"] == 500
    second = api.post(f"/lists/{lst['id']}/members", json={"contact_ids": ids}).get_json()
    assert (second["added"], second["already_members"]) == (500, 500)
    assert api.get(f"/lists/{lst['id']}").get_json()["member_count"] == 1000


def test_dynamic_list(fast):
    api, _ = fast
    a = _contact(api, "d1@example.com", tags=["beta"], attributes={"plan": "pro", "mrr": 120})
    _contact(api, "d2@example.com", tags=["beta"], attributes={"plan": "free", "mrr": 0})
    _contact(api, "d3@example.com", attributes={"plan": "pro", "mrr": 99})
    short = api.post("/lists", json={"name": "Beta", "list_type": "dynamic", "segment_rules": {"tags": ["beta"]}})
    assert short.status_code == 201 and short.get_json()["member_count"] == 2
    long = api.post("/lists", json={"name": "Big spenders", "list_type": "dynamic", "segment_rules": {
        "match": "all", "conditions": [{"field": "attributes.mrr", "op": "gte", "value": 100},
                                       {"field": "tags", "op": "contains", "value": "beta"}]}}).get_json()
    assert long["member_count"] == 1
    assert [m["id"] for m in api.get(f"/lists/{long['id']}/members").get_json()["data"]] == [a]
    # Members follow the contacts: a change in the data changes the list.
    _contact(api, "d4@example.com", tags=["beta"], attributes={"mrr": 500})
    assert api.get(f"/lists/{long['id']}").get_json()["member_count"] == 2
    # Rules can change; the type cannot.
    patched = api.patch(f"/lists/{long['id']}", json={"segment_rules": {"attributes": {"plan": "pro"}}})
    assert patched.status_code == 200 and patched.get_json()["member_count"] == 2
    assert_error(api.patch(f"/lists/{long['id']}", json={"list_type": "static"}), 400, "invalid_request",
                 "list_type")
    assert_error(api.patch(f"/lists/{long['id']}", json={"segment_rules": {"match": "most"}}), 400,
                 "invalid_segment_rules", "segment_rules.match")
    # Explicit membership makes no sense on a dynamic list.
    err = assert_error(api.post(f"/lists/{long['id']}/members", json={"contact_id": a}), 422, "dynamic_list")
    assert "dynamic" in err["message"]
    assert_error(api.delete(f"/lists/{long['id']}/members/{a}"), 422, "dynamic_list")
    # Index: every list with its count (static and dynamic in one page).
    static = api.post("/lists", json={"name": "Static"}).get_json()
    api.post(f"/lists/{static['id']}/members", json={"contact_id": a})
    page = api.get("/lists").get_json()
    counts = {item["id"]: item["member_count"] for item in page["data"]}
    assert counts == {short.get_json()["id"]: 3, long["id"]: 2, static["id"]: 1}
    assert [i["id"] for i in api.get("/lists?list_type=static").get_json()["data"]] == [static["id"]]


def test_segment_rules_validation(fast):
    api, _ = fast
    assert_error(api.post("/lists", json={"name": "D", "list_type": "dynamic"}), 400, "invalid_request",
                 "segment_rules")
    assert_error(api.post("/lists", json={"name": "S", "segment_rules": {"tags": ["x"]}}), 400, "invalid_request",
                 "segment_rules")
    assert_error(api.post("/lists", json={"name": "D", "list_type": "dynamic", "segment_rules": {
        "match": "all", "conditions": [{"field": "email", "op": "exists"}, {"field": "score", "op": "gt", "value": 1},
                                       {"field": "email", "op": "like", "value": "x"}]}}),
                 400, "invalid_segment_rules", "segment_rules.conditions[2].op")
    assert_error(api.post("/lists", json={"name": "D", "list_type": "dynamic", "segment_rules": {
        "conditions": [{"field": "attributes.", "op": "eq", "value": 1}]}}),
        400, "invalid_segment_rules", "segment_rules.conditions[0].field")
    assert_error(api.post("/lists", json={"name": "D", "list_type": "dynamic", "segment_rules": "tags"}), 400,
                 "invalid_request", "segment_rules")
    assert_error(api.post("/lists", json={"name": "", "list_type": "static"}), 400, "invalid_request", "name")
    assert_error(api.post("/lists", json={"name": "X", "list_type": "smart"}), 400, "invalid_request", "list_type")
    assert_error(api.post("/lists", json={"name": "X", "colour": 1}), 400, "invalid_request", "colour")


def test_preview_count(fast):
    api, _ = fast
    _contact(api, "p1@example.com", consent={"email": True})
    _contact(api, "p2@example.com", consent={"email": False})
    resp = api.post("/lists/preview-count", json={"segment_rules": {
        "match": "any", "conditions": [{"field": "consent.email", "op": "eq", "value": "subscribed"}]}})
    assert resp.status_code == 200 and resp.get_json() == {"object": "segment_count", "member_count": 1}
    assert api.post("/lists/preview-count", json={"segment_rules": {}}).get_json()["member_count"] == 2
    assert_error(api.post("/lists/preview-count", json={"segment_rules": {"conditions": [{"field": "x"}]}}), 400,
                 "invalid_segment_rules", "segment_rules.conditions[0].field")
    assert_error(api.post("/lists/preview-count", json={}), 400, "invalid_request", "segment_rules")


def test_event_count_segments(app, fast):
    from datetime import timedelta

    from sqlalchemy import insert

    from app.events.models import Event
    from app.extensions import db
    from app.ids import new_id
    from app.tenancy import tenant_scope
    from app.timeutil import utcnow

    api, acct = fast
    active = _contact(api, "active@example.com")
    _contact(api, "idle@example.com")
    with app.app_context(), tenant_scope(acct["organization_id"], "live"):
        now = utcnow()
        db.session.execute(insert(Event.__table__), [
            {"id": new_id("evt"), "organization_id": acct["organization_id"], "mode": "live", "type": "message.opened",
             "contact_id": active, "data": {}, "occurred_at": now - timedelta(days=d)} for d in (1, 2, 40)])
        db.session.commit()
    count = lambda rules: api.post("/lists/preview-count", json={"segment_rules": rules}).get_json()["member_count"]  # noqa: E731
    rule = lambda op, v=None, days=30: {"conditions": [{"field": f"events.message.opened.count_{days}d", "op": op, **({"value": v} if v is not None else {})}]}  # noqa: E501,E731
    assert count(rule("gte", 2)) == 1
    assert count(rule("gte", 3)) == 0
    assert count(rule("gte", 3, days=60)) == 1
    assert count(rule("eq", 0)) == 1
    assert count(rule("not_exists")) == 1
    assert count(rule("lt", 5)) == 2


def test_scopes(client, fast):
    api, _ = fast
    lst = api.post("/lists", json={"name": "L"}).get_json()
    created = api.post("/api-keys", json={"name": "ro", "scopes": ["lists.read"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    ro = ApiClient(client, created.get_json()["secret"])
    assert ro.get(f"/lists/{lst['id']}").status_code == 200
    assert ro.post("/lists/preview-count", json={"segment_rules": {}}).status_code == 200
    assert_error(ro.post("/lists", json={"name": "x"}), 403, "forbidden")
    assert_error(ro.patch(f"/lists/{lst['id']}", json={"name": "x"}), 403, "forbidden")
    assert_error(ro.delete(f"/lists/{lst['id']}"), 403, "forbidden")
    assert_error(ro.post(f"/lists/{lst['id']}/members", json={"contact_ids": ["con_x"]}), 403, "forbidden")
    no_lists = ApiClient(client, api.post("/api-keys", json={"name": "c", "scopes": ["contacts.read"]})
                         .get_json()["secret"])
    assert_error(no_lists.get("/lists"), 403, "forbidden")


def test_other_tenants_lists_are_invisible(api, other_api, test_api):
    mine = _contact(api, "mine@example.com")
    theirs_contact = _contact(other_api, "theirs@example.com", tags=["beta"])
    theirs = other_api.post("/lists", json={"name": "Theirs"}).get_json()
    other_api.post(f"/lists/{theirs['id']}/members", json={"contact_id": theirs_contact})
    for method, path, body in (("GET", f"/lists/{theirs['id']}", None), ("PATCH", f"/lists/{theirs['id']}", {"name": "x"}),
                               ("DELETE", f"/lists/{theirs['id']}", None), ("GET", f"/lists/{theirs['id']}/members", None),
                               ("POST", f"/lists/{theirs['id']}/members", {"contact_id": mine}),
                               ("DELETE", f"/lists/{theirs['id']}/members/{theirs_contact}", None)):
        assert_error(api.request(method, path, json=body), 404, "not_found")
    assert theirs["id"] not in [i["id"] for i in api.get("/lists").get_json()["data"]]
    # Their contact cannot be added to my list, and my dynamic list never counts their contacts.
    lst = api.post("/lists", json={"name": "Mine"}).get_json()
    assert_error(api.post(f"/lists/{lst['id']}/members", json={"contact_id": theirs_contact}), 404, "not_found",
                 "contact_id")
    dyn = api.post("/lists", json={"name": "D", "list_type": "dynamic", "segment_rules": {"tags": ["beta"]}})
    assert dyn.get_json()["member_count"] == 0
    # Test mode sees neither.
    assert api.get("/lists").get_json()["data"] and test_api.get("/lists").get_json()["data"] == []


def test_audience_select_is_tenant_explicit_core(app, fast):
    """The broadcasts' fan-out embeds it in Core statements: the tenant conditions are in its SQL."""
    from app.extensions import db
    from app.lists.service import audience_select
    from app.tenancy import tenant_scope, unscoped
    from app.errors import NotFound

    api, acct = fast
    a = _contact(api, "aud@example.com", tags=["beta"])
    static = api.post("/lists", json={"name": "S"}).get_json()
    api.post(f"/lists/{static['id']}/members", json={"contact_id": a})
    dyn = api.post("/lists", json={"name": "D", "list_type": "dynamic", "segment_rules": {"tags": ["beta"]}}).get_json()
    with app.app_context(), tenant_scope(acct["organization_id"], "live"):
        for list_id in (static["id"], dyn["id"]):
            stmt = audience_select(list_id)
            assert list(stmt.selected_columns.keys()) == ["contact_id"]
            sql = str(stmt.compile(compile_kwargs={"literal_binds": True}))
            assert acct["organization_id"] in sql and "'live'" in sql
            with unscoped():  # still correct with the ORM listener out of the way
                assert list(db.session.execute(stmt).scalars()) == [a]
        with pytest.raises(NotFound) as exc:
            audience_select("list_missing")
        assert exc.value.param == "list_id"
