"""List pages: index with counts, static lists with members, dynamic lists built with the rule builder
(re-rendered rows, live count), edit, delete, and isolation."""
from __future__ import annotations

import re

from tests.views.conftest import csrf_from

_MEMBER_IDS = re.compile(r'href="/contacts/(con_[A-Za-z0-9]+)"')


def _members(resp) -> list[str]:
    html = resp.get_data(as_text=True)
    return _MEMBER_IDS.findall(html[html.index('<div id="members-table"'):])


def _contact(api, email, **kw):
    return api.post("/contacts", json={"email": email, **kw}).get_json()["id"]


def test_index_lists_with_counts_and_nav(user, api):
    empty = user.get("/lists")
    assert empty.status_code == 200 and "No lists yet" in empty.get_data(as_text=True)
    assert 'href="/lists"' in empty.get_data(as_text=True)  # the nav entry is live, not "coming soon"
    a = _contact(api, "a@example.com", tags=["beta"])
    _contact(api, "b@example.com", tags=["beta"])
    static = api.post("/lists", json={"name": "Static one"}).get_json()
    api.post(f"/lists/{static['id']}/members", json={"contact_id": a})
    api.post("/lists", json={"name": "Beta testers", "list_type": "dynamic", "segment_rules": {"tags": ["beta"]}})
    html = user.get("/lists").get_data(as_text=True)
    assert "Static one" in html and "Beta testers" in html
    assert re.search(r'data-count="1">1<', html) and re.search(r'data-count="2">2<', html)


def test_create_static_list_and_manage_members(user, api):
    a = _contact(api, "ada@example.com")
    b = _contact(api, "bob@example.com")
    resp = user.submit("/lists/new", "/lists/new", {"name": "VIPs", "description": "Best"})
    assert resp.status_code == 303
    list_id = resp.headers["Location"].rsplit("/", 1)[1]
    assert api.get(f"/lists/{list_id}").get_json()["list_type"] == "static"
    page = f"/lists/{list_id}"
    assert user.submit(page, f"{page}/members", {"contact": "ADA@example.com"}).status_code == 303
    assert user.submit(page, f"{page}/members", {"contact": b}).status_code == 303
    assert _members(user.get(page)) == [b, a]
    dup = user.submit(page, f"{page}/members", {"contact": "ada@example.com"})
    assert dup.status_code == 409 and "already a member" in dup.get_data(as_text=True)
    missing = user.submit(page, f"{page}/members", {"contact": "nobody@example.com"})
    assert missing.status_code == 404 and "No contact with the address" in missing.get_data(as_text=True)
    assert user.submit(page, f"{page}/members/{a}/remove").status_code == 303
    assert _members(user.get(page)) == [b]
    assert api.get(f"/lists/{list_id}").get_json()["member_count"] == 1


def test_create_requires_a_name(user):
    resp = user.submit("/lists/new", "/lists/new", {"name": ""})
    assert resp.status_code == 422 and "This field is required" in resp.get_data(as_text=True)


def test_rule_builder_rows_and_live_count(user, api):
    _contact(api, "p1@example.com", attributes={"plan": "pro", "mrr": 120}, consent={"email": True})
    _contact(api, "p2@example.com", attributes={"plan": "pro", "mrr": 80})
    _contact(api, "f1@example.com", attributes={"plan": "free"})
    form = user.get("/lists/new?type=dynamic")
    html = form.get_data(as_text=True)
    assert 'id="rule-builder"' in html and 'name="c-0-field"' in html
    token = csrf_from(html)
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    # Add a row: the builder comes back with two rows.
    added = user.client.post("/lists/builder", headers=headers, data={
        "csrf_token": token, "match": "all", "c-0-field": "tags", "c-0-op": "contains", "c-0-value": "",
        "action": "add"})
    assert added.status_code == 200
    body = added.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="rule-builder"') and 'name="c-1-field"' in body
    # Switching a row to an attribute shows the key input and that field's operators.
    switched = user.client.post("/lists/builder", headers=headers, data={
        "csrf_token": token, "match": "all", "c-0-field": "attributes", "c-0-op": "contains", "c-0-value": ""})
    body = switched.get_data(as_text=True)
    assert 'name="c-0-key"' in body and 'placeholder="key, e.g. plan"' in body and 'value="gte"' in body
    consent = user.client.post("/lists/builder", headers=headers, data={
        "csrf_token": token, "match": "all", "c-0-field": "consent.email", "c-0-op": "contains"})
    body = consent.get_data(as_text=True)
    assert 'value="contains"' not in body and '<datalist id="values-consent-email">' in body
    assert 'list="values-consent-email"' in body
    # Remove a row.
    removed = user.client.post("/lists/builder", headers=headers, data={
        "csrf_token": token, "match": "all", "c-0-field": "tags", "c-0-op": "contains", "c-1-field": "email",
        "c-1-op": "eq", "action": "remove-0"})
    body = removed.get_data(as_text=True)
    assert 'name="c-1-field"' not in body and '<option value="email" selected>' in body

    def count(data):
        resp = user.client.post("/lists/preview-count", headers=headers, data={"csrf_token": token, **data})
        assert resp.status_code == 200
        return resp.get_data(as_text=True)

    pro = {"match": "all", "c-0-field": "attributes", "c-0-key": "plan", "c-0-op": "eq", "c-0-value": "pro"}
    assert 'data-count="2"' in count(pro)
    rich = {**pro, "c-1-field": "attributes", "c-1-key": "mrr", "c-1-op": "gte", "c-1-value": "100"}
    assert 'data-count="1"' in count(rich)  # 100 typed as a number: 120 ≥ 100, 80 is not
    assert 'data-count="2"' in count({**rich, "match": "any", "c-0-value": "free"})  # free, or mrr ≥ 100
    bad = count({"match": "all", "c-0-field": "score", "c-0-op": "gt", "c-0-value": "lots"})
    assert "segment-count-error" in bad and "must be a number" in bad

    # Save: the list is created with the builder's rules.
    resp = user.submit("/lists/new?type=dynamic", "/lists/new?type=dynamic", {"name": "Pro payers", **rich})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    list_id = resp.headers["Location"].rsplit("/", 1)[1]
    body = api.get(f"/lists/{list_id}").get_json()
    assert body["list_type"] == "dynamic" and body["member_count"] == 1
    assert body["segment_rules"] == {"match": "all", "conditions": [
        {"field": "attributes.plan", "op": "eq", "value": "pro"}, {"field": "attributes.mrr", "op": "gte", "value": 100}]}
    detail = user.get(f"/lists/{list_id}").get_data(as_text=True)
    assert "at least" in detail and len(_members(user.get(f"/lists/{list_id}"))) == 1


def test_invalid_rules_are_shown_on_the_row(user):
    resp = user.submit("/lists/new?type=dynamic", "/lists/new?type=dynamic", {
        "name": "Broken", "match": "all", "c-0-field": "tags", "c-0-op": "contains", "c-0-value": "x",
        "c-1-field": "events", "c-1-key": "", "c-1-days": "30", "c-1-op": "gte", "c-1-value": "1"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'class="rule-row has-error" data-row="1"' in html and "form-errors" in html


def test_no_js_add_row_resubmits_the_page(user):
    resp = user.submit("/lists/new?type=dynamic", "/lists/new?type=dynamic", {
        "name": "Draft", "match": "any", "c-0-field": "tags", "c-0-op": "contains", "c-0-value": "vip",
        "action": "add"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'name="c-1-field"' in html and 'value="vip"' in html and 'value="Draft"' in html


def test_edit_dynamic_rules_and_delete(user, api):
    _contact(api, "e1@example.com", tags=["vip"])
    _contact(api, "e2@example.com", tags=["beta"])
    lst = api.post("/lists", json={"name": "VIP", "list_type": "dynamic", "segment_rules": {"tags": ["vip"]}}).get_json()
    edit = user.get(f"/lists/{lst['id']}/edit").get_data(as_text=True)
    assert 'value="vip"' in edit and '<option value="tags" selected>' in edit
    resp = user.submit(f"/lists/{lst['id']}/edit", data={
        "name": "VIP or beta", "match": "any", "c-0-field": "tags", "c-0-op": "contains", "c-0-value": "vip",
        "c-1-field": "tags", "c-1-op": "contains", "c-1-value": "beta"})
    assert resp.status_code == 303
    got = api.get(f"/lists/{lst['id']}").get_json()
    assert got["name"] == "VIP or beta" and got["member_count"] == 2
    confirm = user.get(f"/lists/{lst['id']}/delete")
    assert confirm.status_code == 200 and "Delete this list?" in confirm.get_data(as_text=True)
    assert user.submit(f"/lists/{lst['id']}/delete").status_code == 303
    assert api.get(f"/lists/{lst['id']}").status_code == 404


def test_other_organizations_lists_are_not_found(user, other_api):
    theirs = other_api.post("/lists", json={"name": "Secret list"}).get_json()["id"]
    assert user.get(f"/lists/{theirs}").status_code == 404
    assert "Secret list" not in user.get("/lists").get_data(as_text=True)
    assert user.get(f"/lists/{theirs}/edit").status_code == 404
